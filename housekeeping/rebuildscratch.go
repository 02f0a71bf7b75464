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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/embassy-dev/embassy/manifest"
)

// Scratch space on disk, for state that would otherwise grow in the heap
// with the number of versions or records: an index rebuild's per-version
// state (rebuildScratch), garbage collection's records and the manifests
// it finds unindexed (gcscratch.go). Two kinds of file:
//
//   - sortScratch, an external sort of fixed-size records. Records are
//     added in any order into a buffer of sortRecords records; a full
//     buffer is sorted by key, records of one key merged, and written as
//     a run. When every record is in, the runs are merged (mergeFanIn at a
//     time, in passes until one is left) into one file in key order, read
//     a batch at a time or looked up by key (a binary search, its first
//     steps in a fixed table of sampled keys).
//   - spool, entries of any length read back in the order written.
//
// Its heap does not depend on how many records there are
// (TestRebuildScratchHeapFlat, TestCollectScratchHeapFlat).
//
// Every file is made in the directory and unlinked at once, so it goes
// when closed or when the process ends; one left by a crash between the
// two (named scratchPrefix…scratchSuffix) is removed by the next rebuild
// or collection with that directory.

// scratchSpace is one operation's scratch directory.
type scratchSpace struct {
	what    string       // the operation, which starts its errors
	dir     string       // where its files are made
	written atomic.Int64 // bytes written, for scratchFailAfter
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
	// maxSamples bounds the table of sampled keys.
	maxSamples = 8192
)

// scratchFailAfter, when positive, makes writes to scratch files fail
// with ENOSPC once that many bytes were written (tests: a full disk).
var scratchFailAfter int64

// RebuildTempDir is where a node's index rebuilds and garbage collections
// keep their scratch files.
func RebuildTempDir(nodeDir string) string { return filepath.Join(nodeDir, "rebuild") }

// newScratchSpace makes dir if needed and removes what a crashed
// operation left there.
func newScratchSpace(what, dir string) (*scratchSpace, error) {
	sp := &scratchSpace{what: what, dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, sp.fail(err)
	}
	if err := removeScratchLeftovers(what, dir); err != nil {
		return nil, err
	}
	return sp, nil
}

// scratch returns the scratch space for an operation of k (what names
// it), and a function that removes it when it is a temporary directory.
func (k *Keeper) scratch(what string) (*scratchSpace, func(), error) {
	if k.rebuildDir != "" {
		sp, err := newScratchSpace(what, k.rebuildDir)
		return sp, func() {}, err
	}
	d, err := os.MkdirTemp("", "embassy-"+what+"-")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: scratch space: %w", what, err)
	}
	sp, err := newScratchSpace(what, d)
	if err != nil {
		os.RemoveAll(d)
		return nil, nil, err
	}
	return sp, func() { os.RemoveAll(d) }, nil
}

func (sp *scratchSpace) fail(err error) error {
	return fmt.Errorf("%s: scratch space in %s: %w", sp.what, sp.dir, err)
}

// removeScratchLeftovers removes scratch files a crashed operation left in
// dir (made and not yet unlinked). Nothing else is touched.
func removeScratchLeftovers(what, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s: scratch space in %s: %w", what, dir, err)
	}
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, scratchPrefix) && strings.HasSuffix(n, scratchSuffix) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: remove a scratch file left by a crash: %w", what, err)
			}
		}
	}
	return nil
}

// create makes a scratch file, already unlinked.
func (sp *scratchSpace) create() (*os.File, error) {
	f, err := os.CreateTemp(sp.dir, scratchPrefix+"*"+scratchSuffix)
	if err != nil {
		return nil, sp.fail(err)
	}
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Close()
		return nil, sp.fail(err)
	}
	return f, nil
}

func (sp *scratchSpace) charge(f *os.File, n int) error {
	if w := sp.written.Add(int64(n)); scratchFailAfter > 0 && w > scratchFailAfter {
		return sp.fail(&fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC})
	}
	return nil
}

// scratchWriter writes to a scratch file from off, counting bytes for
// scratchFailAfter.
type scratchWriter struct {
	sp  *scratchSpace
	f   *os.File
	off int64
}

func (w *scratchWriter) Write(p []byte) (int, error) {
	if err := w.sp.charge(w.f, len(p)); err != nil {
		return 0, err
	}
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	if err != nil {
		err = w.sp.fail(err)
	}
	return n, err
}

// sortScratch is an external sort of records of rec bytes, ordered by
// their first key bytes. It is not safe for concurrent adds; once
// finished, lookups may run concurrently.
type sortScratch struct {
	sp  *scratchSpace
	rec int // bytes per record
	key int // the first key bytes of a record order it
	// merge folds record b into a (the same key) and reports true, or
	// reports false to keep both.
	merge func(a, b []byte) bool
	// onFinal, if set, sees each record of the final file as it is
	// written.
	onFinal func(r []byte)
	// size records are sorted in memory at a time (0: sortRecords).
	size int

	buf  []byte // unsorted records being added
	perm []int32

	runs    *os.File
	runEnds []int64 // where each run ends in runs
	runsEnd int64

	final   *os.File
	count   int64  // records in final
	samples []byte // the keys of records 0, step, 2·step, …
	step    int64
	look    []byte // lookup's record
	bufs    sync.Pool
	err     error // first error adding
}

// newSortScratch makes an empty sort in sp.
func newSortScratch(sp *scratchSpace, rec, key int, merge func(a, b []byte) bool) (*sortScratch, error) {
	s := &sortScratch{sp: sp, rec: rec, key: key, merge: merge}
	var err error
	if s.runs, err = sp.create(); err != nil {
		return nil, err
	}
	s.bufs.New = func() any { b := make([]byte, lookRange*rec); return &b }
	return s, nil
}

func (s *sortScratch) close() {
	if s == nil {
		return
	}
	if s.runs != nil {
		s.runs.Close()
	}
	if s.final != nil {
		s.final.Close()
	}
}

func (s *sortScratch) bufRecords() int {
	if s.size > 0 {
		return min(s.size, sortRecords)
	}
	return sortRecords
}

// next appends a zero record with key to the buffer and returns it.
func (s *sortScratch) next(key []byte) []byte {
	if s.err != nil {
		return nil
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, s.bufRecords()*s.rec)
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
	copy(r, key[:s.key])
	return r
}

// flushRun sorts the buffer and writes it as a run.
func (s *sortScratch) flushRun() error {
	n := len(s.buf) / s.rec
	if n == 0 {
		return nil
	}
	if s.perm == nil {
		s.perm = make([]int32, 0, s.bufRecords())
	}
	s.perm = s.perm[:0]
	for i := range n {
		s.perm = append(s.perm, int32(i))
	}
	rec, key := s.rec, s.key
	slices.SortFunc(s.perm, func(a, b int32) int {
		return bytes.Compare(s.buf[int(a)*rec:int(a)*rec+key], s.buf[int(b)*rec:int(b)*rec+key])
	})
	sw := &scratchWriter{sp: s.sp, f: s.runs, off: s.runsEnd}
	w := bufio.NewWriterSize(sw, 64<<10)
	have := false
	out := make([]byte, rec)
	for _, p := range s.perm {
		r := s.buf[int(p)*rec : int(p)*rec+rec]
		if have && bytes.Equal(out[:key], r[:key]) && s.merge(out, r) {
			continue
		}
		if have {
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		copy(out, r)
		have = true
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
func (s *sortScratch) finish() error {
	if s.err != nil {
		return s.err
	}
	if err := s.flushRun(); err != nil {
		return err
	}
	s.buf, s.perm = nil, nil
	for len(s.runEnds) > mergeFanIn {
		f, err := s.sp.create()
		if err != nil {
			return err
		}
		var ends []int64
		out := &scratchWriter{sp: s.sp, f: f}
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
	f, err := s.sp.create()
	if err != nil {
		return err
	}
	s.final = f
	if err := s.mergeRuns(0, len(s.runEnds), &scratchWriter{sp: s.sp, f: f}, true); err != nil {
		return err
	}
	s.runs.Close()
	s.runs, s.runEnds = nil, nil
	s.look = make([]byte, s.rec)
	return nil
}

// mergeRun is one run being merged: its next record in cur.
type mergeRun struct {
	r   *bufio.Reader
	cur []byte
}

type runHeap struct {
	runs []*mergeRun
	key  int
}

func (h *runHeap) Len() int { return len(h.runs) }
func (h *runHeap) Less(i, j int) bool {
	return bytes.Compare(h.runs[i].cur[:h.key], h.runs[j].cur[:h.key]) < 0
}
func (h *runHeap) Swap(i, j int) { h.runs[i], h.runs[j] = h.runs[j], h.runs[i] }
func (h *runHeap) Push(x any)    { h.runs = append(h.runs, x.(*mergeRun)) }
func (h *runHeap) Pop() any {
	x := h.runs[len(h.runs)-1]
	h.runs = h.runs[:len(h.runs)-1]
	return x
}

// mergeRuns merges runs [a, b) of s.runs into out.
// final: out is the final file (sample its keys, count its records).
func (s *sortScratch) mergeRuns(a, b int, out *scratchWriter, final bool) error {
	h := &runHeap{runs: make([]*mergeRun, 0, b-a), key: s.key}
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
			return s.sp.fail(err)
		}
		h.runs = append(h.runs, r)
	}
	heap.Init(h)
	w := bufio.NewWriterSize(out, 64<<10)
	key := s.key
	rec := make([]byte, s.rec)
	have := false
	emit := func() error {
		if final {
			if s.count%s.step == 0 {
				if len(s.samples) == maxSamples*key {
					// Keep every other sample: twice the step.
					for i := range maxSamples / 2 {
						copy(s.samples[i*key:(i+1)*key], s.samples[2*i*key:(2*i+1)*key])
					}
					s.samples = s.samples[:maxSamples/2*key]
					s.step *= 2
				}
				if s.count%s.step == 0 {
					s.samples = append(s.samples, rec[:key]...)
				}
			}
			s.count++
			if s.onFinal != nil {
				s.onFinal(rec)
			}
		}
		_, err := w.Write(rec)
		return err
	}
	if final {
		s.step = 1
		s.samples = make([]byte, 0, maxSamples*key)
	}
	for h.Len() > 0 {
		r := h.runs[0]
		if !have || !bytes.Equal(rec[:key], r.cur[:key]) || !s.merge(rec, r.cur) {
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
				return s.sp.fail(err)
			}
			heap.Pop(h)
			continue
		}
		heap.Fix(h, 0)
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
func (s *sortScratch) read(buf []byte, from int64, n int) ([]byte, error) {
	buf = buf[:n*s.rec]
	if _, err := s.final.ReadAt(buf, from*int64(s.rec)); err != nil {
		return nil, s.sp.fail(err)
	}
	return buf, nil
}

// batches calls fn with the records of the final file in order, n at a
// time, and where they start (recs is valid only during the call).
func (s *sortScratch) batches(n int, fn func(recs []byte, from int64) error) error {
	buf := make([]byte, n*s.rec)
	for from := int64(0); from < s.count; from += int64(n) {
		recs, err := s.read(buf, from, int(min(int64(n), s.count-from)))
		if err != nil {
			return err
		}
		if err := fn(recs, from); err != nil {
			return err
		}
	}
	return nil
}

// write writes records back at from (their flags changed: no new space).
func (s *sortScratch) write(buf []byte, from int64) error {
	if _, err := s.final.WriteAt(buf, from*int64(s.rec)); err != nil {
		return s.sp.fail(err)
	}
	return nil
}

func (s *sortScratch) sample(i int) []byte { return s.samples[i*s.key : (i+1)*s.key] }

// errStop ends each early.
var errStop = errors.New("stop")

// each calls fn with every record whose key is key, in the final file's
// order (r is valid only during the call), until fn returns an error:
// errStop ends it without one. A key that is not there usually costs no
// read when the file holds up to maxSamples records, and one read of at
// most lookRange records otherwise.
func (s *sortScratch) each(key []byte, fn func(r []byte) error) error {
	if s.count == 0 {
		return nil
	}
	key = key[:s.key]
	n := len(s.samples) / s.key
	// The first sample at or after key.
	i := sort.Search(n, func(j int) bool { return bytes.Compare(s.sample(j), key) >= 0 })
	// The first record at or after key is in (lo, hi]: records[lo] <
	// key <= records[hi], with records[-1] and records[count] as
	// sentinels.
	lo, hi := int64(-1), s.count
	if i > 0 {
		lo = int64(i-1) * s.step
	}
	hiSample := i < n
	if hiSample {
		hi = int64(i) * s.step
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	for hi-lo > lookRange {
		mid := lo + (hi-lo)/2
		r, err := s.read(buf, mid, 1)
		if err != nil {
			return err
		}
		if bytes.Compare(r[:s.key], key) < 0 {
			lo = mid
		} else {
			hi, hiSample = mid, false
		}
	}
	from := hi
	if hi-lo > 1 {
		m := int(hi - lo - 1)
		recs, err := s.read(buf, lo+1, m)
		if err != nil {
			return err
		}
		j, _ := searchRecords(recs, s.rec, s.key, m, key)
		from = lo + 1 + int64(j)
	}
	if from == hi && hiSample && !bytes.Equal(s.sample(i), key) {
		return nil
	}
	// Usually one record or a few have the key.
	for chunk := int64(4); from < s.count; chunk = min(2*chunk, lookRange) {
		m := int(min(chunk, s.count-from))
		recs, err := s.read(buf, from, m)
		if err != nil {
			return err
		}
		for j := range m {
			r := recs[j*s.rec : (j+1)*s.rec]
			if !bytes.Equal(r[:s.key], key) {
				return nil
			}
			if err := fn(r); err != nil {
				if err == errStop {
					return nil
				}
				return err
			}
		}
		from += int64(m)
	}
	return nil
}

// lookup returns the first record whose key is key (valid until the next
// lookup; not for concurrent use), or nil.
func (s *sortScratch) lookup(key []byte) ([]byte, error) {
	var out []byte
	err := s.each(key, func(r []byte) error {
		out = append(s.look[:0], r...)
		return errStop
	})
	return out, err
}

// searchRecords finds the first of n sorted records in buf whose key is at
// least key, and whether its key is key.
func searchRecords(buf []byte, rec, keyLen, n int, key []byte) (int, bool) {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(buf[m*rec:m*rec+keyLen], key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && bytes.Equal(buf[lo*rec:lo*rec+keyLen], key)
}

// spool is a scratch file of entries of any length, read back in the
// order written. It is not safe for concurrent use.
type spool struct {
	sp  *scratchSpace
	f   *os.File
	w   *bufio.Writer
	sw  *scratchWriter
	n   int64 // entries
	err error // first error adding
}

func (sp *scratchSpace) newSpool() (*spool, error) {
	f, err := sp.create()
	if err != nil {
		return nil, err
	}
	sw := &scratchWriter{sp: sp, f: f}
	return &spool{sp: sp, f: f, sw: sw, w: bufio.NewWriterSize(sw, 64<<10)}, nil
}

// add appends an entry.
func (p *spool) add(b []byte) error {
	if p.err != nil {
		return p.err
	}
	var l [binary.MaxVarintLen64]byte
	if _, p.err = p.w.Write(l[:binary.PutUvarint(l[:], uint64(len(b)))]); p.err != nil {
		return p.err
	}
	if _, p.err = p.w.Write(b); p.err != nil {
		return p.err
	}
	p.n++
	return nil
}

// finish writes what is buffered; each may follow.
func (p *spool) finish() error {
	if p.err != nil {
		return p.err
	}
	p.err = p.w.Flush()
	p.w = nil
	return p.err
}

// each calls fn with every entry in the order added (b is valid only
// during the call).
func (p *spool) each(fn func(b []byte) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(p.f, 0, p.sw.off), 64<<10)
	var buf []byte
	for range p.n {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return p.sp.fail(err)
		}
		if uint64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(r, buf); err != nil {
			return p.sp.fail(err)
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
	return nil
}

func (p *spool) close() {
	if p != nil && p.f != nil {
		p.f.Close()
	}
}

// rebuildScratch is an index rebuild's per-version state, on disk: for
// every version id found on the sites (or named by the audit log), the
// sites holding a copy of its manifest, the newest revision the audit log
// records, and whether the rebuild indexed it. Garbage collection keeps
// the manifests it finds unindexed in one too (the sites holding a copy,
// and whether any copy is young). Records of one id are merged: sites
// and flags ORed, the highest revision kept.
type rebuildScratch struct {
	*sortScratch
	words int   // bitset words per record
	found int64 // records of the final file found on some site
}

// Record layout: id, the sites' bitset (words little-endian uint64s), the
// audit log's revision (uint64), flags.
const (
	recIndexed = 1 // the rebuild indexed it
	recYoung   = 2 // collection: a copy younger than the grace period
)

// newRebuildScratch makes the scratch state for an index rebuild on a node
// of sites sites in dir, removing what a crashed rebuild left there.
func newRebuildScratch(dir string, sites int) (*rebuildScratch, error) {
	sp, err := newScratchSpace("rebuild", dir)
	if err != nil {
		return nil, err
	}
	return newSiteScratch(sp, sites)
}

// newSiteScratch makes per-version state for a node of sites sites in sp.
func newSiteScratch(sp *scratchSpace, sites int) (*rebuildScratch, error) {
	words := max(1, (sites+63)/64)
	r := &rebuildScratch{words: words}
	s, err := newSortScratch(sp, 16+8*words+8+1, 16, r.mergeRecords)
	if err != nil {
		return nil, err
	}
	s.onFinal = func(rec []byte) {
		if !allZero(r.siteBits(rec)) {
			r.found++
		}
	}
	r.sortScratch = s
	return r, nil
}

func (s *rebuildScratch) siteBits(r []byte) []byte { return r[16 : 16+8*s.words] }
func (s *rebuildScratch) revOff() int              { return 16 + 8*s.words }

// add records that site i holds a copy of id's manifest.
func (s *rebuildScratch) add(id manifest.ID, i int) { s.addFlags(id, i, 0) }

// addFlags records that site i holds a copy of id's manifest, with flags.
func (s *rebuildScratch) addFlags(id manifest.ID, i int, flags byte) {
	r := s.next(id[:])
	if r == nil {
		return
	}
	w := 16 + 8*(i/64)
	binary.LittleEndian.PutUint64(r[w:], 1<<(i%64))
	r[s.rec-1] = flags
}

// addRevision records that the audit log records revision rev of id.
func (s *rebuildScratch) addRevision(id manifest.ID, rev int) {
	r := s.next(id[:])
	if r == nil {
		return
	}
	binary.LittleEndian.PutUint64(r[s.revOff():], uint64(rev))
}

// mergeRecords folds record b into a (same id): sites and flags ORed, the
// higher revision.
func (s *rebuildScratch) mergeRecords(a, b []byte) bool {
	for w := range s.words {
		o := 16 + 8*w
		binary.LittleEndian.PutUint64(a[o:], binary.LittleEndian.Uint64(a[o:])|binary.LittleEndian.Uint64(b[o:]))
	}
	ro := s.revOff()
	binary.LittleEndian.PutUint64(a[ro:], max(binary.LittleEndian.Uint64(a[ro:]), binary.LittleEndian.Uint64(b[ro:])))
	a[s.rec-1] |= b[s.rec-1]
	return true
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
	return s.sortScratch.lookup(id[:])
}
