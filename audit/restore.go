package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/site"
)

// A node directory that lost its log (`recover` on a fresh machine), or
// holds an older one (restored from a backup), takes up the longest copy
// on its sites that verifies: every entry is read and hashed, every tile
// compared, the root checked against the checkpoint signed by the node's
// key, and the local log must be a prefix of it. Only then are the missing
// entries added, at their own indexes.

// SiteCopy is one site's copy of the log, as found.
type SiteCopy struct {
	Site       string
	Checkpoint []byte
	Size       uint64
	// Err says why the copy is not usable (no checkpoint, or one that
	// does not verify).
	Err error
	cp  *log.Checkpoint
	s   site.Site
}

// SiteCopies reads and verifies the checkpoint of every site's copy,
// longest first (sites without a usable copy last).
func SiteCopies(ctx context.Context, sites map[string]site.Site, origin string, verifiers []note.Verifier) []SiteCopy {
	out := make([]SiteCopy, 0, len(sites))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range slices.Sorted(maps.Keys(sites)) {
		s := sites[id]
		wg.Go(func() {
			c := SiteCopy{Site: id, s: s}
			raw, err := SiteFetcher{s}.ReadCheckpoint(ctx)
			if err == nil {
				c.Checkpoint = raw
				c.cp, err = OpenCheckpoint(raw, origin, verifiers)
			}
			if err == nil {
				c.Size = c.cp.Size
			} else {
				c.Err = err
			}
			mu.Lock()
			out = append(out, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortStableFunc(out, func(a, b SiteCopy) int {
		switch {
		case (a.Err == nil) != (b.Err == nil):
			if a.Err == nil {
				return -1
			}
			return 1
		case a.Size != b.Size:
			if a.Size > b.Size {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

// localRoot is the root of the local tree's first size entries.
func (l *Log) localRoot(ctx context.Context, size uint64) ([]byte, error) {
	hashes, err := client.FetchRangeNodes(ctx, size, l.reader.ReadTile)
	if err != nil {
		return nil, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// catchUp brings a local log of size entries up to the longest copy on
// the sites that verifies and extends it, and returns the new size.
func (l *Log) catchUp(ctx context.Context, size uint64) (uint64, error) {
	if l.cfg.Sites == nil {
		return size, nil
	}
	removeScratch(l.cfg.Dir, l.log)
	var problems []string
	for _, c := range SiteCopies(ctx, l.cfg.Sites(), l.cfg.Origin, l.cfg.Verifiers) {
		if c.Err != nil || c.Size <= size {
			break
		}
		f := SiteFetcher{c.s}
		// The entries beyond the node's are kept as VerifyTree reads them,
		// on disk (memory stays bounded), and added only once the whole
		// copy verified: read again, a site could send others.
		sc, err := newEntryScratch(l.cfg.Dir)
		if err != nil {
			return size, fmt.Errorf("audit log: take up the entries on site %s: %w", c.Site, err)
		}
		var scratchErr error
		rootAt, err := VerifyTree(ctx, f, c.Size, c.cp.Hash, size, func(i uint64, e []byte) error {
			if i >= size {
				scratchErr = sc.add(e)
			}
			return scratchErr
		})
		if err == nil {
			scratchErr = sc.done()
		}
		if scratchErr != nil {
			// The node's disk, not the site.
			sc.close()
			return size, fmt.Errorf("audit log: take up the entries on site %s: %s: %w", c.Site, l.cfg.Dir, scratchErr)
		}
		if err == nil && size > 0 {
			var local []byte
			if local, err = l.localRoot(ctx, size); err == nil && !bytes.Equal(local, rootAt) {
				sc.close()
				return size, fmt.Errorf("audit log: the node's log (%d entries) is not a prefix of the log on site %s (%d entries): the node directory and the sites hold different histories; move %s aside to take the sites' log, after keeping it for investigation", size, c.Site, c.Size, l.cfg.Dir)
			}
		}
		if err != nil {
			sc.close()
			problems = append(problems, fmt.Sprintf("site %s: %v", c.Site, err))
			l.log.Warn("audit log copy on a site does not verify; trying another", "site", c.Site, "err", err)
			continue
		}
		l.log.Info("audit log: taking up the entries the sites hold beyond the node's", "site", c.Site, "from", size, "to", c.Size)
		var batch [][]byte
		next := size
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := l.addInOrder(ctx, next, batch); err != nil {
				return err
			}
			next += uint64(len(batch))
			batch = batch[:0]
			return nil
		}
		err = sc.each(func(e []byte) error {
			batch = append(batch, e)
			if len(batch) == 1024 {
				return flush()
			}
			return nil
		})
		sc.close()
		if err == nil && next != c.Size-uint64(len(batch)) {
			err = fmt.Errorf("%d entries verified, %d kept", c.Size-size, next-size+uint64(len(batch)))
		}
		if err == nil {
			err = flush()
		}
		if err != nil {
			return next, fmt.Errorf("audit log: take up the entries on site %s: %w", c.Site, err)
		}
		return next, nil
	}
	if len(problems) > 0 {
		l.log.Error("audit log: no longer copy on the sites verifies", "problems", problems)
	}
	return size, nil
}

// addInOrder adds entries at indexes first, first+1, ... to the tessera
// log and waits until they are integrated.
func (l *Log) addInOrder(ctx context.Context, first uint64, entries [][]byte) error {
	return l.seq.sequence(ctx, first, entries, nil)
}

// LastOnSites is the last event of a kind on the sites' log.
type LastOnSites struct {
	// Site holds the copy read (the longest that verifies); Size is its
	// checkpoint's size.
	Site string
	Size uint64
	// Found is false when no entry of the kind is on it; then Index and
	// Event are zero.
	Found bool
	Index uint64
	Event Event
}

// LastEventOnSites reads the longest copy of the log on sites that
// verifies (signed by one of verifiers, every entry and tile checked
// against the checkpoint) and returns its last event of kind, opened with
// keys. It is what a node recovering from its sites learns from the log
// before anything is written: the node descriptor generation last
// published, for one. ErrNoCopy when no site holds a copy that verifies.
func LastEventOnSites(ctx context.Context, sites map[string]site.Site, origin string, verifiers []note.Verifier, keys Keys, kind string) (LastOnSites, error) {
	var problems []string
	for _, c := range SiteCopies(ctx, sites, origin, verifiers) {
		if c.Err != nil {
			break
		}
		last := LastOnSites{Site: c.Site, Size: c.Size}
		_, err := VerifyTree(ctx, SiteFetcher{c.s}, c.Size, c.cp.Hash, 0, func(i uint64, entry []byte) error {
			e, _, err := OpenEntry(keys, entry)
			if err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			if e.Kind == kind {
				last.Found, last.Index, last.Event = true, i, e
			}
			return nil
		})
		if err == nil {
			return last, nil
		}
		if ctx.Err() != nil {
			return LastOnSites{}, ctx.Err()
		}
		problems = append(problems, fmt.Sprintf("site %s: %v", c.Site, err))
	}
	if len(problems) > 0 {
		return LastOnSites{}, fmt.Errorf("%w (%s)", ErrNoCopy, strings.Join(problems, "; "))
	}
	return LastOnSites{}, ErrNoCopy
}

// entryScratch keeps entries, in order, in a temporary file of the log's
// directory: those taken up from a site's copy while it is verified.
type entryScratch struct {
	f *os.File
	w *bufio.Writer
}

// scratchPattern names an entryScratch's file (os.CreateTemp puts decimal
// digits for the star).
const scratchPattern = ".takeup-*"

func newEntryScratch(dir string) (*entryScratch, error) {
	f, err := os.CreateTemp(dir, scratchPattern)
	if err != nil {
		return nil, err
	}
	return &entryScratch{f: f, w: bufio.NewWriter(f)}, nil
}

// isScratch reports whether a directory entry is a take-up's scratch
// file: a regular file (a symbolic link is not followed, and not one)
// named as newEntryScratch names them.
func isScratch(e fs.DirEntry) bool {
	digits, ok := strings.CutPrefix(e.Name(), strings.TrimSuffix(scratchPattern, "*"))
	return ok && e.Type().IsRegular() && digits != "" && len(digits) <= 20 && strings.Trim(digits, "0123456789") == ""
}

// removeScratch removes the scratch files a take-up a crash ended left in
// the log's directory dir (locked: no take-up is running), and nothing
// else: a symbolic link, a directory or a file of another name that an
// operator left there stays.
func removeScratch(dir string, lg *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !isScratch(e) {
			continue
		}
		// Remove unlinks the name itself: had the file been replaced by
		// a link since it was listed, the link goes, not its target.
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			lg.Info("audit log: removed the scratch file of a take-up a crash ended", "file", filepath.Join(dir, e.Name()))
		}
	}
}

// add appends an entry (at most MaxEntry bytes: a bundle's length prefix
// is two bytes).
func (s *entryScratch) add(e []byte) error {
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(e)))
	if _, err := s.w.Write(n[:]); err != nil {
		return err
	}
	_, err := s.w.Write(e)
	return err
}

// done ends the adding.
func (s *entryScratch) done() error { return s.w.Flush() }

// each calls fn with every entry added, in order, each in a buffer of its
// own.
func (s *entryScratch) each(fn func(e []byte) error) error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReader(s.f)
	var n [2]byte
	for {
		if _, err := io.ReadFull(r, n[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		e := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(r, e); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// close removes the file.
func (s *entryScratch) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}
