package s3site

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/embassy-dev/embassy/site"
)

// Conditional writes, for the node's lease on the site (node/lease): a
// small blob created only if absent (If-None-Match: *) or replaced only if
// it is still the version the writer last saw (If-Match: its ETag). AWS S3,
// MinIO and versitygw refuse a write whose condition fails with 412; a
// provider that ignores the headers writes anyway, which only a write
// made to fail can tell (the node does so when it takes a lease).

// ErrPrecondition means a conditional write was refused: the blob exists
// (If-None-Match: *) or is no longer the version named (If-Match), or two
// conditional writes raced (409 ConditionalRequestConflict at AWS).
// Nothing was written.
var ErrPrecondition = errors.New("s3 site: the blob changed: conditional write refused")

// Condition is the precondition of [Site.PutIf]: exactly one of IfAbsent
// and IfMatch.
type Condition struct {
	// IfAbsent writes only if no blob has the name.
	IfAbsent bool
	// IfMatch writes only if the blob's ETag is this one.
	IfMatch string
}

// Written is what the provider answered to a write.
type Written struct {
	ETag string
	// VersionID is the new version's id on a versioned bucket, else "".
	VersionID string
}

// PutIf writes a small blob, whole, only if cond holds, and returns its
// ETag. A condition that fails is an error wrapping [ErrPrecondition].
// Writes through PutIf carry no object-lock retention: the blob is
// rewritten often and its old versions are removed (DeleteVersion).
func (s *Site) PutIf(ctx context.Context, name string, b []byte, cond Condition) (Written, error) {
	key, err := s.key(name)
	if err != nil {
		return Written{}, err
	}
	if cond.IfAbsent == (cond.IfMatch != "") {
		return Written{}, fmt.Errorf("s3 site %s: put %s: want exactly one condition", s.where, name)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if cond.IfAbsent {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(cond.IfMatch)
	}
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		if preconditionFailed(err) {
			return Written{}, fmt.Errorf("s3 site %s: put %s: %w", s.where, name, ErrPrecondition)
		}
		return Written{}, s.fail(ctx, "put "+name, err)
	}
	return Written{ETag: info.ETag, VersionID: info.VersionID}, nil
}

func preconditionFailed(err error) bool {
	er := minio.ToErrorResponse(err)
	return er.StatusCode == http.StatusPreconditionFailed || er.Code == "PreconditionFailed" || er.Code == "ConditionalRequestConflict"
}

// GetTagged reads a whole small blob (at most limit bytes) with its ETag.
func (s *Site) GetTagged(ctx context.Context, name string, limit int64) ([]byte, string, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, "", err
	}
	rc, oi, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, "", s.fail(ctx, "get "+name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, "", s.fail(ctx, "get "+name+": read", err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("s3 site %s: get %s: larger than %d bytes", s.where, name, limit)
	}
	return b, oi.ETag, nil
}

// DeleteVersion removes one version of a blob of a versioned bucket (an
// old version of a blob rewritten through PutIf). A version already gone
// is not an error.
func (s *Site) DeleteVersion(ctx context.Context, name, versionID string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	err = s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: versionID})
	if err != nil {
		if err = s.fail(ctx, "delete "+name+" version "+versionID, err); errors.Is(err, site.ErrNotFound) {
			return nil
		}
	}
	return err
}
