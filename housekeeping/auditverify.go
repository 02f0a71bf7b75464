package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// An audit (Keeper.VerifyLog) checks the index and the sites against the
// audit log: the log says which versions exist, at which revision, and
// which were deleted. Every version in the index and every manifest copy on
// a site must be in the log at the revision the log says; every version
// the log says exists must be in the index and on some site. The log's own
// integrity (its copies on the sites, their consistency with the node's
// checkpoint) is checked by the audit package; this is what only a node
// holding the keys can check, since entries and manifests are sealed.
//
// The log is replayed into a temporary on-disk hash table (statefile.go),
// so memory does not grow with the number of versions.

// LogAudit is what Keeper.VerifyLog found.
type LogAudit struct {
	Entries  uint64 `json:"entries"`
	Versions int    `json:"versions"` // versions the log says exist
	Deleted  int    `json:"deleted"`  // versions the log records as deleted
	Indexed  int    `json:"indexed"`  // versions in the index
	Copies   int    `json:"manifest_copies"`
	// Problems are what tampering or damage looks like: a version the log
	// does not know, a rolled-back manifest, a version deleted behind the
	// node's back. At most MaxListed each kind; ProblemCount counts all.
	Problems     []string `json:"problems"`
	ProblemCount int      `json:"problem_count"`
	// Notes are states that are not tampering: manifests of deleted
	// versions awaiting collection, writes interrupted by a crash.
	Notes     []string `json:"notes"`
	NoteCount int      `json:"note_count"`
	// SiteErrors are sites that could not be read.
	SiteErrors []string `json:"site_errors"`
	// DescriptorGeneration is the newest node descriptor generation the
	// log records.
	DescriptorGeneration uint64 `json:"descriptor_generation"`
}

func (r *LogAudit) problem(format string, a ...any) {
	r.ProblemCount++
	if len(r.Problems) < MaxListed {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}
}

func (r *LogAudit) note(format string, a ...any) {
	r.NoteCount++
	if len(r.Notes) < MaxListed {
		r.Notes = append(r.Notes, fmt.Sprintf(format, a...))
	}
}

// versionState is the log's view of one version, as stored in the
// temporary file: vault and key, the revision the sites should hold and the
// one the index should hold, and flags.
type versionState struct {
	vault, key string
	siteRev    int
	indexRev   int
	flags      uint8
}

const (
	stPut      = 1 << iota // a commit of the version took effect
	stFailed               // its first commit failed
	stDeleted              // a deletion record
	stOnSite               // a manifest copy was seen (set during the scan)
	stIndexed              // the index holds it (set during the index walk)
	stBaseline             // recorded as existing when the log began
)

// exists reports whether the log says the version exists now.
func (s versionState) exists() bool {
	return s.flags&(stPut|stBaseline) != 0 && s.flags&(stDeleted|stFailed) == 0
}

// VerifyLog checks the index and every site's manifests against the audit
// log. tmp is a directory for the temporary state file.
func (k *Keeper) VerifyLog(ctx context.Context, tmp string) (LogAudit, error) {
	ctx = vault.AsSystem(ctx)
	rep := LogAudit{Problems: []string{}, Notes: []string{}, SiteErrors: []string{}}
	l := k.e.AuditLog()
	if l == nil {
		return rep, errors.New("the node has no audit log")
	}
	db, err := openStateFile(tmp)
	if err != nil {
		return rep, fmt.Errorf("audit verify: temporary state: %w", err)
	}
	defer db.close()

	// 1. Replay the log, a batch of events at a time.
	type change struct {
		id manifest.ID
		ev audit.Event
	}
	var batch []change
	flush := func() error {
		ids := make([]manifest.ID, len(batch))
		for i, c := range batch {
			ids[i] = c.id
		}
		err := db.update(ids, func(i int, st *versionState) { replay(st, batch[i].ev) })
		batch = batch[:0]
		return err
	}
	err = l.Events(ctx, 0, func(i uint64, e audit.Event) error {
		rep.Entries = i + 1
		if e.Kind == "descriptor.publish" {
			if g, err := strconv.ParseUint(e.Detail["generation"], 10, 64); err == nil {
				rep.DescriptorGeneration = max(rep.DescriptorGeneration, g)
			}
		}
		if e.Version.IsZero() {
			return nil
		}
		if r, ok, _ := evidence.FromEvent(e); ok && r.Kind != evidence.Delete {
			return nil // intents, abandonments: about blobs, not versions
		}
		batch = append(batch, change{e.Version, e})
		if len(batch) == 256 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, fmt.Errorf("audit verify: read the log: %w", err)
	}

	// 2. The index: every version at the revision the log says.
	for _, vname := range k.indexedVaults(ctx) {
		vo := index.VersionOptions{Max: index.MaxList}
		for {
			page, err := k.ix.Versions(ctx, vname, vo)
			if err != nil {
				return rep, err
			}
			var ids []manifest.ID
			for _, x := range page.Versions {
				rep.Indexed++
				ids = append(ids, x.ID)
				st, ok, err := db.get(x.ID)
				if err != nil {
					return rep, err
				}
				name := fmt.Sprintf("%s/%s version %s", x.Vault, x.Key, x.ID)
				switch {
				case !ok:
					rep.problem("%s is in the index but not in the audit log (added behind the node's back, or the log lost entries)", name)
					continue
				case st.flags&stDeleted != 0:
					rep.problem("%s is in the index, but the audit log records its deletion", name)
					continue
				}
				full, err := k.ix.Get(ctx, x.Vault, x.Key, x.ID)
				if err != nil {
					return rep, err
				}
				m, err := k.e.OpenEnvelope(full.Envelope)
				if err != nil {
					rep.problem("%s: the index's manifest does not verify: %v", name, err)
					continue
				}
				switch {
				case m.Revision < st.indexRev:
					rep.problem("%s: the index holds revision %d, the audit log records revision %d (a rolled-back index: restore from the sites with 'embassy index rebuild')", name, m.Revision, st.indexRev)
				case m.Revision > st.siteRev:
					rep.problem("%s: the index holds revision %d, newer than the audit log records (%d)", name, m.Revision, st.siteRev)
				}
			}
			if err := db.update(ids, func(_ int, st *versionState) { st.flags |= stIndexed }); err != nil {
				return rep, err
			}
			if !page.Truncated {
				break
			}
			vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
		}
	}

	// 3. Every manifest copy on every site.
	for _, sid := range k.e.SiteIDs() {
		s, _ := k.e.Site(sid)
		if err := k.auditSite(ctx, sid, s.Store, db, &rep); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.SiteErrors = append(rep.SiteErrors, fmt.Sprintf("site %s: %v", sid, err))
		}
	}

	// 4. Every version the log says exists: in the index, on a site.
	err = db.forEach(func(id manifest.ID, st versionState) error {
		if st.flags&stDeleted != 0 {
			rep.Deleted++
			return nil
		}
		if !st.exists() {
			return nil
		}
		rep.Versions++
		name := func() string { return fmt.Sprintf("%s/%s version %s", st.vault, st.key, id) }
		switch {
		case st.flags&stOnSite == 0 && len(rep.SiteErrors) == 0:
			rep.problem("%s is in the audit log, but no site holds its manifest: deleted behind the node's back", name())
		case st.flags&stIndexed == 0 && st.flags&stOnSite != 0:
			rep.note("%s is in the audit log and on the sites but not in the index: a write interrupted before its index commit ('embassy index rebuild' takes it in)", name())
		case st.flags&stIndexed == 0:
			rep.problem("%s is in the audit log but not in the index", name())
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	return rep, nil
}

// replay applies one event to a version's state.
func replay(st *versionState, e audit.Event) {
	if e.Vault != "" {
		st.vault, st.key = e.Vault, e.Key
	}
	failed := strings.HasPrefix(e.Outcome, "failed")
	switch {
	case e.Kind == vault.KindDelete:
		st.flags |= stDeleted
	case e.Kind == "object.delete" && failed:
		// The deletion was recorded, then the index refused it: the
		// version is still there.
		st.flags &^= stDeleted
	case e.Kind == KindBaseline:
		st.flags |= stBaseline
		st.siteRev, st.indexRev = max(st.siteRev, e.Revision), max(st.indexRev, e.Revision)
	case strings.HasPrefix(e.Kind, "object."):
		isNew := e.Kind == vault.KindPut || e.Kind == vault.KindDeleteMarker
		switch {
		case failed && isNew:
			st.flags |= stFailed
		case failed:
			// A new revision written to the sites whose index write
			// failed: the sites hold it, the index the one before.
			st.siteRev = max(st.siteRev, e.Revision)
		default:
			if isNew {
				st.flags |= stPut
			}
			st.siteRev, st.indexRev = max(st.siteRev, e.Revision), max(st.indexRev, e.Revision)
		}
	}
}

// KindBaseline records a version that existed when the audit log began
// (a node upgraded from a release without one).
const KindBaseline = "object.baseline"

// auditSite checks every manifest copy on one site.
func (k *Keeper) auditSite(ctx context.Context, sid string, s site.Site, db *stateFile, rep *LogAudit) error {
	var names []string
	err := s.List(ctx, manifest.ManifestPrefix, func(i site.Info) error {
		names = append(names, i.Name)
		if len(names) == 2000 {
			err := k.auditCopies(ctx, sid, s, names, db, rep)
			names = names[:0]
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return k.auditCopies(ctx, sid, s, names, db, rep)
}

func (k *Keeper) auditCopies(ctx context.Context, sid string, s site.Site, names []string, db *stateFile, rep *LogAudit) error {
	type seen struct {
		id  manifest.ID
		m   *manifest.Manifest
		err error
	}
	out := make([]seen, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, name := range names {
		id, ok := manifest.ParseBlobName(name)
		if !ok {
			continue
		}
		out[i].id = id
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			env, err := vault.ReadEnvelope(ctx, s, name)
			if err == nil {
				out[i].m, err = k.e.OpenEnvelope(env)
			}
			out[i].err = err
		})
	}
	wg.Wait()
	var ids []manifest.ID
	for _, c := range out {
		if c.id.IsZero() {
			continue
		}
		rep.Copies++
		if c.err != nil {
			if errors.Is(c.err, site.ErrNotFound) {
				continue
			}
			// Damage scrub finds and repairs; not what the log decides.
			continue
		}
		if c.m.Version != c.id {
			// Another version's valid copy under this one's name: not a
			// copy of this version (it does not count as held), and
			// nothing the node writes.
			rep.problem("site %s holds, under the name of version %s, the manifest of %s/%s version %s: a copy replaced", sid, c.id, c.m.Vault, c.m.Key, c.m.Version)
			continue
		}
		st, ok, err := db.get(c.id)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s/%s version %s", c.m.Vault, c.m.Key, c.id)
		switch {
		case !ok:
			rep.problem("site %s holds %s, which is not in the audit log", sid, name)
		case st.flags&stDeleted != 0:
			rep.note("site %s still holds the manifest of %s, deleted by record (garbage collection removes it)", sid, name)
		case c.m.Revision < st.siteRev:
			rep.problem("site %s holds revision %d of %s, the audit log records revision %d: a rolled-back manifest", sid, c.m.Revision, name, st.siteRev)
		case c.m.Revision > st.siteRev:
			rep.problem("site %s holds revision %d of %s, newer than the audit log records (%d)", sid, c.m.Revision, name, st.siteRev)
		}
		if ok {
			ids = append(ids, c.id)
		}
	}
	return db.update(ids, func(_ int, st *versionState) { st.flags |= stOnSite })
}

// VerifyTempDir is where VerifyLog keeps its state file for a node
// directory.
func VerifyTempDir(nodeDir string) string { return filepath.Join(nodeDir, "audit") }
