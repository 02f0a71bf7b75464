// Package dir is the site driver for a local directory.
//
// Every blob is a file under the site's root, at the blob's name. Put writes
// a temporary file under .tmp, flushes it with fdatasync, renames it into
// place and then flushes the directory, so a crash leaves either the old
// blob or the whole new one. Directory flushes are group-committed: when
// many puts finish together, one fsync of a directory covers all of them.
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
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/site"
)

const tmpDir = ".tmp"

// Site is a directory site.
type Site struct {
	root  string
	check bool // opened, not created: every operation checks the directory is there

	mu      sync.Mutex
	syncers map[string]*syncer
	known   sync.Map // directories known to exist durably
}

// New opens (creating if needed) a directory site rooted at root and
// removes temporary files left by a crash.
func New(root string) (*Site, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	// Leftovers are from puts that never completed: they were never
	// visible and nobody waits on them.
	ents, err := os.ReadDir(filepath.Join(abs, tmpDir))
	if err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	for _, e := range ents {
		os.Remove(filepath.Join(abs, tmpDir, e.Name()))
	}
	return &Site{root: abs, syncers: map[string]*syncer{}}, nil
}

// Open opens an existing directory site without creating anything. If the
// directory is missing (an unmounted volume, a destroyed disk), every
// operation fails with site.ErrUnavailable until it is back: a vanished
// site must never look like an empty one, nor receive writes on whatever
// filesystem lies beneath it.
func Open(root string) (*Site, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir site %s: %w", root, err)
	}
	s := &Site{root: abs, check: true, syncers: map[string]*syncer{}}
	if s.ready() == nil {
		ents, _ := os.ReadDir(filepath.Join(abs, tmpDir))
		for _, e := range ents {
			os.Remove(filepath.Join(abs, tmpDir, e.Name()))
		}
	}
	return s, nil
}

func (s *Site) ready() error {
	if !s.check {
		return nil
	}
	if fi, err := os.Stat(filepath.Join(s.root, tmpDir)); err == nil && fi.IsDir() {
		return nil
	}
	return fmt.Errorf("dir site %s: %s: %w", s.root, whyNotSite(s.root), site.ErrUnavailable)
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

// Root returns the directory holding the site's blobs.
func (s *Site) Root() string { return s.root }

func (s *Site) path(name string) (string, error) {
	if err := site.CheckName(name); err != nil {
		return "", err
	}
	if err := s.ready(); err != nil {
		return "", err
	}
	if name == tmpDir || strings.HasPrefix(name, tmpDir+"/") {
		return "", fmt.Errorf("site: invalid blob name %q: reserved", name)
	}
	return filepath.Join(s.root, filepath.FromSlash(name)), nil
}

// Buffers are 1 MiB plus room to align them for O_DIRECT.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20+directAlign); return &b }}

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
// EDQUOT for a quota) fails with an error wrapping site.ErrFull.
func (s *Site) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	defer func() { err = markFull(err) }()
	dst, err := s.path(name)
	if err != nil {
		return err
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(s.root, tmpDir, hex.EncodeToString(rnd[:]))
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	direct := size < 0 || size >= directMin
	if direct {
		// Large blobs bypass the page cache: the data goes to the disk
		// once, without a kernel copy or writeback, and does not evict
		// what readers need. Filesystems without O_DIRECT fall back.
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(tmp, flags, 0o600)
	if err != nil && direct {
		direct = false
		f, err = os.OpenFile(tmp, flags&^unix.O_DIRECT, 0o600)
	}
	if err != nil {
		return fmt.Errorf("dir site: put %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := aligned(*bp)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := io.ReadFull(r, buf)
		if m > 0 {
			if direct && m%directAlign != 0 {
				// The unaligned tail is written through the page cache.
				if err := setDirect(f, false); err != nil {
					return fmt.Errorf("dir site: put %s: %w", name, err)
				}
				direct = false
			}
			if _, werr := f.Write(buf[:m]); werr != nil {
				return fmt.Errorf("dir site: put %s: %w", name, werr)
			}
			n += int64(m)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if size >= 0 && n != size {
		return fmt.Errorf("dir site: put %s: reader yielded %d bytes, expected %d", name, n, size)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("dir site: put %s: fdatasync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dir site: put %s: %w", name, err)
	}
	parent := filepath.Dir(dst)
	if err := s.mkdirs(parent); err != nil {
		return fmt.Errorf("dir site: put %s: %w", name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("dir site: put %s: %w", name, err)
	}
	if err := s.syncDir(parent); err != nil {
		return fmt.Errorf("dir site: put %s: sync directory: %w", name, err)
	}
	return nil
}

// markFull wraps site.ErrFull around an error that says the filesystem
// has no space left.
func markFull(err error) error {
	if err != nil && !errors.Is(err, site.ErrFull) && (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) {
		return fmt.Errorf("%w: %w", site.ErrFull, err)
	}
	return err
}

// mkdirs creates dir and its missing parents below the root, flushing each
// parent whose entries changed.
func (s *Site) mkdirs(dir string) error {
	if _, ok := s.known.Load(dir); ok || dir == s.root {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		s.known.Store(dir, true)
		return nil
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := s.syncDir(parent); err != nil {
		return err
	}
	s.known.Store(dir, true)
	return nil
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

func (s *Site) syncDir(dir string) error {
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
		err := fsyncDir(dir)
		sy.mu.Lock()
		sy.running = false
		sy.done, sy.err = gen, err
		sy.cond.Broadcast()
	}
	return sy.err
}

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get implements site.Site.
func (s *Site) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("dir site: get %s: negative offset %d", name, off)
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("dir site: get %s: %w", name, site.ErrNotFound)
		}
		return nil, fmt.Errorf("dir site: get %s: %w", name, err)
	}
	if length < 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("dir site: get %s: %w", name, err)
		}
		return f, nil
	}
	return &sectionCloser{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionCloser) Close() error { return s.f.Close() }

// Stat implements site.Site.
func (s *Site) Stat(ctx context.Context, name string) (site.Info, error) {
	p, err := s.path(name)
	if err != nil {
		return site.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, site.ErrNotFound)
		}
		return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, err)
	}
	if fi.IsDir() {
		return site.Info{}, fmt.Errorf("dir site: stat %s: %w", name, site.ErrNotFound)
	}
	return site.Info{Name: name, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Delete implements site.Site.
func (s *Site) Delete(ctx context.Context, name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dir site: delete %s: %w", name, err)
	}
	return nil
}

// List implements site.Site.
func (s *Site) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	if err := s.ready(); err != nil {
		return err
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
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == tmpDir {
				return filepath.SkipDir
			}
			if rel != "." && !strings.HasPrefix(rel+"/", prefix) && !strings.HasPrefix(prefix, rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(site.Info{Name: rel, Size: fi.Size(), Modified: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("dir site: list %q: %w", prefix, err)
	}
	return nil
}
