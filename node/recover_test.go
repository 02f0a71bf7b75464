package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

type objectSet map[string][]byte

func fill(t *testing.T, n *Node) objectSet {
	t.Helper()
	ctx := n.As(context.Background(), "admin")
	want := objectSet{}
	for i, size := range []int{0, 100, 1 << 20, 3<<20 + 7} {
		key := fmt.Sprintf("2026/%d.bin", i)
		b := bytes.Repeat([]byte{byte(i + 1), 0x5a, byte(i * 7)}, size/3+1)[:size]
		if _, err := n.Engine.Put(ctx, "registry", key, bytes.NewReader(b), vault.PutOptions{Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		want[key] = b
	}
	n.Engine.Delete(ctx, "registry", "2026/1.bin", vault.DeleteOptions{})
	delete(want, "2026/1.bin")
	return want
}

func listing(t *testing.T, n *Node) []string {
	t.Helper()
	p, err := n.Engine.Versions(vault.AsSystem(context.Background()), "registry", index.VersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range p.Versions {
		out = append(out, fmt.Sprintf("%s %s %v %d", v.Key, v.ID, v.DeleteMarker, v.Size))
	}
	return out
}

func checkObjects(t *testing.T, n *Node, want objectSet) {
	t.Helper()
	ctx := n.As(context.Background(), "admin")
	for key, w := range want {
		r, err := n.Engine.Get(ctx, "registry", key, vault.GetOptions{Length: -1})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(got, w) {
			t.Fatalf("%s differs after recovery", key)
		}
	}
}

// TestRecoverFromOneSite: rm -rf the node directory, recover from one site
// and the root key, compare every object and listing.
func TestRecoverFromOneSite(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	want := fill(t, n)
	before := listing(t, n)
	root, err := custody.ReadKeyFile(filepath.Join(n.Dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	sitePath := n.Config.Sites[2].Path // lux-1
	n.Close()
	if err := os.RemoveAll(n.Dir); err != nil {
		t.Fatal(err)
	}
	from, _ := dir.Open(sitePath)
	newDir := filepath.Join(t.TempDir(), "recovered")
	// The wrong key cannot open the descriptor.
	other, _ := custody.GenerateRootKey()
	if _, _, err := Recover(t.Context(), RecoverOptions{Dir: newDir, From: from, RootKey: &other}); !errors.Is(err, ErrDescriptor) {
		t.Fatalf("recover with another node's key: %v", err)
	}
	r, st, err := Recover(t.Context(), RecoverOptions{Dir: newDir, From: from, RootKey: &root})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st.Rebuild.Versions != len(before) || len(st.Rebuild.Unreadable) != 0 {
		t.Fatalf("rebuild stats %+v, want %d versions", st, len(before))
	}
	if after := listing(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("listing differs:\nbefore %v\nafter  %v", before, after)
	}
	checkObjects(t, r, want)
}

func TestRecoverWithCustodianShares(t *testing.T) {
	cn := newCustodyNode(t)
	want := fill(t, cn.n)
	before := listing(t, cn.n)
	sitePath := cn.n.Config.Sites[4].Path // fin-1
	shares := [][]byte{cn.share(t, "carol"), cn.share(t, "bob")}
	cn.n.Close()
	os.RemoveAll(cn.dir)
	from, _ := dir.Open(sitePath)
	newDir := filepath.Join(t.TempDir(), "recovered")
	if _, _, err := Recover(t.Context(), RecoverOptions{Dir: newDir, From: from, Shares: shares[:1]}); err == nil {
		t.Fatal("recovered with one share of a 2-of-3 split")
	}
	r, _, err := Recover(t.Context(), RecoverOptions{Dir: newDir, From: from, Shares: shares})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Custody == nil {
		t.Fatal("recovered node lost its custodians")
	}
	if _, err := os.Stat(filepath.Join(newDir, "root.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("recovery of a custodian node wrote a root key file")
	}
	if after := listing(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("listing differs after recovery")
	}
	checkObjects(t, r, want)
}
