package node

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

// TestS3SiteIdentity: the rules of site identity hold for buckets and
// prefixes: 'site add' writes the marker and refuses the same prefix, one
// inside or around another site's, one inside another node's site, and a
// prefix that holds data; opening a site whose bucket is gone never creates
// it, even with create_bucket set in node.yaml.
func TestS3SiteIdentity(t *testing.T) {
	p := alliedProvider(t)
	ctx := context.Background()
	n := newNode(t)
	other := newNode(t)
	cfg := func(bucket, prefix string, create bool) *s3site.Config {
		return &s3site.Config{Endpoint: p.endpoint, Bucket: bucket, Prefix: prefix, AccessKey: e2eAccess, SecretKey: e2eSecret, CreateBucket: create}
	}
	s3Site := func(id, bucket, prefix string, create bool) SiteConfig {
		return SiteConfig{Descriptor: site.Descriptor{ID: id, Jurisdiction: "LUX", Provider: "alliedcloud", Control: "LUX"}, Driver: "s3", S3: cfg(bucket, prefix, create)}
	}
	if err := n.AddSite(s3Site("lux-s3", "sites", "est/lux-s3", true)); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(n.Config.Sites, func(s SiteConfig) bool { return s.ID == "lux-s3" })
	if n.Config.Sites[i].S3.CreateBucket {
		t.Error("node.yaml keeps create_bucket: opening the site would create a vanished bucket")
	}
	direct, err := s3site.New(ctx, *cfg("sites", "est/lux-s3", false))
	if err != nil {
		t.Fatal(err)
	}
	b, err := readBlob(ctx, direct, site.MarkerBlob, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if m, _, err := site.ParseMarker(b); err != nil || m.Node != n.Config.Node.ID || m.Site != "lux-s3" {
		t.Fatalf("marker %+v, %v", m, err)
	}
	// Something that is not a site, in the same bucket.
	junk, _ := s3site.New(ctx, *cfg("sites", "est/junk", false))
	if err := junk.Put(ctx, "holiday.jpg", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	where := p.endpoint + "/sites"
	for _, tc := range []struct {
		name   string
		n      *Node
		prefix string
		want   string
	}{
		{"same prefix", n, "est/lux-s3", "bucket " + where + "/est/lux-s3 is already site lux-s3's"},
		{"inside", n, "est/lux-s3/inner", "lies inside site lux-s3's bucket " + where + "/est/lux-s3"},
		{"around", n, "est", "contains site lux-s3's bucket " + where + "/est/lux-s3"},
		{"the whole bucket", n, "", "contains site lux-s3's bucket " + where + "/est/lux-s3"},
		{"another node's", other, "est/lux-s3", "is already claimed: names node " + n.Config.Node.ID + " (as its site lux-s3): it belongs to another node"},
		{"inside another node's", other, "est/lux-s3/m", `lies inside the site at prefix "est/lux-s3" (it holds the marker of node ` + n.Config.Node.ID + "'s site lux-s3)"},
		{"not empty", other, "est/junk", "bucket sites/est/junk is not empty (it holds holiday.jpg) and has no site marker"},
	} {
		err := tc.n.AddSite(s3Site("new-s3", "sites", tc.prefix, false))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A bucket that is gone stays gone: node.yaml names it with
	// create_bucket, and the node opens without creating it.
	c := *n.Config
	c.Sites = append(slices.Clone(c.Sites), s3Site("gone-s3", "gone", "", true))
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	n = reopen(t, n)
	if s := states(t, n)["gone-s3"]; s.State != "unavailable" || !strings.Contains(s.Reason, "does not exist") {
		t.Errorf("a site whose bucket is missing: %+v", s)
	}
	probe, _ := s3site.New(ctx, *cfg("gone", "", false))
	if _, err := probe.Stat(ctx, "x"); !errors.Is(err, site.ErrUnavailable) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("the missing bucket was created on opening: %v", err)
	}
	// An empty S3 site removed loses its marker.
	if err := n.RemoveSite(ctx, "lux-s3"); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Stat(ctx, site.MarkerBlob); !errors.Is(err, site.ErrNotFound) {
		t.Errorf("site rm left the marker: %v", err)
	}
}
