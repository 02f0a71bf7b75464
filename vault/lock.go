package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// Retention modes.
const (
	Governance = "GOVERNANCE"
	Compliance = "COMPLIANCE"
)

// SetRetention sets a version's retention (mode "" with a zero until
// removes it). COMPLIANCE retention can only be extended, by anyone, never
// shortened or removed until it expires; GOVERNANCE retention can be
// shortened or removed only with bypass (and two custodians), and changed
// to COMPLIANCE only with bypass, as S3 has it: a change of its lock
// settings, though one that only strengthens it, so bypass alone suffices.
func (e *Engine) SetRetention(ctx context.Context, vault, key string, id manifest.ID, mode string, until time.Time, bypass bool) (ObjectInfo, error) {
	switch mode {
	case "", Governance, Compliance:
	default:
		return ObjectInfo{}, fmt.Errorf("retention mode %q: want GOVERNANCE or COMPLIANCE", mode)
	}
	if mode != "" && !until.After(time.Now()) {
		return ObjectInfo{}, fmt.Errorf("retain-until date %s is not in the future", until.Format(time.RFC3339))
	}
	return e.updateLock(ctx, vault, key, id, func(ctx context.Context, cur manifest.Lock) (manifest.Lock, error) {
		now := time.Now()
		active := cur.Mode != "" && now.Before(cur.Until)
		weaker := mode == "" || until.Before(cur.Until) || (cur.Mode == Compliance && mode == Governance)
		if active && !weaker && cur.Mode == Governance && mode == Compliance && !bypass {
			return cur, fmt.Errorf("%w: GOVERNANCE retention until %s can be changed to COMPLIANCE only with the governance bypass (x-amz-bypass-governance-retention: true)", ErrLocked, cur.Until.Format(time.RFC3339))
		}
		if active && weaker {
			if cur.Mode == Compliance {
				return cur, fmt.Errorf("%w: COMPLIANCE retention until %s cannot be shortened or removed", ErrLocked, cur.Until.Format(time.RFC3339))
			}
			if !bypass {
				return cur, fmt.Errorf("%w: GOVERNANCE retention until %s can be shortened or removed only with the governance bypass", ErrLocked, cur.Until.Format(time.RFC3339))
			}
			params := map[string]string{"vault": vault, "key": key, "version": id.String(), "mode": mode}
			if mode != "" {
				params["until"] = until.Format(time.RFC3339Nano)
			}
			if id.IsZero() {
				return cur, fmt.Errorf("shortening retention needs an explicit version id")
			}
			if err := e.require(ctx, Operation{Kind: "object.retention", Params: params,
				Summary: fmt.Sprintf("shorten GOVERNANCE retention of %s/%s version %s from %s to %q %s", vault, key, id, cur.Until.Format(time.RFC3339), mode, until.Format(time.RFC3339))}); err != nil {
				return cur, err
			}
		}
		cur.Mode, cur.Until = mode, until
		if mode == "" {
			cur.Until = time.Time{}
		}
		return cur, nil
	})
}

// SetLegalHold places or lifts a legal hold on a version.
func (e *Engine) SetLegalHold(ctx context.Context, vault, key string, id manifest.ID, on bool) (ObjectInfo, error) {
	return e.updateLock(ctx, vault, key, id, func(_ context.Context, cur manifest.Lock) (manifest.Lock, error) {
		cur.LegalHold = on
		return cur, nil
	})
}

// updateLock rewrites a version's manifest with a changed lock: a new
// revision goes to every site holding a copy, then to the index. Until all
// copies are rewritten the index keeps the old lock, and a later rebuild
// takes the highest revision it finds. change is given the context to
// ask for approval with (require: the version's lock is given up first).
func (e *Engine) updateLock(ctx context.Context, vault, key string, id manifest.ID, change func(context.Context, manifest.Lock) (manifest.Lock, error)) (ObjectInfo, error) {
	return again(ctx, func(ctx context.Context) (ObjectInfo, error) { return e.updateLockOnce(ctx, vault, key, id, change) })
}

func (e *Engine) updateLockOnce(ctx context.Context, vault, key string, id manifest.ID, change func(context.Context, manifest.Lock) (manifest.Lock, error)) (ObjectInfo, error) {
	if err := e.CheckWrite(ctx, vault); err != nil {
		return ObjectInfo{}, err
	}
	// Under the version's lock to its commit: a change made at the same
	// time would otherwise build on the same revision and undo this one
	// (versionlock.go).
	m, ienv, unlock, err := e.resolveLocked(ctx, vault, key, id)
	defer unlock()
	if err != nil {
		return ObjectInfo{}, err
	}
	// The change is made to the newest revision on the sites, which the
	// index may not have (newestCopy): a retention set since the index's
	// backup is the one the change sees, and keeps.
	if m, err = e.newestCopy(ctx, m, ienv); err != nil {
		return ObjectInfo{}, err
	}
	var cur manifest.Lock
	if m.Lock != nil {
		cur = *m.Lock
	}
	next, err := change(withHeld(ctx, unlock), cur)
	if err != nil {
		return ObjectInfo{}, err
	}
	if next == (manifest.Lock{}) {
		m.Lock = nil
	} else {
		m.Lock = &next
	}
	m.Revision++
	env, err := manifest.Seal(m, e.sealKeys())
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := e.rewriteCopies(ctx, m, env); err != nil {
		return ObjectInfo{}, err
	}
	if _, err := e.recommit(ctx, KindLock, m, env); err != nil {
		return ObjectInfo{}, err
	}
	return infoOf(m), nil
}

// rewriteCopies replaces the envelope in every manifest copy of m, keeping
// any inline shard blocks that follow it. A copy is site content: when one
// of an inline version's copies is missing, or damaged so that its blocks
// cannot be found (its envelope header cut or garbled, or the copy cut
// inside its envelope or its blocks), every copy is written from blocks
// rebuilt from the good ones (rebuildInline: each block's checksum
// verified, the stripe authenticated), the damaged copy included. That
// needs k good blocks; with fewer, nothing is written and the change fails
// naming the damaged copies. A site that does not answer fails the change
// as before (its copy cannot be rewritten).
//
// A site whose copy's name holds a file that is not a blob (site.ErrNotBlob:
// a FIFO put in a directory site, which the driver neither reads, replaces
// nor removes) has no copy to rewrite: its copy is left out, as a damaged
// one whose blocks are rebuilt from the others, named in the log, and the
// change goes on with the others; before, every change of that version
// failed until an operator removed the file. At least one copy must be
// written.
func (e *Engine) rewriteCopies(ctx context.Context, m *manifest.Manifest, env []byte) error {
	name := manifest.BlobName(m.Version)
	sites := manifestSites(m)
	errs := make([]error, len(sites))
	var inline []manifest.Part
	held := map[string]int{} // inline blocks each site's copy holds
	for _, p := range m.Parts {
		if p.Inline {
			inline = append(inline, p)
			for _, sid := range p.Sites {
				held[sid] += partGeometry(m, p).blockSize(0)
			}
		}
	}
	var wg sync.WaitGroup
	if len(inline) == 0 {
		for i, sid := range sites {
			s, ok := e.site(sid)
			if !ok {
				errs[i] = fmt.Errorf("site %s not configured", sid)
				continue
			}
			// The copy is the envelope alone: written over whatever the
			// site holds, which also repairs a damaged copy.
			wg.Go(func() {
				if err := s.Store.Put(ctx, name, bytes.NewReader(env), int64(len(env))); err != nil {
					errs[i] = fmt.Errorf("site %s: %w", sid, err)
				}
			})
		}
		wg.Wait()
		return e.rewritten(ctx, m, errs)
	}
	// Read every copy's blocks.
	tails := make([][]byte, len(sites))
	damaged := make([]error, len(sites))
	for i, sid := range sites {
		s, ok := e.site(sid)
		if !ok {
			errs[i] = fmt.Errorf("site %s not configured", sid)
			continue
		}
		wg.Go(func() {
			rc, err := s.Store.Get(ctx, name, 0, -1)
			if errors.Is(err, site.ErrNotFound) {
				damaged[i] = fmt.Errorf("site %s: copy missing: %w", sid, err)
				return
			}
			if errors.Is(err, site.ErrNotBlob) {
				damaged[i] = fmt.Errorf("site %s: no copy: %w", sid, err)
				return
			}
			if err != nil {
				errs[i] = fmt.Errorf("site %s: %w", sid, err)
				return
			}
			old, err := readInline(rc, manifest.MaxEnvelope+int64(held[sid]), 0)
			rc.Close()
			if err != nil {
				errs[i] = fmt.Errorf("site %s: %w", sid, err)
				return
			}
			n, err := manifest.EnvelopeLen(old)
			switch {
			case err != nil:
			case n > len(old):
				err = fmt.Errorf("%w: copy of %d bytes cut inside its envelope of %d", manifest.ErrCorrupt, len(old), n)
			case len(old)-n != held[sid]:
				err = fmt.Errorf("%w: copy holds %d bytes of blocks after its envelope, want %d", manifest.ErrCorrupt, len(old)-n, held[sid])
			}
			if err != nil {
				damaged[i] = fmt.Errorf("site %s: damaged copy: %w", sid, err)
				return
			}
			tails[i] = old[n:]
		})
	}
	wg.Wait()
	if err := rewriteErr(m, errs); err != nil {
		return err
	}
	if bad := errors.Join(damaged...); bad != nil {
		// Rebuild every copy's blocks from the good ones.
		rebuilt, err := e.inlineTails(ctx, m, inline, sites, damaged)
		if err != nil {
			return fmt.Errorf("rewrite manifest of %s/%s version %s: %w; the inline blocks cannot be rebuilt from the other copies: %w (nothing written: every copy keeps the old lock; a scrub reports the damage)", m.Vault, m.Key, m.Version, bad, err)
		}
		tails = rebuilt
		e.log.WarnContext(ctx, "lock change: damaged manifest copies rewritten from the others", "vault", m.Vault, "version", m.Version, "err", bad)
	}
	for i, sid := range sites {
		s, _ := e.site(sid)
		wg.Go(func() {
			body := append(append(make([]byte, 0, len(env)+len(tails[i])), env...), tails[i]...)
			if err := s.Store.Put(ctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
				errs[i] = fmt.Errorf("site %s: %w", sid, err)
			}
		})
	}
	wg.Wait()
	return e.rewritten(ctx, m, errs)
}

// rewriteErr is rewriteCopies' error for the copies' errors errs.
func rewriteErr(m *manifest.Manifest, errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rewrite manifest of %s/%s version %s: %w (retry; copies not yet rewritten keep the old lock)", m.Vault, m.Key, m.Version, err)
	}
	return nil
}

// rewritten is rewriteCopies' error for its writes' errors errs, by site. A
// copy whose name holds a file that is not a blob (site.ErrNotBlob) is left
// out, named in the log, as long as another copy was written.
func (e *Engine) rewritten(ctx context.Context, m *manifest.Manifest, errs []error) error {
	var failed, notBlob []error
	written := 0
	for _, err := range errs {
		switch {
		case err == nil:
			written++
		case errors.Is(err, site.ErrNotBlob):
			notBlob = append(notBlob, err)
		default:
			failed = append(failed, err)
		}
	}
	if written == 0 {
		failed = append(failed, notBlob...)
	}
	if err := rewriteErr(m, failed); err != nil {
		return err
	}
	if len(notBlob) > 0 {
		e.log.WarnContext(ctx, "manifest copies not rewritten: their names hold files that are not blobs, left in place (remove them by hand; scrub then writes the copies)",
			"vault", m.Vault, "version", m.Version, "revision", m.Revision, "err", errors.Join(notBlob...))
	}
	return nil
}

// inlineTails rebuilds the blocks every site's copy of m holds after its
// envelope (the inline parts' blocks in part order, each part's in shard
// order), reading the blocks of the copies not damaged (by site, as
// sites[i] with damaged[i]).
func (e *Engine) inlineTails(ctx context.Context, m *manifest.Manifest, inline []manifest.Part, sites []string, damaged []error) ([][]byte, error) {
	shell := &Reader{e: e, ctx: ctx, m: m, readAll: true, skip: map[[2]int]bool{}}
	for i, sid := range sites {
		if damaged[i] == nil {
			continue
		}
		for _, p := range inline {
			for j, psid := range p.Sites {
				if psid == sid {
					shell.skip[[2]int{p.Number, j}] = true
				}
			}
		}
	}
	tails := make([][]byte, len(sites))
	for _, p := range inline {
		full, err := e.rebuildInline(ctx, shell, p, partGeometry(m, p))
		if err != nil {
			return nil, err
		}
		for j, psid := range p.Sites {
			i := slices.Index(sites, psid)
			tails[i] = append(tails[i], full[j]...)
		}
	}
	return tails, nil
}
