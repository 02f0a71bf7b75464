package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/internal/stacktest"
	"github.com/embassy-dev/embassy/s3"
)

// TestServeWaitsForWhatItStarted: Serve returns only when the goroutines
// it started have returned. One still running after it returned writes
// into a node directory its caller believes idle (closed, or removed:
// cmd/embassy's TestRecoverFromAPeer saw 'unlinkat …/audit: directory not
// empty' from a peer witness round that kept its cosignature in
// audit/cosigned.json after the serve had stopped).
func TestServeWaitsForWhatItStarted(t *testing.T) {
	n := newNode(t)
	release := make(chan struct{})
	stopping := make(chan struct{})
	var returned atomic.Bool
	// A background loop slow to stop, as a witness round is while it
	// writes what the peer cosigned.
	n.serveLoops = append(n.serveLoops, func(ctx context.Context) {
		<-ctx.Done()
		close(stopping)
		<-release
		returned.Store(true)
	})
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, ServeOptions{Address: "127.0.0.1:0", Credentials: []s3.Credential{RandomCredential("admin")}, Ready: func(string, bool) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	cancel()
	<-stopping
	// The loop holds on until Serve waits for it, or Serve returns
	// without waiting.
	for !stacktest.Has("/node.(*Node).Serve(", "sync.(*WaitGroup).Wait(") {
		select {
		case err := <-done:
			close(release)
			t.Fatalf("Serve returned (%v) while a goroutine it started was still running", err)
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("serve ended: %v", err)
	}
	if !returned.Load() {
		t.Fatal("Serve returned before the goroutine it started")
	}
}
