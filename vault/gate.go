package vault

import (
	"errors"
	"fmt"
	"strings"

	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
)

// A write chooses its sites when it starts and commits when its data is
// on them, which for a streamed object can be much later. A configuration
// change in between (a site removed or drained, a vault's policy raised, a
// site's attributes changed) can leave the placement chosen before it
// wrong for the configuration after it. The commit gate keeps such a write
// from being acknowledged:
//
//   - every commit of a new version checks, under the gate's read lock,
//     that its placement holds under the configuration in force (every
//     site configured and not draining, accredited for its label, the
//     vault's erasure code and survival constraints kept), and commits to
//     the index while still holding it;
//   - Reconfigure, SetDraining and Retire take the gate's write lock, so
//     they wait for the commits already checked, and every commit after
//     them is checked against the new configuration.
//
// A write that fails the check is abandoned (its blobs removed with a
// record, as any failed write) and answered ErrReconfigured, which the S3
// front end maps to 503 SlowDown: the client retries and the retry is
// placed under the new configuration. So once a change has returned,
// every version the index holds was either committed before it (and is
// the drain's or the scrub's to move) or placed under it.

// ErrReconfigured: the node's configuration changed while the write was in
// flight, and the placement chosen before the change does not hold after
// it. Nothing was stored; retry the write (S3 clients do on 503 SlowDown).
var ErrReconfigured = errors.New("the configuration changed while the write was in flight")

// Retire marks the engine as replaced by another (a node that rebuilds its
// engine after a change of its label policies): every commit from then on
// is refused with ErrReconfigured, so that no write placed under the old
// engine's configuration is acknowledged after the new one is in force.
// It waits for commits already checked.
func (e *Engine) Retire() {
	e.gate.Lock()
	defer e.gate.Unlock()
	e.mu.Lock()
	e.retired = true
	e.mu.Unlock()
}

// placedNow reports why the placement of m, a new version about to be
// committed, does not hold under the configuration in force, or nil.
// multipart marks a completed upload, whose parts keep the code the upload
// began with.
func (e *Engine) placedNow(m *manifest.Manifest, multipart bool) error {
	var l *label.Label
	if m.Label != "" && e.labels != nil && !m.DeleteMarker {
		parsed, err := e.labelOf(m.Label)
		if err != nil {
			return err
		}
		l = &parsed
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.retired {
		return fmt.Errorf("%w: the node's engine was replaced", ErrReconfigured)
	}
	v, ok := e.vaults[m.Vault]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchVault, m.Vault)
	}
	if !m.DeleteMarker && !multipart && (m.K != v.Policy.K || m.M != v.Policy.M) {
		return fmt.Errorf("%w: vault %s's code is now %d+%d, the write was coded %d+%d", ErrReconfigured, v.Name, v.Policy.K, v.Policy.M, m.K, m.M)
	}
	for _, sid := range manifestSites(m) {
		s, ok := e.sites[sid]
		switch {
		case !ok:
			return fmt.Errorf("%w: site %s was removed", ErrReconfigured, sid)
		case e.draining[sid]:
			return fmt.Errorf("%w: site %s is draining", ErrReconfigured, sid)
		case l != nil && !e.accredited(s.Accredited, l):
			return fmt.Errorf("%w: site %s is not accredited for %s", ErrReconfigured, sid, m.Label)
		}
	}
	if m.DeleteMarker {
		return nil
	}
	policy := v.Policy
	policy.K, policy.M = m.K, m.M
	for _, p := range m.Parts {
		descs := make([]site.Descriptor, 0, len(p.Sites))
		for _, sid := range p.Sites {
			descs = append(descs, e.sites[sid].Descriptor)
		}
		if vs := placement.Check(policy, descs); len(vs) > 0 {
			var why []string
			for _, x := range vs {
				why = append(why, x.String())
			}
			return fmt.Errorf("%w: vault %s's policy is no longer kept: %s", ErrReconfigured, v.Name, strings.Join(why, "; "))
		}
	}
	return nil
}
