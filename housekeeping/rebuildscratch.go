package housekeeping

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/embassy-dev/embassy/manifest"
)

// rebuildScratch is an index rebuild's per-version state, on disk: for
// every version id found on the sites (or named by the audit log), the
// sites holding a copy of its manifest, the newest revision the audit log
// records, and whether the rebuild indexed it. Its heap does not depend
// on how many versions there are (TestRebuildScratchHeapFlat).
//
// It is an external sort. Ids are added in any order (site listings come
// in no particular order) into a buffer of sortRecords records; a full
// buffer is sorted, records of one id merged, and written as a run. When
// every id is in, the runs are merged (mergeFanIn at a time, in passes
// until one is left) into one file of fixed-size records in id order. The
// rebuild then reads that file a batch at a time, writing the "indexed"
// flag back in place, and looks ids up in it (a binary search, its first
// steps in a fixed table of sampled ids).
//
// Its files are made in dir and unlinked at once, so they go when closed
// or when the process ends; one left by a crash between the two (named
// scratchPrefix…scratchSuffix) is removed by the next rebuild with dir.
type rebuildScratch struct {
	dir   string
	words int // bitset words per record
	rec   int // bytes per record

	buf  []byte // unsorted records being added
	perm []int32

	runs    *os.File
	runEnds []int64 // where each run ends in runs
	runsEnd int64

	final   *os.File
	count   int64 // records in final
	found   int64 // of which found on some site
	samples []manifest.ID
	step    int64 // samples[i] is record i*step
	look    []byte
	written int64 // bytes written, for scratchFailAfter
	err     error // first error adding
}

const (
	scratchPrefix = "scratch-"
	scratchSuffix = ".tmp"
	// mergeFanIn runs are merged at a time, each through a buffer of
	// mergeBuf bytes.
	mergeFanIn = 64
	mergeBuf   = 32 << 10
	// lookRange records are read at once to end a lookup.
	lookRange = 256
)

// Variables for tests, which make them small.
var (
	// sortRecords records are sorted in memory at a time: 2.1 MiB of
	// 33-byte records on a node of up to 63 sites.
	sortRecords = 1 << 16
	// maxSamples bounds the table of sampled ids (16 bytes each).
	maxSamples = 8192
)

// scratchFailAfter, when positive, makes writes to scratch files fail
// with ENOSPC once that many bytes were written (tests: a full disk).
var scratchFailAfter int64

// RebuildTempDir is where a node's index rebuild keeps its scratch files.
func RebuildTempDir(nodeDir string) string { return filepath.Join(nodeDir, "rebuild") }

// newRebuildScratch makes the scratch state for a node of sites sites in
// dir, removing what a crashed rebuild left there.
func newRebuildScratch(dir string, sites int) (*rebuildScratch, error) {
	words := max(1, (sites+63)/64)
	s := &rebuildScratch{dir: dir, words: words, rec: 16 + 8*words + 8 + 1}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("rebuild: scratch space in %s: %w", dir, err)
	}
	if err := removeScratchLeftovers(dir); err != nil {
		return nil, err
	}
	var err error
	if s.runs, err = s.create(); err != nil {
		return nil, err
	}
	return s, nil
}

// removeScratchLeftovers removes scratch files a crashed rebuild left in
// dir (made and not yet unlinked). Nothing else is touched.
func removeScratchLeftovers(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("rebuild: scratch space in %s: %w", dir, err)
	}
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, scratchPrefix) && strings.HasSuffix(n, scratchSuffix) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rebuild: remove a crashed rebuild's scratch file: %w", err)
			}
		}
	}
	return nil
}

// create makes a scratch file in s.dir, already unlinked.
func (s *rebuildScratch) create() (*os.File, error) {
	f, err := os.CreateTemp(s.dir, scratchPrefix+"*"+scratchSuffix)
	if err != nil {
		return nil, fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, err)
	}
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Close()
		return nil, fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, err)
	}
	return f, nil
}

func (s *rebuildScratch) close() {
	if s.runs != nil {
		s.runs.Close()
	}
	if s.final != nil {
		s.final.Close()
	}
}

// scratchWriter writes to a scratch file from off, counting bytes for
// scratchFailAfter.
type scratchWriter struct {
	s   *rebuildScratch
	f   *os.File
	off int64
}

func (w *scratchWriter) Write(p []byte) (int, error) {
	if err := w.s.charge(w.f, len(p)); err != nil {
		return 0, err
	}
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	if err != nil {
		err = fmt.Errorf("rebuild: scratch space in %s: %w", w.s.dir, err)
	}
	return n, err
}

func (s *rebuildScratch) charge(f *os.File, n int) error {
	s.written += int64(n)
	if scratchFailAfter > 0 && s.written > scratchFailAfter {
		return fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC})
	}
	return nil
}

// Record layout: id, the sites' bitset (words little-endian uint64s), the
// audit log's revision (uint64), flags.
const recIndexed = 1

func (s *rebuildScratch) siteBits(r []byte) []byte { return r[16 : 16+8*s.words] }
func (s *rebuildScratch) revOff() int              { return 16 + 8*s.words }

// add records that site i holds a copy of id's manifest.
func (s *rebuildScratch) add(id manifest.ID, i int) {
	r := s.next(id)
	if r == nil {
		return
	}
	w := 16 + 8*(i/64)
	binary.LittleEndian.PutUint64(r[w:], 1<<(i%64))
}

// addRevision records that the audit log records revision rev of id.
func (s *rebuildScratch) addRevision(id manifest.ID, rev int) {
	r := s.next(id)
	if r == nil {
		return
	}
	binary.LittleEndian.PutUint64(r[s.revOff():], uint64(rev))
}

// next appends a zero record for id to the buffer.
func (s *rebuildScratch) next(id manifest.ID) []byte {
	if s.err != nil {
		return nil
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, sortRecords*s.rec)
	}
	if len(s.buf) == cap(s.buf) {
		if s.err = s.flushRun(); s.err != nil {
			return nil
		}
	}
	n := len(s.buf)
	s.buf = s.buf[:n+s.rec]
	r := s.buf[n:]
	clear(r)
	copy(r, id[:])
	return r
}

// merge folds record b into a (same id): sites ORed, the higher revision.
func (s *rebuildScratch) merge(a, b []byte) {
	for w := range s.words {
		o := 16 + 8*w
		binary.LittleEndian.PutUint64(a[o:], binary.LittleEndian.Uint64(a[o:])|binary.LittleEndian.Uint64(b[o:]))
	}
	ro := s.revOff()
	binary.LittleEndian.PutUint64(a[ro:], max(binary.LittleEndian.Uint64(a[ro:]), binary.LittleEndian.Uint64(b[ro:])))
	a[s.rec-1] |= b[s.rec-1]
}

// flushRun sorts the buffer and writes it as a run.
func (s *rebuildScratch) flushRun() error {
	n := len(s.buf) / s.rec
	if n == 0 {
		return nil
	}
	if s.perm == nil {
		s.perm = make([]int32, 0, sortRecords)
	}
	s.perm = s.perm[:0]
	for i := range n {
		s.perm = append(s.perm, int32(i))
	}
	rec := s.rec
	slices.SortFunc(s.perm, func(a, b int32) int {
		return bytes.Compare(s.buf[int(a)*rec:int(a)*rec+16], s.buf[int(b)*rec:int(b)*rec+16])
	})
	sw := &scratchWriter{s: s, f: s.runs, off: s.runsEnd}
	w := bufio.NewWriterSize(sw, 64<<10)
	var cur []byte
	out := make([]byte, rec)
	for _, p := range s.perm {
		r := s.buf[int(p)*rec : int(p)*rec+rec]
		if cur != nil && bytes.Equal(cur[:16], r[:16]) {
			s.merge(out, r)
			continue
		}
		if cur != nil {
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		cur = r
		copy(out, r)
	}
	if _, err := w.Write(out); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	s.runsEnd = sw.off
	s.runEnds = append(s.runEnds, s.runsEnd)
	s.buf = s.buf[:0]
	return nil
}

// finish sorts what was added into the final file. The runs are gone
// after it.
func (s *rebuildScratch) finish() error {
	if s.err != nil {
		return s.err
	}
	if err := s.flushRun(); err != nil {
		return err
	}
	s.buf, s.perm = nil, nil
	for len(s.runEnds) > mergeFanIn {
		f, err := s.create()
		if err != nil {
			return err
		}
		var ends []int64
		out := &scratchWriter{s: s, f: f}
		for g := 0; g < len(s.runEnds); g += mergeFanIn {
			e := min(g+mergeFanIn, len(s.runEnds))
			if err := s.mergeRuns(g, e, out, false); err != nil {
				f.Close()
				return err
			}
			ends = append(ends, out.off)
		}
		s.runs.Close()
		s.runs, s.runEnds = f, ends
	}
	f, err := s.create()
	if err != nil {
		return err
	}
	s.final = f
	if err := s.mergeRuns(0, len(s.runEnds), &scratchWriter{s: s, f: f}, true); err != nil {
		return err
	}
	s.runs.Close()
	s.runs, s.runEnds = nil, nil
	s.look = make([]byte, lookRange*s.rec)
	return nil
}

// mergeRun is one run being merged: its next record in cur.
type mergeRun struct {
	r   *bufio.Reader
	cur []byte
}

type runHeap []*mergeRun

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].cur[:16], h[j].cur[:16]) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*mergeRun)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns merges runs [a, b) of s.runs into out, one record per id.
// final: out is the final file (sample its ids, count them).
func (s *rebuildScratch) mergeRuns(a, b int, out *scratchWriter, final bool) error {
	h := make(runHeap, 0, b-a)
	for i := a; i < b; i++ {
		start := int64(0)
		if i > 0 {
			start = s.runEnds[i-1]
		}
		r := &mergeRun{r: bufio.NewReaderSize(io.NewSectionReader(s.runs, start, s.runEnds[i]-start), mergeBuf), cur: make([]byte, s.rec)}
		if _, err := io.ReadFull(r.r, r.cur); err != nil {
			if err == io.EOF {
				continue
			}
			return fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, err)
		}
		h = append(h, r)
	}
	heap.Init(&h)
	w := bufio.NewWriterSize(out, 64<<10)
	rec := make([]byte, s.rec)
	have := false
	emit := func() error {
		if final {
			if s.count%max(1, s.step) == 0 {
				if len(s.samples) == maxSamples {
					// Keep every other sample: twice the step.
					for i := range maxSamples / 2 {
						s.samples[i] = s.samples[2*i]
					}
					s.samples = s.samples[:maxSamples/2]
					s.step *= 2
				}
				if s.count%s.step == 0 {
					s.samples = append(s.samples, manifest.ID(rec[:16]))
				}
			}
			s.count++
			if !allZero(s.siteBits(rec)) {
				s.found++
			}
		}
		_, err := w.Write(rec)
		return err
	}
	if final {
		s.step = 1
		s.samples = make([]manifest.ID, 0, maxSamples)
	}
	for len(h) > 0 {
		r := h[0]
		if have && bytes.Equal(rec[:16], r.cur[:16]) {
			s.merge(rec, r.cur)
		} else {
			if have {
				if err := emit(); err != nil {
					return err
				}
			}
			copy(rec, r.cur)
			have = true
		}
		if _, err := io.ReadFull(r.r, r.cur); err != nil {
			if err != io.EOF {
				return fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, err)
			}
			heap.Pop(&h)
			continue
		}
		heap.Fix(&h, 0)
	}
	if have {
		if err := emit(); err != nil {
			return err
		}
	}
	return w.Flush()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// read reads records [from, from+n) of the final file into buf.
func (s *rebuildScratch) read(buf []byte, from int64, n int) ([]byte, error) {
	buf = buf[:n*s.rec]
	if _, err := s.final.ReadAt(buf, from*int64(s.rec)); err != nil {
		return nil, fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, err)
	}
	return buf, nil
}

// write writes records back at from (their flags changed: no new space).
func (s *rebuildScratch) write(buf []byte, from int64) error {
	if _, err := s.final.WriteAt(buf, from*int64(s.rec)); err != nil {
		return fmt.Errorf("rebuild: scratch space in %s: %w", s.dir, err)
	}
	return nil
}

// sitesOf returns the sites (of ids) whose bits r sets.
func (s *rebuildScratch) sitesOf(r []byte, ids []string) []string {
	var out []string
	bits := s.siteBits(r)
	for i, sid := range ids {
		if bits[8*(i/64)+(i%64)/8]&(1<<(i%8)) != 0 {
			out = append(out, sid)
		}
	}
	return out
}

func (s *rebuildScratch) revision(r []byte) int {
	return int(binary.LittleEndian.Uint64(r[s.revOff():]))
}

// lookup returns id's record (valid until the next lookup), or nil.
func (s *rebuildScratch) lookup(id manifest.ID) ([]byte, error) {
	if s.count == 0 {
		return nil, nil
	}
	// The last sample at or before id.
	i, ok := slices.BinarySearchFunc(s.samples, id, func(a, b manifest.ID) int { return bytes.Compare(a[:], b[:]) })
	if ok {
		return s.read(s.look, int64(i)*s.step, 1)
	}
	if i == 0 {
		return nil, nil
	}
	lo, hi := int64(i-1)*s.step, min(int64(i)*s.step, s.count)
	// records[lo] <= id < records[hi]
	for hi-lo > lookRange {
		mid := lo + (hi-lo)/2
		r, err := s.read(s.look, mid, 1)
		if err != nil {
			return nil, err
		}
		if bytes.Compare(r[:16], id[:]) <= 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	buf, err := s.read(s.look, lo, int(hi-lo))
	if err != nil {
		return nil, err
	}
	k, found := searchRecords(buf, s.rec, int(hi-lo), id)
	if !found {
		return nil, nil
	}
	return buf[k*s.rec : (k+1)*s.rec], nil
}

// searchRecords finds id among n sorted records in buf.
func searchRecords(buf []byte, rec, n int, id manifest.ID) (int, bool) {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(buf[m*rec:m*rec+16], id[:]) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && bytes.Equal(buf[lo*rec:lo*rec+16], id[:])
}
