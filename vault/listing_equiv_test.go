package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// TestListingsMatchOracle fills a vault's index with seeded random
// histories over awkward keys — several versions a key, equal creation
// times, delete markers, deleted versions, more distinct labels than
// labelReader remembers (an unparseable one too), uploads by several
// initiators — and checks that List, Versions and ListUploads give every
// principal exactly the pages they gave before the eighth pass
// (listing_oracle_test.go): entries, common prefixes, truncation and next
// markers, for random prefixes, delimiters, markers, page sizes and scan
// budgets, and when paging all the way through.
func TestListingsMatchOracle(t *testing.T) {
	keys := []string{"a", "a/", "a//", "a/b", "a/b/", "a/b/c", "a/bc", "ab", "abab/x", "b", "/", "//x", "/a",
		"é/ü", "é/ü/ß", "\xff", "\xff/", "\xff\xff", "a\xffb", "\x01", "a/\x00", "z", "zz/top", "%2F/x", "a b/c d"}
	labels := []string{"", "", secretLabel, "NATO UNCLASSIFIED//REL TO EST, LUX, USA", "NATO RESTRICTED//REL TO EST, USA",
		"NATO SECRET//REL TO EST", "NATO CONFIDENTIAL//REL TO EST", "NATO CONFIDENTIAL//REL TO USA",
		"NATO COSMIC TOP SECRET//REL TO EST, USA", "NATO UNCLASSIFIED", "NATO RESTRICTED//REL TO LUX", "not a label",
		"NATO SECRET//REL TO EST, USA//RESTRICTIVE Compartment: ALPHA"}
	principals := []access.Principal{officer, ally, clerk, outside, luxOK, {Name: "op", Nation: "EST", Roles: []string{"operator"}}}
	prefixes := []string{"", "a", "a/", "a/b", "é/", "\xff", "q"}
	delims := []string{"", "/", "b", "\xff"}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ln := newLabelNode(t)
			rng := rand.New(rand.NewPCG(seed, 8))
			ctx := t.Context()
			var all, gone []manifest.ID
			for i := range 60 + rng.IntN(100) {
				key := keys[rng.IntN(len(keys))]
				if rng.IntN(3) == 0 {
					key = fmt.Sprintf("%s%c/%d", prefixes[rng.IntN(len(prefixes))], 'a'+rng.IntN(3), i%5)
				}
				v := index.Version{Vault: "intel", Key: key, ID: manifest.NewID(), Created: int64(rng.IntN(40)),
					DeleteMarker: rng.IntN(5) == 0, Size: int64(i), ETag: `"0123456789abcdef0123456789abcdef"`, Label: labels[rng.IntN(len(labels))]}
				if err := ln.ix.Put(ctx, v); err != nil {
					t.Fatal(err)
				}
				all = append(all, v.ID)
				if rng.IntN(8) == 0 {
					if err := ln.ix.Delete(ctx, "intel", key, v.ID); err != nil {
						t.Fatal(err)
					}
					gone = append(gone, v.ID)
				}
				if rng.IntN(4) == 0 {
					rec, _ := json.Marshal(uploadRecord{Initiator: principals[rng.IntN(len(principals))].Name})
					u := index.Upload{Vault: "intel", Key: key, ID: fmt.Sprintf("u%03d", rng.IntN(1000)), Created: int64(i), Data: rec}
					if err := ln.ix.PutUpload(ctx, u); err != nil {
						t.Fatal(err)
					}
				}
			}
			markers := append([]string{"", "a/", "a/b/", "\xff\xff\xff", "zzz"}, keys...)
			same := func(what string, o any, got, want any, gerr, werr error) {
				t.Helper()
				if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
					t.Fatalf("%s(%#v):\n got %+v, %v\nwant %+v, %v", what, o, got, gerr, want, werr)
				}
			}
			for _, p := range principals {
				as := WithPrincipal(ctx, p)
				for range 300 {
					o := index.ListOptions{Prefix: prefixes[rng.IntN(len(prefixes))], Delimiter: delims[rng.IntN(len(delims))],
						After: markers[rng.IntN(len(markers))], Max: []int{0, 1, 2, 5, 1000}[rng.IntN(5)], Scan: []int{0, 1, 3, 10, 100}[rng.IntN(5)]}
					got, gerr := ln.e.List(as, "intel", o)
					want, werr := ln.e.oracleList(as, "intel", o)
					same("List as "+p.Name, o, got, want, gerr, werr)
					vo := index.VersionOptions{Prefix: o.Prefix, Delimiter: o.Delimiter, KeyMarker: o.After, Max: o.Max, Scan: o.Scan}
					switch rng.IntN(4) {
					case 1:
						vo.VersionMarker = all[rng.IntN(len(all))]
					case 2:
						if len(gone) > 0 {
							vo.VersionMarker = gone[rng.IntN(len(gone))]
						}
					case 3:
						vo.VersionMarker = manifest.NewID()
					}
					gv, gerr := ln.e.Versions(as, "intel", vo)
					wv, werr := ln.e.oracleVersions(as, "intel", vo)
					same("Versions as "+p.Name, vo, gv, wv, gerr, werr)
					uo := index.UploadOptions{Prefix: o.Prefix, Delimiter: o.Delimiter, KeyMarker: o.After, Max: o.Max, Scan: o.Scan}
					if rng.IntN(2) == 0 {
						uo.IDMarker = fmt.Sprintf("u%03d", rng.IntN(1000))
					}
					gu, gerr := ln.e.ListUploads(as, "intel", uo)
					wu, werr := ln.e.oracleListUploads(as, "intel", uo)
					same("ListUploads as "+p.Name, uo, gu, wu, gerr, werr)
				}
				// Paging through, each page compared.
				for _, delim := range delims {
					for _, scan := range []int{1, 4} {
						o := index.ListOptions{Delimiter: delim, Max: 3, Scan: scan}
						for range 2000 {
							got, gerr := ln.e.List(as, "intel", o)
							want, werr := ln.e.oracleList(as, "intel", o)
							same("paging List as "+p.Name, o, got, want, gerr, werr)
							if !got.Truncated {
								break
							}
							o.After = got.Next
						}
						vo := index.VersionOptions{Delimiter: delim, Max: 3, Scan: scan}
						for range 2000 {
							gv, gerr := ln.e.Versions(as, "intel", vo)
							wv, werr := ln.e.oracleVersions(as, "intel", vo)
							same("paging Versions as "+p.Name, vo, gv, wv, gerr, werr)
							if !gv.Truncated {
								break
							}
							vo.KeyMarker, vo.VersionMarker = gv.NextKeyMarker, gv.NextVersionMarker
						}
					}
				}
			}
			// Without a principal, both refuse alike; the node's own work
			// is not filtered.
			for _, c := range []context.Context{ctx, AsSystem(ctx)} {
				got, gerr := ln.e.List(c, "intel", index.ListOptions{})
				want, werr := ln.e.oracleList(c, "intel", index.ListOptions{})
				same("List", "", got, want, gerr, werr)
			}
		})
	}
}
