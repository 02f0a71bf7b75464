package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
)

// GetOptions selects a version and a byte range.
type GetOptions struct {
	// VersionID selects a version; zero means the latest.
	VersionID manifest.ID
	// Exclude treats these sites as lost: their shards are not read.
	Exclude map[string]bool
	// Offset and Length select a range; Length < 0 reads to the end.
	Offset, Length int64
}

// DeleteMarkerError is returned when the selected version is a delete
// marker. It matches ErrDeleteMarker, and ErrNoSuchKey when no version id
// was given (the key's latest version is the marker).
type DeleteMarkerError struct {
	Version manifest.ID
	Latest  bool
}

func (e *DeleteMarkerError) Error() string {
	return fmt.Sprintf("version %s is a delete marker", e.Version)
}

// Is implements errors.Is.
func (e *DeleteMarkerError) Is(target error) bool {
	return target == ErrDeleteMarker || (e.Latest && target == ErrNoSuchKey)
}

// ErrBlockReplaced: a shard block whose checksum matches was found
// replaced, by the stripe's authentication or by its parity coded again
// from the authenticated data (a Problem's error wraps it).
var ErrBlockReplaced = errors.New("block replaced along with its checksum")

// Problem records damage found while reading: a missing or corrupt shard
// block that was worked around.
type Problem struct {
	Site   string
	Part   int
	Stripe int64
	Shard  int
	Err    error
}

func (p Problem) String() string {
	return fmt.Sprintf("site %s part %d stripe %d shard %d: %v", p.Site, p.Part, p.Stripe, p.Shard, p.Err)
}

// resolve finds a version in the index and opens its manifest.
func (e *Engine) resolve(ctx context.Context, vault, key string, id manifest.ID) (*manifest.Manifest, []byte, error) {
	vc, err := e.Vault(vault)
	if err != nil {
		return nil, nil, err
	}
	var v index.Version
	if id.IsZero() {
		v, err = e.index.Latest(ctx, vault, key)
		if errors.Is(err, index.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: %s/%s", ErrNoSuchKey, vault, key)
		}
	} else {
		v, err = e.index.Get(ctx, vault, key, id)
		if errors.Is(err, index.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: %s of %s/%s", ErrNoSuchVersion, id, vault, key)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	m, err := manifest.Open(v.Envelope, e.readKeys())
	if err != nil {
		e.Events.ManifestErrors.Add(1)
		e.log.ErrorContext(ctx, "indexed manifest failed verification", "vault", vault, "version", v.ID, "err", err)
		return nil, nil, fmt.Errorf("%s/%s version %s: %w", vault, key, v.ID, err)
	}
	if m.Vault != vault || m.Key != key || m.Version != v.ID {
		e.Events.ManifestErrors.Add(1)
		return nil, nil, fmt.Errorf("%s/%s: index entry holds the manifest of %s/%s version %s: %w", vault, key, m.Vault, m.Key, m.Version, manifest.ErrCorrupt)
	}
	// A delete marker carries the label of the version it hid: it is shown
	// (its version id included) only to those who may read that.
	if err := e.canRead(ctx, vc, m.Label); err != nil {
		return nil, nil, err
	}
	if m.DeleteMarker {
		return m, v.Envelope, &DeleteMarkerError{Version: m.Version, Latest: id.IsZero()}
	}
	if err := e.verifyBinding(m); err != nil {
		e.log.ErrorContext(ctx, "label binding failed verification; object withheld", "vault", vault, "version", m.Version, "err", err)
		return nil, nil, err
	}
	return m, v.Envelope, nil
}

// Stat returns a version's info (the latest if id is zero).
func (e *Engine) Stat(ctx context.Context, vault, key string, id manifest.ID) (ObjectInfo, error) {
	m, _, err := e.resolve(ctx, vault, key, id)
	if m != nil {
		return infoOf(m), err
	}
	return ObjectInfo{}, err
}

// ShardLocation says where one shard of one part lives.
type ShardLocation struct {
	Part         int
	Shard        int
	Parity       bool
	Site         string
	Jurisdiction string
	Provider     string
	Control      string
	Blob         string
	Inline       bool
}

// Locate returns where every shard of a version lives.
func (e *Engine) Locate(ctx context.Context, vault, key string, id manifest.ID) ([]ShardLocation, error) {
	m, _, err := e.resolve(ctx, vault, key, id)
	if err != nil {
		return nil, err
	}
	var out []ShardLocation
	for _, p := range m.Parts {
		for i, sid := range p.Sites {
			l := ShardLocation{Part: p.Number, Shard: i, Parity: i >= m.K, Site: sid, Inline: p.Inline}
			if s, ok := e.site(sid); ok {
				l.Jurisdiction, l.Provider, l.Control = s.Jurisdiction, s.Provider, s.Control
			}
			if p.Inline {
				l.Blob = manifest.BlobName(m.Version)
			} else {
				l.Blob = manifest.ShardBlobName(p.Blob, i)
			}
			out = append(out, l)
		}
	}
	return out, nil
}

// Reader reads an object version. It verifies every block, reconstructs
// from parity when blocks are missing or corrupt, and authenticates every
// stripe before returning its bytes.
type Reader struct {
	e        *Engine
	ctx      context.Context
	cancel   context.CancelFunc
	m        *manifest.Manifest
	info     ObjectInfo
	pos, end int64 // plaintext range still to return
	partIdx  int
	partOff  int64 // plaintext offset of parts[partIdx]
	pr       *partReader
	cur      []byte
	mu       sync.Mutex
	problems []Problem
	// exclude lists sites treated as lost (drills); skip lists shards
	// known to be bad, by part number and shard index (repair).
	exclude map[string]bool
	skip    map[[2]int]bool
	readAll bool // read every shard, not just k (repair: verifies them all)
	// keys, if set, are the parts' data keys (a shared version read by an
	// ally: ReadShared), in part order.
	keys []seal.DataKey
	// follows counts the newer revisions of its version the read went
	// on to (movedTo), at most maxFollows.
	follows int
}

// maxFollows bounds how many relocations one read follows (movedTo): a
// read racing a drain and then a repair of the same version follows two;
// each goes to a strictly newer revision, so a read cannot loop, and a
// version moved more often than this under one read is left to the
// client's retry.
const maxFollows = 3

// Get opens a version for reading. The caller must Close the reader.
func (e *Engine) Get(ctx context.Context, vault, key string, o GetOptions) (*Reader, error) {
	m, _, err := e.resolve(ctx, vault, key, o.VersionID)
	if err != nil {
		return nil, err
	}
	if o.Offset < 0 || o.Offset > m.Size || (o.Offset == m.Size && o.Length > 0) {
		return nil, fmt.Errorf("%w: offset %d of a %d-byte object", ErrInvalidRange, o.Offset, m.Size)
	}
	end := m.Size
	if o.Length >= 0 && o.Offset+o.Length < end {
		end = o.Offset + o.Length
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Reader{e: e, ctx: ctx, cancel: cancel, m: m, info: infoOf(m), pos: o.Offset, end: end, exclude: o.Exclude}, nil
}

// Info returns the version's info.
func (r *Reader) Info() ObjectInfo { return r.info }

// SetRange narrows the reader to length bytes from off (length < 0: to the
// end) before the first Read or Preload.
func (r *Reader) SetRange(off, length int64) error {
	size := r.m.Size
	if off < 0 || off > size || (off == size && length > 0) {
		return fmt.Errorf("%w: offset %d of a %d-byte object", ErrInvalidRange, off, size)
	}
	end := size
	if length >= 0 && off+length < end {
		end = off + length
	}
	r.pos, r.end = off, end
	return nil
}

// Problems returns the damage found and worked around so far.
func (r *Reader) Problems() []Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Problem(nil), r.problems...)
}

func (r *Reader) report(p Problem) {
	r.mu.Lock()
	r.problems = append(r.problems, p)
	r.mu.Unlock()
	r.e.log.WarnContext(r.ctx, "damaged shard block worked around", "vault", r.m.Vault, "version", r.m.Version,
		"site", p.Site, "part", p.Part, "stripe", p.Stripe, "shard", p.Shard, "err", p.Err)
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.pos >= r.end {
			return 0, io.EOF
		}
		if err := r.load(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.pos += int64(n)
	return n, nil
}

// Preload reads the stripe holding the first byte of the range, if the
// range is not empty, and keeps it for Read or WriteTo (it is not read
// again). Call it after SetRange, when an error must be known before
// anything is committed to the client: the S3 GET calls it before writing
// its status line, so that an object whose first stripe cannot be read is
// answered with an error, not with 200 and a cut connection.
func (r *Reader) Preload() error {
	for len(r.cur) == 0 && r.pos < r.end {
		if err := r.load(); err != nil {
			return err
		}
	}
	return nil
}

// WriteTo implements io.WriterTo, avoiding a copy per stripe.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(r.cur) == 0 {
			if r.pos >= r.end {
				return total, nil
			}
			if err := r.load(); err != nil {
				return total, err
			}
		}
		n, err := w.Write(r.cur)
		total += int64(n)
		r.cur = r.cur[n:]
		r.pos += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// load fills r.cur with the stripe holding r.pos, trimmed to the range.
func (r *Reader) load() error {
	for r.partIdx < len(r.m.Parts) && r.pos >= r.partOff+r.m.Parts[r.partIdx].Size {
		r.partOff += r.m.Parts[r.partIdx].Size
		r.partIdx++
		if r.pr != nil {
			r.pr.close()
			r.pr = nil
		}
	}
	if r.partIdx >= len(r.m.Parts) {
		return io.ErrUnexpectedEOF
	}
	part := r.m.Parts[r.partIdx]
	g := partGeometry(r.m, part)
	within := r.pos - r.partOff
	stripe := within / int64(g.stripe)
	if r.pr == nil {
		lastByte := min(r.end, r.partOff+part.Size) - 1 - r.partOff
		pr, err := r.e.newPartReader(r.ctx, r, part, g, stripe, lastByte/int64(g.stripe))
		if err != nil {
			return err
		}
		r.pr = pr
	}
	plain, err := r.pr.stripe(stripe)
	if err != nil {
		if m := r.movedTo(err); m != nil {
			// Relocated (a drain or a repair) since this read resolved
			// it: its old shards were removed once the new revision was
			// committed. Go on from the same offset on that revision.
			r.pr.close()
			r.pr = nil
			r.m = m
			return r.load()
		}
		return err
	}
	skip := within - stripe*int64(g.stripe)
	plain = plain[skip:]
	if left := r.end - r.pos; int64(len(plain)) > left {
		plain = plain[:left]
	}
	r.cur = plain
	return nil
}

// movedTo returns the newer revision of the version r reads when err says
// its shards could not be read and the index now holds one with the same
// parts, up to maxFollows times per read; nil otherwise. Only plain reads
// follow a move: a drill, a repair and an ally's read (its own keys) see
// what they asked for.
func (r *Reader) movedTo(err error) *manifest.Manifest {
	if r.follows >= maxFollows || !errors.Is(err, ErrUnreadable) || r.exclude != nil || r.skip != nil || r.readAll || r.keys != nil {
		return nil
	}
	r.follows++
	m, _, rerr := r.e.resolve(r.ctx, r.m.Vault, r.m.Key, r.m.Version)
	if rerr != nil || m.Revision <= r.m.Revision || m.Size != r.m.Size || len(m.Parts) != len(r.m.Parts) {
		return nil
	}
	for i, p := range m.Parts {
		if p.Number != r.m.Parts[i].Number || p.Size != r.m.Parts[i].Size {
			return nil
		}
	}
	return m
}

// Close releases the reader.
func (r *Reader) Close() error {
	r.cancel()
	r.cur = nil // points into r.pr's buffer, recycled below
	if r.pr != nil {
		r.pr.close()
		r.pr = nil
	}
	return nil
}

// block is one shard block delivered by a stream.
type block struct {
	stripe int64
	data   []byte // verified shard bytes, nil on error
	buf    *[]byte
	err    error
	fatal  bool // the stream ended
}

// shardStream reads consecutive blocks of one shard of one part.
type shardStream struct {
	shard int
	site  string
	ch    chan block
	next  int64 // next stripe expected from ch
	dead  bool
}

type partReader struct {
	e       *Engine
	r       *Reader
	ctx     context.Context
	cancel  context.CancelFunc
	part    manifest.Part
	g       geometry
	coder   *erasure.Coder
	stripes *seal.Stripes
	first   int64
	last    int64
	streams []*shardStream // by shard index; nil if not started
	failed  []bool         // shard cannot be read any more
	wg      sync.WaitGroup
	out     []byte
	outBuf  *[]byte // out's pooled buffer, if it came from one
	shards  [][]byte
	// decoded is the shard set the last decode joined: every data shard,
	// the missing ones reconstructed into rec (buffers kept from stripe
	// to stripe), and the parity shards read.
	decoded [][]byte
	dec     [][]byte
	rec     [][]byte
	par     [][]byte // parity coded again (replaced), kept from stripe to stripe
	// ip reads the stripes in place while they come intact (inPlace);
	// nil once the reader went on without it, or when it is not used.
	ip *inPlace
}

func (e *Engine) newPartReader(ctx context.Context, r *Reader, part manifest.Part, g geometry, first, last int64) (*partReader, error) {
	coder, err := coderFor(g.k, g.m)
	if err != nil {
		return nil, err
	}
	var dk seal.DataKey
	if r.keys != nil {
		dk = r.keys[r.partIdx]
	} else {
		var err error
		dk, err = e.k().UnwrapDataKey(e.vaultKeyName(r.m.Vault), partKeyGen(r.m, part), part.WrappedKey, partAAD(r.m.Version, part.Number, part.Blob))
		if err != nil {
			return nil, fmt.Errorf("%s/%s part %d: %w", r.m.Vault, r.m.Key, part.Number, err)
		}
	}
	stripes, err := seal.NewStripes(dk, seal.StripeContext{ObjectID: objectID(r.m.Vault, r.m.Key), VersionID: r.m.Version, Part: uint32(part.Number)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n := g.k + g.m
	pr := &partReader{
		e: e, r: r, ctx: ctx, cancel: cancel, part: part, g: g, coder: coder, stripes: stripes,
		first: first, last: last, streams: make([]*shardStream, n), failed: make([]bool, n),
		shards: make([][]byte, n),
	}
	for i, sid := range part.Sites {
		if r.exclude[sid] || r.skip[[2]int{part.Number, i}] {
			pr.failed[i] = true
		}
	}
	if pr.useInPlace() {
		pr.startInPlace()
		return pr, nil
	}
	pr.startStreams(first)
	return pr, nil
}

// startStreams starts reading the part from stripe from with a stream of
// block buffers for each data shard (and every shard for a reader that
// reads them all), joined and opened in out.
func (pr *partReader) startStreams(from int64) {
	g := pr.g
	// out holds one sealed stripe while it is joined and opened in place:
	// the part's largest, not a full stripe's worth for a small object (a
	// 4 KiB GET cleared 1.5 MiB here). A full stripe's comes from a pool:
	// allocated afresh for every large GET, its MiB was cleared and
	// faulted in each time (5 % of the server's CPU in GET 64 MiB c4).
	if g.size >= int64(g.stripe) {
		pr.outBuf = getBlock(g.stripe + seal.Overhead)
		pr.out = *pr.outBuf
	} else {
		pr.out = make([]byte, int(g.size)+seal.Overhead)
	}
	// Start with the data shards; parity joins only when needed.
	for i := 0; i < g.k+g.m && (pr.active() < g.k || pr.r.readAll); i++ {
		if !pr.failed[i] {
			pr.start(i, from)
		}
	}
}

func (pr *partReader) active() int {
	n := 0
	for _, s := range pr.streams {
		if s != nil && !s.dead {
			n++
		}
	}
	return n
}

var blockPools sync.Map // int -> *sync.Pool

func getBlock(size int) *[]byte {
	p, ok := blockPools.Load(size)
	if !ok {
		p, _ = blockPools.LoadOrStore(size, &sync.Pool{New: func() any { b := make([]byte, size); return &b }})
	}
	return p.(*sync.Pool).Get().(*[]byte)
}

func putBlock(b *[]byte) {
	if p, ok := blockPools.Load(cap(*b)); ok {
		*b = (*b)[:cap(*b)]
		p.(*sync.Pool).Put(b)
	}
}

// start begins streaming shard i from stripe from.
func (pr *partReader) start(i int, from int64) {
	sid := pr.part.Sites[i]
	st := &shardStream{shard: i, site: sid, ch: make(chan block, 2), next: from}
	pr.streams[i] = st
	s, ok := pr.e.site(sid)
	pr.wg.Go(func() {
		defer close(st.ch)
		send := func(b block) bool {
			select {
			case st.ch <- b:
				return true
			case <-pr.ctx.Done():
				if b.buf != nil {
					putBlock(b.buf)
				}
				return false
			}
		}
		if !ok {
			send(block{stripe: from, err: fmt.Errorf("site %s not configured", sid), fatal: true})
			return
		}
		g := pr.g
		var name string
		var off int64
		var length int64
		if pr.part.Inline {
			// The blob holds this site's copy of the envelope, whose
			// length may differ from the index's (a later revision):
			// inlineReader finds the blocks after its own envelope.
			name = manifest.BlobName(pr.r.m.Version)
			off, length = -1, -1
		} else {
			name = manifest.ShardBlobName(pr.part.Blob, i)
			off = from * g.blockStride()
			length = (pr.last-from)*g.blockStride() + int64(g.blockSize(pr.last))
		}
		var rc io.ReadCloser
		var err error
		inline := off < 0
		if inline {
			rc, err = inlineReader(pr.ctx, s.Store, name, i, pr.part, g)
		} else {
			rc, err = s.Store.Get(pr.ctx, name, off, length)
		}
		if err != nil {
			send(block{stripe: from, err: err, fatal: true})
			return
		}
		defer rc.Close()
		// Each block is read after erasure.HeadRoom bytes of its buffer,
		// so that its checksum is verified in place (VerifyIn).
		stride := erasure.HeadRoom + int(g.blockStride())
		for j := from; j <= pr.last; j++ {
			size := g.blockSize(j)
			buf := getBlock(stride)
			b := (*buf)[:erasure.HeadRoom+size]
			if _, err := io.ReadFull(rc, b[erasure.HeadRoom:]); err != nil {
				putBlock(buf)
				if inline && (err == io.EOF || err == io.ErrUnexpectedEOF) {
					// The copy is there but ends before its block: damage,
					// as a blob of the wrong size is.
					err = fmt.Errorf("inline blob %s ends before shard %d's block: %w", name, i, erasure.ErrChecksum)
				} else {
					err = fmt.Errorf("read %s: %w", name, err)
				}
				send(block{stripe: j, err: err, fatal: true})
				return
			}
			data, err := g.sum.VerifyIn(blockID(pr.part, j, i), b)
			if err != nil && inline {
				// Not at its place: the copy may be of a later revision
				// whose layout differs; read it whole and look.
				if tail, _, terr := inlineTail(pr.ctx, s.Store, name, i, pr.part, g); terr == nil {
					data, err = movedInlineBlock(tail, b, g.sum, blockID(pr.part, j, i), err)
				}
			}
			if err != nil {
				putBlock(buf)
				if !send(block{stripe: j, err: err}) {
					return
				}
				continue
			}
			if !send(block{stripe: j, data: data, buf: buf}) {
				return
			}
		}
	})
}

// take receives stripe j's block from stream i.
func (pr *partReader) take(i int, j int64) block {
	st := pr.streams[i]
	for {
		if st.dead {
			return block{stripe: j, err: errors.New("stream ended"), fatal: true}
		}
		b, ok := <-st.ch
		if !ok {
			st.dead = true
			return block{stripe: j, err: context.Cause(pr.ctx), fatal: true}
		}
		if b.fatal {
			st.dead = true
			pr.failed[i] = true
		}
		if b.stripe < j && !b.fatal {
			if b.buf != nil {
				putBlock(b.buf)
			}
			continue
		}
		return b
	}
}

// stripe returns the plaintext of stripe j, which must be at or after the
// previous one.
func (pr *partReader) stripe(j int64) ([]byte, error) { return pr.stripeWith(j, nil) }

// stripeWith is stripe, calling keep with the stripe's shards (nil where
// missing) once it authenticated, before their buffers are recycled.
func (pr *partReader) stripeWith(j int64, keep func([][]byte)) ([]byte, error) {
	if j < pr.first || j > pr.last {
		return nil, fmt.Errorf("stripe %d outside %d-%d", j, pr.first, pr.last)
	}
	if pr.ip != nil {
		if keep == nil {
			plain, ok, err := pr.ip.take(j)
			if err != nil || ok {
				return plain, err
			}
		}
		// Not intact, or not what the in-place read holds: read it
		// again, from here on, as below.
		pr.ip.stop()
		pr.ip = nil
		pr.startStreams(j)
	}
	n := pr.g.k + pr.g.m
	bufs := make([]*[]byte, n)
	defer func() {
		for _, b := range bufs {
			if b != nil {
				putBlock(b)
			}
		}
	}()
	clear(pr.shards)
	good := 0
	collect := func(i int) {
		b := pr.take(i, j)
		if b.err != nil {
			if context.Cause(pr.ctx) != nil {
				return
			}
			if errors.Is(b.err, erasure.ErrChecksum) {
				pr.e.Events.CorruptBlocks.Add(1)
			} else {
				pr.e.Events.MissingBlocks.Add(1)
			}
			pr.r.report(Problem{Site: pr.part.Sites[i], Part: pr.part.Number, Stripe: j, Shard: i, Err: b.err})
			return
		}
		pr.shards[i] = b.data
		bufs[i] = b.buf
		good++
	}
	for i, st := range pr.streams {
		if st != nil && !st.dead {
			collect(i)
		}
	}
	// Bring in more shards until k are intact.
	for i := 0; good < pr.g.k && i < n; i++ {
		if pr.streams[i] == nil && !pr.failed[i] {
			pr.start(i, j)
			collect(i)
		}
	}
	if err := context.Cause(pr.ctx); err != nil {
		return nil, err
	}
	if good < pr.g.k {
		return nil, fmt.Errorf("%w: %s/%s part %d stripe %d: %d of %d needed shards intact", ErrUnreadable, pr.r.m.Vault, pr.r.m.Key, pr.part.Number, j, good, pr.g.k)
	}
	plain, err := pr.decode(j)
	if err != nil {
		// Every checksum matched yet the stripe failed authentication: a
		// block was replaced together with its checksum. Fetch every
		// shard and find the combination that authenticates.
		plain, err = pr.recover(j, bufs)
	} else if pr.r.readAll {
		// A repair (or a deep scrub) reads every shard. The AEAD
		// covers the data blocks only: a parity block the decode did not
		// use is checked against the data coded again, so that a block
		// replaced with a valid checksum is named and not copied on.
		pr.checkParity(j)
	}
	if err == nil && keep != nil {
		keep(pr.decoded)
	}
	return plain, err
}

// lend has the next decodes rebuild data shard i, when it is missing, into
// buf (whose capacity must hold a shard block) rather than into the
// reader's own buffer.
func (pr *partReader) lend(i int, buf []byte) {
	if pr.rec == nil {
		pr.rec, pr.dec = make([][]byte, pr.g.k), make([][]byte, len(pr.shards))
	}
	pr.rec[i] = buf[:0]
}

func (pr *partReader) decode(j int64) ([]byte, error) {
	missingData := false
	for i := 0; i < pr.g.k; i++ {
		if pr.shards[i] == nil {
			missingData = true
		}
	}
	shards := pr.shards
	pr.decoded = shards
	if missingData {
		// ReconstructData writes into the slices it is given; keep the
		// blocks we hold untouched, and rebuild the missing data shards
		// into buffers of the reader's own, reused from stripe to stripe
		// (not a new allocation per stripe).
		if pr.rec == nil {
			pr.rec, pr.dec = make([][]byte, pr.g.k), make([][]byte, len(pr.shards))
		}
		shards = pr.dec
		copy(shards, pr.shards)
		ss := pr.g.shardSize(j)
		for i := 0; i < pr.g.k; i++ {
			if shards[i] == nil {
				if cap(pr.rec[i]) < ss {
					pr.rec[i] = make([]byte, 0, ss)
				}
				shards[i] = pr.rec[i][:0]
			}
		}
		if err := pr.coder.ReconstructData(shards); err != nil {
			return nil, err
		}
		pr.decoded = shards
		pr.e.Events.Reconstructed.Add(1)
	}
	sealedLen := pr.g.plainLen(j) + seal.Overhead
	if err := pr.coder.Join(pr.out, shards, sealedLen); err != nil {
		return nil, err
	}
	final := j == pr.g.stripes()-1
	return pr.stripes.Open(pr.out[:0], pr.out[:sealedLen], uint64(j), final)
}

// recover reads stripe j again from every shard it can and leaves blocks
// out, one at a time, then two, up to as many as the stripe can spare
// (fewest first, so that the fewest blocks are blamed), until the rest
// decode and authenticate. The blocks reported are then found by
// comparison, not by which were left out: the authenticated data shards
// are coded again, and every block held that differs from its recomputed
// self was replaced (a block left out may be intact when more than k were
// left in, and one left in may be forged when the decode did not use it).
func (pr *partReader) recover(j int64, bufs []*[]byte) ([]byte, error) {
	n := pr.g.k + pr.g.m
	for i := range n {
		if pr.streams[i] == nil && !pr.failed[i] {
			pr.start(i, j)
			b := pr.take(i, j)
			if b.err == nil {
				pr.shards[i], bufs[i] = b.data, b.buf
			}
		}
	}
	held := make([][]byte, n)
	copy(held, pr.shards)
	var have []int
	for x, s := range held {
		if s != nil {
			have = append(have, x)
		}
	}
	var plain []byte
	for c := 1; c <= len(have)-pr.g.k && plain == nil; c++ {
		combinations(have, c, func(out []int) bool {
			copy(pr.shards, held)
			for _, x := range out {
				pr.shards[x] = nil
			}
			p, err := pr.decode(j)
			if err != nil {
				return false
			}
			plain = p
			bad, full := pr.replaced(held, out)
			if full != nil {
				// What a repair takes from this stripe (stripeWith's
				// keep) is the stripe coded again, not the forged
				// blocks the decode happened not to use.
				pr.decoded = full
			}
			for _, x := range bad {
				pr.e.Events.CorruptBlocks.Add(1)
				pr.r.report(Problem{Site: pr.part.Sites[x], Part: pr.part.Number, Stripe: j, Shard: x,
					Err: fmt.Errorf("%w (authentication failed)", ErrBlockReplaced)})
			}
			return true
		})
	}
	if plain == nil {
		return nil, fmt.Errorf("%w: %s/%s part %d stripe %d fails authentication with every combination of shards", ErrUnreadable, pr.r.m.Vault, pr.r.m.Key, pr.part.Number, j)
	}
	return plain, nil
}

// checkParity compares the blocks of stripe j held beside the data the
// last decode authenticated with that data coded again; any that differ
// were replaced along with their checksums: they are reported, and what
// the stripe's keep gets is the stripe coded again.
func (pr *partReader) checkParity(j int64) {
	held := slices.Clone(pr.shards)
	extra := false
	for x := pr.g.k; x < len(held); x++ {
		extra = extra || held[x] != nil
	}
	if !extra {
		return
	}
	bad, full := pr.replaced(held, nil)
	if full == nil {
		return
	}
	for _, x := range bad {
		pr.e.Events.CorruptBlocks.Add(1)
		pr.r.report(Problem{Site: pr.part.Sites[x], Part: pr.part.Number, Stripe: j, Shard: x,
			Err: fmt.Errorf("%w (differs from the authenticated data coded again)", ErrBlockReplaced)})
	}
	if len(bad) > 0 {
		pr.decoded = full
	}
}

// replaced returns the blocks of held that differ from the stripe coded
// again from the data shards the last decode authenticated, and that
// stripe (every shard); where it cannot be coded again, it returns left,
// what that decode left out, and nil.
func (pr *partReader) replaced(held [][]byte, left []int) (bad []int, full [][]byte) {
	full = make([][]byte, len(held))
	copy(full, pr.decoded[:pr.g.k])
	// The parity is coded into buffers kept from stripe to stripe.
	if pr.par == nil {
		pr.par = make([][]byte, pr.g.m)
	}
	ss := len(full[0])
	for x := range pr.g.m {
		if cap(pr.par[x]) < ss {
			pr.par[x] = make([]byte, 0, ss)
		}
		full[pr.g.k+x] = pr.par[x][:0]
	}
	if err := pr.coder.Reconstruct(full); err != nil {
		return left, nil
	}
	for x, b := range held {
		if b != nil && !bytes.Equal(b, full[x]) {
			bad = append(bad, x)
		}
	}
	if len(bad) == 0 {
		bad = left
	}
	return bad, full
}

// combinations calls f with each c-element subset of set, in lexicographic
// order of positions, until f returns true; it reports whether one did.
// out is reused between calls.
func combinations(set []int, c int, f func(out []int) bool) bool {
	out := make([]int, c)
	var walk func(from, i int) bool
	walk = func(from, i int) bool {
		if i == c {
			return f(out)
		}
		for p := from; p <= len(set)-(c-i); p++ {
			out[i] = set[p]
			if walk(p+1, i+1) {
				return true
			}
		}
		return false
	}
	return walk(0, 0)
}

// close stops the shard streams and recycles the buffers. The plaintext
// stripe returns pointed into out: nothing may use it afterwards.
func (pr *partReader) close() {
	pr.cancel()
	if pr.ip != nil {
		pr.ip.stop()
		pr.ip = nil
	}
	for _, st := range pr.streams {
		if st == nil {
			continue
		}
		for b := range st.ch {
			if b.buf != nil {
				putBlock(b.buf)
			}
		}
	}
	pr.wg.Wait()
	if pr.outBuf != nil {
		putBlock(pr.outBuf)
		pr.outBuf, pr.out = nil, nil
	}
}

// inlineReader returns a reader positioned at shard i's block in an inline
// manifest blob: it reads the envelope's header for its length and skips
// the envelope and the blocks before shard i's, so that the block is read
// once, into the caller's buffer, with no copy of the whole blob (a 1 MiB
// object's copy is about 257 KiB; reading it whole, zeroed and then copied
// again, was a quarter of a 1 MiB GET's CPU: BenchmarkSmallGet). The blob
// holds this site's copy of the envelope, whose length may differ from the
// index's (a later revision). A blob that ends too soon reads short.
func inlineReader(ctx context.Context, s site.Site, name string, i int, part manifest.Part, g geometry) (io.ReadCloser, error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	// The first read takes up to inlineHead bytes: a small object's whole
	// copy (envelope and block) in one system call, from which the block
	// is served; a larger block is read on from the site.
	hb := getBlock(inlineHead)
	head := *hb
	n, err := io.ReadAtLeast(rc, head, manifest.HeaderSize)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		putBlock(hb)
		rc.Close()
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	envLen, err := manifest.EnvelopeLen(head[:n])
	if err != nil {
		putBlock(hb)
		rc.Close()
		return nil, err
	}
	start := envLen + inlineRank(part, i)*g.blockSize(0)
	if end := start + g.blockSize(0); end <= n {
		rc.Close()
		return &headReader{Reader: bytes.NewReader(head[start:end]), buf: hb}, nil
	}
	if start <= n {
		return &headReader{Reader: io.MultiReader(bytes.NewReader(head[start:n]), rc), c: rc, buf: hb}, nil
	}
	putBlock(hb)
	skip := int64(start - n)
	if sk, ok := rc.(io.Seeker); ok {
		_, err = sk.Seek(skip, io.SeekCurrent)
	} else {
		_, err = io.CopyN(io.Discard, rc, skip)
		if err == io.EOF {
			err = nil // the block's read will come up short
		}
	}
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return rc, nil
}

// inlineHead is what inlineReader's first read asks for: an unlabelled
// object's envelope is a few hundred bytes, so a copy of an object of up to
// about 8 KiB (a block of 2 KiB at 4+2) is read in one.
const inlineHead = 4 << 10

// headReader serves an inline block from the buffer of inlineReader's
// first read, then, if the block goes on, from the site; Close closes the
// site's reader, if any, and recycles the buffer.
type headReader struct {
	io.Reader
	c   io.Closer
	buf *[]byte
}

func (h *headReader) Close() error {
	var err error
	if h.c != nil {
		err = h.c.Close()
	}
	if h.buf != nil {
		h.Reader = nil
		putBlock(h.buf)
		h.buf = nil
	}
	return err
}

// inlineRank returns how many of part's shards before shard i are on shard
// i's site: where among that site's blocks, after its envelope, shard i's
// block is.
func inlineRank(part manifest.Part, i int) int {
	rank := 0
	for j := range i {
		if part.Sites[j] == part.Sites[i] {
			rank++
		}
	}
	return rank
}

// inlineTail reads an inline manifest blob and returns the shard blocks
// after its envelope, and where in them shard i's block is: the site's
// blocks stand in shard order.
func inlineTail(ctx context.Context, s site.Site, name string, i int, part manifest.Part, g geometry) (tail []byte, at int, err error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, 0, err
	}
	held := 0 // the blocks this site's copy holds
	for _, sid := range part.Sites {
		if sid == part.Sites[i] {
			held++
		}
	}
	blob, err := readInline(rc, manifest.MaxEnvelope+int64(len(part.Sites))*int64(g.blockSize(0)), inlineEnvelopeGuess+held*g.blockSize(0))
	rc.Close()
	if err != nil {
		return nil, 0, err
	}
	envLen, err := manifest.EnvelopeLen(blob)
	if err != nil {
		return nil, 0, err
	}
	at = inlineRank(part, i) * g.blockSize(0)
	if envLen+at > len(blob) {
		// A copy cut short, before its envelope's end or this shard's
		// block (slicing it would panic: a site could stop the node).
		return nil, 0, fmt.Errorf("inline blob %s: %d bytes, shard block at %d: %w", name, len(blob), envLen+at, erasure.ErrChecksum)
	}
	return blob[envLen:], at, nil
}

// inlineEnvelopeGuess is what readInline allows for an inline blob's
// envelope when the site cannot say the blob's size: an unlabelled
// object's envelope is a few hundred bytes.
const inlineEnvelopeGuess = 1 << 10

// readInline reads a whole inline manifest blob, at most limit bytes, into
// one buffer of the blob's size: from the file's size when the site hands
// back a file (the dir driver), otherwise from guess (the envelope allowed
// for and this site's blocks), growing only past it. io.ReadAll started at
// 512 bytes and grew by copying: two fifths of the bytes a 4 KiB GET
// allocated (BenchmarkSmallGet).
func readInline(r io.Reader, limit int64, guess int) ([]byte, error) {
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() >= 0 && fi.Size() <= limit {
			guess = int(fi.Size())
		}
	}
	lr := io.LimitReader(r, limit)
	// One byte more than expected, so that the read which finds the end
	// has room and the buffer need not grow to learn it.
	buf := make([]byte, 0, min(int64(guess), limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// movedInlineBlock looks for block id among the blocks of an inline blob's
// tail when it is not at its place (its checksum failed there with
// first), verifying each in b as the read does: a relocation rewrites every
// copy of the blob in the new revision's layout before the index commits
// that revision, so a read of the old revision in between finds its block
// at another place where the site gained a shard of a lower index. The
// checksum covers the block's identity (part, stripe, shard), so a block
// that verifies is the one sought, and the stripe's authentication follows.
// It returns first when no block verifies.
func movedInlineBlock(tail, b []byte, sum erasure.Checksum, id erasure.BlockID, first error) ([]byte, error) {
	size := len(b) - erasure.HeadRoom
	for off := 0; off+size <= len(tail); off += size {
		copy(b[erasure.HeadRoom:], tail[off:off+size])
		if data, err := sum.VerifyIn(id, b); err == nil {
			return data, nil
		}
	}
	return nil, first
}
