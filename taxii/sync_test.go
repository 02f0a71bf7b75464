package taxii_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
)

// TestSyncBetweenNodes: two embassy nodes, EST and LUX, each a plain TAXII
// server to the other. EST pushes an incident bundle marked CLEAR, GREEN,
// AMBER and RED to LUX: LUX receives what its principal may read on EST
// (CLEAR, GREEN, AMBER), markings intact, and RED never crosses; a LUX
// principal reads them through TAXII. Then LUX pulls from EST: the same
// objects, none twice, and the cursor makes the next run move nothing.
func TestSyncBetweenNodes(t *testing.T) {
	est := newHarness(t)
	lux := newHarness(t, harnessOptions{nation: "LUX"})
	est.post("analyst", readIncident(t))
	store, err := est.n.TAXII()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	push := taxii.SyncConfig{Name: "to-lux", Collection: "cti", URL: lux.url + root + "collections/cti/", Direction: "push",
		User: keyOf("analyst"), Password: secretOf("analyst"), Recipient: "lux"}
	res, err := store.Sync(ctx, push, est.n.Principal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushed != 9 || res.PushRefused != 0 {
		t.Fatalf("push: %+v, want 9 pushed", res)
	}
	// On LUX, a LUX national reads them (the collection there has LUX in
	// its community and AMBER peers): markings intact, no RED.
	env, r := lux.get("reader", "limit=1000")
	if r.status != http.StatusOK || len(env.Objects) != 9 {
		t.Fatalf("LUX reader: %d objects (%d)", len(env.Objects), r.status)
	}
	for _, o := range env.Objects {
		s := string(o)
		if strings.Contains(s, taxii.TLP2Red) {
			t.Errorf("a RED object crossed: %s", s)
		}
		if !strings.Contains(s, `"object_marking_refs":["marking-definition--`) {
			t.Errorf("an object lost its markings: %s", s)
		}
	}
	// The cursor: nothing more to push.
	if res, err := store.Sync(ctx, push, est.n.Principal, nil); err != nil || res.Pushed != 0 {
		t.Fatalf("second push: %+v %v", res, err)
	}

	// LUX pulls from EST as its own principal there ("lux", a reader of
	// nation LUX), writing as its analyst.
	lstore, err := lux.n.TAXII()
	if err != nil {
		t.Fatal(err)
	}
	pull := taxii.SyncConfig{Name: "from-est", Collection: "cti", URL: est.url + root + "collections/cti/", Direction: "pull",
		User: keyOf("lux"), Password: secretOf("lux"), As: "analyst"}
	res, err = lstore.Sync(ctx, pull, lux.n.Principal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pulled != 9 || res.PullRefused != 0 {
		t.Fatalf("pull: %+v, want 9 (already there, each counted once)", res)
	}
	if env, _ := lux.get("analyst", "limit=1000"); len(env.Objects) != 9 {
		t.Fatalf("after the pull LUX holds %d objects, want 9 (none twice)", len(env.Objects))
	}
	// A new GREEN indicator on EST: the next pull moves it alone.
	st := est.post("analyst", objectsOf(map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": "indicator--0c9e7d6f-8a0b-4b6c-9d1e-2f3a4b5c6d7e",
		"created": "2026-12-01T10:00:00.000Z", "modified": "2026-12-01T10:00:00.000Z",
		"pattern": "[ipv4-addr:value = '203.0.113.9']", "pattern_type": "stix", "valid_from": "2026-12-01T10:00:00Z",
		"object_marking_refs": []string{taxii.TLP2Green},
	}))
	if st.SuccessCount != 1 {
		t.Fatalf("post: %+v", st)
	}
	if res, err := lstore.Sync(ctx, pull, lux.n.Principal, nil); err != nil || res.Pulled != 1 {
		t.Fatalf("third pull: %+v %v", res, err)
	}
	cur, err := lstore.SyncCursorOf("from-est")
	if err != nil || cur.PulledUntil == "" || cur.LastError != "" || cur.URL != pull.URL {
		t.Fatalf("cursor %+v %v", cur, err)
	}
}

// TestSyncWrongPassword: a push with a wrong password fails with the
// remote's 401, and its cursor records the error.
func TestSyncWrongPassword(t *testing.T) {
	est := newHarness(t)
	lux := newHarness(t, harnessOptions{nation: "LUX"})
	est.post("analyst", readIncident(t))
	store, _ := est.n.TAXII()
	job := taxii.SyncConfig{Name: "bad", Collection: "cti", URL: lux.url + root + "collections/cti/", Direction: "push",
		User: keyOf("analyst"), Password: "wrong", Recipient: "lux"}
	_, err := store.Sync(context.Background(), job, est.n.Principal, nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err %v, want the remote's 401", err)
	}
	cur, _ := store.SyncCursorOf("bad")
	if !strings.Contains(cur.LastError, "401") || cur.PushedUntil != "" {
		t.Fatalf("cursor %+v", cur)
	}
}

// TestClientRetries: 503 with Retry-After and a dropped connection are
// retried; a 400 is not.
func TestClientRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		case 3:
			w.Header().Set("Content-Type", taxii.MediaTAXII)
			w.Header().Set("X-TAXII-Date-Added-Last", "2026-12-01T10:00:00.000000Z")
			w.Write([]byte(`{"more":false,"objects":[{"type":"x"}]}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"title":"Bad request","description":"no"}`))
		}
	}))
	defer srv.Close()
	c := &taxii.Client{URL: srv.URL + "/taxii2/api/collections/x/", Backoff: time.Millisecond}
	p, err := c.GetObjects(context.Background(), time.Time{}, "", 10)
	if err != nil || len(p.Objects) != 1 || p.AddedLast.IsZero() || calls.Load() != 3 {
		t.Fatalf("%+v %v after %d calls", p, err, calls.Load())
	}
	_, err = c.GetObjects(context.Background(), time.Time{}, "", 10)
	if re, ok := err.(*taxii.RemoteError); !ok || re.Status != 400 || calls.Load() != 4 {
		t.Fatalf("err %v after %d calls, want one 400", err, calls.Load())
	}
}

// TestServeRunsSyncJobs: a serving node runs the sync jobs of its
// node.yaml by itself: EST's push job reaches LUX without anyone running
// it.
func TestServeRunsSyncJobs(t *testing.T) {
	lux := newHarness(t, harnessOptions{nation: "LUX"})
	est := newHarness(t, harnessOptions{edit: func(c *node.Config) {
		c.TAXII.Sync = []taxii.SyncConfig{{Name: "to-lux", Collection: "cti", URL: lux.url + root + "collections/cti/", Direction: "push",
			User: keyOf("analyst"), Password: secretOf("analyst"), Recipient: "lux", Interval: "1s"}}
	}})
	est.post("analyst", readIncident(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- est.n.Serve(ctx, node.ServeOptions{Address: "127.0.0.1:0"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		env, _ := lux.get("reader", "limit=1000")
		if len(env.Objects) == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s LUX holds %d objects, want the 9 EST may send", len(env.Objects))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSyncNeedsRoles: a push job whose recipient holds no reader role on
// the collection's vault sends nothing, and a pull job whose principal
// holds no writer role stores nothing; both say why.
func TestSyncNeedsRoles(t *testing.T) {
	est := newHarness(t)
	lux := newHarness(t, harnessOptions{nation: "LUX"})
	est.post("analyst", readIncident(t))
	store, _ := est.n.TAXII()
	push := taxii.SyncConfig{Name: "p", Collection: "cti", URL: lux.url + root + "collections/cti/", Direction: "push",
		User: keyOf("analyst"), Password: secretOf("analyst"), Recipient: "other"}
	if res, err := store.Sync(context.Background(), push, est.n.Principal, nil); err == nil || !strings.Contains(err.Error(), "no reader role on vault intel") || res.Pushed != 0 {
		t.Errorf("push to a recipient without a role: %+v %v", res, err)
	}
	pull := taxii.SyncConfig{Name: "q", Collection: "cti", URL: lux.url + root + "collections/cti/", Direction: "pull",
		User: keyOf("analyst"), Password: secretOf("analyst"), As: "reader"}
	if res, err := store.Sync(context.Background(), pull, est.n.Principal, nil); err == nil || !strings.Contains(err.Error(), "no writer role on vault intel") || res.Pulled != 0 {
		t.Errorf("pull as a reader: %+v %v", res, err)
	}
	if env, _ := lux.get("analyst", ""); len(env.Objects) != 0 {
		t.Errorf("LUX received %d objects", len(env.Objects))
	}
}

// TestSyncClosesItsConnections: a node's sync jobs keep no connection to
// the remote TAXII server open once the node is closed. They used
// http.DefaultClient, whose idle connection to LUX stayed open in the
// process after EST closed, to the transport's idle timeout (90 s; the
// test fails it after 30 s); now the jobs have a client of the node's,
// whose idle connections Close closes.
func TestSyncClosesItsConnections(t *testing.T) {
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	changed := make(chan struct{}, 1)
	lux := newHarness(t, harnessOptions{nation: "LUX", connState: func(c net.Conn, s http.ConnState) {
		mu.Lock()
		switch s {
		case http.StateNew:
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}})
	est := newHarness(t, harnessOptions{edit: func(c *node.Config) {
		c.TAXII.Sync = []taxii.SyncConfig{{Name: "to-lux", Collection: "cti", URL: lux.url + root + "collections/cti/", Direction: "push",
			User: keyOf("analyst"), Password: secretOf("analyst"), Recipient: "lux", Interval: "1h"}}
	}})
	est.post("analyst", readIncident(t))
	res, err := est.n.SyncTAXII(t.Context(), "to-lux")
	if err != nil || res.Pushed != 9 {
		t.Fatalf("sync: %+v, %v; want 9 pushed", res, err)
	}
	mu.Lock()
	used := len(open)
	mu.Unlock()
	if used == 0 {
		t.Fatal("the sync left no connection to LUX open to close: the test no longer shows anything")
	}
	est.n.Close()
	bound := time.NewTimer(30 * time.Second)
	defer bound.Stop()
	for {
		mu.Lock()
		n := len(open)
		mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-bound.C:
			t.Fatalf("%d connections to LUX still open 30s after EST closed", n)
		}
	}
}
