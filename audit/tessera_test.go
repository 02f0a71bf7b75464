package audit

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/internal/stacktest"
)

// heldSigner holds Sign, once armed, until released.
type heldSigner struct {
	note.Signer
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *heldSigner) Sign(msg []byte) ([]byte, error) {
	if s.armed.Load() {
		s.once.Do(func() { close(s.entered) })
		<-s.release
	}
	return s.Signer.Sign(msg)
}

// TestCloseWaitsForTessera: Close returns only when tessera's goroutines
// have stopped. tessera publishes checkpoints in a goroutine of its own
// that stops with its context, and offers no way to wait for it: caught
// publishing by Close's cancel, it wrote the checkpoint after Close
// returned (into a directory removed meanwhile, or over the checkpoint of
// the log opened again).
func TestCloseWaitsForTessera(t *testing.T) {
	cfg := testConfig(t, testKeys(t), t.TempDir(), nil)
	hs := &heldSigner{Signer: cfg.Signer, entered: make(chan struct{}), release: make(chan struct{})}
	cfg.Signer = hs
	l := openLog(t, cfg)
	hs.armed.Store(true)
	if _, err := l.Append(t.Context(), event(0)); err != nil {
		t.Fatal(err)
	}
	<-hs.entered // tessera publishes the checkpoint of 1 entry
	// Close does not wait for that checkpoint: its context has ended.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- l.Close(ctx) }()
	for !stacktest.Has("audit.(*Log).Close(", "audit.(*tesseraGroup).stop(") {
		select {
		case <-closed:
			close(hs.release)
			t.Fatal("Close returned while tessera was publishing a checkpoint")
		case <-time.After(time.Millisecond):
		}
	}
	close(hs.release)
	<-closed
	// What tessera was doing is done: the checkpoint of 1 entry is there.
	cp, err := os.ReadFile(filepath.Join(cfg.Dir, "tlog", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.SplitN(string(cp), "\n", 3); len(lines) < 3 || lines[1] != strconv.Itoa(1) {
		t.Fatalf("checkpoint after Close:\n%s", cp)
	}
}

// TestOpenWaitsForAnEarlierLogsTessera: a log of a directory opened again
// in this process waits for the tessera goroutines of the one before that
// outlived its Close (tessera's file locks do not exclude each other
// within a process: the old goroutine would publish beside the new log).
func TestOpenWaitsForAnEarlierLogsTessera(t *testing.T) {
	grace := tesseraGrace
	tesseraGrace = 0
	t.Cleanup(func() { tesseraGrace = grace })
	cfg := testConfig(t, testKeys(t), t.TempDir(), nil)
	hs := &heldSigner{Signer: cfg.Signer, entered: make(chan struct{}), release: make(chan struct{})}
	cfg.Signer = hs
	l := openLog(t, cfg)
	hs.armed.Store(true)
	if _, err := l.Append(t.Context(), event(0)); err != nil {
		t.Fatal(err)
	}
	<-hs.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Close(ctx) // gives up on the held checkpoint at once
	hs.armed.Store(false)
	type result struct {
		l   *Log
		err error
	}
	opened := make(chan result, 1)
	go func() {
		l, err := Open(t.Context(), cfg)
		opened <- result{l, err}
	}()
	for !stacktest.Has("audit.Open(", "audit.awaitTesseraStopped(") {
		select {
		case r := <-opened:
			close(hs.release)
			if r.err == nil {
				closeLog(t, r.l)
			}
			t.Fatalf("Open returned (%v) while the earlier log's tessera was publishing a checkpoint", r.err)
		case <-time.After(time.Millisecond):
		}
	}
	close(hs.release)
	r := <-opened
	if r.err != nil {
		t.Fatal(r.err)
	}
	l = r.l
	defer closeLog(t, l)
	if _, cp, err := l.Checkpoint(t.Context()); err != nil || cp.Size != 1 {
		t.Fatalf("checkpoint of the log opened again: %+v, %v", cp, err)
	}
}
