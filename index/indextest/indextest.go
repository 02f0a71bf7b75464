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
}
