package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/s3/sigv4"
)

type oneKey struct{ ak, sk string }

func (k oneKey) Secret(ak string) (string, bool) { return k.sk, ak == k.ak }

// fakeProfiles is a server with embassy's pprof paths that checks every
// request's signature with embassy's own verifier and refuses what does
// not verify, as the node does.
func fakeProfiles(t *testing.T, key oneKey) (*httptest.Server, *atomic.Int32) {
	var cpu atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := sigv4.Verify(r, key, time.Now(), sigv4.Options{Region: "us-east-1"}); err != nil {
			http.Error(w, "access denied: "+err.Error(), http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/_embassy/v1/debug/pprof/allocs":
			w.Write([]byte("allocs"))
		case "/_embassy/v1/debug/pprof/profile":
			if r.URL.Query().Get("seconds") != "1" {
				http.Error(w, "want seconds=1", http.StatusBadRequest)
				return
			}
			cpu.Add(1)
			w.Write([]byte("cpu"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &cpu
}

func TestProfiler(t *testing.T) {
	key := oneKey{"AKPROF", "secret-of-the-operator"}
	srv, cpu := fakeProfiles(t, key)
	dir := t.TempDir()
	p := &profiler{admin: &adminClient{endpoint: strings.TrimPrefix(srv.URL, "http://"), accessKey: key.ak, secretKey: key.sk, region: "us-east-1",
		client: srv.Client()}, dir: dir, chunk: time.Second}
	s := caseSpec{Size: 4 << 10, Concurrency: 16, Count: 1}
	stop, err := p.start(t.Context(), "embassy", "get", s)
	if err != nil {
		t.Fatal(err)
	}
	// The phase lasts until at least one CPU profile was taken.
	for cpu.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "embassy-get-4KiB-c16")
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	for _, want := range []string{"allocs-before.pb.gz", "allocs-after.pb.gz", "cpu-000.pb.gz"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s holds %v, no %s", d, names, want)
		}
	}
	if n := int(cpu.Load()); len(names) != n+2 {
		t.Errorf("%d CPU profiles served, files %v", n, names)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "cpu-000.pb.gz")); string(b) != "cpu" {
		t.Errorf("cpu-000.pb.gz = %q, want what the server sent", b)
	}

	t.Run("a refused credential fails before the phase", func(t *testing.T) {
		bad, admin := *p, *p.admin
		admin.secretKey = "not-the-secret"
		bad.admin = &admin
		_, err := bad.start(t.Context(), "embassy", "put", s)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "operator role") {
			t.Fatalf("start with a wrong secret: %v, want a 403 naming the operator role", err)
		}
	})
}
