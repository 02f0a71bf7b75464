package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// cutMidRead is a site whose shard blobs' reads fail after a few bytes as
// a connection lost mid-read does (an S3 driver's body then fails with
// site.ErrUnavailable).
type cutMidRead struct{ site.Site }

func (s cutMidRead) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := s.Site.Get(ctx, name, off, length)
	if err != nil || !strings.HasPrefix(name, manifest.ShardPrefix) {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 100), failing{}), rc}, nil
}

type failing struct{}

func (failing) Read([]byte) (int, error) {
	return 0, fmt.Errorf("connection reset by peer: %w", site.ErrUnavailable)
}

// TestVerifyShardSiteFailsMidRead: a site that fails in the middle of a
// shard blob's read (a connection lost) says nothing of the shard, and
// scrub's check of it (VerifyShard) returns the site's error. Before, any
// error of the read was damage (ErrShardDamaged, the site's error
// formatted into it): scrub counted a sound shard on a flaky provider as
// corrupt.
func TestVerifyShardSiteFailsMidRead(t *testing.T) {
	n := newTestNode(t)
	n.put("big", content("big", 3*testStripe+100))
	m, _, err := n.e.resolve(t.Context(), "registry", "big", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parts[0]
	if p.Inline {
		t.Fatal("the object is inline: no shard blob to read")
	}
	sid := p.Sites[0]
	for i := range n.sites {
		if n.sites[i].ID == sid {
			n.sites[i].Store = cutMidRead{n.sites[i].Store}
		}
	}
	n.open(filepath.Join(n.root, "index.db"))
	_, err = n.e.VerifyShard(t.Context(), m, p, 0, nil)
	if !errors.Is(err, site.ErrUnavailable) || errors.Is(err, ErrShardDamaged) {
		t.Fatalf("a read the site cut: %v, want the site's error (%v), not %v", err, site.ErrUnavailable, ErrShardDamaged)
	}
	for i := 1; i < len(p.Sites); i++ {
		if p.Sites[i] == sid {
			continue
		}
		if _, err := n.e.VerifyShard(t.Context(), m, p, i, nil); err != nil {
			t.Errorf("shard %d on site %s: %v", i, p.Sites[i], err)
		}
	}
}
