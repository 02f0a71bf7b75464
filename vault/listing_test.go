package vault

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// TestListingsBoundedAndComplete pages through seeded random vaults — keys
// under nested prefixes, each readable or not by the principal, some
// hidden again by delete markers — with random page sizes and scan
// budgets, and checks that the pages together are exactly what the
// principal may read (common prefixes included only when something
// readable lies under them), in order, without repeats.
func TestListingsBoundedAndComplete(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ln := newLabelNode(t)
			rng := rand.New(rand.NewPCG(seed, 7))
			ctx := t.Context()
			readable := map[string]bool{} // latest version readable and not a marker
			versions := map[string][]bool{}
			n := 30 + rng.IntN(120)
			for i := range n {
				key := fmt.Sprintf("%c/%c/k%03d", 'a'+rng.IntN(4), 'a'+rng.IntN(3), i)
				if rng.IntN(3) == 0 {
					key = fmt.Sprintf("top%03d", i)
				}
				nv := 1 + rng.IntN(3)
				for j := range nv {
					l := "NATO SECRET//REL TO EST"
					ok := rng.IntN(4) == 0
					if ok {
						l = "NATO RESTRICTED//REL TO EST, USA"
					}
					marker := j > 0 && rng.IntN(4) == 0
					v := index.Version{Vault: "intel", Key: key, ID: manifest.NewID(), Created: int64(i*10 + j + 1), DeleteMarker: marker, Label: l}
					if err := ln.ix.Put(ctx, v); err != nil {
						t.Fatal(err)
					}
					readable[key] = ok && !marker
					versions[key] = append(versions[key], ok)
				}
			}
			as := WithPrincipal(ctx, ally)
			for _, delim := range []string{"", "/"} {
				// What the ally may see, computed from the whole set.
				var want []string
				for _, k := range slices.Sorted(maps.Keys(readable)) {
					if !readable[k] {
						continue
					}
					name := k
					if delim != "" {
						if i := strings.Index(k, delim); i >= 0 {
							name = k[:i+1]
						}
					}
					if len(want) == 0 || want[len(want)-1] != name {
						want = append(want, name)
					}
				}
				var got []string
				after := ""
				for pages := 0; ; pages++ {
					if pages > 10*n {
						t.Fatal("paging does not end")
					}
					p, err := ln.e.List(as, "intel", index.ListOptions{Delimiter: delim, After: after, Max: 1 + rng.IntN(4), Scan: 1 + rng.IntN(20)})
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range p.Entries {
						got = append(got, e.Key)
					}
					got = append(got, p.CommonPrefixes...)
					if !p.Truncated {
						break
					}
					if p.Next <= after && after != "" {
						t.Fatalf("no progress: next %q after %q", p.Next, after)
					}
					after = p.Next
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("delimiter %q: listed %v\nwant %v", delim, got, want)
				}

				// Versions: every readable version (markers carry no
				// label here, so only the owner's nationals see them).
				var wantV []string
				seen := map[string]bool{}
				for _, k := range slices.Sorted(maps.Keys(versions)) {
					if !slices.Contains(versions[k], true) {
						continue
					}
					if i := strings.Index(k, delim); delim != "" && i >= 0 {
						if cp := k[:i+1]; !seen[cp] {
							seen[cp] = true
							wantV = append(wantV, cp)
						}
						continue
					}
					for _, ok := range versions[k] {
						if ok {
							wantV = append(wantV, k)
						}
					}
				}
				var gotV []string
				km, vm := "", manifest.ID{}
				for pages := 0; ; pages++ {
					if pages > 20*n {
						t.Fatal("version paging does not end")
					}
					p, err := ln.e.Versions(as, "intel", index.VersionOptions{Delimiter: delim, KeyMarker: km, VersionMarker: vm, Max: 1 + rng.IntN(4), Scan: 1 + rng.IntN(20)})
					if err != nil {
						t.Fatal(err)
					}
					for _, v := range p.Versions {
						gotV = append(gotV, v.Key)
					}
					gotV = append(gotV, p.CommonPrefixes...)
					if !p.Truncated {
						break
					}
					km, vm = p.NextKeyMarker, p.NextVersionMarker
				}
				slices.Sort(gotV)
				slices.Sort(wantV)
				if !slices.Equal(gotV, wantV) {
					t.Errorf("versions, delimiter %q: listed %v\nwant %v", delim, gotV, wantV)
				}
			}
		})
	}
}
