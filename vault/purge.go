package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/embassy-dev/embassy/index"
)

// ErrHasObjects: a vault still has a current object (a key whose newest
// version is not a delete marker), so it cannot be removed.
var ErrHasObjects = errors.New("vault has current objects")

// CheckPurge reports why vault vaultName cannot be removed together with
// its history (see Purge), or nil: a current object (ErrHasObjects), a
// version under retention or legal hold (ErrLocked), or a version the
// context's principal may not read (access.ErrDenied), each named.
func (e *Engine) CheckPurge(ctx context.Context, vaultName string) error {
	v, err := e.Vault(vaultName)
	if err != nil {
		return err
	}
	if err := e.canWrite(ctx, v); err != nil {
		return err
	}
	now := time.Now()
	o := index.VersionOptions{Max: index.MaxList}
	for {
		page, err := e.index.Versions(ctx, v.Name, o)
		if err != nil {
			return err
		}
		for _, x := range page.Versions {
			if err := e.purgeable(ctx, v, x, now); err != nil {
				return err
			}
		}
		if !page.Truncated {
			return nil
		}
		o.KeyMarker, o.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
	}
}

// purgeable reports why version x may not be removed with its vault.
func (e *Engine) purgeable(ctx context.Context, v Vault, x index.Version, now time.Time) error {
	if x.IsLatest && !x.DeleteMarker {
		return fmt.Errorf("%w: %s/%s (version %s) is current; delete it first", ErrHasObjects, v.Name, x.Key, x.ID)
	}
	m, _, err := e.resolve(ctx, v.Name, x.Key, x.ID)
	if err != nil && !errors.Is(err, ErrDeleteMarker) {
		if errors.Is(err, ErrNoSuchVersion) {
			return nil // deleted meanwhile
		}
		return err
	}
	return locked(m, false, now)
}

// Purge removes every version and delete marker of a vault that has no
// current object, and aborts its uploads in progress, so that the vault
// itself can then be removed. Each version goes as DeleteObject with a
// version id removes one: its deletion record is journaled on the sites
// holding it before the index forgets it; each upload goes as
// AbortMultipartUpload ends one, with its end recorded. A key's delete
// marker goes after its older versions, so that no deleted object becomes
// current again, even for a moment. Purge stops at the first version it may
// not remove (a current object written meanwhile, a lock, a version the
// principal may not read), having removed what came before.
func (e *Engine) Purge(ctx context.Context, vaultName string) error {
	v, err := e.Vault(vaultName)
	if err != nil {
		return err
	}
	if err := e.canWrite(ctx, v); err != nil {
		return err
	}
	now := time.Now()
	for {
		// Every pass starts from the beginning: what the last one
		// listed is gone, and markers stay valid that way.
		page, err := e.index.Versions(ctx, v.Name, index.VersionOptions{Max: index.MaxList})
		if err != nil {
			return err
		}
		if len(page.Versions) == 0 {
			break
		}
		removed := 0
		// Keys whose versions may continue on the next page keep their
		// newest version (the marker) until a later pass.
		last := ""
		if page.Truncated {
			last = page.Versions[len(page.Versions)-1].Key
		}
		for i := 0; i < len(page.Versions); {
			j := i
			for j < len(page.Versions) && page.Versions[j].Key == page.Versions[i].Key {
				j++
			}
			// Oldest first: the newest goes last.
			for k := j - 1; k >= i; k-- {
				x := page.Versions[k]
				if err := e.purgeable(ctx, v, x, now); err != nil {
					return err
				}
				if x.IsLatest && x.Key == last {
					continue
				}
				if _, err := e.deleteVersion(ctx, v, x.Key, DeleteOptions{VersionID: x.ID}); err != nil {
					return fmt.Errorf("remove %s/%s version %s: %w", v.Name, x.Key, x.ID, err)
				}
				removed++
			}
			i = j
		}
		if removed == 0 {
			return fmt.Errorf("vault %s: versions remain that cannot be removed (first: %s version %s)", v.Name, page.Versions[0].Key, page.Versions[0].ID)
		}
	}
	sys := AsSystem(ctx)
	for {
		page, err := e.index.ListUploads(ctx, v.Name, index.UploadOptions{})
		if err != nil {
			return err
		}
		for _, u := range page.Uploads {
			if err := e.AbortUpload(sys, v.Name, u.Key, u.ID); err != nil && !errors.Is(err, ErrNoSuchUpload) {
				return fmt.Errorf("vault %s: abort upload %s of %s: %w", v.Name, u.ID, u.Key, err)
			}
		}
		if !page.Truncated || len(page.Uploads) == 0 {
			return nil
		}
	}
}
