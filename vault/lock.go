package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/manifest"
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
	return e.updateLock(ctx, vault, key, id, func(cur manifest.Lock) (manifest.Lock, error) {
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
	return e.updateLock(ctx, vault, key, id, func(cur manifest.Lock) (manifest.Lock, error) {
		cur.LegalHold = on
		return cur, nil
	})
}

// updateLock rewrites a version's manifest with a changed lock: a new
// revision goes to every site holding a copy, then to the index. Until all
// copies are rewritten the index keeps the old lock, and a later rebuild
// takes the highest revision it finds.
func (e *Engine) updateLock(ctx context.Context, vault, key string, id manifest.ID, change func(manifest.Lock) (manifest.Lock, error)) (ObjectInfo, error) {
	if err := e.CheckWrite(ctx, vault); err != nil {
		return ObjectInfo{}, err
	}
	m, _, err := e.resolve(ctx, vault, key, id)
	if err != nil {
		return ObjectInfo{}, err
	}
	var cur manifest.Lock
	if m.Lock != nil {
		cur = *m.Lock
	}
	next, err := change(cur)
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
// any inline shard blocks that follow it. A copy is site content: one whose
// envelope header is damaged or cut fails the change of an inline version
// (its blocks cannot be found), naming the site.
func (e *Engine) rewriteCopies(ctx context.Context, m *manifest.Manifest, env []byte) error {
	name := manifest.BlobName(m.Version)
	sites := manifestSites(m)
	errs := make([]error, len(sites))
	inline := false
	for _, p := range m.Parts {
		inline = inline || p.Inline
	}
	var wg sync.WaitGroup
	for i, sid := range sites {
		s, ok := e.site(sid)
		if !ok {
			errs[i] = fmt.Errorf("site %s not configured", sid)
			continue
		}
		if !inline {
			// The copy is the envelope alone: written over whatever the
			// site holds, which also repairs a damaged copy.
			wg.Go(func() {
				if err := s.Store.Put(ctx, name, bytes.NewReader(env), int64(len(env))); err != nil {
					errs[i] = fmt.Errorf("site %s: %w", sid, err)
				}
			})
			continue
		}
		wg.Go(func() {
			rc, err := s.Store.Get(ctx, name, 0, -1)
			if err != nil {
				errs[i] = fmt.Errorf("site %s: %w", sid, err)
				return
			}
			old, err := readInline(rc, manifest.MaxEnvelope+int64(m.StripeSize)*2, 0)
			rc.Close()
			if err != nil {
				errs[i] = fmt.Errorf("site %s: %w", sid, err)
				return
			}
			n, err := manifest.EnvelopeLen(old)
			if err == nil && n > len(old) {
				err = fmt.Errorf("%w: copy of %d bytes cut inside its envelope of %d", manifest.ErrCorrupt, len(old), n)
			}
			if err != nil {
				// The blocks after the envelope cannot be found: a scrub
				// rebuilds the copy (Relocate), then the change can be
				// tried again.
				errs[i] = fmt.Errorf("site %s: damaged copy: %w", sid, err)
				return
			}
			body := append(append(make([]byte, 0, len(env)+len(old)-n), env...), old[n:]...)
			if err := s.Store.Put(ctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
				errs[i] = fmt.Errorf("site %s: %w", sid, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rewrite manifest of %s/%s version %s: %w (retry; copies not yet rewritten keep the old lock)", m.Vault, m.Key, m.Version, err)
	}
	return nil
}
