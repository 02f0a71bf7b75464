package node

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// fillTmpfs mounts a small tmpfs on path, lays a dir site out on it and
// fills it, so that the next write there fails with ENOSPC: a real full
// disk. It skips the test where mounting is not allowed (it needs root).
func fillTmpfs(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	// The site's own volume: it carries the site's marker.
	marker, err := os.ReadFile(filepath.Join(path, filepath.FromSlash(site.MarkerBlob)))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", path, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs on %s (%v): the full-disk test needs root; vault's TestPutOnFullSites covers the engine with injected errors", path, err)
	}
	t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH) })
	if _, err := dir.New(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, filepath.FromSlash(site.MarkerBlob)), marker, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(path, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			return
		}
	}
}

// A full disk is answered 507 XEmbassyStorageFull naming the full site, not
// 500 InternalError: S3 clients do not retry it, and the operator learns
// which site to look at. The paths and the system error stay in the log.
func TestPutOnFullSite(t *testing.T) {
	root := t.TempDir()
	nodeDir := filepath.Join(root, "node")
	if _, err := InitDev(nodeDir, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	fillTmpfs(t, filepath.Join(nodeDir, "sites", "lux-1"))
	fillTmpfs(t, filepath.Join(nodeDir, "sites", "lux-2"))
	var logged bytes.Buffer
	n, err := Open(t.Context(), nodeDir, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cred := s3.Credential{Principal: "admin", AccessKey: "EMBFULLTEST01", SecretKey: "full-test-secret-key"}
	var requests atomic.Int64
	h := n.Handler(cred)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	// The SDK's own retry policy, as a user has it.
	client := awss3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(cred.AccessKey, cred.SecretKey, "")},
		func(o *awss3.Options) { o.UsePathStyle, o.BaseEndpoint = true, aws.String(srv.URL) })
	ctx := t.Context()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("registry")}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, size int) error {
		_, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("registry"), Key: aws.String(key), Body: bytes.NewReader(make([]byte, size))})
		return err
	}
	wantFull := func(err error, sites ...string) {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "XEmbassyStorageFull" {
			t.Fatalf("put: %v; want XEmbassyStorageFull", err)
		}
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) && re.HTTPStatusCode() != http.StatusInsufficientStorage {
			t.Errorf("status %d, want 507", re.HTTPStatusCode())
		}
		msg := ae.ErrorMessage()
		for _, s := range sites {
			if !strings.Contains(msg, s) {
				t.Errorf("message %q does not name site %s", msg, s)
			}
		}
		if strings.Contains(msg, root) || strings.Contains(msg, "no space left") {
			t.Errorf("message %q shows internal details", msg)
		}
	}

	// Both Luxembourg sites are full: 4+2 surviving a jurisdiction cannot
	// be placed on the four others. One request: 507 is not retried.
	before := requests.Load()
	err = put("small.txt", 1000)
	wantFull(err, "lux-1", "lux-2")
	if got := requests.Load() - before; got != 1 {
		t.Errorf("the client sent %d requests, want 1 (507 is not retried)", got)
	}
	// While they are avoided, the next write is told the same, not 503.
	wantFull(put("small2.txt", 1000), "lux-1", "lux-2")
	if !strings.Contains(logged.String(), "no space left on device") {
		t.Errorf("the log does not keep the system error:\n%s", logged.String())
	}

	// Space freed on lux-2: a small object goes around the full lux-1.
	if err := os.Remove(filepath.Join(nodeDir, "sites", "lux-2", "filler")); err != nil {
		t.Fatal(err)
	}
	n.Engine.SetSiteDown("lux-2", 0)
	n.Engine.SetSiteDown("lux-1", 0)
	if err := put("small.txt", 1000); err != nil {
		t.Fatalf("put with one full site: %v", err)
	}
	locs, err := n.Engine.Locate(n.As(ctx, "admin"), "registry", "small.txt", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locs {
		if l.Site == "lux-1" {
			t.Errorf("shard %d placed on the full site lux-1", l.Shard)
		}
	}

	// A streamed object cannot be re-read to go elsewhere: 507 naming lux-1.
	n.Engine.SetSiteDown("lux-1", 0)
	wantFull(put("large.bin", 2<<20), "lux-1")
}
