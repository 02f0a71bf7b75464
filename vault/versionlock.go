package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// Changes of one version. A lock change, a relabel, a re-wrap, a move and
// a delete each read a version's manifest (the index's, and its copies:
// newestCopy), write a new revision over every copy and commit it to the
// index. Two of them at once on the same version both built on the same
// revision, and the second to write undid the first: a legal hold set
// while a retention was being set wrote its revision, without the
// retention, over the copies and the index after the retention had been
// acknowledged, and a delete could then remove what the retention forbade
// (invariant 10); a repair moving the version did the same to a lock
// change made while it read the shards. So each such change holds the
// version's lock from its read of the manifest to its commit, and what
// scrub writes from a manifest it read before (a move, a missing copy
// written again, a delete marker's copies moved) checks under it that the
// index still holds that revision (lockRevision, ErrChanged). The lock is the engine's,
// in memory: gateways sharing an index (the PostgreSQL index DESIGN.md
// plans, not implemented yet) would not see each other's, and will need a
// compare-and-swap of the revision in the index (docs/design.md, Known
// gaps).

// ErrChanged: the version changed (a newer revision was committed) after
// the caller read the manifest it asked to change. Read it again and
// retry; scrub checks the version again.
var ErrChanged = errors.New("the version changed since its manifest was read")

// versionLocks holds the versions being changed.
type versionLocks struct {
	mu   sync.Mutex
	held map[manifest.ID]chan struct{} // closed when the change ends
}

// testHookVersionWait, when set, is called when a change must wait for
// another change of the same version.
var testHookVersionWait func(manifest.ID)

// lockVersion waits until no other change of version id is under way in
// this engine (or ctx ends) and returns the function that ends this one.
func (e *Engine) lockVersion(ctx context.Context, id manifest.ID) (func(), error) {
	vl := &e.versions
	for {
		vl.mu.Lock()
		busy, ok := vl.held[id]
		if !ok {
			if vl.held == nil {
				vl.held = map[manifest.ID]chan struct{}{}
			}
			done := make(chan struct{})
			vl.held[id] = done
			vl.mu.Unlock()
			ended := false // a second call does nothing (see require)
			return func() {
				if ended {
					return
				}
				ended = true
				vl.mu.Lock()
				delete(vl.held, id)
				vl.mu.Unlock()
				close(done)
			}, nil
		}
		vl.mu.Unlock()
		if testHookVersionWait != nil {
			testHookVersionWait(id)
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Changes that take two custodians. A change under a version's lock may
// need approval (a delete bypassing GOVERNANCE retention, a shorter
// GOVERNANCE retention, a lower label), and the node's approver records
// the request under a lock of its own, which the carrying out of an
// approved request holds while it makes its change (node.Decide), and so
// waits for the version's lock: asked with the version's lock held, the
// two waited for each other for as long as the approval's call lasted,
// every request and decision of the node waiting behind them (until the
// twentieth pass). So a change gives its version's lock up before it asks
// (withHeld, require), and returns the request as its error; an approver
// that allows the change at once (no custodians on a development node)
// has it made again from the start, approved, under the lock taken again
// (errApprovedAtOnce, again).

type heldKey struct{}

// withHeld returns ctx for a change that holds its version's lock, which
// unlock ends (see require).
func withHeld(ctx context.Context, unlock func()) context.Context {
	return context.WithValue(ctx, heldKey{}, unlock)
}

// errApprovedAtOnce: the approver allowed a change at once after the
// change gave its version's lock up to ask; it is made again (again).
var errApprovedAtOnce = errors.New("approved at once: the change is made again under its version's lock")

// again makes change, and once more, approved, when its approver allowed
// it at once after it gave its version's lock up (require).
func again[T any](ctx context.Context, change func(context.Context) (T, error)) (T, error) {
	out, err := change(ctx)
	if errors.Is(err, errApprovedAtOnce) {
		return change(Approved(ctx))
	}
	return out, err
}

// resolveLocked is resolve under the lock of the version it finds (see
// lockVersion): the manifest is read again once the lock is held, so that
// a change that held it is seen. The caller calls unlock when its change
// is committed or given up; it is a no-op when there is no manifest.
func (e *Engine) resolveLocked(ctx context.Context, vault, key string, id manifest.ID) (m *manifest.Manifest, env []byte, unlock func(), err error) {
	nop := func() {}
	m, _, err = e.resolve(ctx, vault, key, id)
	if m == nil {
		return nil, nil, nop, err
	}
	first := err // a delete marker's, saying whether it is the latest
	unlock, lerr := e.lockVersion(ctx, m.Version)
	if lerr != nil {
		return nil, nil, nop, lerr
	}
	m, env, err = e.resolve(ctx, vault, key, m.Version)
	if m == nil {
		unlock()
		return nil, nil, nop, err
	}
	if err != nil && first != nil {
		err = first
	}
	return m, env, unlock, err
}

// lockRevision is lockVersion for a change built on m, a revision read
// before the lock was taken (scrub reads a version, checks its copies and
// shards, then repairs what it must): under the lock, the index must
// still hold m's revision, or what the change writes would be m's, or m's
// one up, over a revision committed since (a lock set meanwhile), and undo
// it; it is then ErrChanged, and the caller writes nothing. A version no
// longer in the index (deleted meanwhile) is refused with the index's
// error. what names the change, for the error.
func (e *Engine) lockRevision(ctx context.Context, m *manifest.Manifest, what string) (func(), error) {
	unlock, err := e.lockVersion(ctx, m.Version)
	if err != nil {
		return nil, err
	}
	cur, err := e.index.Get(ctx, m.Vault, m.Key, m.Version)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("%s %s/%s version %s: %w", what, m.Vault, m.Key, m.Version, err)
	}
	cm, err := manifest.Open(cur.Envelope, e.readKeys())
	if err != nil {
		unlock()
		return nil, fmt.Errorf("%s %s/%s version %s: %w", what, m.Vault, m.Key, m.Version, err)
	}
	if cm.Revision != m.Revision {
		unlock()
		return nil, fmt.Errorf("%s %s/%s version %s: %w (revision %d read, the index holds %d)", what, m.Vault, m.Key, m.Version, ErrChanged, m.Revision, cm.Revision)
	}
	return unlock, nil
}

// IndexNewer puts v in the index: a revision of a version found on the
// sites, newer than the one the caller read from the index (or standing in
// for an index entry that fails verification), which m opens. Under the
// version's lock it checks that the index holds no revision as new by
// then: one committed meanwhile (a lock change) would be undone, and is
// ErrChanged instead; a version no longer in the index (deleted meanwhile)
// is refused with the index's error, and is not put back. Scrub takes the
// sites' newer revisions through it.
func (e *Engine) IndexNewer(ctx context.Context, m *manifest.Manifest, v index.Version) error {
	unlock, err := e.lockVersion(ctx, m.Version)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := e.index.Get(ctx, m.Vault, m.Key, m.Version)
	if err != nil {
		return fmt.Errorf("index %s/%s version %s revision %d: %w", m.Vault, m.Key, m.Version, m.Revision, err)
	}
	if cm, err := manifest.Open(cur.Envelope, e.readKeys()); err == nil && cm.Revision >= m.Revision {
		return fmt.Errorf("index %s/%s version %s revision %d: %w (the index holds revision %d)", m.Vault, m.Key, m.Version, m.Revision, ErrChanged, cm.Revision)
	}
	e.generationsChecked(ctx)
	return e.index.Put(ctx, v)
}

// IndexAdopted puts v in the index: the newest revision, which m opens, of
// a version found on the sites that the index did not hold (collection's
// adoption, 'embassy index adopt'). The caller read the copies and the
// evidence records (the audit log up to entry since) before; under the
// version's lock it checks that neither changed meanwhile: the index must
// still not hold the version (a completion of its upload may have
// committed it since, and a lock change made a newer revision, which the
// adoption would undo), and the audit log must record no deletion of it
// from entry since on (a version committed and deleted since would be put
// back, listed, while collection removes its blobs on the record). Either
// is ErrChanged, and nothing is written.
func (e *Engine) IndexAdopted(ctx context.Context, m *manifest.Manifest, v index.Version, since uint64) error {
	unlock, err := e.lockVersion(ctx, m.Version)
	if err != nil {
		return err
	}
	defer unlock()
	what := fmt.Sprintf("adopt %s/%s version %s", m.Vault, m.Key, m.Version)
	if _, err := e.index.Get(ctx, m.Vault, m.Key, m.Version); err == nil {
		return fmt.Errorf("%s: %w (indexed meanwhile)", what, ErrChanged)
	} else if !errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if e.audit != nil {
		deleted := errors.New("deleted")
		err := e.audit.Events(ctx, since, func(_ uint64, ev audit.Event) error {
			if ev.Kind == deletionKind && ev.Version == m.Version {
				return deleted
			}
			return nil
		})
		if errors.Is(err, deleted) {
			return fmt.Errorf("%s: %w (deleted meanwhile)", what, ErrChanged)
		}
		if err != nil {
			return fmt.Errorf("%s: read the audit log since the records were read: %w", what, err)
		}
	}
	e.generationsChecked(ctx)
	return e.index.Put(ctx, v)
}

// deletionKind is the audit log kind of a deletion record.
var deletionKind = evidence.Event(evidence.Record{Kind: evidence.Delete}).Kind

// Indexed reads version id of vault/key from the index under the
// version's lock, so that a change of it under way is waited for: a delete
// records its deletion before it commits it, and from the record
// collection may remove the version's shards, which a scrub then finds
// gone while the index still holds the version. Scrub looks again through
// it before it calls a version lost or at risk.
func (e *Engine) Indexed(ctx context.Context, vault, key string, id manifest.ID) (index.Version, error) {
	unlock, err := e.lockVersion(ctx, id)
	if err != nil {
		return index.Version{}, err
	}
	defer unlock()
	return e.index.Get(ctx, vault, key, id)
}

// IndexRebuilt writes a batch of versions an index rebuild read from the
// sites, under their locks, so that a change committed while the rebuild
// ran is not undone: each version's lock is taken in id order (the one
// caller that holds more than one lock at a time, so that no two callers
// wait for each other), and a version is left as the index holds it when
// the index holds a newer revision of it, or left out when the audit log
// records its deletion since entry since (the rebuild's records were read
// up to there). It returns how many were left as they were or out.
func (e *Engine) IndexRebuilt(ctx context.Context, vs []index.Version, since uint64) (int, error) {
	ids := make([]manifest.ID, 0, len(vs))
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	slices.SortFunc(ids, func(a, b manifest.ID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	for _, id := range ids {
		unlock, err := e.lockVersion(ctx, id)
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	deleted := map[manifest.ID]bool{}
	if e.audit != nil {
		err := e.audit.Events(ctx, since, func(_ uint64, ev audit.Event) error {
			if ev.Kind == deletionKind {
				deleted[ev.Version] = true
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("index rebuild: read the audit log since the records were read: %w", err)
		}
	}
	put := vs[:0:0]
	for _, v := range vs {
		if deleted[v.ID] {
			continue
		}
		if cur, err := e.index.Get(ctx, v.Vault, v.Key, v.ID); err == nil && !bytes.Equal(cur.Envelope, v.Envelope) {
			cm, cerr := e.OpenEnvelope(cur.Envelope)
			nm, nerr := e.OpenEnvelope(v.Envelope)
			if cerr == nil && nerr == nil && cm.Version == v.ID && cm.Revision > nm.Revision {
				continue
			}
		}
		put = append(put, v)
	}
	e.generationsChecked(ctx)
	if err := e.index.PutMany(ctx, put); err != nil {
		return 0, err
	}
	return len(vs) - len(put), nil
}
