package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/site"
)

// The node descriptor makes the sites the source of truth for the node
// itself (DESIGN.md §3 invariant 3): the node's configuration (sites and
// their credentials, vaults and policies, principals) and its custody
// record, sealed with a key derived from the root key and signed by the
// node, on every site. From any one site and the root key (or T custodian
// shares), `embassy recover` rebuilds the node on a fresh machine.
//
// Layout: "EMBD", format 1, 8-byte key id, 4-byte big-endian length, the
// sealed JSON body (nonce || AES-256-GCM), and a 64-byte Ed25519 signature
// over everything before it.

// DescriptorBlob is the blob name of the node descriptor on every site.
const DescriptorBlob = "node/descriptor"

type descriptor struct {
	Format  int       `json:"format"`
	NodeID  string    `json:"node_id"`
	Written time.Time `json:"written"`
	Config  []byte    `json:"config"`            // node.yaml
	Custody []byte    `json:"custody,omitempty"` // custody.json
	// Rotation is rotation.json while a root key rotation is in progress:
	// the old root, sealed under the current one.
	Rotation []byte `json:"rotation,omitempty"`
}

const descriptorAAD = "EMBD\x01"

func sealDescriptor(k *custody.Keyring, d descriptor) ([]byte, error) {
	plain, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	keyID, body, err := k.SealManifest([]byte(descriptorAAD), plain)
	if err != nil {
		return nil, err
	}
	out := append([]byte(descriptorAAD[:4]), 1)
	out = append(out, keyID[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	sig, err := k.Sign(out)
	if err != nil {
		return nil, err
	}
	return append(out, sig...), nil
}

// ErrDescriptor: the descriptor is missing, damaged, or sealed with
// another root key (the key or shares given are not this node's).
var ErrDescriptor = errors.New("node descriptor unusable")

func openDescriptor(k *custody.Keyring, b []byte) (descriptor, error) {
	var d descriptor
	if len(b) < 4+1+8+4+64 || string(b[:4]) != "EMBD" || b[4] != 1 {
		return d, fmt.Errorf("%w: not a node descriptor", ErrDescriptor)
	}
	n := binary.BigEndian.Uint32(b[13:17])
	if int(n) != len(b)-17-64 {
		return d, fmt.Errorf("%w: length mismatch", ErrDescriptor)
	}
	signed, sig := b[:len(b)-64], b[len(b)-64:]
	if err := k.Verify(signed, sig); err != nil {
		return d, fmt.Errorf("%w: not signed by the node this key belongs to (wrong key or shares?)", ErrDescriptor)
	}
	var keyID [8]byte
	copy(keyID[:], b[5:13])
	plain, err := k.OpenManifest(keyID, []byte(descriptorAAD), b[17:len(b)-64])
	if err != nil {
		return d, fmt.Errorf("%w: %v", ErrDescriptor, err)
	}
	if err := json.Unmarshal(plain, &d); err != nil || d.Format != 1 {
		return d, fmt.Errorf("%w: malformed body", ErrDescriptor)
	}
	return d, nil
}

// PublishDescriptor writes the sealed node descriptor to every reachable
// site. It returns the sites that could not be written.
func (n *Node) PublishDescriptor(ctx context.Context) []string {
	if n.Keys == nil || n.Engine == nil {
		return nil
	}
	cfg, err := os.ReadFile(filepath.Join(n.Dir, ConfigFile))
	if err != nil {
		n.Log.Error("descriptor: read config", "err", err)
		return nil
	}
	d := descriptor{Format: 1, NodeID: n.Config.Node.ID, Written: time.Now().UTC(), Config: cfg}
	if b, err := os.ReadFile(filepath.Join(n.Dir, CustodyFile)); err == nil {
		d.Custody = b
	}
	if b, err := os.ReadFile(filepath.Join(n.Dir, RotationFile)); err == nil {
		d.Rotation = b
	}
	blob, err := sealDescriptor(n.Keys, d)
	if err != nil {
		n.Log.Error("descriptor: seal", "err", err)
		return nil
	}
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for _, s := range n.Engine.Sites() {
		wg.Go(func() {
			if err := s.Store.Put(ctx, DescriptorBlob, bytes.NewReader(blob), int64(len(blob))); err != nil {
				mu.Lock()
				failed = append(failed, s.ID)
				mu.Unlock()
				n.Log.Warn("descriptor not written to site; it will be on the next change", "site", s.ID, "err", err)
			}
		})
	}
	wg.Wait()
	return failed
}

// RecoverOptions configure a recovery.
type RecoverOptions struct {
	// Dir is the new node directory (must not hold a node).
	Dir string
	// From is the one site to read the descriptor from.
	From site.Site
	// RootKey, or Shares (custodians' decrypted shares, at least T), opens it.
	RootKey *custody.RootKey
	Shares  [][]byte
	// SitePaths overrides the directory of dir sites on this machine.
	SitePaths map[string]string
	Logger    func(msg string, args ...any)
}

// Recover rebuilds a node on a fresh machine from one site and the root key
// or T custodians' shares: it reads the node descriptor, writes the node's
// configuration and custody record, opens the node (which rebuilds the
// index from every reachable site), and returns it ready to serve.
func Recover(ctx context.Context, o RecoverOptions) (*Node, housekeeping.RebuildStats, error) {
	var st housekeeping.RebuildStats
	if _, err := os.Stat(filepath.Join(o.Dir, ConfigFile)); err == nil {
		return nil, st, fmt.Errorf("%s already holds a node", o.Dir)
	}
	var root custody.RootKey
	switch {
	case o.RootKey != nil:
		root = *o.RootKey
	case len(o.Shares) > 0:
		var err error
		if root, err = custody.CombineShares(o.Shares); err != nil {
			return nil, st, err
		}
	default:
		return nil, st, errors.New("recover: give the root key or custodians' shares")
	}
	keys, err := custody.NewKeyring(root)
	if err != nil {
		return nil, st, err
	}
	rc, err := o.From.Get(ctx, DescriptorBlob, 0, -1)
	if err != nil {
		return nil, st, fmt.Errorf("read the node descriptor from the site: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	rc.Close()
	if err != nil {
		return nil, st, err
	}
	d, err := openDescriptor(keys, b)
	if err != nil {
		return nil, st, err
	}
	c, err := ParseConfig(d.Config)
	if err != nil {
		return nil, st, fmt.Errorf("descriptor config: %w", err)
	}
	for i, s := range c.Sites {
		if p, ok := o.SitePaths[s.ID]; ok {
			c.Sites[i].Path = p
		}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, st, err
	}
	if len(d.Custody) > 0 {
		if err := writeFileAtomic(filepath.Join(o.Dir, CustodyFile), d.Custody); err != nil {
			return nil, st, err
		}
	} else {
		// A node with a local root key: keep it local here too.
		c.Keys.RootKeyFile = orDefault(c.Keys.RootKeyFile, "root.key")
		if err := custody.WriteKeyFile(filepath.Join(o.Dir, c.Keys.RootKeyFile), root); err != nil {
			return nil, st, err
		}
	}
	if len(d.Rotation) > 0 {
		if err := writeFileAtomic(filepath.Join(o.Dir, RotationFile), d.Rotation); err != nil {
			return nil, st, err
		}
	}
	if err := SaveConfig(o.Dir, c); err != nil {
		return nil, st, err
	}
	n, err := Open(ctx, o.Dir, nil)
	if err != nil {
		return nil, st, err
	}
	if n.Sealed() {
		for _, s := range o.Shares {
			if _, err := n.Unseal(s); err != nil {
				n.Close()
				return nil, st, err
			}
		}
		if err := n.Ready(); err != nil {
			n.Close()
			return nil, st, err
		}
	}
	return n, n.LastRebuild, nil
}
