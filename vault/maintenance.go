package vault

// This file is the engine's interface to housekeeping (package
// housekeeping): the primitives that scrub, repair, garbage collection,
// drills and index rebuilds are made of. Housekeeping decides what to check,
// where shards should go and what may be removed; the engine carries out
// each step with the same commit order as its own writes (new shards, then
// every manifest copy, then the index, and only then removal of what was
// replaced, under a signed record of why).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
)

// OpenEnvelope verifies and opens a manifest envelope with the keys in
// force (during a root rotation, the previous keys too).
func (e *Engine) OpenEnvelope(env []byte) (*manifest.Manifest, error) {
	return manifest.Open(env, e.k())
}

// Site returns a configured site.
func (e *Engine) Site(id string) (Site, bool) {
	s, ok := e.site(id)
	if !ok {
		return Site{}, false
	}
	return *s, true
}

// NodeID returns the id of the node the engine belongs to.
func (e *Engine) NodeID() string { return e.node }

// Keys returns the keys in force.
func (e *Engine) Keys() Keys { return e.k() }

// Index returns the engine's index.
func (e *Engine) Index() index.Index { return e.index }

// SiteIDs returns the configured site ids, sorted.
func (e *Engine) SiteIDs() []string { return e.siteIDs() }

// SetDraining marks sites as draining: new writes avoid them and scrub
// moves their shards off. It waits for commits already checked, and every
// commit after it that placed a shard or copy on one of the sites is
// refused with ErrReconfigured (gate.go).
func (e *Engine) SetDraining(ids []string) {
	e.gate.Lock()
	defer e.gate.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.draining = map[string]bool{}
	for _, id := range ids {
		e.draining[id] = true
	}
}

// IsDraining reports whether a site is being emptied.
func (e *Engine) IsDraining(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.draining[id]
}

// SiteDescriptors returns every configured site's attributes, by id.
func (e *Engine) SiteDescriptors() map[string]site.Descriptor {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := map[string]site.Descriptor{}
	for id, s := range e.sites {
		out[id] = s.Descriptor
	}
	return out
}

// Placement returns the policy a version's shards must keep — the vault's
// policy with the version's own erasure code, requiring accredited sites
// when the version is labelled — and the version's label (nil when
// unlabelled or when the node has no label policies).
func (e *Engine) Placement(v Vault, m *manifest.Manifest) (placement.Policy, *label.Label) {
	policy := v.Policy
	policy.K, policy.M = m.K, m.M
	if m.Label == "" || e.labels == nil {
		return policy, nil
	}
	l, err := e.labelOf(m.Label)
	if err != nil {
		return policy, nil
	}
	return withLabel(policy), &l
}

// Candidates lists the sites placement may choose for data labelled l
// (nil: unlabelled). Sites in exclude, down or draining are marked down.
func (e *Engine) Candidates(exclude map[string]bool, l *label.Label) []placement.Candidate {
	return e.candidates(exclude, l)
}

// SiteAccredited reports whether site id may hold data labelled l.
func (e *Engine) SiteAccredited(id string, l *label.Label) bool {
	s, ok := e.site(id)
	return ok && (l == nil || e.accredited(s.Accredited, l))
}

// ShardBlobSize returns the size of each shard blob of a part that is not
// inline.
func ShardBlobSize(m *manifest.Manifest, p manifest.Part) int64 {
	return partGeometry(m, p).blobSize()
}

// ErrShardDamaged: a shard blob's bytes fail their checksums, have the
// wrong size or end early. Another shard may still be intact.
var ErrShardDamaged = erasure.ErrChecksum

// VerifyShard reads shard i of part p of m and checks every block's
// checksum. wait, if set, is called before each block with its size (a
// rate limit). It returns the bytes read and an error wrapping
// ErrShardDamaged for damage, or the site's error.
func (e *Engine) VerifyShard(ctx context.Context, m *manifest.Manifest, p manifest.Part, i int, wait func(context.Context, int) error) (int64, error) {
	g := partGeometry(m, p)
	s, ok := e.site(p.Sites[i])
	if !ok {
		return 0, fmt.Errorf("site %s not configured: %w", p.Sites[i], site.ErrNotFound)
	}
	var rc io.ReadCloser
	var err error
	if p.Inline {
		// As a GET reads it: the copy's envelope header, then this
		// shard's block, into the block buffer below (the copy is not
		// read whole unless the block is not at its place).
		rc, err = inlineReader(ctx, s.Store, manifest.BlobName(m.Version), i, p, g)
	} else {
		name := manifest.ShardBlobName(p.Blob, i)
		info, serr := s.Store.Stat(ctx, name)
		if serr != nil {
			return 0, serr
		}
		if info.Size != g.blobSize() {
			return 0, fmt.Errorf("%w: blob %s is %d bytes, want %d", erasure.ErrChecksum, name, info.Size, g.blobSize())
		}
		// Each blob is read once, start to end: from the disk, not a
		// cache (a scrub checks what the medium holds, and does not push
		// what readers use out of the page cache).
		rc, err = s.Store.Get(site.WithColdRead(ctx), name, 0, -1)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	stripes := g.stripes()
	if p.Inline {
		stripes = 1
	}
	// Blocks are read after erasure.HeadRoom bytes, to be verified in
	// place (VerifyIn).
	buf := getBlock(erasure.HeadRoom + int(g.blockStride()))
	defer putBlock(buf)
	var n int64
	for j := range stripes {
		size := g.blockSize(j)
		b := (*buf)[:erasure.HeadRoom+size]
		if wait != nil {
			if err := wait(ctx, size); err != nil {
				return n, err
			}
		}
		if _, err := io.ReadFull(rc, b[erasure.HeadRoom:]); err != nil {
			if errors.Is(err, site.ErrUnavailable) || ctx.Err() != nil {
				// The site (a connection lost in mid-read) or the caller
				// ended the read: that says nothing of the shard.
				return n, fmt.Errorf("shard %d stripe %d: %w", i, j, err)
			}
			return n, fmt.Errorf("%w: stripe %d: %v", erasure.ErrChecksum, j, err)
		}
		n += int64(size)
		_, err := g.sum.VerifyIn(blockID(p, j, i), b)
		if err != nil && p.Inline {
			// Relocated under the scrub: see movedInlineBlock.
			if tail, _, terr := inlineTail(ctx, s.Store, manifest.BlobName(m.Version), i, p, g); terr == nil {
				_, err = movedInlineBlock(tail, b, g.sum, blockID(p, j, i), err)
			}
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// PartCheck is what [Engine.VerifyPartDeep] found of a part's shards, by
// shard index.
type PartCheck struct {
	// Bad marks shards that cannot serve: skipped, missing, unreadable,
	// damaged or replaced.
	Bad []bool
	// Corrupt marks the bad shards that were there but wrong: a block
	// failing its checksum, a blob of the wrong size or ending early, a
	// block replaced along with a valid checksum.
	Corrupt []bool
	// Replaced marks shards with a block replaced along with a valid
	// checksum: only the authentication or the parity coded again shows
	// those.
	Replaced []bool
	// Read is the shard bytes read.
	Read int64
	// Stripes counts the stripes read, authenticated and checked.
	Stripes int64
}

// VerifyPartDeep reads part p of m as a repair does, every shard of every
// stripe, in one pass (scrub's deep check): each block's checksum is
// verified where it lands, each stripe's data is authenticated (AES-GCM),
// a data block that fails is found by leaving blocks out, and every parity
// block is compared with the authenticated data coded again. It checks
// everything [Engine.VerifyShard] checks of each shard (a blob of the
// wrong size is damaged) and what it cannot see: a block replaced along
// with a valid checksum. Shards marked in skip (on lost sites) are not
// read and count as bad. wait, if set, is called before each block with
// its size (a rate limit). An error wrapping ErrUnreadable means a stripe
// had fewer than k intact blocks, or more forged than the part can spare:
// the reading stopped there, and shards found good so far were read only
// up to it.
func (e *Engine) VerifyPartDeep(ctx context.Context, m *manifest.Manifest, p manifest.Part, skip []bool, wait func(context.Context, int) error) (PartCheck, error) {
	g := partGeometry(m, p)
	n := g.k + g.m
	pc := PartCheck{Bad: make([]bool, n), Corrupt: make([]bool, n), Replaced: make([]bool, n)}
	for i := range n {
		pc.Bad[i] = i < len(skip) && skip[i]
	}
	last := g.stripes() - 1
	if p.Inline {
		last = 0
	} else {
		// A shard blob longer than its blocks is damaged too, as
		// VerifyShard finds: the stripes' reads would not see the extra.
		var wg sync.WaitGroup
		for i, sid := range p.Sites {
			if pc.Bad[i] {
				continue
			}
			wg.Go(func() {
				s, ok := e.site(sid)
				if !ok {
					pc.Bad[i] = true
					return
				}
				info, err := s.Store.Stat(ctx, manifest.ShardBlobName(p.Blob, i))
				if err == nil && info.Size != g.blobSize() {
					pc.Corrupt[i] = true
				}
				if err != nil || pc.Corrupt[i] {
					pc.Bad[i] = true
				}
			})
		}
		wg.Wait()
	}
	// The shards known bad by now are not read.
	shell := &Reader{e: e, ctx: ctx, m: m, readAll: true, skip: map[[2]int]bool{}}
	for i, b := range pc.Bad {
		if b {
			shell.skip[[2]int{p.Number, i}] = true
		}
	}
	pr, err := e.newPartReader(site.WithColdRead(ctx), shell, p, g, 0, last)
	if err != nil {
		return pc, err
	}
	defer pr.close()
	good := 0
	for _, b := range pc.Bad {
		if !b {
			good++
		}
	}
	for j := int64(0); j <= last; j++ {
		if wait != nil {
			for range good {
				if err := wait(ctx, g.blockSize(j)); err != nil {
					return pc, err
				}
			}
		}
		_, err = pr.stripe(j) // readAll: the parity is checked too (stripeWith)
		pc.Read += int64(good * g.blockSize(j))
		if err != nil {
			break
		}
		pc.Stripes++
	}
	for _, pb := range shell.Problems() {
		if pb.Part != p.Number || pb.Shard < 0 || pb.Shard >= n {
			continue
		}
		pc.Bad[pb.Shard] = true
		switch {
		case errors.Is(pb.Err, ErrBlockReplaced):
			pc.Corrupt[pb.Shard], pc.Replaced[pb.Shard] = true, true
		case errors.Is(pb.Err, erasure.ErrChecksum), errors.Is(pb.Err, io.ErrUnexpectedEOF), errors.Is(pb.Err, io.EOF):
			pc.Corrupt[pb.Shard] = true
		}
	}
	return pc, err
}

// Relocation says where the shards of a version should be after a repair
// or a move.
type Relocation struct {
	// Sites gives, for each part (as in the manifest's Parts), the site of
	// every shard afterwards. A nil entry keeps the part as it is.
	Sites [][]string
	// Bad marks, for each part, shards that are missing or corrupt: they
	// are not read and are rebuilt from the others.
	Bad [][]bool
	// Lost sites are neither read from nor cleaned up (drills, sites that
	// do not answer).
	Lost map[string]bool
}

// RelocateResult says what Relocate did.
type RelocateResult struct {
	BytesWritten int64 // shard bytes written
	ShardsMoved  int
	// Problems counts damaged blocks met in shards that were kept: the
	// version should be checked again.
	Problems int
}

// Relocate rebuilds the shards of m that change site or are bad, stripe
// by stripe from the intact ones (each stripe authenticated before use),
// writes them to their new sites, writes a new manifest revision to every
// site that will hold the version, commits it to the index, and only then
// removes what it replaced, under a signed record. If the new revision
// cannot be written everywhere, the sites already written get their old
// copy back; if the index write fails nothing is removed. A crash at any
// point leaves the old placement or the new one.
//
// m is the revision the caller read (scrub, before checking the shards):
// under the version's lock, the index must still hold that revision, or the
// move would write it, one up, over a change committed since (a lock set
// while the shards were read) and the change would be lost; it is then
// ErrChanged, and nothing is written.
func (e *Engine) Relocate(ctx context.Context, m *manifest.Manifest, r Relocation) (res RelocateResult, err error) {
	unlock, err := e.lockRevision(ctx, m, "relocate")
	if err != nil {
		return res, err
	}
	defer unlock()
	newM := *m
	newM.Parts = slices.Clone(m.Parts)
	oldBlobs := map[string][]string{}
	tails := map[string][]byte{}
	shell := &Reader{e: e, ctx: ctx, m: m, skip: map[[2]int]bool{}, exclude: r.Lost, readAll: true}
	rebuild := map[[2]int]bool{}
	for pi, p := range m.Parts {
		var bad []int
		usable, k := 0, partGeometry(m, p).k
		for i, sid := range p.Sites {
			switch {
			case pi < len(r.Bad) && i < len(r.Bad[pi]) && r.Bad[pi][i]:
				bad = append(bad, i)
			case !r.Lost[sid]:
				usable++
			}
		}
		for _, i := range bad {
			rebuild[[2]int{p.Number, i}] = true
			// A bad shard is not read: the others rebuild it. But when
			// fewer than k others are left, the bad ones that are there
			// are read too: damage scattered over more shards than the
			// parity, at most m blocks a stripe, leaves every stripe
			// readable from the blocks that are good, and their rebuilt
			// shards replace them whole.
			if usable >= k || r.Lost[p.Sites[i]] {
				shell.skip[[2]int{p.Number, i}] = true
			}
		}
	}
	// Say, before writing anything, which blobs this move creates and
	// which it replaces, so that whichever revision ends up in force, the
	// node can later show which of them are garbage.
	intent := evidence.Record{Kind: evidence.Intent, Version: m.Version, Revision: m.Revision + 1}
	planned := *m
	planned.Parts = slices.Clone(m.Parts)
	for pi, p := range m.Parts {
		if pi >= len(r.Sites) || r.Sites[pi] == nil {
			continue
		}
		planned.Parts[pi].Sites = r.Sites[pi]
		for i, sid := range r.Sites[pi] {
			if i < len(p.Sites) && sid != p.Sites[i] && !p.Inline {
				name := manifest.ShardBlobName(p.Blob, i)
				intent.Blobs = append(intent.Blobs, evidence.Blob{Name: name, Site: sid}, evidence.Blob{Name: name, Site: p.Sites[i]})
			}
		}
	}
	// Manifest copies gained or dropped.
	oldCopies, newCopies := manifestSites(m), manifestSites(&planned)
	for _, sid := range oldCopies {
		if !slices.Contains(newCopies, sid) {
			intent.Blobs = append(intent.Blobs, evidence.Blob{Name: manifest.BlobName(m.Version), Site: sid})
		}
	}
	for _, sid := range newCopies {
		if !slices.Contains(oldCopies, sid) {
			intent.Blobs = append(intent.Blobs, evidence.Blob{Name: manifest.BlobName(m.Version), Site: sid})
		}
	}
	if len(intent.Blobs) > 0 {
		if err := e.journal.Append(ctx, nil, intent); err != nil {
			e.log.WarnContext(ctx, "move not recorded; blobs it leaves if cut short are kept", "version", m.Version, "err", err)
		}
	}
	for pi, p := range m.Parts {
		next := p.Sites
		if pi < len(r.Sites) && r.Sites[pi] != nil {
			next = r.Sites[pi]
			if len(next) != len(p.Sites) {
				return res, fmt.Errorf("relocate %s version %s part %d: %d sites for %d shards", m.Key, m.Version, p.Number, len(next), len(p.Sites))
			}
		}
		changed := map[int]bool{}
		for i := range next {
			if next[i] != p.Sites[i] || rebuild[[2]int{p.Number, i}] {
				changed[i] = true
			}
		}
		if len(changed) == 0 && !p.Inline {
			continue
		}
		g := partGeometry(m, p)
		if p.Inline {
			// Every copy is rewritten with the new revision, so every
			// site's blocks are needed.
			full, err := e.rebuildInline(ctx, shell, p, g)
			if err != nil {
				return res, err
			}
			for i, sid := range next {
				tails[sid] = append(tails[sid], full[i]...)
			}
			res.BytesWritten += int64(len(changed)) * int64(g.blockSize(0))
		} else if len(changed) > 0 {
			n, err := e.rebuildShards(ctx, shell, p, g, next, changed)
			if err != nil {
				return res, err
			}
			res.BytesWritten += n
			for i := range changed {
				if p.Sites[i] != next[i] {
					oldBlobs[p.Sites[i]] = append(oldBlobs[p.Sites[i]], manifest.ShardBlobName(p.Blob, i))
				}
			}
		}
		for i := range changed {
			if p.Sites[i] != next[i] {
				res.ShardsMoved++
			}
		}
		newM.Parts[pi].Sites = next
	}
	newM.Revision++
	env, err := manifest.Seal(&newM, e.sealKeys())
	if err != nil {
		return res, err
	}
	newCopies = manifestSites(&newM)
	var oldTails map[string][]byte
	if len(tails) > 0 {
		// Inline: the old copies are rebuilt from the same shards, to
		// restore them if a new copy cannot be written everywhere.
		oldTails = map[string][]byte{}
		for _, p := range m.Parts {
			if !p.Inline {
				continue
			}
			full, err := e.rebuildInline(ctx, shell, p, partGeometry(m, p))
			if err != nil {
				return res, err
			}
			for i, sid := range p.Sites {
				oldTails[sid] = append(oldTails[sid], full[i]...)
			}
		}
	}
	oldEnv, err := e.index.Get(ctx, m.Vault, m.Key, m.Version)
	if err != nil {
		return res, err
	}
	if err := e.replaceCopies(ctx, m.Version, env, newCopies, tails, oldEnv.Envelope, manifestSites(m), oldTails); err != nil {
		return res, err
	}
	if _, err := e.recommit(ctx, KindMove, &newM, env); err != nil {
		return res, err
	}
	// Only now remove what was replaced.
	for _, sid := range manifestSites(m) {
		if !slices.Contains(newCopies, sid) {
			oldBlobs[sid] = append(oldBlobs[sid], manifest.BlobName(m.Version))
		}
	}
	for sid := range oldBlobs {
		if r.Lost[sid] {
			delete(oldBlobs, sid)
		}
	}
	e.abandon(ctx, evidence.Record{Version: m.Version, Revision: newM.Revision}, oldBlobs)
	e.log.InfoContext(ctx, "version relocated", "vault", m.Vault, "version", m.Version, "revision", newM.Revision)
	res.Problems = len(shell.Problems())
	return res, nil
}

// RestoreCopies writes env, the verified envelope of a version without
// inline parts (or a delete marker), to sites that miss a copy or hold a
// damaged one.
//
// m is the revision the caller read (scrub, before checking the copies):
// under the version's lock the index must still hold it, or env would be
// written over a newer revision that a change wrote to those sites
// meanwhile (ErrChanged, nothing written; scrub checks the version again).
func (e *Engine) RestoreCopies(ctx context.Context, m *manifest.Manifest, env []byte, sites []string) error {
	for _, p := range m.Parts {
		if p.Inline {
			return fmt.Errorf("restore copies of %s version %s: inline blocks must be rebuilt (Relocate)", m.Key, m.Version)
		}
	}
	unlock, err := e.lockRevision(ctx, m, "restore copies of")
	if err != nil {
		return err
	}
	defer unlock()
	errs := e.putCopies(ctx, manifest.BlobName(m.Version), env, sites, nil)
	return errors.Join(errs...)
}

// fullStripe reads stripe j through pr (which authenticates it) and returns
// all k+m shards of it, reconstructing the missing ones. Shard i stands at
// bufs[i][erasure.HeadRoom:], with room for its checksum after it: its
// block is summed in place (erasure.Checksum.SumIn), as the put's are.
func (pr *partReader) fullStripe(j int64) (full, bufs [][]byte, err error) {
	n := pr.g.k + pr.g.m
	bs := pr.g.blockSize(j)
	full, bufs = make([][]byte, n), make([][]byte, n)
	for i := range n {
		bufs[i] = make([]byte, erasure.HeadRoom+bs)
		full[i] = bufs[i][erasure.HeadRoom:erasure.HeadRoom]
	}
	have := 0
	_, err = pr.stripeWith(j, func(shards [][]byte) {
		for i, sh := range shards {
			if sh != nil {
				full[i] = append(full[i], sh...)
				have++
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if have < n {
		// The missing shards (empty, with room for a shard) are
		// reconstructed into their buffers.
		if err := pr.coder.Reconstruct(full); err != nil {
			return nil, nil, err
		}
	}
	return full, bufs, nil
}

// rebuildInline returns every shard block (data and checksum) of an inline
// part's single stripe.
func (e *Engine) rebuildInline(ctx context.Context, shell *Reader, p manifest.Part, g geometry) ([][]byte, error) {
	pr, err := e.newPartReader(ctx, shell, p, g, 0, 0)
	if err != nil {
		return nil, err
	}
	defer pr.close()
	full, bufs, err := pr.fullStripe(0)
	if err != nil {
		return nil, err
	}
	// The part keeps its algorithm: a rebuilt block of a BLAKE3 part is
	// a BLAKE3 block.
	for i, shard := range full {
		ss := len(shard)
		if ss > 0 && erasure.HeadRoom+ss+g.sum.Size() <= len(bufs[i]) && &shard[0] == &bufs[i][erasure.HeadRoom] {
			block := bufs[i][erasure.HeadRoom : erasure.HeadRoom+ss+g.sum.Size()]
			g.sum.SumIn(block[ss:], blockID(p, 0, i), bufs[i][:erasure.HeadRoom+ss])
			full[i] = block
		} else {
			// Not in its buffer (the erasure code allocated it).
			var sum [erasure.MaxSumSize]byte
			full[i] = append(shard, g.sum.Sum(sum[:], blockID(p, 0, i), shard)...)
		}
	}
	return full, nil
}

// rebuildShards streams the shards in changed, rebuilt stripe by stripe
// from the intact ones, to their sites in next. It returns the bytes
// written.
//
// Each stripe is read and authenticated through pr; the shards to write
// are rebuilt (missing parity) or copied (data, and intact shards that
// move) straight into blocks of a queue per site, which that site's Put
// drains while the next stripes are read and rebuilt: the site's writes
// (O_DIRECT and synchronous on a dir site) overlap the reads and the
// coding. The queues hold at most rebuildQueue bytes of blocks for the
// part, so memory stays bounded however large the part.
func (e *Engine) rebuildShards(ctx context.Context, shell *Reader, p manifest.Part, g geometry, next []string, changed map[int]bool) (int64, error) {
	for i := range changed {
		if _, ok := e.site(next[i]); !ok {
			return 0, fmt.Errorf("site %s not configured", next[i])
		}
	}
	// The survivors are read once, start to end, and most likely from
	// the disk: a dir site reads them with O_DIRECT, which on the
	// development VM cost a fifth of the CPU per byte of a read through
	// the page cache of data it does not hold (docs/design.md, "What
	// bounds repair on cold reads").
	pr, err := e.newPartReader(site.WithColdRead(ctx), shell, p, g, 0, g.stripes()-1)
	if err != nil {
		return 0, err
	}
	defer pr.close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := g.k + g.m
	stride := int(g.blockStride())
	depth := max(2, rebuildQueue/len(changed)/stride)
	queues := make([]*blockQueue, n)
	errs := make(chan error, len(changed))
	var wg sync.WaitGroup
	for i := range changed {
		s, _ := e.site(next[i])
		q := newBlockQueue(depth)
		queues[i] = q
		wg.Go(func() {
			err := s.Store.Put(ctx, manifest.ShardBlobName(p.Blob, i), q, g.blobSize())
			if err != nil {
				cancel(err)
				errs <- fmt.Errorf("site %s: %w", next[i], err)
			}
		})
	}
	var all []*[]byte          // every block buffer taken, returned once the Puts are done
	room := map[*byte][]byte{} // each queue block's whole buffer, by the block's first byte
	defer func() {
		for _, b := range all {
			putBlock(b)
		}
	}()
	bufs := make([][]byte, n)
	work := make([][]byte, n)
	required := make([]bool, n)
	var written int64
	var werr error
	for j := range g.stripes() {
		ss := g.shardSize(j)
		for i, q := range queues {
			if q == nil {
				continue
			}
			b, err := q.free(ctx, func() []byte {
				// erasure.HeadRoom bytes before the block, for its
				// checksum to be computed in place (SumIn).
				bp := getBlock(erasure.HeadRoom + stride)
				all = append(all, bp)
				b := (*bp)[erasure.HeadRoom:]
				room[&b[0]] = *bp
				return b
			})
			if err != nil {
				werr = err
				break
			}
			bufs[i] = b[:0]
			if i < g.k {
				// A data shard missing from the stripe is rebuilt by
				// its decode straight into the block to write.
				pr.lend(i, bufs[i])
			}
		}
		if werr != nil {
			break
		}
		var rerr error
		_, err := pr.stripeWith(j, func(shards [][]byte) {
			// shards holds every data shard (authenticated with the
			// stripe) and the parity shards read.
			for i := range n {
				required[i] = false
				switch {
				case queues[i] != nil && shards[i] != nil && len(shards[i]) > 0 && &shards[i][0] == &bufs[i][:1][0]:
					work[i] = shards[i] // rebuilt in place by the decode
				case queues[i] != nil && shards[i] != nil:
					work[i] = append(bufs[i], shards[i]...)
				case queues[i] != nil:
					work[i], required[i] = bufs[i], true
				default:
					work[i] = shards[i]
				}
			}
			rerr = pr.coder.ReconstructSome(work, required)
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			werr = err
			break
		}
		for i, q := range queues {
			if q == nil {
				continue
			}
			if len(work[i]) != ss {
				werr = fmt.Errorf("rebuild stripe %d shard %d: %d bytes, want %d", j, i, len(work[i]), ss)
				break
			}
			// The part keeps its algorithm (g.sum): a rebuilt shard of a
			// BLAKE3 part is written with BLAKE3 checksums.
			block := work[i][:g.blockSize(j)]
			if base, ok := room[&block[0]]; ok {
				// The block is still at the start of its buffer (the
				// shard was copied, or rebuilt, into it).
				g.sum.SumIn(block[ss:], blockID(p, j, i), base[:erasure.HeadRoom+ss])
			} else {
				g.sum.Sum(block[ss:], blockID(p, j, i), block[:ss])
			}
			q.push(block)
			written += int64(len(block))
		}
		if werr != nil {
			break
		}
	}
	for _, q := range queues {
		if q != nil {
			q.finish(werr)
		}
	}
	wg.Wait()
	close(errs)
	if werr != nil {
		return written, werr
	}
	for err := range errs {
		return written, err
	}
	return written, nil
}

// rebuildQueue bounds the bytes of rebuilt blocks queued for the sites of
// one part (about 2 MiB per site when two shards are rebuilt, as after
// losing a jurisdiction with 4+2).
const rebuildQueue = 4 << 20

// blockQueue carries blocks from a rebuild to one site's Put (an
// io.Reader) in order, with at most depth blocks in it at a time.
type blockQueue struct {
	full  chan []byte
	spare chan []byte
	made  int
	depth int
	cur   []byte // the block Read is consuming
	held  []byte // cur's buffer, returned to spare when drained
	err   error  // why the writer stopped early (set before full closes)
}

func newBlockQueue(depth int) *blockQueue {
	return &blockQueue{full: make(chan []byte, depth), spare: make(chan []byte, depth), depth: depth}
}

// free returns an empty buffer: a new one (from alloc) while fewer than
// depth exist, else one the reader has drained, waiting for it.
func (q *blockQueue) free(ctx context.Context, alloc func() []byte) ([]byte, error) {
	select {
	case b := <-q.spare:
		return b, nil
	default:
	}
	if q.made < q.depth {
		q.made++
		return alloc(), nil
	}
	select {
	case b := <-q.spare:
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// push queues a filled block (taken from free, so there is room).
func (q *blockQueue) push(b []byte) { q.full <- b }

// finish ends the stream: the reader sees io.EOF after the last block,
// or err if not nil.
func (q *blockQueue) finish(err error) {
	q.err = err
	close(q.full)
}

func (q *blockQueue) Read(p []byte) (int, error) {
	for len(q.cur) == 0 {
		if q.held != nil {
			q.spare <- q.held[:0]
			q.held = nil
		}
		b, ok := <-q.full
		if !ok {
			if q.err != nil {
				return 0, q.err
			}
			return 0, io.EOF
		}
		q.cur, q.held = b, b
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	return n, nil
}

// Unreachable returns the sites that do not answer now.
func (e *Engine) Unreachable(ctx context.Context) map[string]bool {
	out := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range e.siteIDs() {
		s, _ := e.site(id)
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := s.Store.Stat(pctx, "probe/embassy")
			if err != nil && !errors.Is(err, site.ErrNotFound) {
				mu.Lock()
				out[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// replaceCopies writes a new revision of a version's manifest copies (with
// inline tails) to sites. If any write fails, sites already written get
// their old copy back (oldEnv with oldTails) or lose the new one, so the
// version stays as it was.
func (e *Engine) replaceCopies(ctx context.Context, id manifest.ID, env []byte, sites []string, tails map[string][]byte, oldEnv []byte, oldSites []string, oldTails map[string][]byte) error {
	name := manifest.BlobName(id)
	pieces := make(map[string][][]byte, len(tails))
	for sid, t := range tails {
		pieces[sid] = [][]byte{t}
	}
	errs := e.putCopies(ctx, name, env, sites, pieces)
	first := errors.Join(errs...)
	if first == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i, sid := range sites {
		if errs[i] != nil {
			continue
		}
		s, _ := e.site(sid)
		if slices.Contains(oldSites, sid) {
			body := append(append([]byte(nil), oldEnv...), oldTails[sid]...)
			if err := s.Store.Put(rctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
				e.log.ErrorContext(ctx, "repair rollback failed; scrub again", "site", sid, "version", id, "err", err)
			}
		} else {
			s.Store.Delete(rctx, name)
		}
	}
	return first
}

// ReadEnvelope reads the envelope at the start of a manifest blob (which,
// for inline versions, is followed by shard blocks).
func ReadEnvelope(ctx context.Context, s site.Site, name string) ([]byte, error) {
	return readEnvelope(ctx, s, name, 16<<10)
}

// envelopeSlack is how many bytes past its envelope readEnvelope lets the
// buffer it returns hold before it copies the envelope out.
const envelopeSlack = 1 << 10

// readEnvelope is ReadEnvelope asking first for guess bytes: the envelope's
// length when the caller expects one (newestCopy: the index's), so that a
// copy holding it is read with one read of its size, into one buffer.
func readEnvelope(ctx context.Context, s site.Site, name string, guess int) ([]byte, error) {
	guess = max(guess, manifest.HeaderSize)
	rc, err := s.Get(ctx, name, 0, int64(guess))
	if err != nil {
		return nil, err
	}
	// A site may send more than asked: what it sends is outside input.
	head := make([]byte, guess)
	got, err := io.ReadFull(rc, head)
	rc.Close()
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	head = head[:got]
	n, err := manifest.EnvelopeLen(head)
	if err != nil {
		return nil, err
	}
	if n <= len(head) {
		if cap(head)-n > envelopeSlack {
			// The envelope is much shorter than what was read (an inline
			// copy's blocks, or a guess of 16 KiB): callers keep
			// envelopes, a rebuild a batch of them, so the buffer is not
			// kept with it. Returning head[:n] kept 16 KiB for an
			// envelope of 1-2 KiB, 17 MiB of a rebuild's live heap at
			// 100,000 versions (docs/design.md, "A rebuild's envelopes
			// (issue 15, twentieth pass)").
			return bytes.Clone(head[:n]), nil
		}
		return head[:n], nil
	}
	rc, err = s.Get(ctx, name, int64(len(head)), int64(n-len(head)))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	env := make([]byte, n) // not append: its growth would leave slack
	copy(env, head)
	got, err = io.ReadFull(rc, env[len(head):])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("%w: manifest blob %s truncated", manifest.ErrCorrupt, name)
	}
	if err != nil {
		return nil, err
	}
	return env[:len(head)+got], nil
}

// UploadBlobs returns the shard blobs, by site, of every part uploaded so
// far to a multipart upload in progress.
func (e *Engine) UploadBlobs(ctx context.Context, vault, uploadID string) (map[string][]string, error) {
	parts, err := e.parts(ctx, vault, uploadID)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, p := range parts {
		for i, sid := range p.Part.Sites {
			out[sid] = append(out[sid], manifest.ShardBlobName(p.Part.Blob, i))
		}
	}
	return out, nil
}

// SiteDescriptorsList returns every configured site's attributes, by id.
func (e *Engine) SiteDescriptorsList() []site.Descriptor {
	var out []site.Descriptor
	for _, s := range e.Sites() {
		out = append(out, s.Descriptor)
	}
	return out
}
