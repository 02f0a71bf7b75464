package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/vault"
)

// sealedSkip are the exported methods the sweep does not call: they end
// the node or its test (Close, Serve, ServePeers, which block), or are the
// way out of the sealed state.
var sealedSkip = map[string]string{
	"Close":      "ends the node",
	"Serve":      "blocks serving",
	"ServePeers": "blocks serving",
	"Unseal":     "unseals",
	"UnsealAs":   "unseals",
	"WaitJob":    "waits for a job that does not exist",
}

// TestSealedNodeSweep calls every exported method of a sealed node (one
// whose root key is split among custodians, reopened and not unsealed) the
// way a Go program embedding the node could: none may panic, and none may
// change the node directory or the sites, since nothing a sealed node does
// can be authorised or recorded. A new method is swept as soon as it is
// added.
func TestSealedNodeSweep(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	grantTo(t, cn)
	if len(n.Grants()) != 1 || len(n.GrantsTo("LVA")) != 1 {
		t.Fatalf("unsealed: %d grants, %d to LVA; want 1", len(n.Grants()), len(n.GrantsTo("LVA")))
	}
	n.Close()
	cn.n = cn.open(t)
	n = cn.n
	if !n.Sealed() || n.Keys() != nil {
		t.Fatalf("reopened: sealed %v, keys %v", n.Sealed(), n.Keys() != nil)
	}
	root := filepath.Dir(cn.dir) // the node directory and its sites
	before := treeDigest(t, root)

	ctx, cancel := context.WithTimeout(n.As(t.Context(), "admin"), 5*time.Second)
	defer cancel()
	v := reflect.ValueOf(n)
	typ := v.Type()
	swept := 0
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if _, ok := sealedSkip[m.Name]; ok {
			continue
		}
		args := make([]reflect.Value, 0, m.Type.NumIn()-1)
		for j := 1; j < m.Type.NumIn(); j++ {
			if m.Type.IsVariadic() && j == m.Type.NumIn()-1 {
				break
			}
			args = append(args, sweepArg(ctx, m.Type.In(j)))
		}
		swept++
		out, panicked := callRecovering(v.Method(i), args)
		if panicked != nil {
			t.Errorf("%s on a sealed node panicked: %v", m.Name, panicked)
			continue
		}
		// Methods that return an error and change state must say the
		// node is sealed (or refuse for another reason); those that
		// only read may return what they can without the keys.
		if err := lastError(out); err == nil && changesState(m.Name) {
			t.Errorf("%s on a sealed node returned no error", m.Name)
		}
	}
	// PublishDescriptor reports the sites it did not write, not an error.
	if got := n.PublishDescriptor(ctx); len(got) != len(n.Config.Sites) {
		t.Errorf("PublishDescriptor on a sealed node: sites not written %v, want all %d", got, len(n.Config.Sites))
	}
	if swept < 80 {
		t.Errorf("swept %d methods: the sweep lost its way", swept)
	}
	after := treeDigest(t, root)
	// Events that arise while sealed (a refused decision) wait in the
	// sealed journal for the log, by design (docs/audit.md).
	delete(after, "/node/audit/"+sealedJournal)
	if !maps.Equal(before, after) {
		t.Errorf("a sealed node changed its files or sites:\n%s", treeDiff(before, after))
	}
}

// changesState: exported methods whose name says they change something.
func changesState(name string) bool {
	for _, p := range []string{"Add", "Remove", "Delete", "Set", "Rotate", "Resume", "Replace", "Revoke", "Grant", "Host", "Unhost", "Start", "Cancel", "Propose", "Resplit", "Describe", "Change", "Drain", "Pull", "Save", "Decide", "Sync", "Rebuild", "Publish"} {
		if strings.HasPrefix(name, p) && name != "Grants" && name != "GrantsTo" && name != "GrantODRL" && name != "HostUsage" && name != "PublishDescriptor" {
			return true
		}
	}
	return false
}

// sweepArg is a harmless value of type t for the sweep: the context for
// contexts, a recorder and request for an HTTP handler's arguments, the
// zero value otherwise.
func sweepArg(ctx context.Context, t reflect.Type) reflect.Value {
	switch {
	case t == reflect.TypeFor[context.Context]():
		return reflect.ValueOf(ctx)
	case t == reflect.TypeFor[http.ResponseWriter]():
		return reflect.ValueOf(httptest.NewRecorder())
	case t == reflect.TypeFor[*http.Request]():
		return reflect.ValueOf(httptest.NewRequest(http.MethodGet, "/", nil))
	case t == reflect.TypeFor[net.Listener]():
		return reflect.Zero(t)
	case t.Kind() == reflect.String:
		return reflect.ValueOf("sweep").Convert(t)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		return reflect.New(t.Elem())
	}
	return reflect.Zero(t)
}

func callRecovering(f reflect.Value, args []reflect.Value) (out []reflect.Value, panicked any) {
	defer func() { panicked = recover() }()
	return f.Call(args), nil
}

func lastError(out []reflect.Value) error {
	if len(out) == 0 {
		return nil
	}
	last := out[len(out)-1]
	if last.Type() != reflect.TypeFor[error]() || last.IsNil() {
		return nil
	}
	return last.Interface().(error)
}

// treeDigest maps every regular file under root to its content's digest.
func treeDigest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(p, root)] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func treeDiff(a, b map[string]string) string {
	var lines []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			lines = append(lines, "removed "+k)
		} else if w != v {
			lines = append(lines, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			lines = append(lines, "added "+k)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// grantTo makes cn's node trust a fresh LVA node and grant it the vault
// registry, the custodians approving what takes them.
func grantTo(t *testing.T, cn *custodyNode) {
	t.Helper()
	n := cn.n
	dir := filepath.Join(t.TempDir(), "lva")
	if _, err := Init(dir, InitOptions{Nation: "LVA", Configure: func(c *Config) { c.Alliance.Listen = "127.0.0.1:1" }}); err != nil {
		t.Fatal(err)
	}
	lva, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer lva.Close()
	b, err := lva.PeerCard()
	if err != nil {
		t.Fatal(err)
	}
	c, err := federation.ParseCard(b)
	if err != nil {
		t.Fatal(err)
	}
	ctx := n.As(t.Context(), "admin")
	approved := func(what string, err error) {
		t.Helper()
		var pe *vault.PendingError
		if !errors.As(err, &pe) {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return
		}
		cn.decide(t, pe.RequestID, "alice", true)
		if r, err := cn.decide(t, pe.RequestID, "bob", true); err != nil || r.Status != StatusExecuted {
			t.Fatalf("%s approved: %+v %v", what, r, err)
		}
	}
	_, err = n.AddPeer(ctx, b, c.Fingerprint)
	approved("adding the peer", err)
	_, err = n.Grant(ctx, GrantRequest{Scope: "registry", To: "LVA", Level: "read", Ceiling: "NATO UNCLASSIFIED", Expires: "30d"})
	approved("the grant", err)
}
