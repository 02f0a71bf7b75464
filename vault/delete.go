package vault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// DeleteOptions selects what Delete removes.
type DeleteOptions struct {
	// VersionID, if set, removes that version permanently. Otherwise a
	// delete marker becomes the key's latest version and older versions
	// stay readable by id.
	VersionID manifest.ID
	// BypassGovernance allows removing a version under GOVERNANCE
	// retention (the caller has checked the permission).
	BypassGovernance bool
	// If (its IfMatch) makes the delete conditional, as S3's If-Match on
	// DeleteObject: without VersionID, on the key's current object,
	// checked again when the delete marker commits; a key with no current
	// object has nothing to delete, and nothing is written. With
	// VersionID, on that version's ETag.
	If index.Precondition
}

// DeleteResult says what Delete did.
type DeleteResult struct {
	VersionID    manifest.ID
	DeleteMarker bool
}

// ErrLocked: the version is under retention or legal hold and cannot be
// removed or overwritten until its date (or the hold is lifted).
var ErrLocked = errors.New("object version is locked")

// Delete removes a key (by writing a delete marker) or one version.
func (e *Engine) Delete(ctx context.Context, vaultName, key string, o DeleteOptions) (DeleteResult, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return DeleteResult{}, err
	}
	if err := manifest.ValidKey(key); err != nil {
		return DeleteResult{}, err
	}
	if o.VersionID.IsZero() {
		return e.putMarker(ctx, v, key, o.If)
	}
	return e.deleteVersion(ctx, v, key, o)
}

func (e *Engine) putMarker(ctx context.Context, v Vault, key string, cond index.Precondition) (DeleteResult, error) {
	if err := e.canWrite(ctx, v); err != nil {
		return DeleteResult{}, err
	}
	cond = index.Precondition{IfMatch: cond.IfMatch}
	if err := e.precondition(ctx, v, key, cond); err != nil {
		if errors.Is(err, ErrNoSuchKey) {
			return DeleteResult{}, nil // nothing to delete
		}
		return DeleteResult{}, err
	}
	// Hiding an object needs the right to read it. The marker carries the
	// label of what it hides, so that only those who may read the object
	// see the marker (in listings, and as the version a GET reports) or
	// can remove it again.
	var hides string
	if cur, err := e.index.Latest(ctx, v.Name, key); err == nil {
		if err := e.canRead(ctx, v, cur.Label); err != nil {
			return DeleteResult{}, err
		}
		hides = cur.Label
	} else if !errors.Is(err, index.ErrNotFound) {
		return DeleteResult{}, err
	}
	exclude := map[string]bool{}
	var full fullSites
	for attempt := 1; ; attempt++ {
		id, created := e.newVersion(ctx, v.Name, key)
		sites, err := e.choose(v, id, exclude, nil)
		if err != nil {
			return DeleteResult{}, full.wrap(err)
		}
		copies := distinct(sites)
		m := &manifest.Manifest{Node: e.node, Vault: v.Name, Key: key, Version: id, Created: created, DeleteMarker: true, Copies: copies, Label: hides, Journaled: true}
		env, err := manifest.Seal(m, e.sealKeys())
		if err != nil {
			return DeleteResult{}, err
		}
		err = e.writeCopies(ctx, id, env, copies, nil)
		var se *siteError
		if errors.As(err, &se) && attempt < maxAttempts {
			full.note(se)
			exclude[se.site] = true
			e.avoid(se)
			e.Events.WriteRetries.Add(1)
			continue
		}
		if err != nil {
			return DeleteResult{}, full.wrap(err)
		}
		if _, err := e.commit(ctx, m, env, nil, cond, false); err != nil {
			if !cond.IsZero() && errors.Is(err, ErrNoSuchKey) {
				return DeleteResult{}, nil // deleted meanwhile
			}
			return DeleteResult{}, err
		}
		return DeleteResult{VersionID: id, DeleteMarker: true}, nil
	}
}

// locked reports why a version cannot be removed now, or nil.
func locked(m *manifest.Manifest, bypassGovernance bool, now time.Time) error {
	if m.Lock == nil {
		return nil
	}
	if m.Lock.LegalHold {
		return fmt.Errorf("%w: %s/%s version %s is under legal hold", ErrLocked, m.Vault, m.Key, m.Version)
	}
	if now.Before(m.Lock.Until) {
		switch m.Lock.Mode {
		case "COMPLIANCE":
			return fmt.Errorf("%w: %s/%s version %s is retained in COMPLIANCE mode until %s", ErrLocked, m.Vault, m.Key, m.Version, m.Lock.Until.Format(time.RFC3339))
		case "GOVERNANCE":
			if !bypassGovernance {
				return fmt.Errorf("%w: %s/%s version %s is retained in GOVERNANCE mode until %s", ErrLocked, m.Vault, m.Key, m.Version, m.Lock.Until.Format(time.RFC3339))
			}
		}
	}
	return nil
}

// deleteVersion removes one version: the index entry first (the commit
// point), then the manifest copies, then the shards.
func (e *Engine) deleteVersion(ctx context.Context, v Vault, key string, o DeleteOptions) (DeleteResult, error) {
	return again(ctx, func(ctx context.Context) (DeleteResult, error) { return e.deleteVersionOnce(ctx, v, key, o) })
}

func (e *Engine) deleteVersionOnce(ctx context.Context, v Vault, key string, o DeleteOptions) (DeleteResult, error) {
	if err := e.canWrite(ctx, v); err != nil {
		return DeleteResult{}, err
	}
	// resolve applies the access decision, to delete markers too: removing
	// a version, or a marker (which undeletes the object), needs the right
	// to read it.
	m, env, unlock, err := e.resolveLocked(ctx, v.Name, key, o.VersionID)
	defer unlock()
	if err != nil && !errors.Is(err, ErrDeleteMarker) {
		if errors.Is(err, ErrNoSuchVersion) {
			// Like S3: removing a version that does not exist succeeds.
			return DeleteResult{VersionID: o.VersionID}, nil
		}
		return DeleteResult{}, err
	}
	// Every site holding a copy must answer before anything is removed
	// (an inline version's shards live in its manifest copies, and a
	// delete that removed some and then failed would leave the version
	// listed but unreadable), and the lock decided on is the newest
	// revision's on the sites, not an older one the index may hold
	// (restored from a backup taken before a retention was set).
	if m, err = e.newestCopy(ctx, m, env); err != nil {
		return DeleteResult{}, fmt.Errorf("delete %w", err)
	}
	if o.If.IfMatch != "" && !index.ETagListed(o.If.IfMatch, m.ETag) {
		return DeleteResult{}, fmt.Errorf("%w: %s/%s version %s has ETag %s, not %s", ErrPreconditionFailed, v.Name, key, m.Version, m.ETag, o.If.IfMatch)
	}
	if err := locked(m, o.BypassGovernance, time.Now()); err != nil {
		return DeleteResult{}, err
	}
	if o.BypassGovernance && locked(m, false, time.Now()) != nil {
		// Bypassing GOVERNANCE retention takes two custodians.
		err := e.require(withHeld(ctx, unlock), Operation{Kind: "object.delete", Summary: fmt.Sprintf("delete %s/%s version %s, bypassing its GOVERNANCE retention until %s", v.Name, key, m.Version, m.Lock.Until.Format(time.RFC3339)),
			Params: map[string]string{"vault": v.Name, "key": key, "version": m.Version.String()}})
		if err != nil {
			return DeleteResult{}, err
		}
	}
	name := manifest.BlobName(m.Version)
	sites := manifestSites(m)
	// The deletion record is durable in the node's log before the delete
	// commits, and on every site holding a blob of the version before
	// anything is removed from one: it is what lets garbage collection
	// remove what a failed cleanup leaves, and what keeps a site restored
	// from a backup, or a recover from the sites, from bringing the
	// version back half-removed. The delete is acknowledged after the
	// local append and the index commit (DESIGN §7); the removal waits for
	// the copy to the sites in the background.
	rec := evidence.Record{Kind: evidence.Delete, Version: m.Version, Revision: m.Revision}
	shards := map[string][]string{}
	for _, p := range m.Parts {
		if p.Inline {
			continue
		}
		for i, sid := range p.Sites {
			shards[sid] = append(shards[sid], manifest.ShardBlobName(p.Blob, i))
			rec.Blobs = append(rec.Blobs, evidence.Blob{Name: manifest.ShardBlobName(p.Blob, i)})
		}
	}
	ev := evidence.Event(rec)
	ev.Actor, ev.Vault, ev.Key = Actor(ctx), v.Name, key
	last, err := e.journal.AppendLocal(ctx, ev)
	if err != nil {
		return DeleteResult{}, fmt.Errorf("delete %s/%s version %s: the deletion cannot be recorded (retry when the audit log is writable): %w", v.Name, key, m.Version, err)
	}
	// The index is the commit point: once the version is gone from it,
	// it is deleted; the copies and shards are then removed best-effort,
	// and what is left is garbage by the record above.
	e.generationsChecked(ctx)
	if err := e.index.Delete(ctx, v.Name, key, m.Version); err != nil {
		ev.Kind, ev.Record = "object.delete", nil
		e.recordFailure(ctx, ev, err)
		return DeleteResult{}, err
	}
	e.noteCommit()
	copies := map[string][]string{}
	for _, sid := range sites {
		copies[sid] = append(copies[sid], name)
	}
	e.removeRecorded(ctx, last+1, sites, copies, shards)
	return DeleteResult{VersionID: m.Version, DeleteMarker: m.DeleteMarker}, nil
}

// siteIDs returns the configured site ids, sorted.
func (e *Engine) siteIDs() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Sorted(maps.Keys(e.sites))
}
