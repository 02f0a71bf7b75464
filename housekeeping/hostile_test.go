package housekeeping

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// TestCollectKeepsNearMissNames: a blob the node never wrote is kept, even
// when its name differs from a deleted version's manifest blob only in
// case ("m/AB/AB…" beside "m/ab/ab…": put there by hand, by a tool, or by
// a provider that changes case). Before, ParseBlobName decoded it to the
// deleted version and collection removed it as that version's copy.
func TestCollectKeepsNearMissNames(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	info := n.put("victim", []byte("deleted soon"))
	if _, err := n.e.Delete(ctx, "registry", "victim", vault.DeleteOptions{VersionID: info.VersionID}); err != nil {
		t.Fatal(err)
	}
	id := info.VersionID
	name := manifest.BlobName(id)
	upper := "m/" + strings.ToUpper(name[2:])
	if upper == name {
		t.Fatalf("version id %s has no letters", id)
	}
	sid := n.sites[0].ID
	p := filepath.Join(n.dirs[sid], filepath.FromSlash(upper))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("not the node's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("blob %s on site %s, not the node's: %v", upper, sid, err)
	}
}

// TestVerifyLogReplacedCopies: audit verify compares each manifest copy on
// the sites with the log. A copy is named by its version; one replaced by
// another version's valid copy (every copy of B deleted and A's put in its
// place) was taken for B's: B counted as held, its deletion behind the
// node's back unreported, and A's revision compared with B's.
func TestVerifyLogReplacedCopies(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	a := n.put("a", []byte("version a"))
	b := n.put("b", []byte("version b"))
	nameA, nameB := manifest.BlobName(a.VersionID), manifest.BlobName(b.VersionID)
	replaced := 0
	for _, d := range n.dirs {
		copyA, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(nameA)))
		if err != nil {
			continue
		}
		pb := filepath.Join(d, filepath.FromSlash(nameB))
		if _, err := os.Stat(pb); err != nil {
			continue
		}
		if err := os.WriteFile(pb, copyA, 0o600); err != nil {
			t.Fatal(err)
		}
		replaced++
	}
	if replaced == 0 {
		t.Fatal("no site holds both versions' copies")
	}
	// Sites without A's copy lose B's.
	for _, d := range n.dirs {
		if _, err := os.Stat(filepath.Join(d, filepath.FromSlash(nameA))); err != nil {
			os.Remove(filepath.Join(d, filepath.FromSlash(nameB)))
		}
	}
	rep, err := n.k.VerifyLog(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	if !strings.Contains(all, "deleted behind the node's back") || !strings.Contains(all, b.VersionID.String()) {
		t.Fatalf("problems:\n%s\nwant B (%s) deleted behind the node's back", all, b.VersionID)
	}
	if !strings.Contains(all, "a copy replaced") {
		t.Fatalf("problems:\n%s\nwant the replaced copies named", all)
	}
}
