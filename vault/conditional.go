package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/embassy-dev/embassy/index"
)

// ErrPreconditionFailed: a conditional write's If-Match or If-None-Match
// does not hold for the key's current object; nothing was written.
var ErrPreconditionFailed = errors.New("precondition failed")

// conditionError turns an index precondition failure into the engine's:
// ErrPreconditionFailed, or ErrNoSuchKey for If-Match on a key with no
// current object.
func conditionError(vault, key string, err error) error {
	if errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("%w: %s/%s has no current object (If-Match)", ErrNoSuchKey, vault, key)
	}
	return fmt.Errorf("%w: %s/%s: %w", ErrPreconditionFailed, vault, key, err)
}

// precondition checks cond against the key's current object before a
// write does any work; the commit checks it again, atomically. Comparing
// ETags tells whoever asks something about the content (an ETag is the
// MD5 of the body), so a condition naming ETags needs the right to read
// the current object; "*" tells only whether one exists, which a read
// answers anyway (404 or 403).
func (e *Engine) precondition(ctx context.Context, v Vault, key string, cond index.Precondition) error {
	if cond.IsZero() {
		return nil
	}
	var latest *index.Version
	l, err := e.index.Latest(ctx, v.Name, key)
	switch {
	case err == nil:
		latest = &l
	case !errors.Is(err, index.ErrNotFound):
		return err
	}
	if latest != nil && !latest.DeleteMarker && (namesETags(cond.IfMatch) || namesETags(cond.IfNoneMatch)) {
		if err := e.canRead(ctx, v, latest.Label); err != nil {
			return err
		}
	}
	if err := cond.Check(latest); err != nil {
		return conditionError(v.Name, key, err)
	}
	return nil
}

func namesETags(list string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c = strings.TrimSpace(c); c != "" && c != "*" {
			return true
		}
	}
	return false
}
