package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// durableSite records the blobs whose Put has returned: for a dir site,
// those that are durable (data and directory entry synced).
type durableSite struct {
	site.Site
	mu      sync.Mutex
	durable map[string]bool
}

func (s *durableSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	err := s.Site.Put(ctx, name, r, size)
	if err == nil {
		s.mu.Lock()
		s.durable[name] = true
		s.mu.Unlock()
	}
	return err
}

func (s *durableSite) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable[name]
}

// orderIndex fails every index write of a version whose manifest copy is
// not yet durable on every site: the commit order (shard blobs, manifest
// copies, then the index entry) is what lets a crash leave either the old
// state or the new one, with nothing visible that cannot be read.
type orderIndex struct {
	*boltindex.Index
	sites map[string]*durableSite
	t     *testing.T
}

func (x *orderIndex) check(v index.Version) error {
	name := manifest.BlobName(v.ID)
	for id, s := range x.sites {
		if !s.has(name) {
			x.t.Errorf("index write of %s/%s version %s before its manifest copy on %s was durable", v.Vault, v.Key, v.ID, id)
			return fmt.Errorf("manifest copy on %s not durable", id)
		}
	}
	return nil
}

func (x *orderIndex) Put(ctx context.Context, v index.Version) error {
	if err := x.check(v); err != nil {
		return err
	}
	return x.Index.Put(ctx, v)
}

func (x *orderIndex) PutIf(ctx context.Context, v index.Version, p index.Precondition) error {
	if err := x.check(v); err != nil {
		return err
	}
	return x.Index.PutIf(ctx, v, p)
}

// TestPutIndexesAfterItsCopies: a put commits its index entry (which makes
// the version visible, with its audit log entry) only once every manifest
// copy is durable on its site, for objects stored inline and streamed,
// conditional or not, one at a time and sixteen at once. A put that
// started its index commit beside the copies' writes fails it (tried).
// Over these six sites every object has a copy on each.
func TestPutIndexesAfterItsCopies(t *testing.T) {
	n := newTestNode(t)
	x := &orderIndex{Index: n.ix, sites: map[string]*durableSite{}, t: t}
	var sites []Site
	for _, s := range n.sites {
		d := &durableSite{Site: s.Store, durable: map[string]bool{}}
		x.sites[s.ID] = d
		sites = append(sites, Site{Descriptor: s.Descriptor, Store: d})
	}
	e, err := New(Config{Keys: n.keys, Index: x, Sites: sites, Vaults: n.e.Vaults(), Audit: n.audit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	ctx := t.Context()
	put := func(key string, size int, cond index.Precondition) {
		data := content(key, size)
		if _, err := e.Put(ctx, "registry", key, bytes.NewReader(data), PutOptions{Size: int64(size), If: cond}); err != nil {
			t.Errorf("put %s: %v", key, err)
		}
	}
	for _, size := range []int{0, 100, testStripe, 3*testStripe + 17} {
		put(fmt.Sprintf("one/%d", size), size, index.Precondition{})
		put(fmt.Sprintf("new/%d", size), size, index.Precondition{IfNoneMatch: "*"})
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() { put(fmt.Sprintf("par/%d", i), 100*i, index.Precondition{}) })
	}
	wg.Wait()
}
