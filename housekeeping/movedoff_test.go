package housekeeping

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// TestScrubFindsAVersionMovedOffTheIndexsSites: an index restored from a
// backup names the sites a version was on then, and a repair or a drain
// may have moved every shard and copy off them since (here to est-3, lux-3
// and fin-3, two shards each). Before, scrub read only the sites the
// index names: every copy and shard looked gone and the version was
// reported lost, though the sites hold it whole. Now, when a site the
// index names holds no copy of its revision or a newer one (and none
// holds a newer), scrub looks for a newer revision on the other sites: it
// reports the index behind (at risk, not lost), and a repairing scrub
// takes the newer revision into the index. A copy of the index's revision
// left on one of its sites by the move's failed clean-up no longer keeps
// scrub from looking (its-own-left-behind: lost until the twentieth pass).
func TestScrubFindsAVersionMovedOffTheIndexsSites(t *testing.T) {
	others := []site.Descriptor{
		{ID: "est-3", Jurisdiction: "EST", Provider: "other", Control: "EST"},
		{ID: "lux-3", Jurisdiction: "LUX", Provider: "other", Control: "EST"},
		{ID: "fin-3", Jurisdiction: "FIN", Provider: "other", Control: "EST"},
	}
	for _, c := range []struct {
		name string
		size int
		// own: the move's clean-up failed on est-1, which keeps its copy
		// of the index's revision (read as the index being current
		// until the twentieth pass: the version was LOST).
		own bool
	}{{"inline", 3000, false}, {"streamed", 3*testStripe + 100, false}, {"inline/its-own-left-behind", 3000, true}, {"streamed/its-own-left-behind", 3*testStripe + 100, true}} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t, others...)
			ctx := t.Context()
			data := content("doc", c.size)
			// Written to the six sites of the topology, none of those it
			// moves to.
			for _, d := range others {
				n.e.SetSiteDown(d.ID, time.Hour)
			}
			id := n.put("doc", data).VersionID
			for _, d := range others {
				n.e.SetSiteDown(d.ID, 0)
			}
			indexPath := filepath.Join(n.root, "index.db")
			backup := filepath.Join(n.root, "index.backup")
			n.e.FlushGenerations(ctx)
			n.ix.Close()
			b, err := os.ReadFile(indexPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(backup, b, 0o600); err != nil {
				t.Fatal(err)
			}
			n.open(indexPath)
			iv, err := n.ix.Get(ctx, "registry", "doc", id)
			if err != nil {
				t.Fatal(err)
			}
			m, err := n.e.OpenEnvelope(iv.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			var to [][]string
			for range m.Parts {
				to = append(to, []string{"est-3", "est-3", "lux-3", "lux-3", "fin-3", "fin-3"})
			}
			leftAt := filepath.Join(n.dirs["est-1"], filepath.FromSlash(manifest.BlobName(id)))
			left, err := os.ReadFile(leftAt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.e.Relocate(ctx, m, vault.Relocation{Sites: to}); err != nil {
				t.Fatal(err)
			}
			if c.own {
				if err := os.MkdirAll(filepath.Dir(leftAt), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(leftAt, left, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			n.e.FlushGenerations(ctx)
			n.ix.Close()
			if err := os.WriteFile(indexPath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			n.open(indexPath)

			rep, err := n.k.Scrub(ctx, ScrubOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lost != 0 || rep.AtRisk != 1 || !strings.Contains(strings.Join(rep.Errors, "\n"), "the sites hold revision 1, the index 0") {
				t.Fatalf("scrub on the restored index: lost %d %v, at risk %d, errors %v; want the version at risk, the index named behind", rep.Lost, rep.LostVersions, rep.AtRisk, rep.Errors)
			}
			rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lost != 0 || len(rep.Unrepairable) != 0 {
				t.Fatalf("repairing scrub on the restored index: lost %v, unrepairable %v", rep.LostVersions, rep.Unrepairable)
			}
			if got := n.mustRead("doc"); !bytes.Equal(got, data) {
				t.Fatal("the version reads wrong after the repairing scrub")
			}
			iv, err = n.ix.Get(ctx, "registry", "doc", id)
			if err != nil {
				t.Fatal(err)
			}
			if m, err := n.e.OpenEnvelope(iv.Envelope); err != nil || m.Revision < 1 {
				t.Fatalf("the index after the repairing scrub: %v, %v; want revision 1 or later", m, err)
			}
		})
	}
}
