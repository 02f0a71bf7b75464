package boltindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/internal/lockfile"
)

// Compaction. A bbolt file never shrinks: pages freed by deletes and
// rewrites are reused by later writes, never given back. Compact copies
// the index, entry by entry, into a new file beside it whose pages are
// full (bbolt's Compact, FillPercent 1), checks that the copy holds the
// same buckets, entries and sequences, and renames it over the index.
//
// Crashes: the copy is written to CompactTemp(path), synced, checked, and
// renamed over the index only then, and the directory synced; a crash
// leaves the index as it was or the copy, complete, in its place, and
// perhaps the temporary file (before the rename), which the next Compact
// removes. Other processes: Compact holds the index's lock (bbolt's flock
// on the file, which a node holds while it runs) from before it reads to
// after the rename, and the new file's from its creation, so a node is
// never given a file being swapped; Open checks that the file it locked is
// still the one at its path (a process that opened the old file while
// Compact held it, and got its lock once Compact let go, opens again).

// CompactTemp is the temporary file Compact writes the copy of the index
// at path to: ".BASE.compact" beside it.
func CompactTemp(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".compact")
}

// CompactStats reports a compaction.
type CompactStats struct {
	Before   int64 `json:"bytes_before"`     // the file's size before
	After    int64 `json:"bytes_after"`      // and after
	Entries  int64 `json:"entries"`          // entries and buckets copied
	Leftover bool  `json:"removed_leftover"` // a temporary file an earlier compaction left was removed
}

// The steps of Compact whose order decides what a crash leaves; tests
// replace them to stop it there.
var (
	compactStep = func(string) error { return nil }
	renameFile  = os.Rename
	statfs      = unix.Statfs
	// fileOpened is called with the path of each file openLocked has
	// opened, before it waits for its lock.
	fileOpened = func(string) {}
)

// Compact rewrites the index file at path into as few pages as hold it
// (see above). It fails, leaving the index as it was, if another process
// has the index open (a running node) or the copy cannot be written (a full
// disk: the error names the temporary file).
func Compact(path string) (st CompactStats, err error) {
	if of, ok := compactTempOf(path); ok {
		return st, fmt.Errorf("compact index %s: that is the name compaction gives its temporary copy of %s; name the index otherwise", path, of)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return st, fmt.Errorf("compact index: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return st, fmt.Errorf("compact index %s: not a regular file", path)
	}
	src, err := openLocked(path, mustExist)
	if err != nil {
		return st, fmt.Errorf("compact index %s: %w", path, err)
	}
	defer src.Close()
	if err := checkFormat(src); err != nil {
		return st, fmt.Errorf("compact index %s: %w", path, err)
	}
	if fi, err = os.Stat(path); err != nil {
		return st, fmt.Errorf("compact index %s: %w", path, err)
	}
	st.Before = fi.Size()
	tmp := CompactTemp(path)
	if st.Leftover, err = removeLeftover(tmp, fi); err != nil {
		return st, fmt.Errorf("compact index %s: %w", path, err)
	}
	if err := enoughSpace(src, tmp); err != nil {
		return st, fmt.Errorf("compact index %s: %w; the index is unchanged", path, err)
	}
	dst, err := openLocked(tmp, mustCreate)
	if err != nil {
		if !errors.Is(err, fs.ErrExist) {
			os.Remove(tmp) // made here, and not written to the end
		}
		return st, fmt.Errorf("compact index %s: create %s: %w; the index is unchanged", path, tmp, err)
	}
	if err := compactStep("created"); err != nil {
		return st, err
	}
	// The file grows as the copy is written: by 1 MiB past what it needs
	// once it is past 1 MiB (bbolt's default, 16 MiB, would leave the
	// compacted file up to 16 MiB longer than its pages).
	dst.AllocSize = 1 << 20
	renamed := false
	defer func() {
		if dst != nil {
			dst.Close()
		}
		if err != nil && !renamed {
			os.Remove(tmp)
		}
	}()
	// Commits of at most 4 MiB of entries bound what the copy holds in
	// memory (16 MiB peaked at 80 MiB of heap at 30,000 objects).
	if err := bolt.Compact(dst, src, 4<<20); err != nil {
		return st, fmt.Errorf("compact index %s: write %s: %w; the index is unchanged", path, tmp, err)
	}
	if err := compactStep("copied"); err != nil {
		return st, err
	}
	// Every commit synced what it wrote (bbolt); this syncs the file once
	// more, its size included.
	if err := dst.Sync(); err != nil {
		return st, fmt.Errorf("compact index %s: sync %s: %w; the index is unchanged", path, tmp, err)
	}
	n, same, err := sameContents(src, dst)
	if err != nil {
		return st, fmt.Errorf("compact index %s: check the copy %s: %w; the index is unchanged", path, tmp, err)
	}
	if !same {
		return st, fmt.Errorf("compact index %s: the copy %s does not hold what the index holds; the index is unchanged", path, tmp)
	}
	st.Entries = n
	if err := compactStep("checked"); err != nil {
		return st, err
	}
	if err := renameFile(tmp, path); err != nil {
		return st, fmt.Errorf("compact index %s: rename %s over it: %w; the index is unchanged", path, tmp, err)
	}
	renamed = true
	if err := compactStep("renamed"); err != nil {
		return st, err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return st, fmt.Errorf("compact index %s: the compacted index is in place, but its directory could not be synced (a crash now may bring back the old one, which is complete too): %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		st.After = fi.Size()
	}
	return st, nil
}

// How openLocked may find the file.
type openMode int

const (
	openOrCreate openMode = iota // create it if it is not there
	mustExist                    // never create it
	mustCreate                   // it must not exist yet
)

// openLocked opens the bbolt file at path, holding its lock, and checks
// that the file locked is the one at path (see above).
func openLocked(path string, mode openMode) (*bolt.DB, error) {
	for range 3 {
		var opened *os.File
		o := &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				switch mode {
				case mustExist:
					flag &^= os.O_CREATE
				case mustCreate:
					flag |= os.O_CREATE | os.O_EXCL
				}
				f, err := os.OpenFile(name, flag, perm)
				if err == nil {
					opened = f
					fileOpened(name)
				}
				return f, err
			}}
		db, err := bolt.Open(path, 0o600, o)
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("in use by %s, which has this node directory open (another embassy command, or 'embassy serve'): wait for it to finish, or stop it", lockfile.Holder(path))
		}
		if err != nil {
			return nil, err
		}
		if swapped(path, opened) {
			db.Close()
			continue
		}
		return db, nil
	}
	return nil, fmt.Errorf("the file was replaced three times while it was being opened")
}

// swapped reports whether f, an open file, is no longer the file at path.
func swapped(path string, f *os.File) bool {
	if f == nil {
		return false
	}
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && (err2 != nil || !os.SameFile(a, b))
}

func checkFormat(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return fmt.Errorf("%w: no meta bucket (not an embassy index)", ErrFormat)
		}
		if v := m.Get(keyFormat); len(v) != 1 || (v[0] != format && v[0] != formatFull) {
			return fmt.Errorf("%w: format %v, this build reads %d", ErrFormat, v, format)
		}
		return nil
	})
}

// removeLeftover removes tmp, the temporary file of an earlier compaction
// of index that did not finish, if it is there, and reports whether it
// did. The caller holds the index's lock, so no compaction is writing it
// (Compact takes that lock before it creates the file and keeps it until
// the file is renamed over the index), and the index is in place, so the
// file is never the only copy of it: a compaction's rename is a single
// atomic step, after which the name is gone. Only a file that can be
// nothing else is removed: a regular file with one link (not the index,
// not a link to it or to anything), that no process holds locked (a
// compaction's copy is a bbolt file, locked while open; an index some
// other node opened under this name would be too). Anything else there is
// an error naming it, and is left alone.
func removeLeftover(tmp string, index fs.FileInfo) (bool, error) {
	fi, err := os.Lstat(tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || os.SameFile(fi, index) || links(fi) != 1 {
		return false, fmt.Errorf("%s is in the way and is not a file an earlier compaction left (not a regular file of its own: a link, or the index itself): move it away", tmp)
	}
	f, err := os.OpenFile(tmp, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, fmt.Errorf("check %s, left by an earlier compaction: %w", tmp, err)
	}
	defer f.Close()
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) {
		return false, fmt.Errorf("%s was replaced while it was checked: move it away", tmp)
	}
	if err := lockfile.TryLock(f); errors.Is(err, lockfile.ErrHeld) {
		return false, fmt.Errorf("%s is in use by %s, so it is not a copy an earlier compaction left (an index opened under that name, by a node whose index path names it?): move it away", tmp, lockfile.HolderOfFile(f))
	} else if err != nil && !errors.Is(err, lockfile.ErrUnsupported) {
		return false, fmt.Errorf("check %s, left by an earlier compaction: %w", tmp, err)
	}
	if err := os.Remove(tmp); err != nil {
		return false, fmt.Errorf("remove %s, left by an earlier compaction: %w", tmp, err)
	}
	return true, nil
}

// links is the number of hard links to the file fi describes (1 if not
// known).
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// compactTempOf reports whether path is named as a compaction's temporary
// copy of an index (".BASE.compact"), and of which.
func compactTempOf(path string) (string, bool) {
	b := filepath.Base(path)
	if name, ok := strings.CutSuffix(strings.TrimPrefix(b, "."), ".compact"); ok && strings.HasPrefix(b, ".") && name != "" {
		return filepath.Join(filepath.Dir(path), name), true
	}
	return "", false
}

// enoughSpace fails if the filesystem of tmp has less room than the pages
// src uses (what the copy needs, about).
func enoughSpace(src *bolt.DB, tmp string) error {
	var need int64
	err := src.View(func(tx *bolt.Tx) error {
		s := src.Stats()
		need = tx.Size() - int64(s.FreePageN+s.PendingPageN)*int64(src.Info().PageSize)
		return nil
	})
	if err != nil {
		return err
	}
	var fs unix.Statfs_t
	if err := statfs(filepath.Dir(tmp), &fs); err != nil {
		return nil // not known: the writes will tell
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < need {
		return fmt.Errorf("not enough free space for the copy %s: %d bytes free in %s, and the copy needs about %d (the pages the index uses); free %d bytes there, or compact another time", tmp, free, filepath.Dir(tmp), need, need-free)
	}
	return nil
}

// sameContents reports whether a and b hold the same buckets, entries and
// sequences, in the same order, by comparing a digest of each; n counts
// the entries and buckets of a.
func sameContents(a, b *bolt.DB) (int64, bool, error) {
	da, n, err := digest(a)
	if err != nil {
		return 0, false, err
	}
	db, m, err := digest(b)
	if err != nil {
		return 0, false, err
	}
	return n, n == m && bytes.Equal(da, db), nil
}

// digest is a SHA-256 over every bucket (its depth, name and sequence) and
// entry (its key and value) of db, in order, with lengths, and their
// count.
func digest(db *bolt.DB) ([]byte, int64, error) {
	h := sha256.New()
	var n int64
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return digestBucket(h, &n, 0, name, b)
		})
	})
	return h.Sum(nil), n, err
}

func digestBucket(h hash.Hash, n *int64, depth int, name []byte, b *bolt.Bucket) error {
	*n++
	field(h, []byte{'B', byte(depth)})
	field(h, name)
	field(h, binary.BigEndian.AppendUint64(nil, b.Sequence()))
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				return digestBucket(h, n, depth+1, k, sub)
			}
		}
		*n++
		field(h, []byte{'E'})
		field(h, k)
		field(h, v)
		return nil
	})
}

func field(h hash.Hash, b []byte) {
	h.Write(binary.AppendUvarint(nil, uint64(len(b))))
	h.Write(b)
}
