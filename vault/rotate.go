package vault

import (
	"context"
	"errors"
	"fmt"
	"github.com/embassy-dev/embassy/evidence"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

func partKeyGen(m *manifest.Manifest, p manifest.Part) int {
	if p.KeyGen > 0 {
		return p.KeyGen
	}
	return max(m.KeyGen, 1)
}

// RewrapStats reports a key rotation's progress.
type RewrapStats struct {
	Vault     string `json:"vault"`
	KeyGen    int    `json:"key_gen"`
	Versions  int    `json:"versions"`  // versions looked at
	Rewrapped int    `json:"rewrapped"` // versions whose data keys were re-wrapped now
	Already   int    `json:"already"`   // versions already under the new key
	// Deleted counts versions deleted after their page was listed and
	// before their turn came: skipped, as there is nothing left to
	// re-wrap (each is logged).
	Deleted int `json:"deleted,omitempty"`
}

// RewrapVault re-wraps the data keys of every version of a vault under
// generation gen of the vault key, rewriting each manifest (its copies on
// the sites, then the index) without touching the data. It is idempotent
// and resumable: a rerun after a crash skips what is done. The vault's
// configuration must already name gen (SetVault), so new writes use it.
func (e *Engine) RewrapVault(ctx context.Context, vaultName string, gen int, progress func(RewrapStats)) (RewrapStats, error) {
	st := RewrapStats{Vault: vaultName, KeyGen: gen}
	v, err := e.Vault(vaultName)
	if err != nil {
		return st, err
	}
	if keyGen(v) != gen {
		return st, fmt.Errorf("vault %s: configured key generation is %d, not %d", vaultName, keyGen(v), gen)
	}
	ctx = AsSystem(ctx)
	o := index.VersionOptions{Max: 500}
	for {
		page, err := e.index.Versions(ctx, vaultName, o)
		if err != nil {
			return st, err
		}
		for _, iv := range page.Versions {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			st.Versions++
			// Delete markers wrap no data key, but are sealed and signed
			// like any manifest: a root rotation rewrites them too.
			done, err := e.rewrap(ctx, iv, gen)
			if errors.Is(err, errDeletedMeanwhile) {
				// A delete took the version while its page was being
				// re-wrapped: nothing is left to re-wrap. Until the
				// twenty-first pass this stopped the rotation (a rerun
				// resumed it).
				st.Deleted++
				e.log.InfoContext(ctx, "version deleted since it was listed; not re-wrapped", "vault", iv.Vault, "key", iv.Key, "version", iv.ID)
				if progress != nil {
					progress(st)
				}
				continue
			}
			if err != nil {
				return st, err
			}
			if done {
				st.Rewrapped++
			} else {
				st.Already++
			}
			if progress != nil {
				progress(st)
			}
		}
		if !page.Truncated {
			return st, nil
		}
		o.KeyMarker, o.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
	}
}

// errDeletedMeanwhile: a version listed for re-wrapping was deleted before
// its turn came (under its lock, the index no longer holds it).
var errDeletedMeanwhile = errors.New("deleted since it was listed")

func (e *Engine) rewrap(ctx context.Context, listed index.Version, gen int) (bool, error) {
	unlock, err := e.lockVersion(ctx, listed.ID)
	if err != nil {
		return false, err
	}
	defer unlock()
	// Listings leave envelopes out: fetch the version itself.
	iv, err := e.index.Get(ctx, listed.Vault, listed.Key, listed.ID)
	if errors.Is(err, index.ErrNotFound) {
		return false, fmt.Errorf("%s/%s version %s: %w", listed.Vault, listed.Key, listed.ID, errDeletedMeanwhile)
	}
	if err != nil {
		return false, err
	}
	m, err := manifest.Open(iv.Envelope, e.k())
	if err != nil {
		return false, fmt.Errorf("%s/%s version %s: %w", iv.Vault, iv.Key, iv.ID, err)
	}
	// Re-wrapped from the newest revision on the sites (newestCopy), not
	// an older one the index may hold.
	nm, err := e.newestCopy(ctx, m, iv.Envelope)
	if err != nil {
		return false, err
	}
	current := nm == m && (m.KeyGen == gen || m.DeleteMarker) && envelopeKeyID(iv.Envelope) == e.k().ManifestKeyID()
	m = nm
	for _, p := range m.Parts {
		if p.KeyGen != 0 && p.KeyGen != gen {
			current = false
		}
	}
	if current {
		return false, nil
	}
	if m.Label != "" && len(m.LabelBinding) > 0 && e.labels != nil {
		// Signed by the old root's node key: sign it again.
		l, err := e.labelOf(m.Label)
		if err != nil {
			return false, err
		}
		if err := e.bindLabel(m, &l); err != nil {
			return false, err
		}
	}
	for i, p := range m.Parts {
		aad := partAAD(m.Version, p.Number, p.Blob)
		dk, err := e.k().UnwrapDataKey(e.vaultKeyName(m.Vault), partKeyGen(m, p), p.WrappedKey, aad)
		if err != nil {
			return false, fmt.Errorf("%s/%s version %s part %d: %w", m.Vault, m.Key, m.Version, p.Number, err)
		}
		w, err := e.k().WrapDataKey(e.vaultKeyName(m.Vault), gen, dk, aad)
		if err != nil {
			return false, err
		}
		m.Parts[i].WrappedKey, m.Parts[i].KeyGen = w, 0
	}
	m.KeyGen = gen
	m.Revision++
	env, err := manifest.Seal(m, e.sealKeys())
	if err != nil {
		return false, err
	}
	if err := e.rewriteCopies(ctx, m, env); err != nil {
		return false, err
	}
	if _, err := e.recommit(ctx, KindRewrap, m, env); err != nil {
		return false, err
	}
	return true, nil
}

// SetLabel changes the label of a version. Raising a label needs the
// principal's clearance for the new one and sites accredited for it;
// lowering a label — any new label that lets more nations or lower
// clearances read it (see Widens) — takes two custodians.
func (e *Engine) SetLabel(ctx context.Context, vaultName, key string, id manifest.ID, text string) (ObjectInfo, error) {
	return again(ctx, func(ctx context.Context) (ObjectInfo, error) { return e.setLabel(ctx, vaultName, key, id, text) })
}

func (e *Engine) setLabel(ctx context.Context, vaultName, key string, id manifest.ID, text string) (ObjectInfo, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return ObjectInfo{}, err
	}
	m, ienv, unlock, err := e.resolveLocked(ctx, vaultName, key, id)
	defer unlock()
	if err != nil {
		return ObjectInfo{}, err
	}
	// Decided on the newest revision on the sites (newestCopy): a label
	// raised since the index's backup is the one lowering is judged from.
	if m, err = e.newestCopy(ctx, m, ienv); err != nil {
		return ObjectInfo{}, err
	}
	if text == "" {
		return ObjectInfo{}, fmt.Errorf("%w: a label is required", ErrInvalidLabel)
	}
	newText, l, err := e.putLabel(ctx, v, text)
	if err != nil {
		return ObjectInfo{}, err
	}
	why, err := e.Widens(v.Owner, m.Label, v.Owner, newText)
	if err != nil {
		return ObjectInfo{}, err
	}
	if why != "" {
		if err := e.require(withHeld(ctx, unlock), Operation{Kind: "object.relabel", Summary: fmt.Sprintf("lower the label of %s/%s version %s from %q to %q: %s", vaultName, key, m.Version, orUnlabelled(m.Label), newText, why),
			Params: map[string]string{"vault": vaultName, "key": key, "version": m.Version.String(), "label": newText}}); err != nil {
			return ObjectInfo{}, err
		}
	}
	for _, p := range m.Parts {
		for _, sid := range p.Sites {
			s, ok := e.site(sid)
			if !ok || !e.accredited(s.Accredited, l) {
				return ObjectInfo{}, errors.New("site " + sid + " holding this object is not accredited for " + newText + "; store a new copy under the new label instead")
			}
		}
	}
	m.Label = newText
	if err := e.bindLabel(m, l); err != nil {
		return ObjectInfo{}, err
	}
	m.Revision++
	env, err := manifest.Seal(m, e.sealKeys())
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := e.rewriteCopies(ctx, m, env); err != nil {
		return ObjectInfo{}, err
	}
	return e.recommit(ctx, KindRelabel, m, env)
}

func envelopeKeyID(env []byte) [8]byte {
	var id [8]byte
	if len(env) >= manifest.HeaderSize {
		copy(id[:], env[5:13])
	}
	return id
}

// RewrapAll rewrites every version of every vault whose manifest is sealed
// under another key (a root key rotation) or whose data keys are under an
// older vault key generation. Resumable, like RewrapVault.
func (e *Engine) RewrapAll(ctx context.Context, progress func(RewrapStats)) (RewrapStats, error) {
	var total RewrapStats
	// The evidence records on every site (deletion records above all)
	// must outlive the old root: seal them again under the new keys.
	for _, id := range e.siteIDs() {
		s, _ := e.site(id)
		if _, err := evidence.Reseal(ctx, s.Store, e.k(), e.k().ManifestKeyID(), e.node); err != nil {
			// Every batch is on every site: the copies resealed elsewhere
			// carry the records; this site's old ones stop counting.
			e.log.WarnContext(ctx, "evidence journal not resealed on a site", "site", id, "err", err)
		}
	}
	for _, v := range e.Vaults() {
		st, err := e.RewrapVault(ctx, v.Name, keyGen(v), progress)
		total.Versions += st.Versions
		total.Rewrapped += st.Rewrapped
		total.Already += st.Already
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func orUnlabelled(l string) string {
	if l == "" {
		return "(unlabelled)"
	}
	return l
}
