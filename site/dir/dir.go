// Package dir is the site driver for a local directory.
//
// Every blob is a file under the site's root, at the blob's name. Put writes
// a temporary file under .tmp, flushes it with fdatasync, renames it into
// place and then flushes the directory, so a crash leaves either the old
// blob or the whole new one. Directory flushes are group-committed: when
// many puts finish together, one fsync of a directory covers all of them.
//
// The root, its .tmp and its top directories ([site.TopDirs]) are created
// only when the site is created ([New]), never afterwards: a site opened
// with [Open] whose root or top directory is missing (an unmounted volume,
// a removed directory) fails every operation with site.ErrUnavailable, and
// a write racing with the removal of the site can never recreate it, since
// every file or directory a put creates is created inside a directory that
// must already exist. Only directories below the top ones are created on
// demand.
package dir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/site"
)

const tmpDir = ".tmp"

// tmpMaxAge is the age past which a file in tmpDir is a leftover of a put
// that will never complete.
const tmpMaxAge = time.Hour

// errOutside marks a blob name outside the site's top directories.
var errOutside = errors.New("outside the layout")

// Site is a directory site.
type Site struct {
	root string
	tops []string // top directories

	mu      sync.Mutex
	syncers map[string]*syncer
	known   sync.Map // directories below the top ones known to exist durably
}

// New creates a directory site rooted at root, with its parents, its .tmp
// and its top directories if they are missing, removes temporary files left
// by a crash, and opens it. Call it only when a site is created ('embassy
// site add', a development node's first start): opening an existing site is
// [Open], which never creates anything.
func New(root string) (*Site, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	for _, d := range append([]string{tmpDir}, site.TopDirs()...) {
		if err := os.Mkdir(filepath.Join(abs, d), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("dir site %s: %w", root, err)
		}
	}
	if err := atomicfile.SyncDir(abs); err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	s, _ := Open(abs)
	if err := s.ready(""); err != nil {
		return nil, err
	}
	return s, nil
}

// NewIn creates a directory site named name in parent, an open directory
// (its root, .tmp and top directories, those missing), and opens it. It
// never creates parent: every directory is made through the open
// parent, so a parent unmounted or replaced meanwhile cannot send the
// new site to whatever filesystem lies beneath its path.
func NewIn(parent *os.Root, name string) (*Site, error) {
	if !filepath.IsLocal(name) || strings.ContainsRune(name, filepath.Separator) {
		return nil, fmt.Errorf("dir site %s: %q is not a directory name", parent.Name(), name)
	}
	where := filepath.Join(parent.Name(), name)
	if err := parent.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("dir site %s: %w", where, err)
	}
	for _, d := range append([]string{tmpDir}, site.TopDirs()...) {
		if err := parent.Mkdir(filepath.Join(name, d), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("dir site %s: %w", where, err)
		}
	}
	for _, d := range []string{name, "."} {
		f, err := parent.Open(d)
		if err != nil {
			return nil, fmt.Errorf("dir site %s: %w", where, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("dir site %s: %w", where, err)
		}
	}
	s, err := Open(where)
	if err != nil {
		return nil, err
	}
	if err := s.ready(""); err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens an existing directory site without creating anything. If the
// directory or one of its top directories is missing (an unmounted volume,
// a destroyed disk), every operation fails with site.ErrUnavailable until
// it is back: a vanished site must never look like an empty one, nor
// receive writes on whatever filesystem lies beneath it.
func Open(root string) (*Site, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	s := &Site{root: abs, tops: site.TopDirs(), syncers: map[string]*syncer{}}
	if s.ready(tmpDir) == nil {
		// Leftovers are from puts that never completed: they were never
		// visible and nobody waits on them. Only old ones: another Site
		// on the same directory (the engine reopened after a
		// configuration change, another process) may be writing the
		// recent ones, and a file being written keeps a fresh mtime.
		ents, _ := os.ReadDir(filepath.Join(abs, tmpDir))
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > tmpMaxAge {
				os.Remove(filepath.Join(abs, tmpDir, e.Name()))
			}
		}
	}
	return s, nil
}

// top returns the top directory a blob name (or a listing prefix) lies
// under: "" for a name directly in the root, and false when its first
// segment is not a top directory.
func (s *Site) top(name string) (string, bool) {
	first, _, nested := strings.Cut(name, "/")
	if !nested {
		return "", true
	}
	return first, slices.Contains(s.tops, first)
}

// ready checks that the root (its .tmp) and the top directories a name or
// listing prefix may lie under are there: the one it names, or, for a
// prefix without a slash, every one it is a prefix of ("" checks them all).
func (s *Site) ready(name string) error {
	if fi, err := os.Stat(filepath.Join(s.root, tmpDir)); err != nil || !fi.IsDir() {
		return fmt.Errorf("dir site %s: %s: %w", s.root, whyNotSite(s.root), site.ErrUnavailable)
	}
	var tops []string
	if t, _ := s.top(name); t != "" {
		tops = []string{t}
	} else {
		for _, t := range s.tops {
			if strings.HasPrefix(t, name) {
				tops = append(tops, t)
			}
		}
	}
	for _, t := range tops {
		if fi, err := os.Stat(filepath.Join(s.root, t)); err != nil || !fi.IsDir() {
			return fmt.Errorf("dir site %s: top directory %s/ missing (unmounted, damaged, or not a site?): %w", s.root, t, site.ErrUnavailable)
		}
	}
	return nil
}

// whyNotSite says why root does not hold a directory site.
func whyNotSite(root string) string {
	fi, err := os.Stat(root)
	switch {
	case err != nil:
		return "directory missing (unmounted or destroyed?)"
	case !fi.IsDir():
		return "not a directory"
	}
	if ents, err := os.ReadDir(root); err == nil && len(ents) == 0 {
		return "directory is empty, not a site (an empty mount point, or the wrong path?)"
	}
	return "not a site directory: it has no " + tmpDir + " (the wrong path, or a volume not mounted?)"
}

// MissingTopDirs returns the top directories missing under an existing
// root, or an error wrapping site.ErrUnavailable when the root itself (its
// .tmp) is missing. A site made before the top directories were fixed at
// creation lacks those it never used.
func (s *Site) MissingTopDirs() ([]string, error) {
	if err := s.ready(tmpDir); err != nil {
		return nil, err
	}
	var missing []string
	for _, t := range s.tops {
		if _, err := os.Stat(filepath.Join(s.root, t)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, t)
		} else if err != nil {
			return nil, fmt.Errorf("dir site %s: %w", s.root, err)
		}
	}
	return missing, nil
}

// MakeTopDirs creates the top directories missing under the root (a site
// made before they were all created at once, or one of a layout that has
// since grown), but only if approve accepts the site's marker as read
// through the same open root: approve gets the marker blob, or an error
// wrapping fs.ErrNotExist when there is none. Everything is done relative
// to that one open directory, so an unmount or a removal meanwhile cannot
// redirect it to another filesystem.
func (s *Site) MakeTopDirs(approve func(marker []byte, err error) error) error {
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return fmt.Errorf("dir site %s: directory missing (unmounted or destroyed?): %w", s.root, site.ErrUnavailable)
	}
	defer r.Close()
	if fi, err := r.Stat(tmpDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("dir site %s: directory missing (unmounted or destroyed?): %w", s.root, site.ErrUnavailable)
	}
	b, err := r.ReadFile(site.MarkerBlob)
	if err := approve(b, err); err != nil {
		return err
	}
	made := false
	for _, t := range s.tops {
		if err := r.Mkdir(t, 0o700); err == nil {
			made = true
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dir site %s: create top directory %s: %w", s.root, t, err)
		}
	}
	if made {
		d, err := r.Open(".")
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
	return nil
}

// Root returns the directory holding the site's blobs.
func (s *Site) Root() string { return s.root }

// path checks that the site is there ([Site.ready]) and returns the path of
// a blob or directory name.
func (s *Site) path(name string) (string, error) {
	if err := s.checkName(name); err != nil {
		return "", err
	}
	if err := s.ready(name); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(name)), nil
}

// checkName checks that name can be a blob's: a valid name, not in .tmp,
// and under a top directory (errOutside, once the site is known to be
// there). It does not check that the site is there: the operations on a
// blob find that out with the same lookups that reach it (see openRoot).
func (s *Site) checkName(name string) error {
	if err := site.CheckName(name); err != nil {
		return err
	}
	if name == tmpDir || strings.HasPrefix(name, tmpDir+"/") {
		return fmt.Errorf("site: invalid blob name %q: reserved", name)
	}
	if _, ok := s.top(name); !ok {
		// No blob can have such a name: reads find nothing (once the
		// site is known to be there), puts are refused.
		if err := s.ready(""); err != nil {
			return err
		}
		return fmt.Errorf("site: invalid blob name %q: not under a top directory of the site (%s): %w", name, strings.Join(s.tops, "/, ")+"/", errOutside)
	}
	return nil
}

// openRoot opens the site's root for the operations on name to resolve
// beneath it, once it has checked, through that same open directory, that
// the root holds the site's .tmp: an empty mount point, or a directory that
// is not a site, is refused before anything is looked up in it. The top
// directory name lies under is not checked here: the lookup of name goes
// through it, and a lookup that finds nothing asks [Site.ready] whether the
// top directory is missing (site.ErrUnavailable) or only the blob
// (site.ErrNotFound). This is the same check as ready's, made with one
// fstatat on the open root instead of two stats by path (about 7 % of a
// 4 KiB GET's CPU went to those).
func (s *Site) openRoot(name string) (int, error) {
	dfd, err := unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		var st unix.Stat_t
		err = unix.Fstatat(dfd, tmpDir, &st, 0)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return dfd, nil
		}
		unix.Close(dfd)
	}
	if rerr := s.ready(name); rerr != nil {
		return -1, rerr
	}
	// Back between the two looks: refuse this once all the same.
	return -1, fmt.Errorf("dir site %s: root or %s changed during the operation: %w", s.root, tmpDir, site.ErrUnavailable)
}

// vanished maps the error of an operation that found a directory missing
// to site.ErrUnavailable when the root or name's top directory is gone.
func (s *Site) vanished(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if rerr := s.ready(name); rerr != nil {
			return rerr
		}
	}
	return err
}

// Buffers are 1 MiB plus room to align them for O_DIRECT.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20+directAlign); return &b }}

// smallPool holds the copy buffers of writes through the page cache: a
// small blob (an inline object's manifest, a record) need not hold a
// mebibyte while it is written, and many are written at once.
var smallPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

const (
	directAlign = 4096
	// directMin: blobs smaller than this are written through the page
	// cache (O_DIRECT gains nothing on a few blocks).
	directMin = 1 << 20
)

// aligned returns the 1 MiB of b that starts on a directAlign boundary.
func aligned(b []byte) []byte {
	off := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	return b[off : off+1<<20]
}

func setDirect(f *os.File, on bool) error {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		fl |= unix.O_DIRECT
	} else {
		fl &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, fl)
	return err
}

// Put implements site.Site. A write that runs out of space (ENOSPC, or
// EDQUOT for a quota) fails with an error wrapping site.ErrFull. A reader
// longer than the size declared is refused once one byte past that size
// is read, as the other drivers do: the temporary file never grows past
// the declared size, and is removed.
func (s *Site) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	defer func() { err = markFull(err) }()
	// The site's presence is not checked first: creating the temporary
	// file needs the root's .tmp, and mkdirs and the rename need the top
	// directory, and neither is ever created here; an operation that
	// finds one missing reports site.ErrUnavailable (vanished).
	if err := s.checkName(name); err != nil {
		return err
	}
	// Every path is resolved once, beneath the root opened here: .tmp,
	// which holds the temporary file and is the rename's source, and the
	// directory the blob goes into, whose descriptor serves the rename and
	// the directory's fsync.
	dfd, err := unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return s.vanished(name, fmt.Errorf("dir site: put %s: %w", name, &os.PathError{Op: "open", Path: s.root, Err: err}))
	}
	defer unix.Close(dfd)
	tmpPath := filepath.Join(s.root, tmpDir)
	tfd, err := openat2(dfd, tmpDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return s.vanished(name, fmt.Errorf("dir site: put %s: %w", name, &os.PathError{Op: "open", Path: tmpPath, Err: symlinkErr(err)}))
	}
	defer unix.Close(tfd)
	var rnd [12]byte
	rand.Read(rnd[:])
	tmp := hex.EncodeToString(rnd[:])
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	direct := size < 0 || size >= directMin
	if direct {
		// Large blobs bypass the page cache: the data goes to the disk
		// once, without a kernel copy or writeback, and does not evict
		// what readers need. Filesystems without O_DIRECT fall back.
		flags |= unix.O_DIRECT
	}
	f, err := openAt(tfd, tmpPath, tmp, flags, 0o600)
	if err != nil && direct && !errors.Is(err, ErrSymlink) {
		direct = false
		f, err = openAt(tfd, tmpPath, tmp, flags&^unix.O_DIRECT, 0o600)
	}
	if err != nil {
		return s.vanished(name, fmt.Errorf("dir site: put %s: %w", name, err))
	}
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(tfd, tmp, 0)
		}
	}()
	var n int64
	if wt, ok := r.(io.WriterTo); ok && !direct && size >= 0 && size < directMin {
		// A small blob whose reader holds its bytes (a bytes.Reader, the
		// engine's pieces of a manifest copy) is written from them: no
		// copy through a buffer of ours, one write a piece. A write past
		// the declared size is refused, and with it the rest.
		if n, err = wt.WriteTo(&sizeWriter{w: f, left: size}); errors.Is(err, errLonger) {
			return fmt.Errorf("dir site: put %s: %w: more than the %d bytes declared", name, errLonger, size)
		} else if err != nil {
			return fmt.Errorf("dir site: put %s: %w", name, err)
		}
	} else if n, err = s.copyIn(ctx, name, f, r, direct, size); err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("dir site: put %s: reader yielded %d bytes, expected %d", name, n, size)
	}
	if err := fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("dir site: put %s: fdatasync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dir site: put %s: %w", name, err)
	}
	parent := filepath.Dir(filepath.Join(s.root, filepath.FromSlash(name)))
	pfd, err := s.moveIn(dfd, tfd, tmp, name, parent)
	if errors.Is(err, fs.ErrNotExist) {
		// A directory below the top ones was removed since it was
		// known: make it again (never a top one), once.
		s.forget(parent)
		pfd, err = s.moveIn(dfd, tfd, tmp, name, parent)
	}
	if err != nil {
		return s.vanished(name, fmt.Errorf("dir site: put %s: %w", name, err))
	}
	defer unix.Close(pfd)
	if err := s.groupSync(parent, func() error { return fsync(pfd) }); err != nil {
		return fmt.Errorf("dir site: put %s: sync directory: %w", name, &os.PathError{Op: "fsync", Path: parent, Err: err})
	}
	return nil
}

// moveIn makes the directory name goes into (parent, by path) if it is
// missing, opens it beneath dfd (the open root) and renames tmp, in tfd
// (the open .tmp), to name's last component in it. It returns the
// directory's descriptor, for its fsync.
func (s *Site) moveIn(dfd, tfd int, tmp, name, parent string) (int, error) {
	if err := s.mkdirs(parent); err != nil {
		return -1, err
	}
	dir, base := ".", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i], name[i+1:]
	}
	pfd, err := openat2(dfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: parent, Err: symlinkErr(err)}
	}
	if err := keepForeign(pfd, filepath.Join(parent, base), base); err != nil {
		unix.Close(pfd)
		return -1, err
	}
	if err := renameat(tfd, tmp, pfd, base); err != nil {
		unix.Close(pfd)
		return -1, &os.LinkError{Op: "rename", Old: filepath.Join(s.root, tmpDir, tmp), New: filepath.Join(parent, base), Err: err}
	}
	return pfd, nil
}

// errLonger: a put's reader yielded more bytes than the size declared.
var errLonger = errors.New("the reader yielded more bytes than declared")

// sizeWriter passes to w the writes that fit in the left bytes, and
// refuses (errLonger), without writing any of it, the first that does not.
type sizeWriter struct {
	w    io.Writer
	left int64
}

func (s *sizeWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > s.left {
		return 0, errLonger
	}
	n, err := s.w.Write(p)
	s.left -= int64(n)
	return n, err
}

// copyIn copies r into f, the temporary file of a put of name, through a
// pooled buffer: an aligned 1 MiB one when f was opened with O_DIRECT
// (direct), whose unaligned tail it writes through the page cache, or a
// small one. It returns the bytes written. When size is declared (not
// negative), it reads at most size+1 bytes of r: one byte past the
// declared ones means a reader longer than declared, refused (errLonger)
// with nothing more read or written, so an endless reader cannot fill the
// disk before it is refused.
func (s *Site) copyIn(ctx context.Context, name string, f *os.File, r io.Reader, direct bool, size int64) (n int64, err error) {
	var bp *[]byte
	var buf []byte
	if direct {
		bp = bufPool.Get().(*[]byte)
		buf = aligned(*bp)
	} else {
		sp := smallPool.Get().(*[]byte)
		defer smallPool.Put(sp)
		buf = *sp
	}
	// The O_DIRECT writes go on a goroutine of their own (directWriter),
	// so that the next chunk is read while one is written.
	var w *directWriter
	if direct {
		w = startDirectWriter(int(f.Fd()))
	}
	defer func() {
		if w != nil {
			if werr := w.finish(); err == nil && werr != nil {
				err = fmt.Errorf("dir site: put %s: %w", name, werr)
			}
		}
		if bp != nil {
			bufPool.Put(bp)
		}
	}()
	// io.ReadFull says io.ErrUnexpectedEOF both for a short last read (the
	// reader's io.EOF after a part of buf) and for a reader that itself
	// failed so (an HTTP body cut short): only the first is the blob's end.
	src := &eofReader{r: r}
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if w != nil && w.failed.Load() {
			return n, nil // the deferred finish returns the write's error
		}
		want := buf
		if size >= 0 && size+1-n < int64(len(want)) {
			want = want[:size+1-n]
		}
		m, rerr := io.ReadFull(src, want)
		if size >= 0 && n+int64(m) > size {
			return n, fmt.Errorf("dir site: put %s: %w: more than the %d bytes declared", name, errLonger, size)
		}
		if m > 0 {
			if direct && m%directAlign != 0 {
				// The unaligned tail is written through the page cache,
				// after the O_DIRECT writes before it.
				werr := w.finish()
				w = nil
				if werr != nil {
					return n, fmt.Errorf("dir site: put %s: %w", name, werr)
				}
				if err := setDirect(f, false); err != nil {
					return n, fmt.Errorf("dir site: put %s: %w", name, err)
				}
				direct = false
			}
			if direct {
				// Both kinds write at offset n; an O_DIRECT write
				// waits for the disk and gives up the goroutine's P
				// first (sync_linux.go).
				bp = w.write(bp, m, n)
				buf = aligned(*bp)
			} else if _, werr := f.WriteAt(buf[:m], n); werr != nil {
				return n, fmt.Errorf("dir site: put %s: %w", name, werr)
			}
			n += int64(m)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF && src.eof {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("dir site: put %s: reading the blob: %w", name, rerr)
		}
	}
}

// directWriter makes a blob's O_DIRECT writes on a goroutine of its own,
// one at a time and in order, while the caller reads the next chunk into a
// second buffer: a large put keeps a write at the disk while its source
// catches up, as a reader that never waits does. Without it a shard
// writer of the engine's large put was in its writes 75 % of the time and
// the disk reference's 97 %, the same writes taking the same time in sum
// (docs/design.md, "Large puts: a write at the disk while the next chunk
// is read (issue 15, fifteenth pass)"). The calls are the same
// pwrite(2)s, at the same offsets, in the same order; the blob's
// fdatasync comes after the last has returned (finish).
type directWriter struct {
	queue  chan directChunk
	free   chan *[]byte // buffers written
	done   chan error
	spare  int // buffers it may still take from the pool
	failed atomic.Bool
}

// testHookDirectWrite, if set (by tests), is called before each O_DIRECT
// write of a large blob with the write's offset.
var testHookDirectWrite func(off int64)

type directChunk struct {
	bp  *[]byte
	m   int
	off int64
}

func startDirectWriter(fd int) *directWriter {
	w := &directWriter{queue: make(chan directChunk, 1), free: make(chan *[]byte, 2), done: make(chan error, 1), spare: 1}
	go func() {
		var err error
		for c := range w.queue {
			if testHookDirectWrite != nil {
				testHookDirectWrite(c.off)
			}
			if err == nil {
				if err = pwriteAll(fd, aligned(*c.bp)[:c.m], c.off); err != nil {
					w.failed.Store(true)
				}
			}
			w.free <- c.bp
		}
		w.done <- err
	}()
	return w
}

// write queues the first m bytes of bp's aligned buffer for writing at
// off and returns a buffer to read the next chunk into (one written
// already, or a second one from the pool).
func (w *directWriter) write(bp *[]byte, m int, off int64) *[]byte {
	w.queue <- directChunk{bp, m, off}
	if w.spare > 0 {
		w.spare--
		return bufPool.Get().(*[]byte)
	}
	return <-w.free
}

// finish waits for the writes queued and returns the first one's error;
// the buffers they held go back to the pool.
func (w *directWriter) finish() error {
	close(w.queue)
	err := <-w.done
	for {
		select {
		case bp := <-w.free:
			bufPool.Put(bp)
		default:
			return err
		}
	}
}

// eofReader notes whether its reader ended with io.EOF.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// markFull wraps site.ErrFull around an error that says the filesystem
// has no space left.
func markFull(err error) error {
	if err != nil && !errors.Is(err, site.ErrFull) && (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) {
		return fmt.Errorf("%w: %w", site.ErrFull, err)
	}
	return err
}

// mkdirs creates dir and its missing parents below the top directories,
// flushing each parent whose entries changed. It never creates the root or
// a top directory: os.Mkdir fails when the parent is gone, so a directory
// removed meanwhile stays removed.
func (s *Site) mkdirs(dir string) error {
	if _, ok := s.known.Load(dir); ok || dir == s.root || filepath.Dir(dir) == s.root {
		return nil
	}
	rel, err := filepath.Rel(s.root, dir)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	if fi, err := lstatBeneath(s.root, rel); err == nil && fi.IsDir() {
		s.known.Store(dir, true)
		return nil
	} else if errors.Is(err, ErrSymlink) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	if err := mkdirBeneath(s.root, rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := s.syncDir(parent); err != nil {
		return err
	}
	s.known.Store(dir, true)
	return nil
}

// forget drops dir and the directories below it from the known set.
func (s *Site) forget(dir string) {
	s.known.Range(func(k, _ any) bool {
		if p := k.(string); p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			s.known.Delete(k)
		}
		return true
	})
}

// syncer group-commits fsyncs of one directory.
type syncer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64 // generation of the last fsync started
	done    uint64 // generation of the last fsync finished
	err     error  // result of the last finished fsync
}

// testHookFsync, if set (by tests), is called before each fsync of a
// directory that groupSync runs.
var testHookFsync func(dir string)

// syncDir makes the entries of dir durable, sharing an fsync with the
// other callers waiting on the same directory.
func (s *Site) syncDir(dir string) error {
	return s.groupSync(dir, func() error { return syncDirAt(dir) })
}

// groupSync waits until an fsync of dir that started after the call has
// finished, and returns its result. If none is running, this caller runs
// one, with fsync (its own descriptor of dir: any descriptor of a
// directory flushes the same entries); callers that arrive meanwhile wait
// for the next one, which then covers all of them.
func (s *Site) groupSync(dir string, fsync func() error) error {
	s.mu.Lock()
	sy := s.syncers[dir]
	if sy == nil {
		sy = &syncer{}
		sy.cond = sync.NewCond(&sy.mu)
		s.syncers[dir] = sy
	}
	s.mu.Unlock()

	sy.mu.Lock()
	defer sy.mu.Unlock()
	// We need an fsync that starts after our rename, i.e. after now.
	need := sy.started + 1
	for sy.done < need {
		if sy.running {
			sy.cond.Wait()
			continue
		}
		sy.running = true
		sy.started++
		gen := sy.started
		sy.mu.Unlock()
		if testHookFsync != nil {
			testHookFsync(dir)
		}
		err := fsync()
		sy.mu.Lock()
		sy.running = false
		sy.done, sy.err = gen, err
		sy.cond.Broadcast()
	}
	return sy.err
}

// Get implements site.Site.
func (s *Site) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	err := s.checkName(name)
	if errors.Is(err, errOutside) {
		return nil, fmt.Errorf("dir site: get %s: %w", name, site.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("dir site: get %s: negative offset %d", name, off)
	}
	dfd, err := s.openRoot(name)
	if err != nil {
		return nil, err
	}
	direct := length >= directMin && site.ColdRead(ctx)
	b, direct, err := openBlob(dfd, s.root, name, direct)
	unix.Close(dfd)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if rerr := s.ready(name); rerr != nil {
				return nil, rerr
			}
			return nil, fmt.Errorf("dir site: get %s: %w", name, site.ErrNotFound)
		}
		return nil, fmt.Errorf("dir site: get %s: %w", name, err)
	}
	if length < 0 {
		b.off = off
		return b, nil
	}
	if direct {
		return &directReader{b: b, name: name, off: off, end: off + length}, nil
	}
	if length >= dropBehindMin {
		return &dropReader{SectionReader: io.NewSectionReader(b, off, length), b: b, start: off, dropped: off}, nil
	}
	return &sectionCloser{SectionReader: io.NewSectionReader(b, off, length), b: b}, nil
}

const (
	// dropBehindMin: buffered Gets of at least this many bytes drop from
	// the page cache what they have read (dropReader).
	dropBehindMin = 1 << 20
	// dropStep: a dropReader drops once its reads are this far past its
	// last drop.
	dropStep = 4 << 20
	// dropAlign: what it drops ends on this boundary, so that no large
	// folio of the page cache (2 MiB at most on x86-64) is cut: the kernel
	// drops only folios wholly inside the range advised.
	dropAlign = 2 << 20
)

// dropReader reads a large range through the page cache, as a
// sectionCloser does, and drops what it has read as it goes
// (POSIX_FADV_DONTNEED every dropStep, and the rest at Close). A large
// range is read once, start to end (a GET streaming an object, a scrub),
// and what it leaves in the page cache is seldom read again before it is
// evicted. Handing the pages back at once makes the next reads, this
// reader's and the next GET's, reuse pages just freed. On a virtual machine
// whose guest returns free memory to its host (free page reporting, as on
// the development VM) that is most of a large GET's CPU: a page the guest
// has not touched for a few seconds must be supplied again by the host at
// its first touch, in the kernel's copy to the reader, which cost 0.25–2.15
// CPU-seconds per GB of a 64 MiB GET against 0.07 for pages just freed
// (docs/design.md, "Large GETs: CPU per GB between runs (issue 15,
// fourteenth pass)"). The price is that a second read of the same large
// range comes from the disk. The advice changes no byte read: it only
// drops clean pages, and any that a concurrent reader still needs are read
// again.
type dropReader struct {
	*io.SectionReader
	b       *blob
	start   int64 // the range's first byte in the file
	pos     int64 // bytes read so far
	dropped int64 // the file's bytes before this are dropped (from start)
}

func (r *dropReader) Read(p []byte) (int, error) {
	n, err := r.SectionReader.Read(p)
	r.pos += int64(n)
	if end := (r.start + r.pos) &^ (dropAlign - 1); end-r.dropped >= dropStep {
		r.drop(end)
	}
	return n, err
}

// drop advises the kernel to drop [r.dropped, end) of the file.
func (r *dropReader) drop(end int64) {
	r.b.fadvise(r.dropped, end-r.dropped, unix.FADV_DONTNEED)
	r.dropped = end
}

func (r *dropReader) Close() error {
	if r.pos > 0 {
		// Up to the next boundary: the folio that holds the last byte read.
		r.drop((r.start + r.pos + dropAlign - 1) &^ (dropAlign - 1))
	}
	return r.b.Close()
}

// directPread is preadFull; tests replace it to make a filesystem refuse
// O_DIRECT reads.
var directPread = preadFull

// directReader reads a range of a blob opened with O_DIRECT (a Get with
// site.WithColdRead's hint): aligned chunks of 1 MiB into a pooled buffer,
// each straight from the disk into it, copied out to the caller. A read
// through the page cache of data it does not hold cost, on the development
// VM, five to eight times the CPU of these reads per byte, all of it in the
// kernel's copy out of the pages just filled (docs/design.md, "What bounds
// repair on cold reads"). The fourteenth pass found why: those pages come
// from free memory the VM's host had taken back, which the host must supply
// again at their first touch ("Large GETs: CPU per GB between runs"); the
// pooled buffer here stays in use, so its pages stay the guest's. Where the
// filesystem takes the flag but refuses the reads (EINVAL), it goes on
// through the page cache.
type directReader struct {
	b        *blob
	name     string
	off, end int64   // the next byte to return; the range's end
	bp       *[]byte // the pooled buffer (nil until the first read)
	chunk    []byte  // what is left of the last chunk read
	buffered bool    // O_DIRECT refused: plain reads from off
	eof      bool    // the blob ended before end
}

func (r *directReader) Read(p []byte) (int, error) {
	if r.off >= r.end || r.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.buffered {
		n, err := r.b.ReadAt(p[:min(int64(len(p)), r.end-r.off)], r.off)
		r.off += int64(n)
		if err == io.EOF {
			r.eof = true
			if n > 0 {
				err = nil
			}
		}
		return n, err
	}
	if len(r.chunk) == 0 {
		if r.bp == nil {
			r.bp = bufPool.Get().(*[]byte)
		}
		buf := aligned(*r.bp)
		start := r.off &^ (directAlign - 1)
		n, err := directPread(r.b, buf, start)
		if errors.Is(err, unix.EINVAL) {
			// The filesystem took O_DIRECT but refuses its reads.
			if err := r.b.setFlags(0); err != nil {
				return 0, fmt.Errorf("dir site: get %s: %w", r.name, err)
			}
			r.buffered = true
			return r.Read(p)
		}
		if err != nil {
			return 0, fmt.Errorf("dir site: get %s: %w", r.name, err)
		}
		skip := int(r.off - start)
		if n <= skip {
			r.eof = true
			return 0, io.EOF
		}
		r.chunk = buf[skip:min(n, skip+int(min(r.end-r.off, int64(len(buf)))))]
	}
	n := copy(p, r.chunk)
	r.chunk = r.chunk[n:]
	r.off += int64(n)
	return n, nil
}

// preadFull reads into buf from off (aligned) until buf is full or the
// file ends, retrying on EINTR. A short read other than at the end is
// followed by one from where it stopped, aligned down, so every read
// stays aligned as O_DIRECT needs.
func preadFull(b *blob, buf []byte, off int64) (int, error) {
	if !b.acquire() {
		return 0, b.errClosed()
	}
	defer b.release()
	fd := b.fd
	got := 0
	for got < len(buf) {
		at := got &^ (directAlign - 1)
		n, err := preadOnce(fd, buf[at:], off+int64(at))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if at+n <= got {
			return got, nil // the end of the file
		}
		got = at + n
	}
	return got, nil
}

func (r *directReader) Close() error {
	if r.bp != nil {
		bufPool.Put(r.bp)
		r.bp = nil
	}
	return r.b.Close()
}

type sectionCloser struct {
	*io.SectionReader
	b *blob
}

func (s *sectionCloser) Close() error { return s.b.Close() }

// Stat implements site.Site.
func (s *Site) Stat(ctx context.Context, name string) (site.Info, error) {
	err := s.checkName(name)
	if errors.Is(err, errOutside) {
		return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, site.ErrNotFound)
	}
	if err != nil {
		return site.Info{}, err
	}
	dfd, err := s.openRoot(name)
	if err != nil {
		return site.Info{}, err
	}
	fi, err := lstatAt(dfd, s.root, name)
	unix.Close(dfd)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if rerr := s.ready(name); rerr != nil {
				return site.Info{}, rerr
			}
			return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, site.ErrNotFound)
		}
		return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, err)
	}
	if fi.IsDir() {
		return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, site.ErrNotFound)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO, a socket or a device: not a blob (see ErrNotRegular).
		// The check costs nothing: lstatAt took the file's mode.
		var mode uint32
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			mode = st.Mode
		}
		return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, notRegular("stat", filepath.Join(s.root, name), mode))
	}
	return site.Info{Name: name, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Delete implements site.Site.
func (s *Site) Delete(ctx context.Context, name string) error {
	err := s.checkName(name)
	if errors.Is(err, errOutside) {
		return nil
	}
	if err != nil {
		return err
	}
	dfd, err := s.openRoot(name)
	if err != nil {
		return err
	}
	err = removeAt(dfd, s.root, name)
	unix.Close(dfd)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dir site: delete %s: %w", name, err)
		}
		return s.ready(name)
	}
	// The removal is durable before it is reported, as a put's rename
	// is: without the directory's fsync a power loss can bring the blob
	// back. Concurrent deletes in one directory share an fsync.
	if err := s.syncDir(filepath.Dir(filepath.Join(s.root, filepath.FromSlash(name)))); err != nil {
		return fmt.Errorf("dir site: delete %s: sync directory: %w", name, err)
	}
	return nil
}

// listBatch is how many entries of a directory List reads at a time.
// It never reads a whole directory: a site's manifest directories hold a
// 256th of its versions each (3,906 at a million), and reading one whole
// (as filepath.WalkDir does, to sort it) held all its entries, about 120
// bytes each, on every site listed at once (docs/design.md, "The live
// heap's growth with the index (issue 15, twelfth pass)"). Blobs come in
// the directory's order: site.Site promises none.
const listBatch = 256

// listDir calls fn for the blobs under the directory dir (rel, relative
// to the root, "." for the root) whose names start with prefix, reading
// listBatch entries at a time and descending into subdirectories that
// can hold such names. A directory that vanished meanwhile holds none.
func (s *Site) listDir(ctx context.Context, dir, rel, prefix string, fn func(site.Info) error) error {
	// As filepath.WalkDir did: a symlink is not descended into, nor is a
	// blob where the prefix names a directory.
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(listBatch)
		for _, d := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := d.Name()
			if rel != "." {
				name = rel + "/" + name
			}
			if d.IsDir() {
				if name == tmpDir || !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
					continue
				}
				if err := s.listDir(ctx, filepath.Join(dir, d.Name()), name, prefix, fn); err != nil {
					return err
				}
				continue
			}
			if !strings.HasPrefix(name, prefix) || d.Type()&fs.ModeSymlink != 0 {
				continue // a symlink is not the node's: never a blob (see ErrSymlink)
			}
			if !d.Type().IsRegular() {
				// A FIFO, a socket or a device is not a blob either (see
				// ErrNotRegular): listed, it passed for a blob of size 0.
				// A read or Stat of its name still names it.
				continue
			}
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			if err := fn(site.Info{Name: name, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
				return err
			}
		}
		if err == io.EOF || len(ents) == 0 && err == nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
	}
}

// List implements site.Site.
func (s *Site) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	if err := s.ready(prefix); err != nil {
		return err
	}
	if _, ok := s.top(prefix); !ok {
		return nil // no blob can have such a name
	}
	// Walk only the deepest directory the prefix names.
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		d, err := s.path(prefix[:i])
		if err != nil {
			return err
		}
		start = d
	}
	rel, _ := filepath.Rel(s.root, start)
	err := s.listDir(ctx, start, filepath.ToSlash(rel), prefix, fn)
	if err != nil {
		return fmt.Errorf("dir site: list %q: %w", prefix, err)
	}
	// A listing that raced with the removal of the site must not pass for
	// an empty one.
	return s.ready(prefix)
}
