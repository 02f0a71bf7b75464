// Package audittest opens audit logs for the tests of other packages: a
// log in a temporary directory, signed and sealed by a fresh node
// identity, closed when the test ends.
package audittest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
)

// Keys returns a keyring with a fresh node identity for node.
func Keys(t testing.TB, node string) *custody.Keyring {
	t.Helper()
	root, err := custody.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := custody.NewKeyring(root)
	if err != nil {
		t.Fatal(err)
	}
	id, err := custody.NewIdentity(node)
	if err != nil {
		t.Fatal(err)
	}
	return k.WithIdentity(id)
}

// KeysIn is Keys kept in dir (a root key file and a sealed identity), so
// that another process of the same test opens the same log.
func KeysIn(t testing.TB, dir, node string) *custody.Keyring {
	t.Helper()
	kp, ip := filepath.Join(dir, "audit-root.key"), filepath.Join(dir, "audit-identity.json")
	if _, err := os.Stat(kp); err != nil {
		root, err := custody.GenerateRootKey()
		if err != nil {
			t.Fatal(err)
		}
		k, _ := custody.NewKeyring(root)
		id, err := custody.NewIdentity(node)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.SealIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ip, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := custody.WriteKeyFile(kp, root); err != nil {
			t.Fatal(err)
		}
	}
	root, err := custody.ReadKeyFile(kp)
	if err != nil {
		t.Fatal(err)
	}
	k, err := custody.NewKeyring(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ip)
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.OpenIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.WithIdentity(id)
}

// Config returns the configuration of node's log in dir, with keys (which
// must carry an identity) and the sites sites returns (nil: none).
func Config(t testing.TB, keys *custody.Keyring, node, dir string, sites func() map[string]site.Site) audit.Config {
	t.Helper()
	origin := audit.Origin(node)
	ed, pq, err := keys.CheckpointSigners(origin)
	if err != nil {
		t.Fatal(err)
	}
	eds, _, err := audit.Verifiers(origin, keys.Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	return audit.Config{Dir: dir, Origin: origin, Keys: keys, Signer: ed, Cosigner: pq, Verifiers: eds, Sites: sites,
		// Quicker than a node's defaults, so that tests waiting on the
		// sites' copies do not wait long.
		CheckpointInterval: 100 * time.Millisecond, BatchDelay: 5 * time.Millisecond, CopyInterval: 100 * time.Millisecond}
}

// Open opens a log for node in a temporary directory, copying to the sites
// sites returns, and closes it when the test ends.
func Open(t testing.TB, node string, sites func() map[string]site.Site) *audit.Log {
	t.Helper()
	return OpenConfig(t, Config(t, Keys(t, node), node, t.TempDir(), sites))
}

// OpenConfig opens a log and closes it when the test ends.
func OpenConfig(t testing.TB, cfg audit.Config) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.Close(ctx)
	})
	return l
}
