package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
)

// PutOptions describes the object being put.
type PutOptions struct {
	// Size is the number of bytes the reader yields, or -1 if unknown. A
	// reader that yields another count fails the put with nothing visible.
	Size        int64
	ContentType string
	Meta        map[string]string
	Label       string
	Lock        *manifest.Lock
	// ETag, if set, is called once the body has been read and returns the
	// ETag to record (the S3 front end passes an MD5). Otherwise the ETag
	// is derived from the BLAKE3 digest of the content. It may be called
	// more than once (a put placed again after a site failed).
	ETag func() string
	// Hash, if set, is fed the body's bytes, in order, as the engine takes
	// its own digest of them: the S3 front end's MD5 for the ETag. For an
	// object of more than one stripe it runs beside the digest and off the
	// goroutine that reads the body, so that reading, the two hashes and
	// the sealing of earlier stripes overlap. It is Reset when a retry
	// reads the body again, and is complete when ETag is called.
	Hash hash.Hash
	// Checksums, if set, is called once the body has been read and returns
	// the client checksums that were verified over it, to be returned on
	// request (x-amz-checksum-*).
	Checksums func() map[string]string
	// ChecksumAlgorithm, for CreateUpload only, is the upload's checksum
	// algorithm (S3's x-amz-checksum-algorithm: CRC32, CRC32C, CRC64NVME,
	// SHA1 or SHA256), recorded for the front end: each part's checksums
	// are kept, and the completed object's are made from them
	// (CompleteOptions.Checksums).
	ChecksumAlgorithm string
	// ChecksumType, for CreateUpload only, is how the completed object's
	// checksum is made from its parts' (S3's x-amz-checksum-type:
	// COMPOSITE or FULL_OBJECT), recorded for the front end.
	ChecksumType string
	// If makes the put conditional on the key's current object (S3's
	// If-Match and If-None-Match): checked before the body is read, and
	// again in the index transaction that commits the version, so that of
	// two writers using it as a lock only one succeeds. A put whose
	// condition fails at the commit leaves nothing visible; its blobs are
	// recorded as abandoned.
	If index.Precondition
}

// maxAttempts bounds how often a put is retried on other sites.
const maxAttempts = 3

// Put stores r as a new version of key in the vault and returns its info.
// The version is visible only once every shard and manifest copy is
// durable on its site and the index has committed it. If a site fails
// during the write, the put is retried on other sites that keep the policy
// when the data can be read again (an inline object, or r is an
// io.Seeker); otherwise it fails and nothing becomes visible.
func (e *Engine) Put(ctx context.Context, vaultName, key string, r io.Reader, o PutOptions) (ObjectInfo, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := manifest.ValidKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := e.precondition(ctx, v, key, o.If); err != nil {
		return ObjectInfo{}, err
	}
	var start int64 = -1
	seeker, _ := r.(io.Seeker)
	if seeker != nil {
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	exclude := map[string]bool{}
	var full fullSites
	for attempt := 1; ; attempt++ {
		body := r
		if o.Size >= 0 {
			// Read at most one byte past the declared size, to detect
			// a body that is too long without reading all of it.
			body = io.LimitReader(r, o.Size+1)
		}
		info, err := e.put(ctx, v, key, body, o, exclude)
		var se *siteError
		reconfigured := errors.Is(err, ErrReconfigured)
		if err == nil || (!errors.As(err, &se) && !reconfigured) || attempt == maxAttempts || seeker == nil {
			return info, full.wrap(err)
		}
		if _, serr := seeker.Seek(start, io.SeekStart); serr != nil {
			return info, full.wrap(err)
		}
		if reconfigured {
			// Placed before a configuration change it does not survive:
			// place it again under the new one.
			if v, err = e.Vault(vaultName); err != nil {
				return ObjectInfo{}, err
			}
			continue
		}
		e.log.WarnContext(ctx, "site failed during put; retrying on other sites", "vault", v.Name, "site", se.site, "err", se.err)
		full.note(se)
		exclude[se.site] = true
		e.avoid(se)
		e.Events.WriteRetries.Add(1)
	}
}

func (e *Engine) put(ctx context.Context, v Vault, key string, r io.Reader, o PutOptions, exclude map[string]bool) (ObjectInfo, error) {
	text, l, err := e.putLabel(ctx, v, o.Label)
	if err != nil {
		return ObjectInfo{}, err
	}
	o.Label = text
	p := v.Policy
	hasher := blake3.New()
	if o.Hash != nil {
		o.Hash.Reset()
	}
	first := getBuf(p.K, p.M, v.StripeSize)
	defer func() {
		if first != nil {
			putBuf(p.K, p.M, v.StripeSize, first)
		}
	}()
	n, short, err := readFull(r, first.b[:v.StripeSize])
	if err != nil {
		return ObjectInfo{}, err
	}
	var peek [1]byte
	if !short {
		// A full first stripe: the object is inline only if nothing follows.
		m, _, err := readFull(r, peek[:])
		if err != nil {
			return ObjectInfo{}, err
		}
		short = m == 0
	}
	if short {
		if o.Size >= 0 && int64(n) != o.Size {
			return ObjectInfo{}, sizeError(int64(n), o.Size)
		}
		hasher.Write(first.b[:n])
		if o.Hash != nil {
			o.Hash.Write(first.b[:n])
		}
		return e.putInlineAgain(ctx, v, key, first, n, hasher, o, l, exclude)
	}
	// The first stripe goes on as read: putStreaming takes the buffer over.
	full := first
	first = nil
	return e.putStreaming(ctx, v, key, full, io.MultiReader(bytes.NewReader(peek[:]), r), hasher, o, l, exclude)
}

func sizeError(got, want int64) error {
	if got < want {
		return fmt.Errorf("%w: read %d bytes, declared %d", ErrIncomplete, got, want)
	}
	return fmt.Errorf("body longer than its declared size of %d bytes", want)
}

// newVersion returns a version id and creation time after the key's latest.
func (e *Engine) newVersion(ctx context.Context, vault, key string) (manifest.ID, int64) {
	return manifest.NewID(), e.versionTime(ctx, vault, key)
}

// versionTime returns a creation time after the key's latest version. A
// put that streams its data takes it once the data is written, so that of
// two puts of one key the one that finishes last is the newest, as in S3,
// even when it started first.
//
// It needs only the latest version's time: an index that reads it alone
// (index.LatestTimer) is asked for that, not for the whole version with
// its envelope.
func (e *Engine) versionTime(ctx context.Context, vault, key string) int64 {
	var after int64
	if lt, ok := e.index.(index.LatestTimer); ok {
		if c, found, err := lt.LatestCreated(ctx, vault, key); err == nil && found {
			after = c
		}
	} else if l, err := e.index.Latest(ctx, vault, key); err == nil {
		after = l.Created
	}
	return e.clock.now(after)
}

func (e *Engine) baseManifest(v Vault, key string, id manifest.ID, created int64, o PutOptions) *manifest.Manifest {
	return &manifest.Manifest{
		Node: e.node, Vault: v.Name, Key: key, Version: id, Created: created,
		ContentType: o.ContentType, Meta: o.Meta, Label: o.Label, Lock: o.Lock,
		K: v.Policy.K, M: v.Policy.M, StripeSize: v.StripeSize, KeyGen: keyGen(v), Journaled: true,
	}
}

func keyGen(v Vault) int { return max(v.KeyGen, 1) }

func etag(o PutOptions, digest []byte) string {
	if o.ETag != nil {
		if t := o.ETag(); t != "" {
			return t
		}
	}
	return fmt.Sprintf("\"%x\"", digest[:16])
}

// choose runs placement for a new version labelled l (nil: unlabelled).
func (e *Engine) choose(v Vault, id manifest.ID, exclude map[string]bool, l *label.Label) ([]string, error) {
	p := v.Policy
	if l != nil {
		p = withLabel(p)
	}
	sites, err := placement.Choose(p, e.candidates(exclude, l), id[:])
	if err != nil {
		// Sites avoided for being full are the likely reason: name them.
		return nil, e.fullNow().wrap(fmt.Errorf("vault %s: %w", v.Name, err))
	}
	return sites, nil
}

// putInlineAgain is putInline, placed again under the new configuration
// when one came into force while the object was written and its placement
// did not survive it: the data is in memory, so the client need not send
// it again.
func (e *Engine) putInlineAgain(ctx context.Context, v Vault, key string, buf *stripeBuf, n int, hasher *blake3.Hasher, o PutOptions, l *label.Label, exclude map[string]bool) (ObjectInfo, error) {
	// putInline seals and codes into a buffer of its own: buf keeps the
	// plaintext for another attempt.
	for attempt := 1; ; attempt++ {
		info, err := e.putInline(ctx, v, key, buf.b[:n], hasher, o, l, exclude)
		if !errors.Is(err, ErrReconfigured) || attempt == maxAttempts {
			return info, err
		}
		nv, verr := e.Vault(v.Name)
		if verr != nil {
			return ObjectInfo{}, verr
		}
		if n > nv.StripeSize {
			return info, err
		}
		v = nv
	}
}

// putInline writes an object of one stripe, plain: each site's shard
// blocks ride in its manifest blob. The data is in memory, so a failed
// site is simply replaced. It seals and codes into a pooled buffer and
// never changes plain, so that it can be tried again without a copy.
func (e *Engine) putInline(ctx context.Context, v Vault, key string, plain []byte, hasher *blake3.Hasher, o PutOptions, l *label.Label, exclude map[string]bool) (ObjectInfo, error) {
	p := v.Policy
	n := len(plain)
	digest := hasher.Sum(nil)
	buf := getBuf(p.K, p.M, v.StripeSize)
	defer putBuf(p.K, p.M, v.StripeSize, buf)
	coder, err := coderFor(p.K, p.M)
	if err != nil {
		return ObjectInfo{}, err
	}
	var full fullSites
	for attempt := 1; ; attempt++ {
		id, created := e.newVersion(ctx, v.Name, key)
		sites, err := e.choose(v, id, exclude, l)
		if err != nil {
			return ObjectInfo{}, full.wrap(err)
		}
		dk, err := seal.NewDataKey()
		if err != nil {
			return ObjectInfo{}, err
		}
		stripes, err := seal.NewStripes(dk, seal.StripeContext{ObjectID: objectID(v.Name, key), VersionID: id, Part: 1})
		if err != nil {
			return ObjectInfo{}, err
		}
		blob := manifest.NewID()
		sealed := stripes.Seal(buf.b[:0], plain, 0, true)
		shards, err := coder.Encode(buf.b, len(sealed))
		if err != nil {
			return ObjectInfo{}, err
		}
		part := manifest.Part{Number: 1, Size: int64(n), Blob: blob, Sites: sites, Inline: true, Digest: digest, BlockSum: e.writeSum()}
		part.BlockSum.SumShards(buf.sums, blockID(part, 0, 0), buf.room, coder.ShardSize(len(sealed)))
		sums := make([][]byte, len(shards))
		for i := range shards {
			sums[i] = buf.sums[i][:part.BlockSum.Size()]
		}
		wrapped, err := e.k().WrapDataKey(v.keyName(), keyGen(v), dk, partAAD(id, 1, blob))
		if err != nil {
			return ObjectInfo{}, err
		}
		m := e.baseManifest(v, key, id, created, o)
		m.Size, m.Digest, m.ETag = int64(n), digest, etag(o, digest)
		if o.Checksums != nil {
			m.Checksums = o.Checksums()
		}
		part.WrappedKey = wrapped
		m.Parts = []manifest.Part{part}
		if err := e.bindLabel(m, l); err != nil {
			return ObjectInfo{}, err
		}
		env, err := manifest.Seal(m, e.sealKeys())
		if err != nil {
			return ObjectInfo{}, err
		}
		// Each site's blob is the envelope and its shard blocks with their
		// checksums, written from where they are: the stripe buffer.
		tails := map[string][][]byte{}
		for i, s := range sites {
			tails[s] = append(tails[s], shards[i], sums[i])
		}
		err = e.writeCopies(ctx, id, env, slices.Collect(maps.Keys(tails)), tails)
		var se *siteError
		if errors.As(err, &se) && attempt < maxAttempts {
			e.log.WarnContext(ctx, "site failed during put; retrying on other sites", "vault", v.Name, "site", se.site, "err", se.err)
			full.note(se)
			exclude[se.site] = true
			e.avoid(se)
			e.Events.WriteRetries.Add(1)
			continue
		}
		if err != nil {
			return ObjectInfo{}, full.wrap(err)
		}
		return e.commit(ctx, m, env, nil, o.If, false)
	}
}

// commit makes a version visible by indexing it. On failure the blobs of
// a new version are removed so that nothing half-written remains.
//
// The placement is checked against the configuration in force, and the
// index written, under the commit gate (gate.go): a version whose sites
// were chosen before a change that its placement does not survive is
// abandoned and refused with ErrReconfigured (for a completed multipart
// upload, whose parts cannot be placed again here, ErrInvalidPart).
func (e *Engine) commit(ctx context.Context, m *manifest.Manifest, env []byte, shardBlobs map[string][]string, cond index.Precondition, multipart bool) (ObjectInfo, error) {
	kind := KindPut
	if m.DeleteMarker {
		kind = KindDeleteMarker
	}
	e.generationsChecked(ctx)
	e.gate.RLock()
	err := e.placedNow(m, multipart)
	if err == nil {
		err = e.indexPutIf(ctx, kind, m, env, cond)
	}
	e.gate.RUnlock()
	if err != nil {
		blobs := map[string][]string{}
		for _, s := range manifestSites(m) {
			blobs[s] = append(blobs[s], manifest.BlobName(m.Version))
		}
		for s, names := range shardBlobs {
			blobs[s] = append(blobs[s], names...)
		}
		e.abandon(ctx, evidence.Record{Version: m.Version}, blobs)
		if errors.Is(err, ErrReconfigured) {
			e.Events.Reconfigured.Add(1)
			if multipart {
				return ObjectInfo{}, fmt.Errorf("%w: %s/%s: %v; upload the parts again", ErrInvalidPart, m.Vault, m.Key, err)
			}
			return ObjectInfo{}, fmt.Errorf("commit %s/%s: %w", m.Vault, m.Key, err)
		}
		if errors.Is(err, ErrNoSuchVault) {
			return ObjectInfo{}, err
		}
		if errors.Is(err, index.ErrPreconditionFailed) || errors.Is(err, index.ErrNotFound) {
			return ObjectInfo{}, conditionError(m.Vault, m.Key, err)
		}
		return ObjectInfo{}, fmt.Errorf("commit %s/%s: %w", m.Vault, m.Key, err)
	}
	return infoOf(m), nil
}

// recommit indexes a new revision of an existing version. Its copies on
// the sites already carry the new revision, and the version's data is the
// old version's: if the index write fails nothing may be removed (the
// index keeps the old revision; a rebuild takes the new one).
func (e *Engine) recommit(ctx context.Context, kind string, m *manifest.Manifest, env []byte) (ObjectInfo, error) {
	e.generationsChecked(ctx)
	if err := e.indexPut(ctx, kind, m, env); err != nil {
		return ObjectInfo{}, fmt.Errorf("index %s/%s version %s revision %d (the sites have it; retry or rebuild the index): %w", m.Vault, m.Key, m.Version, m.Revision, err)
	}
	return infoOf(m), nil
}

// indexPut records the commit on the audit log, then commits it to the
// index. A failed index write is recorded as failed.
func (e *Engine) indexPut(ctx context.Context, kind string, m *manifest.Manifest, env []byte) error {
	return e.indexPutIf(ctx, kind, m, env, index.Precondition{})
}

// indexPutIf is indexPut with a precondition on the key's current version
// (none when cond is zero).
//
// The commit's audit log entry is written in the index transaction itself
// when the log takes entries from the index (audit/pending.go): one fsync
// makes both durable, and a refused or failed commit records nothing.
// Otherwise it is appended before the index commit, and a commit that then
// fails (or that the precondition refuses) is recorded as failed.
func (e *Engine) indexPutIf(ctx context.Context, kind string, m *manifest.Manifest, env []byte, cond index.Precondition) error {
	ev := manifestEvent(ctx, kind, m)
	entry, inIndex, err := e.indexEntry(ctx, ev)
	if err != nil {
		return err
	}
	if !inIndex {
		if err := e.record(ctx, ev); err != nil {
			return err
		}
	}
	v := index.Version{
		Vault: m.Vault, Key: m.Key, ID: m.Version, Created: m.Created, DeleteMarker: m.DeleteMarker,
		Size: m.Size, ETag: m.ETag, Label: m.Label, Envelope: env, Audit: entry,
	}
	if cond.IsZero() {
		err = e.index.Put(ctx, v)
	} else {
		err = e.index.PutIf(ctx, v, cond)
	}
	if err != nil {
		if !inIndex {
			e.recordFailure(ctx, ev, err)
		}
		return err
	}
	if inIndex {
		e.audit.(indexLog).Committed()
	}
	e.noteCommit()
	return nil
}

// writeCopies writes the manifest envelope (followed by the pieces of
// tails[site], if any) to every listed site in parallel. If any site
// fails, the copies that were written are removed and the failure is
// returned as a *siteError.
func (e *Engine) writeCopies(ctx context.Context, id manifest.ID, env []byte, sites []string, tails map[string][][]byte) error {
	name := manifest.BlobName(id)
	errs := e.putCopies(ctx, name, env, sites, tails)
	var first error
	written := map[string][]string{}
	for i, err := range errs {
		if err != nil && first == nil {
			first = err
		}
		if err == nil {
			written[sites[i]] = []string{name}
		}
	}
	if first != nil {
		e.abandon(ctx, evidence.Record{Version: id}, written)
		if err := context.Cause(ctx); err != nil {
			return err
		}
	}
	return first
}

// putCopies writes the envelope, followed by the pieces of tails[site], to
// every listed site in parallel, and returns each site's error (a
// *siteError) or nil. The pieces are not joined: each site reads them
// where they lie (pieceReader).
func (e *Engine) putCopies(ctx context.Context, name string, env []byte, sites []string, tails map[string][][]byte) []error {
	errs := make([]error, len(sites))
	var wg sync.WaitGroup
	for i, sid := range sites {
		s, ok := e.site(sid)
		if !ok {
			errs[i] = &siteError{sid, errors.New("site not configured")}
			continue
		}
		wg.Go(func() {
			body := newPieceReader(joinSmall(append([][]byte{env}, tails[sid]...)))
			if err := s.Store.Put(ctx, name, body, body.size); err != nil {
				errs[i] = &siteError{sid, err}
			}
		})
	}
	wg.Wait()
	return errs
}

// joinLimit is the largest manifest copy whose pieces are joined before it
// is written (joinSmall).
const joinLimit = 64 << 10

// joinSmall returns the pieces of a manifest copy of at most joinLimit
// bytes as one: a small object's copy (its envelope, shard blocks and
// their checksums, some 1.4 KB for a 4 KiB object) then costs a site that
// writes a file one write(2) rather than one a piece, three for each of
// six copies. Copying a kilobyte or two costs far less than the two system
// calls it saves ("Small puts: one put's time and CPU (issue 15, fifteenth
// pass)"). Larger copies keep their pieces where they lie.
func joinSmall(pieces [][]byte) [][]byte {
	if len(pieces) < 2 {
		return pieces
	}
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	if n > joinLimit {
		return pieces
	}
	joined := make([]byte, 0, n)
	for _, p := range pieces {
		joined = append(joined, p...)
	}
	return [][]byte{joined}
}

var coders sync.Map // [2]int -> *erasure.Coder

func coderFor(k, m int) (*erasure.Coder, error) {
	key := [2]int{k, m}
	if c, ok := coders.Load(key); ok {
		return c.(*erasure.Coder), nil
	}
	c, err := erasure.New(k, m)
	if err != nil {
		return nil, err
	}
	coders.Store(key, c)
	return c, nil
}

// putStreaming writes an object of more than one stripe: first, a full
// stripe already read (its buffer is taken over), then what r yields.
func (e *Engine) putStreaming(ctx context.Context, v Vault, key string, first *stripeBuf, r io.Reader, hasher *blake3.Hasher, o PutOptions, l *label.Label, exclude map[string]bool) (ObjectInfo, error) {
	id := manifest.NewID()
	sites, err := e.choose(v, id, exclude, l)
	if err != nil {
		putBuf(v.Policy.K, v.Policy.M, v.StripeSize, first)
		return ObjectInfo{}, err
	}
	part, err := e.writePart(ctx, partSpec{vault: v, key: key, version: id, number: 1, sites: sites, size: o.Size, hasher: hasher, tee: o.Hash, first: first}, r)
	if err != nil {
		return ObjectInfo{}, err
	}
	shardBlobs := part.blobs()
	digest := hasher.Sum(nil)
	m := e.baseManifest(v, key, id, e.versionTime(ctx, v.Name, key), o)
	m.Size, m.Digest, m.ETag = part.Size, digest, etag(o, digest)
	if o.Checksums != nil {
		m.Checksums = o.Checksums()
	}
	m.Parts = []manifest.Part{part.Part}
	if err := e.bindLabel(m, l); err != nil {
		e.abandon(ctx, evidence.Record{Version: id}, shardBlobs)
		return ObjectInfo{}, err
	}
	env, err := manifest.Seal(m, e.sealKeys())
	if err != nil {
		e.abandon(ctx, evidence.Record{Version: id}, shardBlobs)
		return ObjectInfo{}, err
	}
	if err := e.writeCopies(ctx, id, env, manifestSites(m), nil); err != nil {
		e.abandon(ctx, evidence.Record{Version: id}, shardBlobs)
		return ObjectInfo{}, err
	}
	return e.commit(ctx, m, env, shardBlobs, o.If, false)
}

// partSpec says what writePart writes.
type partSpec struct {
	vault   Vault
	key     string
	version manifest.ID
	upload  string // the multipart upload, for a part of one
	number  int
	sites   []string
	size    int64          // -1 if unknown
	hasher  *blake3.Hasher // optional: fed the plaintext
	tee     io.Writer      // optional: also fed the plaintext, in order
	// first, if set, is the part's first stripe, full and already read
	// (the rest follows from the reader): writePart takes the buffer over.
	first *stripeBuf
}

type writtenPart struct {
	manifest.Part
}

func (p writtenPart) blobs() map[string][]string {
	out := map[string][]string{}
	for i, s := range p.Sites {
		out[s] = append(out[s], manifest.ShardBlobName(p.Blob, i))
	}
	return out
}

// stripeJob is one stripe moving through the pipeline.
type stripeJob struct {
	index  uint64
	final  bool
	n      int
	buf    *stripeBuf
	shards [][]byte
	done   chan struct{}
	err    error
	refs   atomic.Int32
}

// shardReader is the body of one shard blob as its site's Put reads it:
// each stripe's block of the shard followed by the block's checksum, in
// stripe order, copied straight from the stripe buffers (the only copy on
// the way to the site: a dir site's O_DIRECT writes need their own aligned
// buffer). A stripe is given back (release) once read past. When the
// stripes end because the write failed, Read returns the cause, so that the
// site stores nothing. Its mutex only guards against a driver that reads
// after its Put returned (net/http may, for a request body): such a read
// gets an error once the reader is drained.
type shardReader struct {
	ctx     context.Context
	in      <-chan *stripeJob
	shard   int
	sumSize int // bytes of each block's checksum (the part's algorithm)
	release func(*stripeJob)

	mu      sync.Mutex
	cur     *stripeJob
	block   []byte // what is left to read of cur's block
	sum     []byte // and of its checksum
	drained bool
}

var errDrained = errors.New("shard reader read after its put returned")

func (r *shardReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.drained {
		return 0, errDrained
	}
	n := 0
	for len(p) > 0 {
		if len(r.block) == 0 && len(r.sum) == 0 {
			if r.cur != nil {
				r.release(r.cur)
				r.cur = nil
			}
			var j *stripeJob
			var ok bool
			if n == 0 {
				j, ok = <-r.in
			} else {
				// Return what was read rather than wait.
				select {
				case j, ok = <-r.in:
				default:
					return n, nil
				}
			}
			if !ok {
				if n > 0 {
					return n, nil
				}
				if cause := context.Cause(r.ctx); cause != nil {
					return 0, cause
				}
				return 0, io.EOF
			}
			r.cur, r.block, r.sum = j, j.shards[r.shard], j.buf.sums[r.shard][:r.sumSize]
		}
		var m int
		if len(r.block) > 0 {
			m = copy(p, r.block)
			r.block = r.block[m:]
		} else {
			m = copy(p, r.sum)
			r.sum = r.sum[m:]
		}
		n += m
		p = p[m:]
	}
	return n, nil
}

// drain gives back the stripes that Put did not read (it failed, or
// stopped at the blob's size).
func (r *shardReader) drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drained = true
	if r.cur != nil {
		r.release(r.cur)
		r.cur = nil
	}
	for j := range r.in {
		r.release(j)
	}
}

// writePart streams r as one part: stripes are sealed and coded by a pool
// of workers while each shard's site reads its blocks from them. Memory is
// bounded by the stripes in flight, whatever the part's size.
func (e *Engine) writePart(ctx context.Context, ps partSpec, r io.Reader) (part writtenPart, err error) {
	v, p := ps.vault, ps.vault.Policy
	first := ps.first
	defer func() {
		if first != nil {
			putBuf(p.K, p.M, v.StripeSize, first)
		}
	}()
	n := p.N()
	coder, err := coderFor(p.K, p.M)
	if err != nil {
		return part, err
	}
	dk, err := seal.NewDataKey()
	if err != nil {
		return part, err
	}
	stripes, err := seal.NewStripes(dk, seal.StripeContext{ObjectID: objectID(v.Name, ps.key), VersionID: ps.version, Part: uint32(ps.number)})
	if err != nil {
		return part, err
	}
	blob := manifest.NewID()
	part.Part = manifest.Part{Number: ps.number, Blob: blob, Sites: ps.sites, BlockSum: e.writeSum()}
	sum := part.BlockSum
	// The shard blobs do not describe themselves: say what they are for
	// before writing them, so that the node can later show they belong to
	// a write that never committed. Without the record they are kept.
	if err := e.intent(ctx, ps.version, ps.upload, blob, ps.sites); err != nil {
		e.log.WarnContext(ctx, "intent not recorded on every site; its blobs are kept if the write is abandoned", "version", ps.version, "err", err)
	}
	if ps.hasher == nil {
		ps.hasher = blake3.New()
	}
	blobSize := int64(-1)
	if ps.size >= 0 {
		blobSize = geometry{k: p.K, m: p.M, stripe: v.StripeSize, size: ps.size, sum: sum}.blobSize()
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// One site writer per shard: the site's Put reads the shard's blocks
	// straight from the stripe buffers, in stripe order (shardReader).
	stores := make([]site.Site, n)
	for i, sid := range ps.sites {
		s, ok := e.site(sid)
		if !ok {
			return part, fmt.Errorf("site %s not configured", sid)
		}
		stores[i] = s.Store
	}
	release := func(j *stripeJob) {
		if j.refs.Add(-1) == 0 {
			putBuf(p.K, p.M, v.StripeSize, j.buf)
		}
	}
	putErrs := make([]error, n)
	var puts sync.WaitGroup
	chans := make([]chan *stripeJob, n)
	for i, sid := range ps.sites {
		chans[i] = make(chan *stripeJob, 4)
		puts.Go(func() {
			sr := &shardReader{ctx: ctx, in: chans[i], shard: i, sumSize: sum.Size(), release: release}
			err := stores[i].Put(ctx, manifest.ShardBlobName(blob, i), sr, blobSize)
			if err != nil {
				// Stop the write before draining what is in flight.
				se := &siteError{sid, err}
				putErrs[i] = se
				cancel(se)
			}
			sr.drain()
		})
	}

	// Workers seal and code; the dispatcher hands stripes to the writers
	// in order.
	workers := max(2, runtime.GOMAXPROCS(0))
	work := make(chan *stripeJob, workers)
	order := make(chan *stripeJob, workers+2)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range work {
				sealed := stripes.Seal(j.buf.b[:0], j.buf.b[:j.n], j.index, j.final)
				j.shards, j.err = coder.Encode(j.buf.b, len(sealed))
				if j.err == nil {
					sum.SumShards(j.buf.sums, erasure.BlockID{Version: blob, Part: uint32(ps.number), Stripe: j.index}, j.buf.room, coder.ShardSize(len(sealed)))
				}
				close(j.done)
			}
		})
	}
	// The plaintext's hashes (the part's digest, and tee: the S3 ETag's
	// MD5) are taken in stripe order by a goroutine of their own, the two
	// side by side, while the next stripe is read (and its aws-chunked
	// signatures checked) and earlier ones are sealed: done in the
	// reading goroutine, they were most of its work. A stripe is sealed
	// in place, so it goes on to the workers only once hashed.
	hashq := make(chan *stripeJob, 1)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for j := range hashq {
			plain := j.buf.b[:j.n]
			if ps.tee != nil {
				var both sync.WaitGroup
				both.Go(func() { ps.hasher.Write(plain) })
				ps.tee.Write(plain)
				both.Wait()
			} else {
				ps.hasher.Write(plain)
			}
			order <- j
			work <- j
		}
	}()
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		for j := range order {
			<-j.done
			if j.err != nil {
				cancel(j.err)
			}
			if ctx.Err() != nil {
				putBuf(p.K, p.M, v.StripeSize, j.buf)
				continue
			}
			j.refs.Store(int32(n))
			for i := range n {
				chans[i] <- j
			}
		}
		for i := range n {
			close(chans[i])
		}
	}()

	// Read stripes, looking one ahead to know which is final.
	var total int64
	readErr := func() error {
		cur, cn, short, err := first, v.StripeSize, false, error(nil)
		first = nil
		if cur == nil {
			cur = getBuf(p.K, p.M, v.StripeSize)
			cn, short, err = readFull(r, cur.b[:v.StripeSize])
		}
		for idx := uint64(0); ; idx++ {
			if err != nil {
				putBuf(p.K, p.M, v.StripeSize, cur)
				return err
			}
			if err := ctx.Err(); err != nil {
				putBuf(p.K, p.M, v.StripeSize, cur)
				return context.Cause(ctx)
			}
			var next *stripeBuf
			var nn int
			var nshort bool
			final := short
			if !short {
				next = getBuf(p.K, p.M, v.StripeSize)
				nn, nshort, err = readFull(r, next.b[:v.StripeSize])
				if nn == 0 && nshort && err == nil {
					final = true
					putBuf(p.K, p.M, v.StripeSize, next)
					next = nil
				}
			}
			total += int64(cn)
			if ps.size >= 0 && total > ps.size {
				putBuf(p.K, p.M, v.StripeSize, cur)
				if next != nil {
					putBuf(p.K, p.M, v.StripeSize, next)
				}
				return sizeError(total, ps.size)
			}
			hashq <- &stripeJob{index: idx, final: final, n: cn, buf: cur, done: make(chan struct{})}
			if final {
				return nil
			}
			cur, cn, short = next, nn, nshort
		}
	}()
	if readErr == nil && ps.size >= 0 && total != ps.size {
		readErr = sizeError(total, ps.size)
	}
	if readErr != nil {
		cancel(readErr)
	}
	close(hashq)
	<-hashed
	close(work)
	close(order)
	wg.Wait()
	<-dispatched
	puts.Wait()

	// The first failure is the cause: a site's failure aborts the other
	// sites' writes, whose errors then only echo it.
	if cause := context.Cause(ctx); cause != nil {
		e.abandon(ctx, evidence.Record{Version: ps.version, Upload: ps.upload}, part.blobs())
		return part, cause
	}
	if err := errors.Join(putErrs...); err != nil {
		e.abandon(ctx, evidence.Record{Version: ps.version, Upload: ps.upload}, part.blobs())
		return part, err
	}
	wrapped, err := e.k().WrapDataKey(v.keyName(), keyGen(v), dk, partAAD(ps.version, ps.number, blob))
	if err != nil {
		e.abandon(ctx, evidence.Record{Version: ps.version, Upload: ps.upload}, part.blobs())
		return part, err
	}
	part.Size, part.WrappedKey, part.Digest, part.KeyGen = total, wrapped, ps.hasher.Sum(nil), keyGen(v)
	return part, nil
}
