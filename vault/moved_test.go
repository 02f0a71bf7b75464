package vault

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/embassy-dev/embassy/site"
)

// A read that resolved a version before a drain relocated it reads it
// whole: Relocate removes the old shards once the new revision is
// committed, and the read goes on from the same offset on that revision
// (a GET during 'site drain' once failed mid-body: "too few intact
// shards").
func TestReadFollowsARelocation(t *testing.T) {
	extra := []site.Descriptor{
		{ID: "est-3", Jurisdiction: "EST", Provider: "other", Control: "EST"},
		{ID: "lux-3", Jurisdiction: "LUX", Provider: "other", Control: "EST"},
		{ID: "fin-3", Jurisdiction: "FIN", Provider: "other", Control: "EST"},
	}
	n := newTestNode(t, extra...)
	data := content("moved", 10*testStripe+5)
	n.put("moved", data)
	r, err := n.e.Get(t.Context(), "registry", "moved", GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, _, err := n.e.resolve(t.Context(), "registry", "moved", r.m.Version)
	if err != nil {
		t.Fatal(err)
	}
	// Three shards of every part move, each to the site of its
	// jurisdiction the part does not use (as a drain of one provider
	// does): three of the four needed are left where the read looks.
	all := append(slices.Clone(topology), extra...)
	var sites [][]string
	for _, p := range m.Parts {
		s := slices.Clone(p.Sites)
		for _, free := range all {
			if slices.Contains(s, free.ID) {
				continue
			}
			i := slices.IndexFunc(s, func(id string) bool {
				d := all[slices.IndexFunc(all, func(d site.Descriptor) bool { return d.ID == id })]
				return d.Jurisdiction == free.Jurisdiction && slices.Contains(p.Sites, id)
			})
			if i < 0 {
				t.Fatalf("part %d on %v: no shard in %s to move", p.Number, s, free.Jurisdiction)
			}
			s[i] = free.ID
		}
		sites = append(sites, s)
	}
	if _, err := n.e.Relocate(t.Context(), m, Relocation{Sites: sites}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read resolved before the move: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
	if !r.followed {
		t.Error("the read did not need to follow the move: the test no longer shows it")
	}
}
