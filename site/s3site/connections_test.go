package s3site_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site/s3site"
)

// connCount counts the connections a test server has open.
type connCount struct {
	mu      sync.Mutex
	open    int
	changed chan struct{} // closed and replaced at each change
}

func (c *connCount) state(_ net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew:
		c.open++
	case http.StateClosed, http.StateHijacked:
		c.open--
	default:
		return
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitOpen waits until want connections are open, failing the test if
// they are not within a deadline far beyond what closing them takes (the
// client's idle timeout, a minute, would close them otherwise).
func (c *connCount) waitOpen(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		open, changed := c.open, c.changed
		c.mu.Unlock()
		if open == want {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: %d connections open after 30 s, want %d", what, open, want)
		}
	}
}

// countedEmbassyServer is embassyServer counting its open connections.
func countedEmbassyServer(t *testing.T) (*server, *connCount) {
	t.Helper()
	dir := t.TempDir()
	if _, err := node.InitDev(dir, node.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	cc := &connCount{changed: make(chan struct{})}
	hs := httptest.NewUnstartedServer(n.Handler(s3.Credential{AccessKey: testAccess, SecretKey: testSecret, Principal: "admin"}))
	hs.Config.ConnState = cc.state
	hs.Start()
	t.Cleanup(hs.Close)
	return &server{name: "embassy", endpoint: strings.TrimPrefix(hs.URL, "http://")}, cc
}

// TestCloseClosesConnectionsHandedBackLater: a driver is closed while a
// read of a blob is still running on it, and a call is made on it after
// Close (a driver a configuration change replaced, still used by a copy
// of the audit log). Before, Close closed only the connections idle at
// that moment; the later call made Go's transport stop closing
// connections that become idle, and the read's connection and the later
// call's stayed open to the provider for the transport's idle timeout (a
// minute). Now the driver closes its idle connections again when the last
// call in flight ends after Close: none is left open.
func TestCloseClosesConnectionsHandedBackLater(t *testing.T) {
	srv, conns := countedEmbassyServer(t)
	ctx := t.Context()
	s, err := s3site.New(ctx, srv.config(""))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("embassy "), 64<<10) // 512 KiB
	if err := s.Put(ctx, "m/a", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "m/a", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "m/a"); err != nil {
		t.Fatalf("a call after Close: %v", err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if !bytes.Equal(append(head, rest...), data) {
		t.Fatal("the read running across Close read back wrong")
	}
	conns.waitOpen(t, 0, "after the calls running across Close ended")

	// A driver used again after that closes what the new call opened.
	if _, err := s.Stat(ctx, "m/a"); err != nil {
		t.Fatalf("a call after Close: %v", err)
	}
	conns.waitOpen(t, 0, "after a later call ended")
}
