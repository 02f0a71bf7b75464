package audit

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// tessera (v1.0.4) starts goroutines for every appender: the queue worker
// that integrates batches (storage/internal/queue.go), the loop that
// publishes checkpoints and the garbage collector (storage/posix/files.go),
// the metrics sampler (append_lifecycle.go). They stop when the
// appender's context ends, but tessera gives no way to wait for them: one
// the cancel caught in the middle of its work finishes it, writing a
// checkpoint, a tile, the tree state or the collector's state after Close
// returned (and making again, with its mkdirAll, the directories removed
// meanwhile). Beside a log of the same directory opened again in this
// process, such a late write is worse: tessera's file locks (fcntl) do
// not exclude each other within one process, so an old goroutine could
// publish over the new log's checkpoint or integrate beside it.
//
// A tesseraGroup finds them: the appenders are made under a profiler
// label of the group's own, which every goroutine they start inherits (a
// new goroutine takes its creator's labels), and the goroutine profile
// shows which of them still run. Close waits for them; Open waits for
// those of an earlier log of the same directory that outlived its Close.

// tesseraLabel is the profiler label of tessera's goroutines.
const tesseraLabel = "embassy.audit.tessera"

// tesseraGrace is how long Close waits for tessera's goroutines after
// its context ended (tests shorten it).
var tesseraGrace = 5 * time.Second

var (
	tesseraSeq     atomic.Uint64
	tesseraMu      sync.Mutex
	tesseraRunning = map[string]map[*tesseraGroup]bool{} // by log directory
)

// tesseraGroup is the goroutines tessera started for one log.
type tesseraGroup struct {
	dir string
	id  string
	// lock is the log's lock on its directory (dirlock.go), released
	// once the goroutines have stopped: while one runs, no other log of
	// the directory may open.
	lock *os.File
}

// unlock releases the directory's lock.
func (g *tesseraGroup) unlock() {
	if g.lock != nil {
		g.lock.Close()
		g.lock = nil
	}
}

func newTesseraGroup(dir string) *tesseraGroup {
	return &tesseraGroup{dir: dir, id: strconv.FormatUint(tesseraSeq.Add(1), 10)}
}

// do runs f, which makes the appenders, under the group's label.
func (g *tesseraGroup) do(ctx context.Context, f func()) {
	pprof.Do(ctx, pprof.Labels(tesseraLabel, g.id), func(context.Context) { f() })
}

// running reports whether a goroutine of the group still runs tessera's
// code. Goroutines with the label that do not (an HTTP connection's
// reader, started while tessera asked a witness, which lives until the
// connection is idle long enough) write nothing of the log's.
func (g *tesseraGroup) running() bool {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return true
	}
	label := []byte(`"` + tesseraLabel + `":"` + g.id + `"`)
	for rec := range bytes.SplitSeq(b.Bytes(), []byte("\n\n")) {
		if bytes.Contains(rec, label) && bytes.Contains(rec, []byte("github.com/transparency-dev/tessera")) {
			return true
		}
	}
	return false
}

// stop waits, once tessera's context is cancelled, until none of the
// group's goroutines runs: within ctx, and then tesseraGrace more, and
// then releases the directory's lock. Those still running then are
// logged, and keep the lock: an Open of the same directory in this process
// waits for them (and then releases it), another process finds the
// directory in use until this one ends.
func (g *tesseraGroup) stop(ctx context.Context, log *slog.Logger) {
	grace := time.Now().Add(tesseraGrace)
	for pause := time.Millisecond; g.running(); pause = min(2*pause, 20*time.Millisecond) {
		if ctx.Err() != nil && time.Now().After(grace) {
			log.Error("audit log: tessera's goroutines still run after the log closed; a log of the same directory opened in this process waits for them", "dir", g.dir)
			tesseraMu.Lock()
			defer tesseraMu.Unlock()
			if tesseraRunning[g.dir] == nil {
				tesseraRunning[g.dir] = map[*tesseraGroup]bool{}
			}
			tesseraRunning[g.dir][g] = true
			return
		}
		time.Sleep(pause)
	}
	g.unlock()
}

// awaitTesseraStopped waits (within ctx) until no goroutine tessera
// started for an earlier log of dir, closed, runs.
func awaitTesseraStopped(ctx context.Context, dir string) error {
	tesseraMu.Lock()
	var gs []*tesseraGroup
	for g := range tesseraRunning[dir] {
		gs = append(gs, g)
	}
	tesseraMu.Unlock()
	for _, g := range gs {
		for pause := time.Millisecond; g.running(); pause = min(2*pause, 20*time.Millisecond) {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(pause):
			}
		}
		g.unlock()
		tesseraMu.Lock()
		delete(tesseraRunning[dir], g)
		if len(tesseraRunning[dir]) == 0 {
			delete(tesseraRunning, dir)
		}
		tesseraMu.Unlock()
	}
	return nil
}
