package vault

import (
	"context"
	"fmt"
	"slices"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
)

// MisplacedCopies returns the sites holding copies of a delete marker that
// must move: sites being drained, sites in lost, and sites no longer
// configured.
func (e *Engine) MisplacedCopies(m *manifest.Manifest, lost map[string]bool) []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []string
	for _, sid := range m.Copies {
		if _, ok := e.sites[sid]; !ok || e.draining[sid] || lost[sid] {
			out = append(out, sid)
		}
	}
	return out
}

// MoveMarker moves a delete marker's copies off the sites MisplacedCopies
// names, to sites placement chooses among the others: the new copies are
// written, the marker's new revision is committed, and only then are the
// old copies removed (with a record), as Relocate does for versions. It
// returns how many copies moved.
//
// m is the revision the caller read (scrub): under the marker's lock the
// index must still hold it, as for Relocate, or the move would write m's
// revision, one up, over one committed meanwhile (a re-wrap's); that is
// ErrChanged, and a marker removed meanwhile (a DELETE of its version id)
// is refused with the index's error. Nothing is written either way.
func (e *Engine) MoveMarker(ctx context.Context, m *manifest.Manifest, lost map[string]bool) (int, error) {
	if !m.DeleteMarker {
		return 0, fmt.Errorf("move marker %s: not a delete marker", m.Version)
	}
	bad := e.MisplacedCopies(m, lost)
	if len(bad) == 0 {
		return 0, nil
	}
	unlock, err := e.lockRevision(ctx, m, "move delete marker")
	if err != nil {
		return 0, err
	}
	defer unlock()
	v, err := e.Vault(m.Vault)
	if err != nil {
		return 0, err
	}
	exclude := map[string]bool{}
	for _, sid := range bad {
		exclude[sid] = true
	}
	for sid := range lost {
		exclude[sid] = true
	}
	chosen, err := placement.Choose(v.Policy, e.candidates(exclude, nil), m.Version[:])
	if err != nil {
		return 0, fmt.Errorf("move delete marker %s/%s: %w", m.Vault, m.Key, err)
	}
	var next []string
	for _, sid := range m.Copies {
		if !slices.Contains(bad, sid) {
			next = append(next, sid)
		}
	}
	for _, sid := range distinct(chosen) {
		if len(next) >= len(m.Copies) {
			break
		}
		if !slices.Contains(next, sid) {
			next = append(next, sid)
		}
	}
	newM := *m
	newM.Copies = next
	newM.Revision++
	env, err := manifest.Seal(&newM, e.sealKeys())
	if err != nil {
		return 0, err
	}
	old, err := e.index.Get(ctx, m.Vault, m.Key, m.Version)
	if err != nil {
		return 0, err
	}
	if err := e.replaceCopies(ctx, m.Version, env, next, nil, old.Envelope, m.Copies, nil); err != nil {
		return 0, err
	}
	if _, err := e.recommit(ctx, KindMove, &newM, env); err != nil {
		return 0, err
	}
	oldBlobs := map[string][]string{}
	for _, sid := range bad {
		if _, ok := e.site(sid); ok && !lost[sid] {
			oldBlobs[sid] = append(oldBlobs[sid], manifest.BlobName(m.Version))
		}
	}
	e.abandon(ctx, evidence.Record{Version: m.Version, Revision: newM.Revision}, oldBlobs)
	e.log.InfoContext(ctx, "delete marker moved", "vault", m.Vault, "version", m.Version, "revision", newM.Revision, "from", bad, "to", next)
	return len(bad), nil
}
