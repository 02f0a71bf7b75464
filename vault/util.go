package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/blake3"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
)

func digest16(s string) [16]byte {
	sum := blake3.Sum256([]byte(s))
	var out [16]byte
	copy(out[:], sum[:16])
	return out
}

// geometry is the stripe layout of one part: the only place where the
// size of a shard block, its stride in a shard blob and the blob's size
// are worked out (they depend on the part's block checksum algorithm).
type geometry struct {
	k, m   int
	stripe int              // plaintext bytes per full stripe
	size   int64            // plaintext bytes in the part
	sum    erasure.Checksum // the part's block checksums
}

// partGeometry is the geometry of part p of m.
func partGeometry(m *manifest.Manifest, p manifest.Part) geometry {
	return geometry{k: m.K, m: m.M, stripe: m.StripeSize, size: p.Size, sum: p.BlockSum}
}

func (g geometry) stripes() int64 { return manifest.Stripes(g.size, g.stripe) }

// plainLen returns the plaintext length of stripe j.
func (g geometry) plainLen(j int64) int {
	if j < g.stripes()-1 {
		return g.stripe
	}
	return int(g.size - (g.stripes()-1)*int64(g.stripe))
}

// shardSize returns the shard size of stripe j.
func (g geometry) shardSize(j int64) int {
	return (g.plainLen(j) + seal.Overhead + g.k - 1) / g.k
}

// blockSize returns the on-site size of stripe j's shard block: the
// shard and its checksum.
func (g geometry) blockSize(j int64) int {
	return g.shardSize(j) + g.sum.Size()
}

// blockStride is the on-site size of a full stripe's shard block.
func (g geometry) blockStride() int64 {
	return int64((g.stripe+seal.Overhead+g.k-1)/g.k + g.sum.Size())
}

// blobSize is the size of one shard blob of the part.
func (g geometry) blobSize() int64 {
	n := g.stripes()
	return (n-1)*g.blockStride() + int64(g.blockSize(n-1))
}

// blockID names shard i of stripe j of part p.
func blockID(p manifest.Part, j int64, i int) erasure.BlockID {
	return erasure.BlockID{Version: p.Blob, Part: uint32(p.Number), Stripe: uint64(j), Shard: uint8(i)}
}

// bufSize is the stripe buffer size needed for this geometry.
func bufSize(k, m, stripe int) int {
	return (k + m) * ((stripe + seal.Overhead + k - 1) / k)
}

// stripeBuf holds one stripe through its life: plaintext, then sealed
// stripe and parity, and the checksums of its shard blocks (each the
// first Size() bytes of its entry). b is room after its first
// erasure.HeadRoom bytes, where the first shard's checksum header is
// written while its block is hashed (erasure.Checksum.SumShards, given
// room: the others' go into the end of the shard before, and are undone).
type stripeBuf struct {
	room []byte
	b    []byte
	sums [][erasure.MaxSumSize]byte
}

type bufKey struct{ k, m, stripe int }

var bufPools sync.Map // bufKey -> *sync.Pool

func getBuf(k, m, stripe int) *stripeBuf {
	key := bufKey{k, m, stripe}
	p, ok := bufPools.Load(key)
	if !ok {
		p, _ = bufPools.LoadOrStore(key, &sync.Pool{New: func() any {
			room := make([]byte, erasure.HeadRoom+bufSize(k, m, stripe))
			return &stripeBuf{room: room, b: room[erasure.HeadRoom:], sums: make([][erasure.MaxSumSize]byte, k+m)}
		}})
	}
	return p.(*sync.Pool).Get().(*stripeBuf)
}

func putBuf(k, m, stripe int, b *stripeBuf) {
	if p, ok := bufPools.Load(bufKey{k, m, stripe}); ok {
		p.(*sync.Pool).Put(b)
	}
}

// readFull reads into b until it is full or the reader ends. It returns
// the count and a non-nil error only for a real failure.
func readFull(r io.Reader, b []byte) (int, bool, error) {
	n, err := io.ReadFull(r, b)
	switch {
	case err == nil:
		return n, false, nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return n, true, nil
	default:
		return n, true, err
	}
}

// siteError is a failure of one site during a write. The put can be retried
// with that site excluded.
type siteError struct {
	site string
	err  error
}

func (e *siteError) Error() string { return fmt.Sprintf("site %s: %v", e.site, e.err) }
func (e *siteError) Unwrap() error { return e.err }

// SiteFullError: a write failed after sites answered that they had no space
// left (site.ErrFull), and the other sites could not take its shards.
// Sites names the full ones; Err is what the write ended with. errors.Is
// with site.ErrFull holds. The operator should free space on those sites,
// add sites, or drain them.
type SiteFullError struct {
	Sites []string
	Err   error
	// Why holds, for the sites that said so during this write, what each
	// answered (a hosted site names its host's quota).
	Why map[string]string
}

func (e *SiteFullError) Error() string {
	var why []string
	for _, s := range e.Sites {
		if w := e.Why[s]; w != "" {
			why = append(why, w)
		}
	}
	if len(why) > 0 {
		return fmt.Sprintf("site %s full (no space left: %s): %v", strings.Join(e.Sites, ", "), strings.Join(why, "; "), e.Err)
	}
	return fmt.Sprintf("site %s full (no space left): %v", strings.Join(e.Sites, ", "), e.Err)
}

func (e *SiteFullError) Unwrap() []error { return []error{site.ErrFull, e.Err} }

// fullSites collects, over the attempts of one write, the sites that
// answered full, so that the error the write ends with names them.
type fullSites struct {
	ids []string
	why map[string]string // what each site answered, when this write heard it
}

func (f *fullSites) note(se *siteError) {
	if errors.Is(se.err, site.ErrFull) && !slices.Contains(f.ids, se.site) {
		f.ids = append(f.ids, se.site)
		if f.why == nil {
			f.why = map[string]string{}
		}
		f.why[se.site] = se.err.Error()
	}
}

// wrap returns err as a *SiteFullError naming the full sites noted, and
// any err itself names; err unchanged when no site was full.
func (f fullSites) wrap(err error) error {
	if err == nil {
		return nil
	}
	sites := slices.Clone(f.ids)
	why := maps.Clone(f.why)
	add := func(s string) {
		if !slices.Contains(sites, s) {
			sites = append(sites, s)
		}
	}
	inner := err
	if sfe, ok := errors.AsType[*SiteFullError](err); ok {
		for _, s := range sfe.Sites {
			add(s)
		}
		for s, w := range sfe.Why {
			if why == nil {
				why = map[string]string{}
			}
			why[s] = w
		}
		inner = sfe.Err
	} else if se, ok := errors.AsType[*siteError](err); ok && errors.Is(se.err, site.ErrFull) {
		add(se.site)
	}
	if len(sites) == 0 {
		return err
	}
	slices.Sort(sites)
	return &SiteFullError{Sites: sites, Err: inner, Why: why}
}

// cleanup deletes blobs best-effort, detached from the caller's
// cancellation but bounded in time.
func (e *Engine) cleanup(ctx context.Context, blobs map[string][]string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for id, names := range blobs {
		s, ok := e.site(id)
		if !ok {
			continue
		}
		wg.Go(func() {
			for _, n := range names {
				if err := s.Store.Delete(ctx, n); err != nil {
					if errors.Is(err, site.ErrRetained) {
						e.log.InfoContext(ctx, "blob kept by the site's retention until its date", "site", id, "blob", n)
						continue
					}
					e.log.WarnContext(ctx, "cleanup of abandoned blob failed; scrub will remove it", "site", id, "blob", n, "err", err)
				}
			}
		})
	}
	wg.Wait()
}

// maxRemovals bounds the removals waiting for their deletion records to
// reach the sites; a delete past it waits for a slot (back-pressure).
const maxRemovals = 256

// removeRecorded removes blobs (the manifest copies and shards of
// deleted versions) once the first size entries of the audit log, which
// hold their deletion records, are on every one of sites. It returns at
// once; the removal runs in the background and [Engine.Close] waits for
// it. When the records do not reach the sites in time nothing is removed:
// the blobs are garbage by the records, and garbage collection removes
// them once the log is there.
func (e *Engine) removeRecorded(ctx context.Context, size uint64, sites []string, sets ...map[string][]string) {
	if e.journal == nil {
		// No log, no record to wait for (an engine in tests).
		for _, s := range sets {
			e.cleanup(ctx, s)
		}
		return
	}
	ctx = context.WithoutCancel(ctx)
	e.removals.slots <- struct{}{}
	e.removals.wg.Go(func() {
		defer func() { <-e.removals.slots }()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := e.journal.AwaitSites(wctx, size, sites)
		cancel()
		if err != nil {
			e.log.WarnContext(ctx, "deletion recorded on the node but not yet on every site holding the version: its blobs stay until garbage collection finds the record there", "sites", sites, "err", err)
			return
		}
		for _, s := range sets {
			e.cleanup(ctx, s)
		}
	})
}

// Settle waits until the removals of deleted versions started so far have
// finished (or ctx ends).
func (e *Engine) Settle(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		e.removals.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func partAAD(version manifest.ID, part int, blob manifest.ID) []byte {
	b := make([]byte, 0, 16+4+16)
	b = append(b, version[:]...)
	b = append(b, byte(part>>24), byte(part>>16), byte(part>>8), byte(part))
	return append(b, blob[:]...)
}

// pieceReader reads byte slices one after the other without joining them:
// a blob's body made of the envelope, then shard blocks and checksums that
// lie in the stripe buffer. WriteTo hands each piece to the writer as it
// is, so a site that writes a file (site/dir) copies it once, into the
// kernel.
type pieceReader struct {
	pieces [][]byte
	size   int64 // bytes in all the pieces
}

func newPieceReader(pieces [][]byte) *pieceReader {
	r := &pieceReader{pieces: pieces}
	for _, p := range pieces {
		r.size += int64(len(p))
	}
	return r
}

func (r *pieceReader) Read(p []byte) (int, error) {
	for len(r.pieces) > 0 && len(r.pieces[0]) == 0 {
		r.pieces = r.pieces[1:]
	}
	if len(r.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.pieces[0])
	r.pieces[0] = r.pieces[0][n:]
	return n, nil
}

// WriteTo implements io.WriterTo.
func (r *pieceReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for len(r.pieces) > 0 {
		p := r.pieces[0]
		if len(p) > 0 {
			n, err := w.Write(p)
			total += int64(n)
			r.pieces[0] = p[n:]
			if err != nil {
				return total, err
			}
			if n < len(p) {
				return total, io.ErrShortWrite
			}
		}
		r.pieces = r.pieces[1:]
	}
	return total, nil
}
