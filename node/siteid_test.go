package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// TestTopDirsCoverEveryPrefix: every kind of blob the node writes lies
// under one of site.TopDirs, which a directory site creates once and never
// again.
func TestTopDirsCoverEveryPrefix(t *testing.T) {
	for _, name := range []string{manifest.ShardPrefix, manifest.ManifestPrefix, evidence.Prefix, DescriptorBlob, site.MarkerBlob} {
		top, _, _ := strings.Cut(name, "/")
		if !slices.Contains(site.TopDirs(), top) {
			t.Errorf("%s is not under one of site.TopDirs %v", name, site.TopDirs())
		}
	}
}
