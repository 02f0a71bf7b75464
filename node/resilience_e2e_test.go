package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
	"github.com/embassy-dev/embassy/vault"
)

const (
	e2eAccess = "E2EACCESSKEY"
	e2eSecret = "e2e-secret-key-0123456789"
)

// s3Provider is an S3 server the sites of the node under test live on.
type s3Provider struct {
	name     string
	endpoint string
}

// alliedProvider is another embassy node serving S3 in-process: an allied
// node hosting our sites.
func alliedProvider(t *testing.T) s3Provider { return alliedProviderCounted(t, nil) }

// alliedProviderCounted is alliedProvider counting, in conns (if not nil),
// the connections its listener accepts and has open.
func alliedProviderCounted(t *testing.T, conns *connCounter) s3Provider {
	t.Helper()
	d := t.TempDir()
	if _, err := InitDev(d, DevOptions{Nation: "LUX"}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	hs := httptest.NewUnstartedServer(n.Handler(s3.Credential{AccessKey: e2eAccess, SecretKey: e2eSecret, Principal: "admin"}))
	if conns != nil {
		hs.Listener = countedListener{hs.Listener, conns}
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return s3Provider{"embassy", strings.TrimPrefix(hs.URL, "http://")}
}

// versitygwProvider is a real S3 server: versitygw, built by .ci/run.
func versitygwProvider(t *testing.T) s3Provider {
	t.Helper()
	bin := os.Getenv("EMBASSY_VERSITYGW")
	if bin == "" {
		bin, _ = exec.LookPath("versitygw")
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("versitygw not found on PATH nor in $EMBASSY_VERSITYGW; .ci/run builds it")
		}
		t.Skip("SKIPPING versitygw end-to-end test: build it with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`; CI does")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--access", e2eAccess, "--secret", e2eSecret, "--port", addr, "--quiet", "posix", "--versioning-dir", t.TempDir(), t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatal("versitygw exited before listening")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("versitygw did not listen within 30s")
		}
	}
	return s3Provider{"versitygw", addr}
}

var e2eBucket atomic.Int64

// mixedNode is a node with sites on local directories (EST, FIN, DEU, SWE)
// and on an S3 provider (LUX), vault "registry" 4+2 surviving a
// jurisdiction and the loss of the home jurisdiction.
func mixedNode(t *testing.T, p s3Provider) (*Node, custody.RootKey) {
	t.Helper()
	d := filepath.Join(t.TempDir(), "node")
	if _, err := Init(d, InitOptions{Nation: "EST"}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	bucket := fmt.Sprintf("e2e-sites-%d-%d", os.Getpid()%10000, e2eBucket.Add(1))
	add := func(id, jur, prov, ctl string, s3 bool) {
		sc := SiteConfig{Descriptor: site.Descriptor{ID: id, Jurisdiction: jur, Provider: prov, Control: ctl}}
		if s3 {
			sc.Driver = "s3"
			sc.S3 = &s3site.Config{Endpoint: p.endpoint, Bucket: bucket, Prefix: id, AccessKey: e2eAccess, SecretKey: e2eSecret, CreateBucket: true}
		} else {
			sc.Driver, sc.Path = "dir", filepath.Join(d, "..", "sites", id)
		}
		if err := n.AddSite(sc); err != nil {
			t.Fatalf("add site %s: %v", id, err)
		}
	}
	add("est-1", "EST", "gov-dc", "EST", false)
	add("est-2", "EST", "gov-dc", "EST", false)
	add("lux-1", "LUX", "alliedcloud", "LUX", true)
	add("lux-2", "LUX", "alliedcloud", "LUX", true)
	add("fin-1", "FIN", "gov-dc", "EST", false)
	add("fin-2", "FIN", "telco", "FIN", false)
	add("deu-1", "DEU", "gov-dc", "DEU", false)
	add("deu-2", "DEU", "telco", "DEU", false)
	add("swe-1", "SWE", "gov-dc", "SWE", false)
	add("swe-2", "SWE", "telco", "SWE", false)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1", OutsideHome: true}); err != nil {
		t.Fatal(err)
	}
	root, err := custody.ReadKeyFile(filepath.Join(d, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	return n, root
}

func putAll(t *testing.T, n *Node, prefix string, count int) objectSet {
	t.Helper()
	ctx := n.As(context.Background(), "admin")
	want := objectSet{}
	for i := range count {
		key := fmt.Sprintf("%s/%03d", prefix, i)
		size := []int{0, 333, 1 << 20, 2<<20 + 5}[i%4]
		b := bytes.Repeat([]byte(key), size/len(key)+1)[:size]
		if _, err := n.Engine.Put(ctx, "registry", key, bytes.NewReader(b), vault.PutOptions{Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		want[key] = b
	}
	return want
}

func TestResilienceEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		prov func(*testing.T) s3Provider
	}{{"allied-embassy", alliedProvider}, {"versitygw", versitygwProvider}} {
		prov := tc.prov
		t.Run(tc.name, func(t *testing.T) {
			p := prov(t)
			t.Logf("S3 sites on %s", p.name)
			n, root := mixedNode(t, p)
			ctx := context.Background()
			want := putAll(t, n, "a", 12)

			// Lose every site of one jurisdiction; scrub restores full
			// redundancy on the remaining sites.
			for _, s := range n.Config.Sites {
				if s.Jurisdiction == "EST" {
					os.RemoveAll(s.Path)
					n.Engine.SetSiteDown(s.ID, time.Hour)
				}
			}
			rep, err := n.Keeper().Scrub(ctx, housekeeping.ScrubOptions{Repair: true})
			if err != nil || len(rep.Unrepairable) > 0 || rep.Repaired == 0 {
				t.Fatalf("repair after losing EST: %+v, %v", rep, err)
			}
			if rep, _ := n.Keeper().Scrub(ctx, housekeeping.ScrubOptions{}); rep.AtRisk != 0 {
				t.Fatalf("still at risk after repair: %+v", rep)
			}
			checkObjects(t, n, want)

			// Drain the S3 provider while reads and writes go on.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			during := objectSet{}
			var bgErr atomic.Value
			wg.Go(func() {
				actx := n.As(ctx, "admin")
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key := fmt.Sprintf("during/%d", i)
					b := bytes.Repeat([]byte{byte(i)}, 3000+i)
					if _, err := n.Engine.Put(actx, "registry", key, bytes.NewReader(b), vault.PutOptions{Size: int64(len(b))}); err != nil {
						bgErr.Store(err)
						return
					}
					mu.Lock()
					during[key] = b
					mu.Unlock()
					for k, w := range want {
						r, err := n.Engine.Get(actx, "registry", k, vault.GetOptions{Length: -1})
						if err != nil {
							bgErr.Store(err)
							return
						}
						got, _ := io.ReadAll(r)
						r.Close()
						if !bytes.Equal(got, w) {
							bgErr.Store(fmt.Errorf("%s differs during the drain", k))
							return
						}
						break
					}
				}
			})
			ids, _ := n.SelectSites("provider=alliedcloud")
			drep, err := n.Drain(ctx, ids, nil)
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if e := bgErr.Load(); e != nil {
				t.Fatalf("reads and writes during the drain: %v", e)
			}
			// Writes made during the drain may have raced the last pass: a
			// second drain pass finishes them.
			if drep, err = n.Drain(ctx, ids, nil); err != nil {
				t.Fatal(err)
			}
			for id, left := range drep.Remaining {
				if left != 0 {
					t.Fatalf("%d blobs left on drained site %s", left, id)
				}
			}
			for k, b := range during {
				want[k] = b
			}
			checkObjects(t, n, want)

			// rm -rf the node directory; recover from one site.
			before := listing(t, n)
			var from site.Site
			for _, s := range n.Engine.Sites() {
				if s.ID == "fin-1" {
					from = s.Store
				}
			}
			n.Close()
			os.RemoveAll(n.Dir)
			r, st, err := Recover(ctx, RecoverOptions{Dir: filepath.Join(t.TempDir(), "recovered"), From: from, RootKey: &root})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if len(st.Rebuild.Unreadable) > 0 {
				t.Fatalf("recovery left out %v", st.Rebuild.Unreadable)
			}
			if after := listing(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("listing after recovery differs:\nbefore %v\nafter  %v", before, after)
			}
			checkObjects(t, r, want)
		})
	}
}
