// Package indextest is the conformance suite for index implementations.
package indextest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

func ver(key string, created int64, n byte, marker bool) index.Version {
	return index.Version{Vault: "vault-a", Key: key, ID: manifest.ID{n, 1}, Created: created, DeleteMarker: marker,
		Size: int64(n) * 10, ETag: fmt.Sprintf("\"e%d\"", n), Envelope: []byte{'e', n}}
}

func keys(vs []index.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Key)
	}
	return out
}

// Run runs the suite against fresh indexes made by open.
func Run(t *testing.T, open func(t *testing.T) index.Index) {
	t.Run("LatestAndGet", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		for _, v := range []index.Version{ver("a", 10, 1, false), ver("a", 30, 3, false), ver("a", 20, 2, false)} {
			if err := ix.Put(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		l, err := ix.Latest(ctx, "vault-a", "a")
		if err != nil {
			t.Fatal(err)
		}
		if l.ID[0] != 3 || string(l.Envelope) != "e\x03" || l.Size != 30 || l.ETag != "\"e3\"" {
			t.Fatalf("Latest = %+v, want version 3 with its envelope", l)
		}
		g, err := ix.Get(ctx, "vault-a", "a", manifest.ID{2, 1})
		if err != nil || g.Created != 20 || string(g.Envelope) != "e\x02" {
			t.Fatalf("Get v2 = %+v, %v", g, err)
		}
		if _, err := ix.Get(ctx, "vault-a", "b", manifest.ID{2, 1}); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("Get under another key: %v, want ErrNotFound", err)
		}
		if _, err := ix.Latest(ctx, "nope", "a"); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("Latest in unknown vault: %v", err)
		}
	})
	t.Run("DeleteRecomputesLatest", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		ix.PutMany(ctx, []index.Version{ver("a", 10, 1, false), ver("a", 20, 2, false)})
		if err := ix.Delete(ctx, "vault-a", "a", manifest.ID{2, 1}); err != nil {
			t.Fatal(err)
		}
		if l, err := ix.Latest(ctx, "vault-a", "a"); err != nil || l.ID[0] != 1 {
			t.Fatalf("Latest after deleting newest = %+v, %v", l, err)
		}
		ix.Delete(ctx, "vault-a", "a", manifest.ID{1, 1})
		if _, err := ix.Latest(ctx, "vault-a", "a"); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("Latest after deleting all: %v", err)
		}
		if err := ix.Delete(ctx, "vault-a", "a", manifest.ID{1, 1}); err != nil {
			t.Fatalf("deleting a missing version: %v", err)
		}
	})
	t.Run("LatestCreated", func(t *testing.T) {
		ix := open(t)
		lt, ok := ix.(index.LatestTimer)
		if !ok {
			t.Skip("the index does not implement index.LatestTimer")
		}
		ctx := t.Context()
		// check compares LatestCreated with Latest for key.
		check := func(key string) {
			t.Helper()
			created, found, err := lt.LatestCreated(ctx, "vault-a", key)
			if err != nil {
				t.Fatalf("LatestCreated(%s): %v", key, err)
			}
			l, lerr := ix.Latest(ctx, "vault-a", key)
			switch {
			case errors.Is(lerr, index.ErrNotFound):
				if found {
					t.Fatalf("LatestCreated(%s) = %d, found, where Latest finds none", key, created)
				}
			case lerr != nil:
				t.Fatal(lerr)
			case !found || created != l.Created:
				t.Fatalf("LatestCreated(%s) = %d, %v; Latest's version was created at %d", key, created, found, l.Created)
			}
		}
		if _, found, err := lt.LatestCreated(ctx, "nope", "a"); err != nil || found {
			t.Fatalf("LatestCreated in unknown vault: found %v, %v", found, err)
		}
		check("a")
		for _, v := range []index.Version{ver("a", 10, 1, false), ver("a", 30, 3, false), ver("a", 20, 2, false), ver("b", 5, 4, false)} {
			if err := ix.Put(ctx, v); err != nil {
				t.Fatal(err)
			}
			check("a")
		}
		if created, found, _ := lt.LatestCreated(ctx, "vault-a", "a"); !found || created != 30 {
			t.Fatalf("LatestCreated = %d, %v; want 30 (the newest, put before an older one)", created, found)
		}
		if err := ix.Put(ctx, ver("a", 40, 5, true)); err != nil {
			t.Fatal(err)
		}
		check("a") // a delete marker is the latest
		for _, id := range []byte{5, 3, 2, 1} {
			if err := ix.Delete(ctx, "vault-a", "a", manifest.ID{id, 1}); err != nil {
				t.Fatal(err)
			}
			check("a")
		}
		check("b")
		check("c")
	})
	t.Run("ListDelimiterAndPaging", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		names := []string{"2026/a.db", "2026/b.db", "2026/sub/c", "2026/sub/d", "2027/x", "top", "zz/deleted"}
		var vs []index.Version
		for i, n := range names {
			vs = append(vs, ver(n, int64(i+1), byte(i+1), false))
		}
		vs = append(vs, ver("zz/deleted", 100, 99, true)) // a delete marker shadows it
		if err := ix.PutMany(ctx, vs); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name     string
			o        index.ListOptions
			entries  []string
			prefixes []string
			trunc    bool
		}{
			{"all", index.ListOptions{}, names[:6], nil, false},
			{"prefix", index.ListOptions{Prefix: "2026/"}, names[:4], nil, false},
			{"delimiter root", index.ListOptions{Delimiter: "/"}, []string{"top"}, []string{"2026/", "2027/"}, false},
			{"delimiter in prefix", index.ListOptions{Prefix: "2026/", Delimiter: "/"}, names[:2], []string{"2026/sub/"}, false},
			{"max", index.ListOptions{Max: 2}, names[:2], nil, true},
			{"after", index.ListOptions{After: "2026/b.db"}, names[2:6], nil, false},
			{"after common prefix", index.ListOptions{Delimiter: "/", After: "2026/"}, []string{"top"}, []string{"2027/"}, false},
			{"after a key inside a common prefix", index.ListOptions{Delimiter: "/", After: "2026/a.db"}, []string{"top"}, []string{"2026/", "2027/"}, false},
			{"max with prefixes", index.ListOptions{Delimiter: "/", Max: 1}, nil, []string{"2026/"}, true},
			{"shadowed only", index.ListOptions{Prefix: "zz/"}, nil, nil, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p, err := ix.List(ctx, "vault-a", tc.o)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(keys(p.Entries), tc.entries) || !slices.Equal(p.CommonPrefixes, tc.prefixes) || p.Truncated != tc.trunc {
					t.Fatalf("List = %v %v truncated=%v; want %v %v %v", keys(p.Entries), p.CommonPrefixes, p.Truncated, tc.entries, tc.prefixes, tc.trunc)
				}
			})
		}
		// Paging one at a time visits everything exactly once.
		var seen []string
		o := index.ListOptions{Delimiter: "/", Max: 1}
		for range 20 {
			p, err := ix.List(ctx, "vault-a", o)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, keys(p.Entries)...)
			seen = append(seen, p.CommonPrefixes...)
			if !p.Truncated {
				break
			}
			o.After = p.Next
		}
		if want := []string{"2026/", "2027/", "top"}; !slices.Equal(seen, want) {
			t.Fatalf("paged listing = %v, want %v", seen, want)
		}
	})
	t.Run("ListScanBound", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		// Ten delete markers between two live keys, and a prefix holding
		// only markers.
		var vs []index.Version
		vs = append(vs, ver("a", 1, 1, false))
		for i := range 10 {
			vs = append(vs, ver(fmt.Sprintf("m%02d", i), 2, byte(10+i), true))
			vs = append(vs, ver(fmt.Sprintf("p/m%02d", i), 2, byte(30+i), true))
		}
		vs = append(vs, ver("z", 3, 2, false))
		if err := ix.PutMany(ctx, vs); err != nil {
			t.Fatal(err)
		}
		for _, delim := range []string{"", "/"} {
			var got []string
			after, pages := "", 0
			for {
				p, err := ix.List(ctx, "vault-a", index.ListOptions{Delimiter: delim, After: after, Scan: 4})
				if err != nil {
					t.Fatal(err)
				}
				if p.Scanned > 4+1 {
					t.Fatalf("delimiter %q: examined %d records with a bound of 4", delim, p.Scanned)
				}
				got = append(append(got, keys(p.Entries)...), p.CommonPrefixes...)
				pages++
				if !p.Truncated {
					break
				}
				if p.Next <= after {
					t.Fatalf("no progress after %q", after)
				}
				after = p.Next
			}
			if !slices.Equal(got, []string{"a", "z"}) || pages < 3 {
				t.Fatalf("delimiter %q: listed %v in %d pages, want [a z] in several", delim, got, pages)
			}
		}
	})
	t.Run("Versions", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		ix.PutMany(ctx, []index.Version{ver("a", 1, 1, false), ver("a", 2, 2, false), ver("a", 3, 3, true), ver("b", 4, 4, false), ver("c/d", 5, 5, false)})
		p, err := ix.Versions(ctx, "vault-a", index.VersionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range p.Versions {
			got = append(got, fmt.Sprintf("%s:%d:%v:%v", v.Key, v.ID[0], v.DeleteMarker, v.IsLatest))
		}
		want := []string{"a:3:true:true", "a:2:false:false", "a:1:false:false", "b:4:false:true", "c/d:5:false:true"}
		if !slices.Equal(got, want) {
			t.Fatalf("Versions = %v, want %v", got, want)
		}
		// Page through two at a time.
		var paged []string
		o := index.VersionOptions{Max: 2}
		for range 10 {
			p, err := ix.Versions(ctx, "vault-a", o)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range p.Versions {
				paged = append(paged, fmt.Sprintf("%s:%d:%v:%v", v.Key, v.ID[0], v.DeleteMarker, v.IsLatest))
			}
			if !p.Truncated {
				break
			}
			o.KeyMarker, o.VersionMarker = p.NextKeyMarker, p.NextVersionMarker
		}
		if !slices.Equal(paged[:len(want)], want) || len(paged) != len(want) {
			t.Fatalf("paged Versions = %v, want %v", paged, want)
		}
		d, _ := ix.Versions(ctx, "vault-a", index.VersionOptions{Delimiter: "/"})
		if !slices.Equal(d.CommonPrefixes, []string{"c/"}) || len(d.Versions) != 4 {
			t.Fatalf("Versions with delimiter: %d versions, prefixes %v", len(d.Versions), d.CommonPrefixes)
		}
	})
	t.Run("VersionsPagingWhileDeleting", func(t *testing.T) {
		// A client that deletes each page before asking for the next
		// hands back markers naming versions that are gone: the listing
		// goes on after where they were, skipping nothing.
		ix := open(t)
		ctx := t.Context()
		var all []index.Version
		for i := range 7 {
			all = append(all, ver("k", int64(10-i), byte(i+1), false))
		}
		all = append(all, ver("l", 1, 20, false), ver("m", 1, 21, true))
		if err := ix.PutMany(ctx, all); err != nil {
			t.Fatal(err)
		}
		var seen []string
		o := index.VersionOptions{Max: 2}
		for range 20 {
			p, err := ix.Versions(ctx, "vault-a", o)
			if err != nil {
				t.Fatalf("Versions after deleting the marker's version: %v", err)
			}
			for _, v := range p.Versions {
				seen = append(seen, fmt.Sprintf("%s:%d", v.Key, v.ID[0]))
				if err := ix.Delete(ctx, "vault-a", v.Key, v.ID); err != nil {
					t.Fatal(err)
				}
			}
			if !p.Truncated {
				break
			}
			o.KeyMarker, o.VersionMarker = p.NextKeyMarker, p.NextVersionMarker
		}
		want := []string{"k:1", "k:2", "k:3", "k:4", "k:5", "k:6", "k:7", "l:20", "m:21"}
		if !slices.Equal(seen, want) {
			t.Fatalf("listed while deleting %v, want %v", seen, want)
		}
		if empty, err := ix.VaultEmpty(ctx, "vault-a"); err != nil || !empty {
			t.Fatalf("VaultEmpty = %v, %v after deleting everything listed", empty, err)
		}
		// A marker naming a version the index never held goes on from
		// the key's first version: nothing is skipped.
		ix.PutMany(ctx, []index.Version{ver("n", 2, 30, false), ver("n", 1, 31, false), ver("o", 1, 32, false)})
		p, err := ix.Versions(ctx, "vault-a", index.VersionOptions{KeyMarker: "n", VersionMarker: manifest.ID{99}})
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(p.Versions); !slices.Equal(got, []string{"n", "n", "o"}) {
			t.Fatalf("after an unknown version marker: %v, want n n o", got)
		}
	})
	t.Run("ResetAndStats", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		ix.PutMany(ctx, []index.Version{ver("a", 1, 1, false), ver("b", 2, 2, false), ver("b", 3, 3, true)})
		s, err := ix.Stats(ctx)
		if err != nil || s.Keys != 1 || s.Versions != 3 {
			t.Fatalf("Stats = %+v, %v; want 1 key, 3 versions", s, err)
		}
		if err := ix.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if s, _ := ix.Stats(ctx); s.Keys != 0 || s.Versions != 0 {
			t.Fatalf("Stats after Reset = %+v", s)
		}
	})
	t.Run("Uploads", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		for _, u := range []index.Upload{
			{Vault: "vault-a", Key: "b/x", ID: "0002", Created: 2, Data: []byte("u2")},
			{Vault: "vault-a", Key: "a", ID: "0001", Created: 1, Data: []byte("u1")},
			{Vault: "vault-a", Key: "b/x", ID: "0003", Created: 3, Data: []byte("u3")},
		} {
			if err := ix.PutUpload(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		u, err := ix.GetUpload(ctx, "vault-a", "0002")
		if err != nil || u.Key != "b/x" || string(u.Data) != "u2" || u.Created != 2 {
			t.Fatalf("GetUpload = %+v, %v", u, err)
		}
		if _, err := ix.GetUpload(ctx, "vault-a", "nope"); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("GetUpload of unknown id: %v", err)
		}
		if prev, err := ix.PutUploadPart(ctx, "vault-a", "0002", index.UploadPart{Number: 2, Data: []byte("p2")}); err != nil || prev != nil {
			t.Fatalf("PutUploadPart = %q, %v", prev, err)
		}
		ix.PutUploadPart(ctx, "vault-a", "0002", index.UploadPart{Number: 1, Data: []byte("p1")})
		if prev, _ := ix.PutUploadPart(ctx, "vault-a", "0002", index.UploadPart{Number: 2, Data: []byte("p2b")}); string(prev) != "p2" {
			t.Fatalf("replacing a part returned %q, want the old record", prev)
		}
		parts, err := ix.UploadParts(ctx, "vault-a", "0002")
		if err != nil || len(parts) != 2 || parts[0].Number != 1 || string(parts[1].Data) != "p2b" {
			t.Fatalf("UploadParts = %+v, %v", parts, err)
		}
		if _, err := ix.PutUploadPart(ctx, "vault-a", "nope", index.UploadPart{Number: 1}); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("part for unknown upload: %v", err)
		}
		p, _ := ix.ListUploads(ctx, "vault-a", index.UploadOptions{})
		var ids []string
		for _, u := range p.Uploads {
			ids = append(ids, u.Key+":"+u.ID)
		}
		if want := []string{"a:0001", "b/x:0002", "b/x:0003"}; !slices.Equal(ids, want) {
			t.Fatalf("ListUploads = %v, want %v", ids, want)
		}
		p, _ = ix.ListUploads(ctx, "vault-a", index.UploadOptions{Delimiter: "/"})
		if len(p.Uploads) != 1 || !slices.Equal(p.CommonPrefixes, []string{"b/"}) {
			t.Fatalf("ListUploads with delimiter = %+v", p)
		}
		p, _ = ix.ListUploads(ctx, "vault-a", index.UploadOptions{Max: 1, KeyMarker: "b/x", IDMarker: "0002"})
		if len(p.Uploads) != 1 || p.Uploads[0].ID != "0003" {
			t.Fatalf("ListUploads after marker = %+v", p)
		}
		// A key marker that is a whole common prefix continues after it
		// (as NextKeyMarker does after a prefix).
		p, _ = ix.ListUploads(ctx, "vault-a", index.UploadOptions{Delimiter: "/", KeyMarker: "b/"})
		if len(p.Uploads) != 0 || len(p.CommonPrefixes) != 0 || p.Truncated {
			t.Fatalf("ListUploads after a common prefix = %+v", p)
		}
		if err := ix.DeleteUpload(ctx, "vault-a", "0002"); err != nil {
			t.Fatal(err)
		}
		if _, err := ix.UploadParts(ctx, "vault-a", "0002"); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("parts survive DeleteUpload: %v", err)
		}
	})
	t.Run("VaultEmpty", func(t *testing.T) {
		ix := open(t)
		ctx := t.Context()
		if e, err := ix.VaultEmpty(ctx, "vault-a"); err != nil || !e {
			t.Fatalf("VaultEmpty of unknown vault = %v, %v", e, err)
		}
		ix.Put(ctx, ver("a", 1, 1, true))
		if e, _ := ix.VaultEmpty(ctx, "vault-a"); e {
			t.Fatal("a vault holding only a delete marker reported empty")
		}
	})
}
