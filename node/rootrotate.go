package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/vault"
)

// Root key rotation replaces the root key and everything derived from it:
// the manifest key, the node's signing key and every vault key. It takes
// two custodians. The new root is split among the same custodians (new
// share files; the old shares stop working) or written to the local key
// file; the old root is kept sealed under the new one in rotation.json (and
// in the descriptor on every site) until every manifest has been rewritten
// under the new keys, so that a crash at any point leaves a node that
// opens with the new shares and finishes the rotation when resumed.

// RotationFile holds the old root, sealed under the new one, while a root
// key rotation is in progress.
const RotationFile = "rotation.json"

type rotationState struct {
	Started  time.Time `json:"started"`
	PrevRoot []byte    `json:"prev_root"` // sealed under the current root
}

// loadRotation attaches the previous root to the keyring if a rotation is
// in progress. A rotation file the current root cannot open belongs to a
// rotation that never switched roots: it is removed.
func (n *Node) loadRotation() error {
	b, err := os.ReadFile(filepath.Join(n.Dir, RotationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st rotationState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", RotationFile, err)
	}
	keys := n.Keys()
	prev, err := keys.OpenRoot(st.PrevRoot)
	if err != nil {
		n.Log.Warn("removing a rotation file left by a rotation that never switched roots", "err", err)
		return os.Remove(filepath.Join(n.Dir, RotationFile))
	}
	n.setKeys(keys.WithPrevious(prev))
	n.Log.Warn("a root key rotation is in progress: finish it with 'embassy key rotate-root --resume'", "started", st.Started)
	return nil
}

// RotationInProgress reports whether a root key rotation awaits finishing.
func (n *Node) RotationInProgress() bool {
	k := n.Keys()
	return k != nil && k.Previous() != nil
}

// RotateRootKey starts a root key rotation (two custodians must approve)
// and carries it through. Share files for the new root are written to a
// directory in the node directory, returned.
func (n *Node) RotateRootKey(ctx context.Context) (string, vault.RewrapStats, error) {
	if err := n.Ready(); err != nil {
		return "", vault.RewrapStats{}, err
	}
	if n.RotationInProgress() {
		return "", vault.RewrapStats{}, errors.New("a root key rotation is already in progress: resume it with 'embassy key rotate-root --resume'")
	}
	if err := n.Require(ctx, vault.Operation{Kind: "root.rotate", Summary: "rotate the node's root key (every manifest is rewritten; custodians get new shares)", Params: map[string]string{"node": n.conf().Node.ID}}); err != nil {
		return "", vault.RewrapStats{}, err
	}
	return n.rotateRoot(ctx)
}

func (n *Node) rotateRoot(ctx context.Context) (string, vault.RewrapStats, error) {
	var st vault.RewrapStats
	old := n.Keys()
	nr, err := custody.GenerateRootKey()
	if err != nil {
		return "", st, err
	}
	next, err := custody.NewKeyring(nr)
	if err != nil {
		return "", st, err
	}
	// The new root's keys are counted from their first encryption.
	next = n.countSeals(next)
	sealedPrev, err := next.SealRoot(old)
	if err != nil {
		return "", st, err
	}
	if err := n.record(ctx, audit.Event{Kind: KindRootRotate, Actor: vault.Actor(ctx), Detail: map[string]string{"phase": "started",
		"manifest_key": fmt.Sprintf("%x", next.ManifestKeyID())}}); err != nil {
		return "", st, err
	}
	// 1. The new root's custody, not yet in force.
	var sharesDir string
	var rec custody.Record
	if n.Custody != nil {
		var files map[string][]byte
		rec, files, err = custody.SplitRoot(nr, n.conf().Node.ID, n.Custody.Custodians, n.Custody.Set.Threshold)
		if err != nil {
			return "", st, err
		}
		sharesDir = filepath.Join(n.Dir, "shares-"+time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.MkdirAll(sharesDir, 0o700); err != nil {
			return "", st, err
		}
		for name, f := range files {
			if err := writeFileAtomic(filepath.Join(sharesDir, name+".share"), f); err != nil {
				return "", st, err
			}
		}
	}
	// 2. The old root, sealed under the new one.
	b, _ := json.Marshal(rotationState{Started: time.Now().UTC(), PrevRoot: sealedPrev})
	if err := writeFileAtomic(filepath.Join(n.Dir, RotationFile), b); err != nil {
		return "", st, err
	}
	// 3. Switch roots: from here on the node opens with the new root.
	// custody.json is authenticated under the new root (writing it is the
	// switch); the identity and the other node files follow, and until
	// they do, the previous root in rotation.json still verifies them.
	if n.Custody != nil {
		body, err := marshalCustody(&rec)
		if err != nil {
			return "", st, err
		}
		n.genMu.Lock()
		gen := max(n.gens[CustodyFile], nodeFileGen(n.Dir, old, CustodyFile)) + 1
		err = writeNodeFile(n.Dir, next, CustodyFile, gen, body)
		if err == nil {
			n.gens[CustodyFile] = gen
		}
		n.genMu.Unlock()
		if err != nil {
			return "", st, err
		}
		n.sealMu.Lock()
		n.Custody = &rec
		n.sealMu.Unlock()
	} else {
		kf := n.path(orDefault(n.conf().Keys.RootKeyFile, "root.key"))
		tmp := kf + ".new"
		os.Remove(tmp)
		if err := custody.WriteKeyFile(tmp, nr); err != nil {
			return "", st, err
		}
		if err := os.Rename(tmp, kf); err != nil {
			return "", st, err
		}
	}
	n.setKeys(next.WithPrevious(old).WithIdentity(old.Identity()))
	if err := n.reauthenticate(); err != nil {
		return "", st, fmt.Errorf("root rotation: %w (resume with 'embassy key rotate-root --resume')", err)
	}
	n.switchKeys()
	n.PublishDescriptor(ctx)
	n.Log.Info("root key switched; rewriting every manifest under the new keys", "shares", sharesDir)
	st, err = n.finishRotation(ctx)
	return sharesDir, st, err
}

// ResumeRootRotation finishes an interrupted root key rotation.
func (n *Node) ResumeRootRotation(ctx context.Context) (vault.RewrapStats, error) {
	if err := n.Ready(); err != nil {
		return vault.RewrapStats{}, err
	}
	if !n.RotationInProgress() {
		return vault.RewrapStats{}, errors.New("no root key rotation is in progress")
	}
	return n.finishRotation(ctx)
}

// finishRotation rewrites every manifest still under the old root, then
// forgets the old root.
func (n *Node) finishRotation(ctx context.Context) (vault.RewrapStats, error) {
	st, err := n.Engine.RewrapAll(vault.AsSystem(ctx), nil)
	if err != nil {
		return st, fmt.Errorf("root rotation: %w (resume with 'embassy key rotate-root --resume')", err)
	}
	if err := os.Remove(filepath.Join(n.Dir, RotationFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	n.setKeys(custody.RootlessCopy(n.Keys()))
	n.switchKeys()
	n.PublishDescriptor(ctx)
	// The sites' encryption counts, sealed again under the new root.
	if c := n.seals.counter.Load(); c != nil {
		n.sealsToSites(custody.MarshalSealRecords(c.Records()))
	}
	n.recordBestEffort(ctx, audit.Event{Kind: KindRootRotate, Actor: vault.Actor(ctx), Detail: map[string]string{"phase": "finished",
		"rewritten": fmt.Sprint(st.Rewrapped), "manifest_key": fmt.Sprintf("%x", n.Keys().ManifestKeyID())}})
	n.Log.Info("root key rotation finished", "rewritten", st.Rewrapped)
	return st, nil
}

// reauthenticate re-wraps the node identity and authenticates node.yaml
// and requests.json under the current root (n.Keys()), after a root switch.
// The identity itself does not change: whatever others pinned stays valid.
func (n *Node) reauthenticate() error {
	keys := n.Keys()
	if id := keys.Identity(); id != nil {
		if err := writeIdentity(n.Dir, custody.RootlessCopy(keys), id); err != nil {
			return err
		}
	}
	if err := n.rewrapPeerKeys(); err != nil {
		return err
	}
	for _, name := range []string{ConfigFile, RequestsFile} {
		f, err := readNodeFile(n.Dir, name)
		if err != nil || f == nil {
			return err
		}
		if previous, err := f.verify(keys); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		} else if !previous {
			continue
		}
		if err := n.saveNodeFile(name, f.body); err != nil {
			return err
		}
	}
	return nil
}

// switchKeys puts n.Keys() in force in the running engine.
func (n *Node) switchKeys() {
	keys := n.Keys()
	bk := keys.BindingKeys()
	n.Engine.SetKeys(keys, bk, bk)
}

// ReplaceIdentity replaces the node identity, which takes two custodians
// (identity.replace). The new identity keeps the old one's public keys so
// that what it signed still verifies, and the transition statement, signed
// by the old and the new key, is written to the node directory (returned)
// and kept in identity.json, so the descriptor carries it to every site.
// Whoever pinned the old node.pub checks the statement to move to the new.
func (n *Node) ReplaceIdentity(ctx context.Context) (string, error) {
	if err := n.Ready(); err != nil {
		return "", err
	}
	fp := n.Keys().Identity().Public().Ed25519Fingerprint()
	if err := n.Require(ctx, vault.Operation{Kind: "identity.replace", Summary: "replace the node identity " + fp + " (everything others pinned must move to the new key, by the transition statement)",
		Params: map[string]string{"identity": fp}}); err != nil {
		return "", err
	}
	return n.replaceIdentity(fp)
}

func (n *Node) replaceIdentity(fp string) (string, error) {
	old := n.Keys().Identity()
	if got := old.Public().Ed25519Fingerprint(); got != fp {
		return "", fmt.Errorf("identity.replace: the identity is %s, not the %s the custodians approved replacing", got, fp)
	}
	at := time.Now().UTC()
	next, stmt, err := old.Replace(at)
	if err != nil {
		return "", err
	}
	// The statement is on the log, under the old key's checkpoints, before
	// the new key signs anything: a witness that pinned the old key finds
	// the way to the new one there.
	if err := n.record(context.Background(), audit.Event{Kind: KindIdentityReplace, Actor: "node", Detail: map[string]string{
		"old": fp, "new": next.Public().Ed25519Fingerprint(), "statement": string(stmt)}}); err != nil {
		return "", err
	}
	path := filepath.Join(n.Dir, "identity-transition-"+at.Format("20060102T150405Z")+".txt")
	if err := writeFileAtomic(path, stmt); err != nil {
		return "", err
	}
	if err := writeIdentity(n.Dir, custody.RootlessCopy(n.Keys()), next); err != nil {
		return "", err
	}
	n.setKeys(n.Keys().WithIdentity(next))
	if n.Audit() != nil {
		// Checkpoints are signed by the new key from now on.
		n.auditSwap.Lock()
		n.closeAudit()
		err := n.openAudit(context.Background())
		n.auditSwap.Unlock()
		if err != nil {
			return "", fmt.Errorf("reopen the audit log under the new identity: %w", err)
		}
	}
	if n.Engine != nil {
		n.switchKeys()
		n.PublishDescriptor(context.Background())
	}
	n.Log.Info("node identity replaced", "old", fp, "new", next.Public().Ed25519Fingerprint(), "statement", path)
	return path, nil
}
