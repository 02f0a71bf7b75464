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

	"crypto/ed25519"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/site"
)

// The node descriptor makes the sites the source of truth for the node
// itself (DESIGN.md §3 invariant 3): the node's configuration (sites and
// their credentials, vaults and policies, principals), its custody record,
// its two-person requests and its identity (wrapped under the root key),
// sealed with a key derived from the root key and signed by the node
// identity, on every site. From any one site and the root key (or T
// custodian shares), `embassy recover` rebuilds the node on a fresh
// machine; at every unseal the node compares its own files with the newest
// descriptor on the sites (verifyNodeFiles).
//
// Layout: "EMBD", format (1 or 2), 8-byte key id, 4-byte big-endian
// length, the sealed JSON body (nonce || AES-256-GCM), and a signature over
// everything before it: format 2, a hybrid signature by the node identity
// (Ed25519 || ML-DSA-44, custody.HybridSignatureSize bytes); format 1
// (written before node identities), an Ed25519 signature by the
// root-derived key.

// DescriptorBlob is the blob name of the node descriptor on every site.
const DescriptorBlob = "node/descriptor"

// DescriptorCopyFile is the node's own copy of the descriptor it last
// published, in the node directory. At unseal it names the sites to compare
// with even when node.yaml itself was replaced, and it is compared with
// like any site's.
const DescriptorCopyFile = "descriptor"

type descriptor struct {
	Format  int       `json:"format"`
	NodeID  string    `json:"node_id"`
	Written time.Time `json:"written"`
	Config  []byte    `json:"config"`            // node.yaml
	Custody []byte    `json:"custody,omitempty"` // custody.json
	// Requests is requests.json (format 2).
	Requests []byte `json:"requests,omitempty"`
	// Identity is identity.json: the node identity, wrapped under the
	// root key (format 2).
	Identity []byte `json:"identity,omitempty"`
	// Rotation is rotation.json while a root key rotation is in progress:
	// the old root, sealed under the current one.
	Rotation []byte `json:"rotation,omitempty"`
}

const descriptorHeader = 4 + 1 + 8 + 4

func descriptorAAD(format byte) []byte { return []byte{'E', 'M', 'B', 'D', format} }

func sealDescriptor(k *custody.Keyring, d descriptor) ([]byte, error) {
	format := byte(2)
	if k.Identity() == nil {
		format = 1
	}
	d.Format = int(format)
	plain, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	keyID, body, err := k.SealManifest(descriptorAAD(format), plain)
	if err != nil {
		return nil, err
	}
	out := append([]byte("EMBD"), format)
	out = append(out, keyID[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	var sig []byte
	if format == 2 {
		sig, err = k.SignHybrid(out)
	} else {
		sig, err = k.Sign(out)
	}
	if err != nil {
		return nil, err
	}
	return append(out, sig...), nil
}

// ErrDescriptor: the descriptor is missing, damaged, or sealed with
// another root key (the key or shares given are not this node's).
var ErrDescriptor = errors.New("node descriptor unusable")

// splitDescriptor checks the layout and returns the format, the signed
// bytes and the signature.
func splitDescriptor(b []byte) (byte, []byte, []byte, error) {
	if len(b) < descriptorHeader || string(b[:4]) != "EMBD" || (b[4] != 1 && b[4] != 2) {
		return 0, nil, nil, fmt.Errorf("%w: not a node descriptor", ErrDescriptor)
	}
	sigLen := ed25519.SignatureSize
	if b[4] == 2 {
		sigLen = custody.HybridSignatureSize
	}
	n := binary.BigEndian.Uint32(b[13:17])
	if int64(n) != int64(len(b))-descriptorHeader-int64(sigLen) {
		return 0, nil, nil, fmt.Errorf("%w: length mismatch", ErrDescriptor)
	}
	return b[4], b[:len(b)-sigLen], b[len(b)-sigLen:], nil
}

// openDescriptor verifies and opens a descriptor with the root key's
// keyring. A format 2 descriptor is signed by the identity it carries,
// which only the root key unwraps.
func openDescriptor(k *custody.Keyring, b []byte) (descriptor, error) {
	var d descriptor
	format, signed, sig, err := splitDescriptor(b)
	if err != nil {
		return d, err
	}
	var keyID [8]byte
	copy(keyID[:], b[5:13])
	// A descriptor sealed under this root that fails to verify was
	// altered on the site: that is not the key's fault.
	damaged := fmt.Errorf("%w: damaged: it is sealed under this key but does not verify (altered or corrupted on the site); recover from another site", ErrDescriptor)
	if !k.SealsWith(keyID) {
		return d, fmt.Errorf("%w: sealed by another node: the key or shares given are not this node's (wrong key or shares?)", ErrDescriptor)
	}
	if format == 1 {
		if err := k.Verify(signed, sig); err != nil {
			return d, damaged
		}
	}
	plain, err := k.OpenManifest(keyID, descriptorAAD(format), signed[descriptorHeader:])
	if err != nil {
		return d, damaged
	}
	if err := json.Unmarshal(plain, &d); err != nil || d.Format != int(format) {
		return d, fmt.Errorf("%w: malformed body", ErrDescriptor)
	}
	if format == 2 {
		id, err := k.OpenIdentity(d.Identity)
		if err != nil {
			return d, fmt.Errorf("%w: identity: %v", ErrDescriptor, err)
		}
		if err := id.Public().Verify(signed, sig); err != nil {
			return d, fmt.Errorf("%w: damaged: not signed by the node identity it carries (altered on the site); recover from another site", ErrDescriptor)
		}
	}
	return d, nil
}

// VerifyDescriptor checks that a node descriptor (format 2) is signed by
// the node identity pub, as pinned from node.pub. It needs no key: the
// descriptor's body stays sealed.
func VerifyDescriptor(b []byte, pub custody.PublicIdentity) error {
	format, signed, sig, err := splitDescriptor(b)
	if err != nil {
		return err
	}
	if format != 2 {
		return fmt.Errorf("%w: format %d is not signed by a node identity", ErrDescriptor, format)
	}
	return pub.Verify(signed, sig)
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
	d := descriptor{NodeID: n.Config.Node.ID, Written: time.Now().UTC(), Config: cfg}
	for _, f := range []struct {
		name string
		to   *[]byte
	}{{CustodyFile, &d.Custody}, {RequestsFile, &d.Requests}, {custody.IdentityFile, &d.Identity}, {RotationFile, &d.Rotation}} {
		if b, err := os.ReadFile(filepath.Join(n.Dir, f.name)); err == nil {
			*f.to = b
		}
	}
	blob, err := sealDescriptor(n.Keys, d)
	if err != nil {
		n.Log.Error("descriptor: seal", "err", err)
		return nil
	}
	if err := writeFileAtomic(filepath.Join(n.Dir, DescriptorCopyFile), blob); err != nil {
		n.Log.Warn("descriptor: keep a copy in the node directory", "err", err)
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

// readDescriptor reads and opens the descriptor on one site.
func readDescriptor(ctx context.Context, k *custody.Keyring, s site.Site) (descriptor, error) {
	rc, err := s.Get(ctx, DescriptorBlob, 0, -1)
	if err != nil {
		return descriptor{}, fmt.Errorf("read the node descriptor from the site: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	rc.Close()
	if err != nil {
		return descriptor{}, err
	}
	return openDescriptor(k, b)
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
	d, err := readDescriptor(ctx, keys, o.From)
	if err != nil {
		return nil, st, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, st, err
	}
	c, err := restoreFiles(o.Dir, keys, d, o.SitePaths)
	if err != nil {
		return nil, st, err
	}
	if len(d.Custody) == 0 {
		// A node with a local root key: keep it local here too.
		if err := custody.WriteKeyFile(filepath.Join(o.Dir, orDefault(c.Keys.RootKeyFile, "root.key")), root); err != nil {
			return nil, st, err
		}
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

// restoreFiles writes the node files a descriptor carries into dir (a new
// node directory), with dir sites moved to sitePaths. A file whose own
// authenticator verifies under keys is written as it is; one that was
// moved, or written before authenticators or under a previous root, is
// authenticated anew as its next generation: the descriptor, sealed and
// signed, vouches for it.
func restoreFiles(dir string, keys *custody.Keyring, d descriptor, sitePaths map[string]string) (*Config, error) {
	cf, err := splitNodeFile(ConfigFile, d.Config)
	if err != nil {
		return nil, fmt.Errorf("descriptor config: %w", err)
	}
	c, err := ParseConfig(cf.body)
	if err != nil {
		return nil, fmt.Errorf("descriptor config: %w", err)
	}
	moved := false
	for i, s := range c.Sites {
		if p, ok := sitePaths[s.ID]; ok && p != s.Path {
			c.Sites[i].Path, moved = p, true
		}
	}
	body := cf.body
	if moved {
		if body, err = c.Marshal(); err != nil {
			return nil, err
		}
	}
	write := func(name string, f nodeFile, body []byte) error {
		if f.mac != nil && bytes.Equal(body, f.body) {
			if _, err := f.verify(keys); err == nil {
				return writeFileAtomic(filepath.Join(dir, name), f.raw)
			}
		}
		return writeNodeFile(dir, keys, name, f.gen+1, body)
	}
	if err := write(ConfigFile, cf, body); err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{CustodyFile: d.Custody, RequestsFile: d.Requests} {
		if len(b) == 0 {
			continue
		}
		f, err := splitNodeFile(name, b)
		if err != nil {
			return nil, fmt.Errorf("descriptor: %w", err)
		}
		if err := write(name, f, f.body); err != nil {
			return nil, err
		}
	}
	for name, b := range map[string][]byte{custody.IdentityFile: d.Identity, RotationFile: d.Rotation} {
		if len(b) > 0 {
			if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}
