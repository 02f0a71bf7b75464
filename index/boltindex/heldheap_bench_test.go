package boltindex

import (
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"testing"
	"unsafe"
)

// BenchmarkHeldHeap measures the Go heap an open index holds after puts,
// against the same file closed and opened again: bbolt's freelist keeps,
// for the life of the open database, an entry (page id to transaction) in
// its allocs map for each page it handed out from the free list and that
// was not freed since, which after puts in random order is most pages in
// use (docs/design.md, "The live heap's growth with the index (issue 15,
// twelfth pass)"). It reports, for n versions put 100 a transaction in
// random key order, the live heap held open and reopened, the pages in
// use, and the allocs map's entries (read by reflection from bbolt's
// unexported freelist; -1 if its layout changed).
//
//	go test -run '^$' -bench HeldHeap -benchtime 1x ./index/boltindex/
func BenchmarkHeldHeap(b *testing.B) {
	for _, n := range []int{50_000, 200_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				p := filepath.Join(b.TempDir(), "index.db")
				base := liveHeap()
				ix, err := Open(p)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < n; i += 100 {
					vs := smallVersions(100)
					for j := range vs {
						vs[j].Key = fmt.Sprintf("o/%x", vs[j].ID[:6])
					}
					if err := ix.PutMany(b.Context(), vs); err != nil {
						b.Fatal(err)
					}
				}
				sp, err := ix.Space()
				if err != nil {
					b.Fatal(err)
				}
				entries := allocsEntries(ix)
				open := liveHeap() - base
				ix.Close()
				if ix, err = Open(p); err != nil {
					b.Fatal(err)
				}
				reopened := liveHeap() - base
				ix.Close()
				pages := float64(sp.InUse()) / float64(sp.PageSize)
				b.ReportMetric(pages, "pages")
				b.ReportMetric(float64(entries), "allocs-entries")
				b.ReportMetric(float64(open)/(1<<20), "open-MiB")
				b.ReportMetric(float64(reopened)/(1<<20), "reopened-MiB")
				b.ReportMetric(float64(open-reopened)/pages, "B/page")
			}
		})
	}
}

// liveHeap is the live heap after two collections.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// allocsEntries returns the length of bbolt's freelist allocs map, or -1
// when bbolt's layout is not the one this reads (bbolt v1.5.0: DB.freelist,
// an interface holding a pointer to a struct that embeds *shared, whose
// allocs is a map).
func allocsEntries(ix *Index) (n int) {
	defer func() {
		if recover() != nil {
			n = -1
		}
	}()
	fl := reflect.ValueOf(ix.db).Elem().FieldByName("freelist")
	fl = reflect.NewAt(fl.Type(), unsafe.Pointer(fl.UnsafeAddr())).Elem()
	s := fl.Elem().Elem()
	for i := range s.NumField() {
		f := s.Field(i)
		if f.Kind() == reflect.Pointer {
			f = f.Elem()
		}
		if f.Kind() == reflect.Struct {
			if a := f.FieldByName("allocs"); a.IsValid() && a.Kind() == reflect.Map {
				return a.Len()
			}
		}
	}
	return -1
}
