package boltindex

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// awkwardKeys are keys (the index refuses an empty one) that stress the listings' byte handling: empty
// segments, delimiters at either end, multi-byte and invalid UTF-8, 0xff
// (whose prefixes have no successor), control characters and NUL.
var awkwardKeys = []string{
	"a", "a/", "a//", "a/b", "a/b/", "a/b/c", "a/bc", "ab", "abab/x", "b", "/", "//x", "/a",
	"é/ü", "é/ü/ß", "\xff", "\xff/", "\xff\xff", "a\xffb", "\x01", "a\x00b", "a/\x00", "z", "zz/top",
	"%2F/x", "a b/c d", "\u65e5\u672c/\u8a9e",
}

// TestListingsMatchOracle builds seeded random histories over awkward keys
// — versions with equal creation times, delete markers, deleted versions,
// labels and every kind of ETag, some records left in index format 3's full
// encoding — and checks that List and Versions return exactly what they
// returned before the eighth pass (oracle_test.go) for every combination of
// prefix, delimiter, marker, page size and scan bound tried: entries,
// common prefixes, truncation, next markers, IsLatest and errors alike.
func TestListingsMatchOracle(t *testing.T) {
	prefixes := []string{"", "a", "a/", "a/b", "é/", "\xff", "zz", "q"}
	delims := []string{"", "/", "b", "ab", "\xff", "//"}
	labels := []string{"", "", "NATO SECRET//REL TO EST", "NATO RESTRICTED", "EST RESTRICTED"}
	etags := []string{"", `"0123456789abcdef0123456789abcdef"`, `"0123456789abcdef0123456789abcdef-12"`, "W/odd", `"ABCDEF0123456789abcdef0123456789"`}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			ix := openTemp(t)
			ctx := t.Context()
			var all []index.Version
			var gone []manifest.ID
			for i := range 40 + rng.IntN(120) {
				key := awkwardKeys[rng.IntN(len(awkwardKeys))]
				if rng.IntN(3) == 0 {
					key = fmt.Sprintf("%s%c/%d", prefixes[rng.IntN(len(prefixes))], 'a'+rng.IntN(3), i%7)
				}
				v := index.Version{Vault: "v", Key: key, ID: manifest.NewID(), Created: int64(rng.IntN(30)), // ties
					DeleteMarker: rng.IntN(4) == 0, Size: rng.Int64N(1 << 40), Label: labels[rng.IntN(len(labels))]}
				if !v.DeleteMarker {
					v.ETag = etags[rng.IntN(len(etags))]
					v.Envelope = fakeEnvelope(manifest.FormatCompact, 20)
				}
				if err := ix.Put(ctx, v); err != nil {
					t.Fatal(err)
				}
				all = append(all, v)
				if rng.IntN(8) == 0 {
					d := all[rng.IntN(len(all))]
					if err := ix.Delete(ctx, d.Vault, d.Key, d.ID); err != nil {
						t.Fatal(err)
					}
					gone = append(gone, d.ID)
				}
			}
			// Some records as a format 3 index left them, not yet migrated.
			err := ix.db.Update(func(tx *bolt.Tx) error {
				b, _ := readBuckets(tx, "v")
				for _, v := range all {
					if rng.IntN(4) != 0 {
						continue
					}
					vk := versionKey(v.Key, v.Created, v.ID)
					if b.versions.Get(vk) != nil {
						if err := b.versions.Put(vk, encodeFull(v, true)); err != nil {
							return err
						}
					}
					if cur := b.latest.Get([]byte(v.Key)); cur != nil {
						if c, err := decodeSummary(cur); err == nil && c.ID == v.ID {
							if err := b.latest.Put([]byte(v.Key), encodeFull(v, false)); err != nil {
								return err
							}
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			markers := append([]string{"", "a", "a/", "a/b/", "\xff", "\xff\xff\xff", "é/", "zzz"}, awkwardKeys...)
			for range 1500 {
				o := index.ListOptions{Prefix: prefixes[rng.IntN(len(prefixes))], Delimiter: delims[rng.IntN(len(delims))],
					After: markers[rng.IntN(len(markers))], Max: []int{0, 1, 2, 3, 7, 1000}[rng.IntN(6)], Scan: []int{0, 1, 2, 5, 50}[rng.IntN(5)]}
				got, gerr := ix.List(ctx, "v", o)
				want, werr := ix.oracleList(ctx, "v", o)
				if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
					t.Fatalf("List(%#v):\n got %+v, %v\nwant %+v, %v", o, got, gerr, want, werr)
				}
				vo := index.VersionOptions{Prefix: o.Prefix, Delimiter: o.Delimiter, KeyMarker: o.After, Max: o.Max, Scan: o.Scan}
				switch rng.IntN(4) {
				case 1:
					vo.VersionMarker = all[rng.IntN(len(all))].ID
				case 2:
					if len(gone) > 0 {
						vo.VersionMarker = gone[rng.IntN(len(gone))]
					}
				case 3:
					vo.VersionMarker = manifest.NewID() // never known
				}
				gv, gerr := ix.Versions(ctx, "v", vo)
				wv, werr := ix.oracleVersions(ctx, "v", vo)
				if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(gv, wv) {
					t.Fatalf("Versions(%#v):\n got %+v, %v\nwant %+v, %v", vo, gv, gerr, wv, werr)
				}
			}
			// Paging all the way through by each listing's own markers.
			for _, delim := range delims {
				for _, prefix := range prefixes {
					after := ""
					for range 1000 {
						o := index.ListOptions{Prefix: prefix, Delimiter: delim, After: after, Max: 2, Scan: 3}
						got, _ := ix.List(ctx, "v", o)
						want, _ := ix.oracleList(ctx, "v", o)
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("paging List(%#v):\n got %+v\nwant %+v", o, got, want)
						}
						if !got.Truncated {
							break
						}
						after = got.Next
					}
					vo := index.VersionOptions{Prefix: prefix, Delimiter: delim, Max: 3}
					for range 1000 {
						gv, _ := ix.Versions(ctx, "v", vo)
						wv, _ := ix.oracleVersions(ctx, "v", vo)
						if !reflect.DeepEqual(gv, wv) {
							t.Fatalf("paging Versions(%#v):\n got %+v\nwant %+v", vo, gv, wv)
						}
						if !gv.Truncated {
							break
						}
						vo.KeyMarker, vo.VersionMarker = gv.NextKeyMarker, gv.NextVersionMarker
					}
				}
			}
		})
	}
}

// TestListingsMatchOracleOnCorruptRecords: a record that does not decode
// fails a listing that reaches it as it did before, and one it does not
// reach fails nothing, delete markers and keys' latest summaries included.
func TestListingsMatchOracleOnCorruptRecords(t *testing.T) {
	corruptions := map[string][]byte{
		"empty":              {},
		"short":              {flagCompact, 1, 2},
		"unknown flags":      append([]byte{flagCompact | 0x10}, make([]byte, 30)...),
		"marker, bad etag":   append(append([]byte{flagCompact | flagDeleteMarker}, make([]byte, 24)...), 0, 9),
		"full marker, short": {flagDeleteMarker, 1},
		"trailing":           nil, // filled below
	}
	for name, bad := range corruptions {
		for _, bucket := range []string{"latest", "versions"} {
			t.Run(name+"/"+bucket, func(t *testing.T) {
				ix := openTemp(t)
				ctx := t.Context()
				var vs []index.Version
				for i, key := range []string{"a/1", "a/2", "b", "c/1", "d"} {
					v := index.Version{Vault: "v", Key: key, ID: manifest.ID{byte(i + 1)}, Created: int64(i), DeleteMarker: key == "b", ETag: `"x"`, Label: "L"}
					if err := ix.Put(ctx, v); err != nil {
						t.Fatal(err)
					}
					vs = append(vs, v)
				}
				err := ix.db.Update(func(tx *bolt.Tx) error {
					b, _ := readBuckets(tx, "v")
					v := vs[2] // "b", a delete marker
					if bucket == "latest" {
						val := bad
						if val == nil {
							val = append(encodeSummary(v), 0)
						}
						return b.latest.Put([]byte(v.Key), val)
					}
					val := bad
					if val == nil {
						val = append(encodeRecord(v, 0), 0)
					}
					return b.versions.Put(versionKey(v.Key, v.Created, v.ID), val)
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, prefix := range []string{"", "a", "b", "c"} {
					for _, delim := range []string{"", "/"} {
						for _, after := range []string{"", "a/1", "b", "c/"} {
							o := index.ListOptions{Prefix: prefix, Delimiter: delim, After: after}
							got, gerr := ix.List(ctx, "v", o)
							want, werr := ix.oracleList(ctx, "v", o)
							if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
								t.Fatalf("List(%#v):\n got %+v, %v\nwant %+v, %v", o, got, gerr, want, werr)
							}
							vo := index.VersionOptions{Prefix: prefix, Delimiter: delim, KeyMarker: after}
							gv, gerr := ix.Versions(ctx, "v", vo)
							wv, werr := ix.oracleVersions(ctx, "v", vo)
							if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(gv, wv) {
								t.Fatalf("Versions(%#v):\n got %+v, %v\nwant %+v, %v", vo, gv, gerr, wv, werr)
							}
						}
					}
				}
			})
		}
	}
}

// FuzzListDecoders: the decoders a listing uses (readSummary and readRecord
// with a listDecoder sharing labels, and building the key with the ETag;
// summaryID) accept exactly what the decoders before the eighth pass
// accepted, fail with the same errors and give the same versions.
func FuzzListDecoders(f *testing.F) {
	for _, v := range sampleVersions() {
		f.Add(versionKey(v.Key, v.Created, v.ID), encodeRecord(v, 300))
		f.Add(versionKey(v.Key, v.Created, v.ID), encodeFull(v, true))
		f.Add([]byte(nil), encodeSummary(v))
		f.Add([]byte(nil), encodeFull(v, false))
		f.Add([]byte("k\x00"), append(encodeSummary(v), 0))
	}
	var d listDecoder // shared across inputs, as across a listing's records
	f.Fuzz(func(t *testing.T, k, b []byte) {
		want, werr := oldDecodeSummary(b)
		var got index.Version
		gerr := readSummary(&got, b, &d)
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("readSummary(%x) = %+v, %v; before: %+v, %v", b, got, gerr, want, werr)
		}
		// With a key, a compact summary's key comes back with it.
		keyed := listDecoder{key: append([]byte{}, k...)}
		var gk index.Version
		kerr := readSummary(&gk, b, &keyed)
		wk := want
		if isCompact(b) {
			wk.Key = string(k)
		}
		if fmt.Sprint(kerr) != fmt.Sprint(werr) || werr == nil && !reflect.DeepEqual(gk, wk) {
			t.Fatalf("readSummary(%x) with key %q = %+v, %v; before: %+v, %v", b, k, gk, kerr, wk, werr)
		}
		id, ierr := summaryID(b)
		if fmt.Sprint(ierr) != fmt.Sprint(werr) || werr == nil && id != want.ID {
			t.Fatalf("summaryID(%x) = %v, %v; before: %v, %v", b, id, ierr, want.ID, werr)
		}
		for _, withEnv := range []bool{false, true} {
			wr, wn, werr := oldDecodeRecord(k, b, withEnv)
			var gr index.Version
			gn, gerr := readRecord(&gr, k, b, withEnv, &d)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || werr == nil && (!reflect.DeepEqual(gr, wr) || gn != wn) {
				t.Fatalf("readRecord(%x, %x, %v) = %+v %d, %v; before: %+v %d, %v", k, b, withEnv, gr, gn, gerr, wr, wn, werr)
			}
			var kr index.Version
			kn, kerr := readRecord(&kr, k, b, withEnv, &keyed)
			wkr := wr
			if isCompact(b) {
				wkr.Key = string(k)
			}
			if fmt.Sprint(kerr) != fmt.Sprint(werr) || werr == nil && (!reflect.DeepEqual(kr, wkr) || kn != wn) {
				t.Fatalf("readRecord(%x, %x, %v) with key = %+v %d, %v; before: %+v %d, %v", k, b, withEnv, kr, kn, kerr, wkr, wn, werr)
			}
			dr, dn, derr := decodeRecord(k, b, withEnv)
			if fmt.Sprint(derr) != fmt.Sprint(werr) || werr == nil && (!reflect.DeepEqual(dr, wr) || dn != wn) {
				t.Fatalf("decodeRecord(%x, %x, %v) = %+v %d, %v; before: %+v %d, %v", k, b, withEnv, dr, dn, derr, wr, wn, werr)
			}
		}
	})
}
