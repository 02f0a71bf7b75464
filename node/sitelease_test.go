package node

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
	"github.com/embassy-dev/embassy/vault"
)

// testLease is the lease time of the tests' S3 sites.
const testLease = 3 * time.Second

// s3Node is a node whose sites are three prefixes of one bucket on p,
// with a vault "registry" (2+1), the lease time shortened to testLease.
// It returns the node, closed, with objects in it.
func s3Node(t *testing.T, p s3Provider, secure bool, ca string) (string, objectSet) {
	t.Helper()
	d := filepath.Join(t.TempDir(), "node")
	if _, err := Init(d, InitOptions{Nation: "EST"}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), d, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("lease-%d-%d", os.Getpid()%10000, e2eBucket.Add(1))
	for _, id := range []string{"est-a", "est-b", "est-c"} {
		sc := SiteConfig{Descriptor: site.Descriptor{ID: id, Jurisdiction: "EST", Provider: "cloud-" + id, Control: "EST"}, Driver: "s3",
			S3: &s3site.Config{Endpoint: p.endpoint, Bucket: bucket, Prefix: id, AccessKey: e2eAccess, SecretKey: e2eSecret, CreateBucket: true, Secure: secure, CAFile: ca, Lease: s3site.Duration(testLease)}}
		if err := n.AddSite(sc); err != nil {
			t.Fatalf("add site %s: %v", id, err)
		}
	}
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "2+1", Survive: "sites=1"}); err != nil {
		t.Fatal(err)
	}
	want := putAll(t, n, "a", 4)
	n.Close()
	return d, want
}

func openQuiet(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// siteStore is the node's own view of one of its sites: what the engine
// writes through.
func siteStore(n *Node, id string) site.Site {
	for _, s := range n.Engine.Sites() {
		if s.ID == id {
			return s.Store
		}
	}
	return nil
}

// rawSite is the bucket prefix of site id, without the node.
func rawSite(t *testing.T, n *Node, id string) *s3site.Site {
	t.Helper()
	for _, s := range n.Config.Sites {
		if s.ID == id {
			st, err := OpenSiteConfig(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			return st.(*s3site.Site)
		}
	}
	t.Fatalf("no site %s", id)
	return nil
}

// eventually waits, up to a minute, for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestS3SiteLease: two copies of one node directory (a restored backup,
// a standby) on one S3 bucket. The first to open holds the lease of every
// site; on the other every site is unavailable, naming the holder's
// process, host and node directory, its writes are refused and the node
// is not recovered beside the running one. A holder that stops renewing
// without closing (frozen, killed) stops writing to the sites before the
// other takes them over, which it does only once the lease stayed
// unchanged for the lease time; the old holder, renewing again, finds the
// lease taken and the sites unavailable, naming the new holder. Close
// removes the lease, and a lease left by a process of this host that no
// longer runs is taken over at once.
func TestS3SiteLease(t *testing.T) {
	p := versitygwProvider(t)
	dirA, want := s3Node(t, p, false, "")
	dirB := filepath.Join(filepath.Dir(dirA), "node-copy")
	copyDir(t, dirA, dirB)
	host, _ := os.Hostname()

	first := openQuiet(t, dirA)
	for id, s := range states(t, first) {
		if s.State != "ok" {
			t.Fatalf("the first copy's site %s: %+v", id, s)
		}
	}
	raw := rawSite(t, first, "est-a")
	b, err := readBlob(t.Context(), raw, LeaseBlob, maxLeaseBlob)
	if err != nil {
		t.Fatalf("no lease on the site: %v", err)
	}
	rec, err := parseLease(b)
	if err != nil || rec.Node != first.Config.Node.ID || rec.PID != os.Getpid() || rec.Host != host || rec.Dir != dirA || rec.Lease != testLease.String() {
		t.Fatalf("lease %s: %+v, %v", b, rec, err)
	}

	second := openQuiet(t, dirB)
	holder := fmt.Sprintf("its lease (node/lease) is held by process %d on host %s (node directory %q, instance ", os.Getpid(), host, dirA)
	this := fmt.Sprintf("this node (node directory %s) cannot use it too", dirB)
	for id, s := range states(t, second) {
		if s.State != "unavailable" || !strings.Contains(s.Reason, holder) || !strings.Contains(s.Reason, this) {
			t.Errorf("the copy's site %s: %+v\nwant unavailable: %s… %s", id, s, holder, this)
		}
	}
	ctx := second.As(t.Context(), "admin")
	if _, err := second.Engine.Put(ctx, "registry", "copy.bin", strings.NewReader("written by the copy"), vault.PutOptions{Size: 19}); err == nil {
		t.Error("the copy wrote an object")
	}
	if _, err := raw.Stat(t.Context(), "copy.bin"); !errors.Is(err, site.ErrNotFound) {
		t.Errorf("the copy wrote to the site: %v", err)
	}
	checkObjects(t, first, want)

	// Nor is the node recovered beside itself: the lease is renewed.
	root, err := custody.ReadKeyFile(filepath.Join(dirA, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	rec2 := filepath.Join(t.TempDir(), "recovered")
	if _, _, err := Recover(t.Context(), RecoverOptions{Dir: rec2, From: raw, RootKey: &root}); err == nil ||
		!strings.Contains(err.Error(), "its lease (node/lease) is renewed by process "+fmt.Sprint(os.Getpid())) || !strings.Contains(err.Error(), "most likely the node being recovered, still running: stop it before recovering it") {
		t.Errorf("recover beside the running node: %v", err)
	}
	if _, err := os.Stat(rec2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("recover beside the running node wrote %s: %v", rec2, err)
	}

	// The first stops renewing without closing.
	first.leases.mu.Lock()
	first.leases.lapsed = true
	first.leases.mu.Unlock()
	stopped := time.Now()
	store := siteStore(first, "est-a")
	eventually(t, "the holder to stop writing", func() bool {
		err := store.Put(t.Context(), "s/zz/probe", strings.NewReader("x"), 1)
		return err != nil && strings.Contains(err.Error(), "could not be renewed for two thirds of the lease time (3s): this node stopped writing to it")
	})
	eventually(t, "the copy to take the sites over", func() bool {
		for _, s := range states(t, second) {
			if s.State != "ok" {
				return false
			}
		}
		return true
	})
	// It waited for the lease time from the last renewal it saw, which
	// was at most a third of it before the renewals stopped, and took
	// each site over only after the holder had stopped writing to it.
	if waited := time.Since(stopped); waited < testLease*2/3 {
		t.Errorf("the copy took the sites over %v after the renewals stopped, before the lease time (%v) could have passed", waited, testLease)
	}
	for _, s := range first.Config.Sites {
		first.leases.mu.Lock()
		old := first.leases.held[s.ID]
		first.leases.mu.Unlock()
		second.leases.mu.Lock()
		taker := second.leases.held[s.ID]
		second.leases.mu.Unlock()
		old.mu.Lock()
		fenced := old.deadline
		old.mu.Unlock()
		taker.mu.Lock()
		taken := taker.taken
		taker.mu.Unlock()
		if !fenced.Before(taken) {
			t.Errorf("site %s: taken over at %v, before the holder stopped writing at %v", s.ID, taken.Format(time.StampMicro), fenced.Format(time.StampMicro))
		}
	}
	// The engine avoided each site after the refused put above only as
	// long as the lease's refusal said (not the 30 s of a failed write):
	// the copy writes at once.
	if _, err := second.Engine.Put(ctx, "registry", "copy.bin", strings.NewReader("written by the copy"), vault.PutOptions{Size: 19}); err != nil {
		t.Fatalf("the copy, holding the sites, cannot write: %v", err)
	}
	want["copy.bin"] = []byte("written by the copy")
	checkObjects(t, second, want)

	// The old holder renews again: its lease was taken.
	first.leases.mu.Lock()
	first.leases.lapsed = false
	first.leases.mu.Unlock()
	newHolder := fmt.Sprintf("its lease (node/lease) was taken over by process %d on host %s (node directory %q", os.Getpid(), host, dirB)
	eventually(t, "the old holder to find its lease taken", func() bool {
		s := states(t, first)["est-a"]
		return s.State == "unavailable" && strings.Contains(s.Reason, newHolder) || strings.Contains(s.Reason, fmt.Sprintf("is held by process %d on host %s (node directory %q", os.Getpid(), host, dirB))
	})
	if err := store.Put(t.Context(), "s/zz/after", strings.NewReader("x"), 1); err == nil {
		t.Error("the old holder wrote to a site whose lease it lost")
	}
	if _, err := raw.Stat(t.Context(), "s/zz/after"); !errors.Is(err, site.ErrNotFound) {
		t.Errorf("a write of the old holder reached the site: %v", err)
	}
	first.Close()

	// Close removes the lease.
	second.Close()
	if _, err := raw.Stat(t.Context(), LeaseBlob); !errors.Is(err, site.ErrNotFound) {
		t.Errorf("Close left the lease: %v", err)
	}

	// A lease of a process of this host that no longer runs is taken
	// over at once; but only if it names this kernel and process
	// namespace too: the same host name and a process id that does not
	// run here say nothing of a container or a clone of the machine with
	// the same name, nor does a lease older than the field.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := siteLeaseRecord{Format: leaseFormat, Node: rec.Node, Instance: strings.Repeat("ab", 16), Host: host, PID: cmd.Process.Pid, Dir: "/srv/gone", Lease: "1h"}
	for _, machine := range []string{"", "00000000-0000-0000-0000-000000000000 pid:[1]"} {
		dead.Machine = machine
		if err := raw.Put(t.Context(), LeaseBlob, bytes.NewReader(dead.encode()), int64(len(dead.encode()))); err != nil {
			t.Fatal(err)
		}
		other := openQuiet(t, dirB)
		if s := states(t, other)["est-a"]; s.State != "unavailable" || !strings.Contains(s.Reason, "process "+fmt.Sprint(dead.PID)) {
			t.Errorf("a lease of process %d on this host name but machine %q was taken over at once: %+v", dead.PID, machine, s)
		}
		other.Close()
	}
	dead.Machine = thisMachine()
	if dead.Machine == "" {
		t.Fatal("no boot id or process namespace to name this machine by")
	}
	if err := raw.Put(t.Context(), LeaseBlob, bytes.NewReader(dead.encode()), int64(len(dead.encode()))); err != nil {
		t.Fatal(err)
	}
	third := openQuiet(t, dirB)
	if s := states(t, third)["est-a"]; s.State != "ok" {
		t.Errorf("a lease left by a process gone from this host: %+v", s)
	}
	checkObjects(t, third, want)

	// A lease removed by hand is found gone at the next renewal and taken
	// again.
	if err := raw.Delete(t.Context(), LeaseBlob); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lease to be taken again", func() bool {
		states(t, third)
		b, err := readBlob(t.Context(), raw, LeaseBlob, maxLeaseBlob)
		r, perr := parseLease(b)
		return err == nil && perr == nil && r.Instance == third.leaseInstance()
	})
	if s := states(t, third)["est-a"]; s.State != "ok" {
		t.Errorf("the site once its lease is taken again: %+v", s)
	}
}

// TestS3SiteLeaseAdvisory: a provider that ignores conditional writes
// (here versitygw behind a proxy that drops If-Match and If-None-Match,
// signing the request again) is found out when the lease is taken, and
// the node says that the lease is advisory only; the site is used.
func TestS3SiteLeaseAdvisory(t *testing.T) {
	p := versitygwProvider(t)
	var mu sync.Mutex
	dropped := 0
	credential := regexp.MustCompile(`Credential=[^/]+/[^/]+/([^/]+)/`)
	target := &url.URL{Scheme: "http", Host: p.endpoint}
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = target.Host
		if r.Out.Header.Get("If-Match") != "" || r.Out.Header.Get("If-None-Match") != "" {
			mu.Lock()
			dropped++
			mu.Unlock()
		}
		r.Out.Header.Del("If-Match")
		r.Out.Header.Del("If-None-Match")
		region := "us-east-1"
		if m := credential.FindStringSubmatch(r.In.Header.Get("Authorization")); m != nil {
			region = m[1]
		}
		r.Out.Header.Del("Authorization")
		*r.Out = *signer.SignV4(*r.Out, e2eAccess, e2eSecret, "", region)
	}})
	t.Cleanup(proxy.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writeCert(t, ca, proxy)
	d, want := s3Node(t, s3Provider{"versitygw-without-conditions", strings.TrimPrefix(proxy.URL, "https://")}, true, ca)
	var logs bytes.Buffer
	var logMu sync.Mutex
	n, err := Open(t.Context(), d, NewLogger(LogConfig{Level: "warn"}, lockedWriter{&logMu, &logs}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for id, s := range states(t, n) {
		if s.State != "ok" {
			t.Errorf("site %s on a provider without conditional writes: %+v", id, s)
		}
	}
	checkObjects(t, n, want)
	logMu.Lock()
	said := logs.String()
	logMu.Unlock()
	if c := strings.Count(said, "the S3 provider ignores conditional writes (If-None-Match: *): the site's lease is advisory only"); c != 3 {
		t.Errorf("the node said %d times that the lease is advisory only, want once a site:\n%s", c, said)
	}
	mu.Lock()
	defer mu.Unlock()
	if dropped == 0 {
		t.Error("the proxy dropped no condition")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func writeCert(t *testing.T, path string, hs *httptest.Server) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseLease: the lease blob is read from a bucket anyone holding its
// credential may write, so parseLease must never panic, and whatever it
// accepts names its holder and encodes back to a blob that parses to the
// same record.
func FuzzParseLease(f *testing.F) {
	good := siteLeaseRecord{Format: leaseFormat, Node: "3f1c2d4e5f60718293a4b5c6d7e8f901", Instance: strings.Repeat("0a", 16), Host: "lux-a", PID: 4242, Dir: "/srv/lux", Renewals: 17, Lease: "30s"}
	f.Add(good.encode())
	for _, s := range []string{"", "{}", "null", `{"format":"embassy-site-lease/1"}`, string(good.encode()) + "{}",
		strings.Replace(string(good.encode()), `"30s"`, `"-1s"`, 1), strings.Replace(string(good.encode()), `4242`, `-1`, 1),
		strings.Replace(string(good.encode()), `"renewals":17`, `"renewals":1e99`, 1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseLease(b)
		if err != nil {
			if r != nil {
				t.Fatal("a record with an error")
			}
			return
		}
		if r.holder() == "" {
			t.Fatal("no holder")
		}
		again, err := parseLease(r.encode())
		if err != nil || *again != *r {
			t.Fatalf("re-encoded %+v parses to %+v, %v", r, again, err)
		}
	})
}

// TestParseLeaseRefuses: a damaged or foreign lease blob is refused with
// what is wrong with it.
func TestParseLeaseRefuses(t *testing.T) {
	good := siteLeaseRecord{Format: leaseFormat, Node: "3f1c2d4e5f60718293a4b5c6d7e8f901", Instance: strings.Repeat("0a", 16), Host: "lux-a", PID: 4242, Dir: "/srv/lux", Lease: "30s"}
	if _, err := parseLease(good.encode()); err != nil {
		t.Fatalf("a good lease: %v", err)
	}
	for _, tc := range []struct {
		change func(*siteLeaseRecord)
		want   string
	}{
		{func(r *siteLeaseRecord) { r.Format = "x" }, `format "x"`},
		{func(r *siteLeaseRecord) { r.Instance = "abc" }, `instance "abc" is not 32 hex digits`},
		{func(r *siteLeaseRecord) { r.Node = "" }, `node "" is not a node id`},
		{func(r *siteLeaseRecord) { r.PID = -2 }, "pid -2"},
		{func(r *siteLeaseRecord) { r.Lease = "2h" }, `lease time "2h" is not from 1s to 1h0m0s`},
	} {
		r := good
		tc.change(&r)
		if _, err := parseLease(r.encode()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", r, err, tc.want)
		}
	}
	if _, err := parseLease(append(good.encode(), "{}"...)); err == nil || !strings.Contains(err.Error(), "data after the record") {
		t.Errorf("trailing data: %v", err)
	}
}
