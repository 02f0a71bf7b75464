package audit

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/embassy-dev/embassy/internal/atomicfile"
)

// The local journal makes appends durable before the tessera log has
// integrated them. It is a sequence of segment files in dir, each named by
// the sequence number (log index) of its first record:
//
//	record := length uint32 | crc32c(seq || entry) uint32 | seq uint64 | entry
//
// Appends are group-committed: concurrent callers share one write and one
// fdatasync. A torn record at the end of the last segment (a crash during
// a write) is cut off on opening; damage anywhere else is an error.

const (
	journalExt     = ".journal"
	recordHeader   = 16
	segmentMaxSize = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type journalRecord struct {
	seq   uint64
	entry []byte
}

type segment struct {
	first uint64
	path  string
}

// journal is the group-committed local journal.
type journal struct {
	dir string

	mu       sync.Mutex
	next     uint64 // seq of the next record
	f        *os.File
	size     int64
	segs     []segment // oldest first; the last is f
	pending  []*jbatch
	flushing bool
	err      error // once set, every append fails
	onWrite  func([]journalRecord)
	// pull returns entries committed elsewhere to be written ahead of the
	// next group, and a function told (under mu, after the write) the
	// seq of the first of them.
	pull func() ([][]byte, func(first uint64), error)
}

type jbatch struct {
	entries [][]byte
	first   uint64
	done    chan struct{}
	err     error
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, journalExt) }

// openJournal opens the journal in dir, reads every record at or after
// from, and positions appends after the last one (or at floor, if the
// journal ends before it). It returns the records read.
func openJournal(dir string, from, floor uint64) (*journal, []journalRecord, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	j := &journal{dir: dir, next: max(from, floor)}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), journalExt)
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("audit journal: unexpected file %s", e.Name())
		}
		j.segs = append(j.segs, segment{first: first, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(j.segs, func(a, b segment) int { return cmp.Compare(a.first, b.first) })
	var out []journalRecord
	expect := uint64(0)
	for i, s := range j.segs {
		if i > 0 && s.first != expect {
			return nil, nil, fmt.Errorf("audit journal: segment %s starts at %d, the one before ends at %d", filepath.Base(s.path), s.first, expect)
		}
		recs, good, err := readSegment(s, i == len(j.segs)-1)
		if err != nil {
			return nil, nil, err
		}
		expect = s.first + uint64(len(recs))
		for _, r := range recs {
			if r.seq >= from {
				out = append(out, r)
			}
		}
		if i == len(j.segs)-1 {
			if err := truncateTo(s.path, good); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(j.segs) > 0 && j.segs[0].first > from {
		return nil, nil, fmt.Errorf("audit journal: entries %d to %d are in neither the log nor the journal (journal segments removed by hand?)", from, j.segs[0].first-1)
	}
	if expect > j.next {
		j.next = expect
	}
	// Appends always go to a fresh segment: simpler than appending after a
	// cut tail, and the old ones go once the log holds them.
	if err := j.rotate(); err != nil {
		return nil, nil, err
	}
	return j, out, nil
}

func truncateTo(path string, n int64) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() == n {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(n); err != nil {
		return err
	}
	return f.Sync()
}

// readSegment reads a segment's records; in the last segment a torn or
// damaged tail is tolerated and its offset returned as good.
func readSegment(s segment, last bool) ([]journalRecord, int64, error) {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return nil, 0, err
	}
	var out []journalRecord
	off := int64(0)
	for int(off) < len(b) {
		r, n, err := decodeRecord(b[off:])
		if err == nil && r.seq != s.first+uint64(len(out)) {
			err = fmt.Errorf("record %d out of sequence (%d)", s.first+uint64(len(out)), r.seq)
		}
		if err != nil {
			if last && !hasRecordAfter(b[off:]) {
				break // a torn write at the end: never acknowledged
			}
			return nil, 0, fmt.Errorf("audit journal %s: at byte %d: %v", filepath.Base(s.path), off, err)
		}
		out = append(out, r)
		off += int64(n)
	}
	return out, off, nil
}

// hasRecordAfter reports whether a valid record follows a damaged one
// (damage in the middle, not a torn tail).
func hasRecordAfter(b []byte) bool {
	for i := 1; i+recordHeader <= len(b); i++ {
		if _, _, err := decodeRecord(b[i:]); err == nil {
			return true
		}
	}
	return false
}

func decodeRecord(b []byte) (journalRecord, int, error) {
	if len(b) < recordHeader {
		return journalRecord{}, 0, io.ErrUnexpectedEOF
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > MaxEntry || n < 1 {
		return journalRecord{}, 0, errors.New("bad record length")
	}
	if len(b) < recordHeader+n {
		return journalRecord{}, 0, io.ErrUnexpectedEOF
	}
	sum := binary.BigEndian.Uint32(b[4:])
	if crc32.Checksum(b[8:recordHeader+n], castagnoli) != sum {
		return journalRecord{}, 0, errors.New("checksum mismatch")
	}
	return journalRecord{seq: binary.BigEndian.Uint64(b[8:]), entry: bytes.Clone(b[recordHeader : recordHeader+n])}, recordHeader + n, nil
}

func appendRecord(out []byte, seq uint64, entry []byte) []byte {
	start := len(out)
	out = binary.BigEndian.AppendUint32(out, uint32(len(entry)))
	out = binary.BigEndian.AppendUint32(out, 0)
	out = binary.BigEndian.AppendUint64(out, seq)
	out = append(out, entry...)
	binary.BigEndian.PutUint32(out[start+4:], crc32.Checksum(out[start+8:], castagnoli))
	return out
}

// rotate starts a new segment at next. Called with mu held (or before
// the journal is shared).
func (j *journal) rotate() error {
	if j.f != nil {
		if err := j.f.Close(); err != nil {
			return err
		}
		j.f = nil
	}
	if n := len(j.segs); n > 0 && j.segs[n-1].first == j.next {
		// The last segment holds nothing yet: reuse it.
		f, err := os.OpenFile(j.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		j.f, j.size = f, 0
		return nil
	}
	p := filepath.Join(j.dir, segName(j.next))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := atomicfile.SyncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	j.f, j.size = f, 0
	j.segs = append(j.segs, segment{first: j.next, path: p})
	return nil
}

// append writes entries durably and returns the seq of the first. Calls
// are group-committed; onWrite sees each written group in seq order.
//
// Before each group is written, the entries pull returns (if set: entries
// committed elsewhere, the index's pending ones) are written ahead of it,
// in the same write: whatever was committed before a caller of the group
// called append precedes the caller's entries. A call with no entries
// writes only those (a drain).
func (j *journal) append(entries [][]byte) (uint64, error) {
	b := &jbatch{entries: entries, done: make(chan struct{})}
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return 0, err
	}
	j.pending = append(j.pending, b)
	if j.flushing {
		j.mu.Unlock()
		<-b.done
		return b.first, b.err
	}
	j.flushing = true
	for len(j.pending) > 0 && j.err == nil {
		group := j.pending
		j.pending = nil
		f, seq, pull := j.f, j.next, j.pull
		j.mu.Unlock()
		// Only this flusher changes next and f: they are read unlocked.
		var pulled [][]byte
		var done func(uint64)
		var err error
		pullFailed := false
		if pull != nil {
			pulled, done, err = pull()
			pullFailed = err != nil
		}
		var buf []byte
		var recs []journalRecord
		first := seq
		if err == nil {
			for _, e := range pulled {
				buf = appendRecord(buf, seq, e)
				recs = append(recs, journalRecord{seq: seq, entry: e})
				seq++
			}
			for _, g := range group {
				g.first = seq
				for _, e := range g.entries {
					buf = appendRecord(buf, seq, e)
					recs = append(recs, journalRecord{seq: seq, entry: e})
					seq++
				}
			}
			if len(buf) > 0 {
				if _, err = f.Write(buf); err == nil {
					err = f.Sync()
				}
				if err != nil {
					// A failed write or sync leaves the file in an unknown
					// state: nothing more is appended until the node
					// reopens the log.
					err = fmt.Errorf("audit journal: %w", err)
				}
			}
		} else {
			// The pending entries could not be read: nothing is written,
			// so that nothing is written ahead of them; the journal
			// itself is sound.
			err = fmt.Errorf("audit journal: entries committed with the index: %w", err)
		}
		j.mu.Lock()
		switch {
		case pullFailed:
			// This group fails; the next may succeed.
		case err != nil:
			j.err = err
		default:
			j.next = seq
			j.size += int64(len(buf))
			if len(recs) > 0 && j.onWrite != nil {
				j.onWrite(recs)
			}
			if done != nil && len(pulled) > 0 {
				done(first)
			}
			if j.size > segmentMaxSize {
				if rerr := j.rotate(); rerr != nil {
					j.err = fmt.Errorf("audit journal: new segment: %w", rerr)
				}
			}
		}
		for _, g := range group {
			g.err = err
			close(g.done)
		}
	}
	// A failure leaves later callers waiting: fail them too.
	for _, g := range j.pending {
		g.err = j.err
		close(g.done)
	}
	j.pending = nil
	j.flushing = false
	j.mu.Unlock()
	<-b.done
	return b.first, b.err
}

// release removes the segments wholly below size (the log holds them).
func (j *journal) release(size uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.segs) > 1 && j.segs[1].first <= size {
		os.Remove(j.segs[0].path)
		j.segs = j.segs[1:]
	}
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = errors.New("audit journal: closed")
	}
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
