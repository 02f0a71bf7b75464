package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/sys/unix"
)

// tessera publishes checkpoints in its own goroutine (the publishing
// appender's, sequencer.go) and says nothing when it has: the checkpoint
// file (tlog/checkpoint) is replaced, by a rename, a checkpoint interval
// or less after a batch is integrated, or later, or never while a witness
// policy without fail-open holds it back. The last of its steps embassy
// sees (the checkpoint signer, the witness policy) come before the file is
// written, so they cannot say that a reader finds the checkpoint there.
//
// So the log watches the file system instead: an inotify watch on the
// tlog directory reports each rename onto (or write of) its checkpoint,
// the watcher reads the checkpoint's size (unverified: whoever copies it
// verifies it) and broadcasts it. What waits for a checkpoint covering
// some size (a copy round with Config.IntegrateWithCopies, Close) waits
// on that broadcast instead of reading the file again every few
// milliseconds. Where no watch can be had (inotify's instances are
// limited, 128 a user by default), the waiters read the file on a short
// ticker, as they did before, and the log says so once.

// published is what the log knows of its latest published checkpoint.
type published struct {
	path string // the checkpoint file
	read func(context.Context) ([]byte, error)

	mu      sync.Mutex
	size    uint64        // the tree size the latest checkpoint read covers
	changed chan struct{} // closed and replaced when size grows
	watched bool          // a watch reports the file's changes

	f    *os.File // the inotify instance (nil: none)
	done chan struct{}
}

// pollPublished is how often a waiter reads the checkpoint when no watch
// reports its changes.
const pollPublished = 10 * time.Millisecond

// watchPublished starts watching the checkpoint of the tlog directory
// tdir, read through the log's reader; a watch that cannot be had is said
// in the log.
func (l *Log) watchPublished(tdir string) {
	p := &published{path: filepath.Join(tdir, layout.CheckpointPath), read: l.reader.ReadCheckpoint, changed: make(chan struct{}), done: make(chan struct{})}
	l.pub = p
	f, err := inotifyDir(tdir)
	if l.cfg.noWatch && err == nil {
		f.Close()
		err = errors.New("no watch (a test)")
	}
	if err != nil {
		close(p.done)
		l.log.Warn("audit log: the checkpoint file cannot be watched; waiting for a checkpoint reads it every few milliseconds instead", "dir", tdir, "err", err)
	} else {
		p.f, p.watched = f, true
		go p.watch()
	}
	// Read after the watch is set, so that no publication falls between.
	p.refresh()
}

// inotifyDir returns an inotify instance watching the renames onto, and
// writes of, the files of dir.
func inotifyDir(dir string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	// Non-blocking: the runtime's poller waits for it, and a Close ends a
	// Read under way.
	return os.NewFile(uintptr(fd), "inotify:"+dir), nil
}

// watch reads the watch's events until the instance is closed, reading
// the checkpoint again at each that names it (or when events were lost).
func (p *published) watch() {
	defer close(p.done)
	name := []byte(filepath.Base(p.path))
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := p.f.Read(buf)
		if err != nil {
			// Closed, or the watch failed: the waiters read the
			// checkpoint on a ticker from now on.
			p.mu.Lock()
			p.watched = false
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
			return
		}
		again := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			// struct inotify_event: wd, mask, cookie, len (each 32
			// bits, in the machine's order), then len bytes of name,
			// NUL-padded.
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			end := off + unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
			if end > n {
				break
			}
			evName := bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:end], "\x00")
			if mask&unix.IN_Q_OVERFLOW != 0 || bytes.Equal(evName, name) {
				again = true
			}
			off = end
		}
		if again {
			p.refresh()
		}
	}
}

// refresh reads the checkpoint's size and broadcasts it if it grew.
func (p *published) refresh() {
	raw, err := p.read(context.Background())
	if err != nil {
		return
	}
	p.grew(checkpointSize(raw))
}

// grew records that a checkpoint covering size entries is published.
func (p *published) grew(size uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if size > p.size {
		p.size = size
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// await waits until a published checkpoint covers size entries, or ctx
// ends (its error).
func (p *published) await(ctx context.Context, size uint64) error {
	var tick <-chan time.Time
	for {
		p.mu.Lock()
		n, ch, watched := p.size, p.changed, p.watched
		p.mu.Unlock()
		if n >= size {
			return nil
		}
		if !watched && tick == nil {
			t := time.NewTicker(pollPublished)
			defer t.Stop()
			tick = t.C
		}
		select {
		case <-ch:
		case <-tick:
			p.refresh()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// latest returns the size the latest published checkpoint covers, as far
// as the log knows.
func (p *published) latest() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// close stops the watch.
func (p *published) close() {
	if p.f != nil {
		p.f.Close()
	}
	<-p.done
}
