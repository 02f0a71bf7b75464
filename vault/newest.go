package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// newestCopy returns the manifest a change of m's version (a lock, a
// label, a re-wrap) or its deletion must decide on: the newest verified
// one among its copies on the sites and m, the index's, whose envelope is
// env. The index is a cache and may be older than the sites: restored from
// a backup taken before a retention was set, the index would have the
// change written over the sites' newer revision (the retention lost) and a
// delete go through that the retention forbids (invariant 10). A rewrite
// that reached the sites but not the index (a failed commit, a change
// whose retry this is) also leaves copies a revision ahead, by design: the
// change is then made to that revision, as a rebuild would take it.
//
// The copies asked for are those on the sites m names, then on the sites
// each newer copy found names (a move since the index's revision puts the
// newer copies on sites m does not name: a copy its clean-up left behind
// leads to them), and, when not every site the newest revision found
// names holds it (the version moved off them, a copy of that revision
// left behind by a clean-up that failed, or a copy simply missing), on
// every configured site. Each site is asked once, so at most every
// configured site is; a version whose copies are all where its newest
// revision says costs no more than its own sites. Until the twentieth
// pass the other sites were asked only when no site asked held m's
// revision or a newer one: a copy of m's revision left behind on one of
// m's sites by a move's failed clean-up passed for the index being
// current, and a delete on an index restored from before the move
// decided on m's lock (docs/design.md, "Review of the nineteenth pass").
//
// A copy holding exactly env is that revision and is not opened again. A
// copy missing, damaged or of another version is left out (scrub reports
// it), and so is a file at the copy's name that is not a blob
// (site.ErrNotBlob: a FIFO, a socket, a device put in a directory site),
// which holds no revision and is named in the log; a site asked that does
// not answer fails it, as the change or the delete would (every copy is
// rewritten or removed). A newer revision
// found is checked as resolve checks the index's: the caller's right to
// read its label, and its label binding.
func (e *Engine) newestCopy(ctx context.Context, m *manifest.Manifest, env []byte) (*manifest.Manifest, error) {
	name := manifest.BlobName(m.Version)
	asked := map[string]bool{}
	newest, where := m, ""
	held := map[string]int{} // the revision each site asked holds, if one verified
	widened := false
	next := manifestSites(m)
	for len(next) > 0 {
		var sites []string
		for _, sid := range next {
			if !asked[sid] {
				asked[sid] = true
				sites = append(sites, sid)
			}
		}
		next = nil
		found := make([]*manifest.Manifest, len(sites))
		same := make([]bool, len(sites))
		errs := make([]error, len(sites))
		var wg sync.WaitGroup
		for i, sid := range sites {
			s, ok := e.site(sid)
			if !ok {
				continue
			}
			wg.Go(func() {
				// Asked for the index's envelope's length: a copy holding
				// it (a current index) is read in one read of that size.
				got, err := readEnvelope(ctx, s.Store, name, len(env))
				switch {
				case err == nil && bytes.Equal(got, env):
					same[i] = true
				case err == nil:
					cm, oerr := e.OpenEnvelope(got)
					if oerr == nil && cm.Version == m.Version && cm.Vault == m.Vault && cm.Key == m.Key {
						found[i] = cm
					}
				case errors.Is(err, site.ErrNotFound), errors.Is(err, manifest.ErrCorrupt):
				case errors.Is(err, site.ErrNotBlob):
					e.log.WarnContext(ctx, "a manifest copy's name holds a file that is not a blob: taken for an unreadable copy, left in place (remove it by hand)",
						"vault", m.Vault, "version", m.Version, "site", sid, "err", err)
				default:
					errs[i] = fmt.Errorf("site %s may hold a copy and does not answer (retry when it is back): %w", sid, err)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%s/%s version %s: %w", m.Vault, m.Key, m.Version, err)
		}
		for i, cm := range found {
			switch {
			case same[i]:
				held[sites[i]] = m.Revision
			case cm != nil:
				held[sites[i]] = cm.Revision
			}
			if cm == nil || cm.Revision <= m.Revision {
				continue
			}
			// A newer revision: its sites may hold a newer one still.
			next = append(next, manifestSites(cm)...)
			if cm.Revision > newest.Revision {
				newest, where = cm, sites[i]
			}
		}
		if len(next) == 0 && !widened && !wholeAt(newest, held) {
			widened = true
			next = e.siteIDs()
		}
	}
	if newest == m {
		return m, nil
	}
	e.log.WarnContext(ctx, "the index holds an older revision of a version than a site: the change is made to the site's (index rebuild brings the index up to date)",
		"vault", m.Vault, "version", m.Version, "index_revision", m.Revision, "site", where, "site_revision", newest.Revision)
	v, err := e.Vault(m.Vault)
	if err != nil {
		return nil, err
	}
	if err := e.canRead(ctx, v, newest.Label); err != nil {
		return nil, err
	}
	if !newest.DeleteMarker {
		if err := e.verifyBinding(newest); err != nil {
			return nil, err
		}
	}
	return newest, nil
}

// wholeAt reports whether every site m names holds m's revision or a newer
// one (held: the revision each site asked holds).
func wholeAt(m *manifest.Manifest, held map[string]int) bool {
	for _, sid := range manifestSites(m) {
		if r, ok := held[sid]; !ok || r < m.Revision {
			return false
		}
	}
	return true
}
