package vault

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/internal/benchutil"
)

var benchIndexObjects = flag.Int("embassy.index-objects", 10_000, "object count for BenchmarkIndexSize")

// BenchmarkIndexSize puts small objects (10 000 of 4 KiB by default, 16
// writers) through an engine with production defaults (audit log on,
// fail-closed) and reports what the index file holds per object, three
// ways: the file's size (bbolt grows it in steps, so this is coarse below
// a few hundred MB), bbolt's high-water mark (every page it has used), and
// the pages in use (the high-water mark less free pages). It also prints
// the bytes in use of each bucket of the vault, per object.
//
//	go test -run '^$' -bench IndexSize -benchtime 1x ./vault/
func BenchmarkIndexSize(b *testing.B) {
	count, size := *benchIndexObjects, *benchSmall
	for b.Loop() {
		root := benchutil.Root(b)
		e := benchEngine(b, root)
		ctx := context.Background()
		data := bytes.Repeat([]byte{0xa5}, size)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(count); i = next.Add(1) - 1 {
					key := fmt.Sprintf("obj/%03d/%08d", i%1000, i)
					if _, err := e.Put(ctx, "bench", key, bytes.NewReader(data), PutOptions{Size: int64(size)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := e.Close(ctx); err != nil {
			b.Fatal(err)
		}
		e.index.(*boltindex.Index).Close()
		path := filepath.Join(root, "index.db")
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
		if err != nil {
			b.Fatal(err)
		}
		per := func(n int64) float64 { return float64(n) / float64(count) }
		var high, used int64
		var buckets string
		err = db.View(func(tx *bolt.Tx) error {
			high = tx.Size()
			free := int64(db.Stats().FreePageN + db.Stats().PendingPageN)
			used = high - free*int64(db.Info().PageSize)
			v := tx.Bucket([]byte("v/bench"))
			if v == nil {
				return fmt.Errorf("no bucket for the vault")
			}
			return v.ForEachBucket(func(k []byte) error {
				s := v.Bucket(k).Stats()
				buckets += fmt.Sprintf(" %s %.0f (%.0f allocated)", k, per(int64(s.LeafInuse+s.BranchInuse)), per(int64(s.LeafAlloc+s.BranchAlloc)))
				return nil
			})
		})
		db.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(per(fi.Size()), "file-B/object")
		b.ReportMetric(per(high), "high-water-B/object")
		b.ReportMetric(per(used), "used-B/object")
		fmt.Printf("%d objects of %d B: index file %.0f B/object, high-water mark %.0f, pages in use %.0f; in use by bucket, B/object:%s\n",
			count, size, per(fi.Size()), per(high), per(used), buckets)
	}
}
