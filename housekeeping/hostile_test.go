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
