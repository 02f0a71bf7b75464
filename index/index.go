// Package index owns the metadata index: which versions exist for which
// keys of which vault, in what order, and where each version's manifest
// envelope is. The index is a cache of what the sites hold: everything in it
// can be rebuilt from the manifests on the sites, so an index can be thrown
// away at any time.
//
// [Index] is implemented by boltindex (embedded, the default) and, when
// gateways scale out, by a PostgreSQL implementation. The conformance suite
// in indextest runs against every implementation.
package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/manifest"
)

// Version is the index's record of one object version or delete marker.
type Version struct {
	Vault        string
	Key          string
	ID           manifest.ID
	Created      int64 // Unix nanoseconds; newer versions have larger values
	DeleteMarker bool
	Size         int64
	ETag         string
	// Label is the version's confidentiality label in text form ("" for
	// none), so that listings can leave out what a principal may not read.
	Label string
	// Envelope is the version's signed, sealed manifest. List results
	// leave it empty; Get and Latest fill it.
	Envelope []byte
	// IsLatest is set in Versions results for each key's newest version.
	IsLatest bool
	// Audit, if set on a write, is the sealed audit log entry recording
	// it, committed in the same transaction: durable exactly when the
	// version is (the audit log drains it, see boltindex). Reads leave it
	// empty.
	Audit []byte
}

// Newer reports whether v sorts after o in version order.
func (v Version) Newer(o Version) bool {
	if v.Created != o.Created {
		return v.Created > o.Created
	}
	return string(v.ID[:]) > string(o.ID[:])
}

// ListOptions selects latest versions of keys, as S3 ListObjects does.
type ListOptions struct {
	Prefix    string
	Delimiter string
	// After lists only keys that sort after it (S3 start-after, marker or
	// continuation). If After names a common prefix, keys under it are
	// skipped.
	After string
	// Max bounds Entries plus CommonPrefixes; 0 means 1000.
	Max int
	// Scan, if positive, bounds the index records examined (delete
	// markers and keys looked at for a common prefix included). When it is
	// reached the page is Truncated and Next is the last key examined,
	// which may be one not returned: a caller must not show it to anyone
	// who may not see that key.
	Scan int
}

// ListPage is one page of a listing.
type ListPage struct {
	Entries        []Version
	CommonPrefixes []string
	// Truncated is set when more results follow; Next is the value of
	// After that continues the listing.
	Truncated bool
	Next      string
	// Scanned counts the index records examined.
	Scanned int
}

// VersionOptions selects versions, as S3 ListObjectVersions does.
type VersionOptions struct {
	Prefix    string
	Delimiter string
	// KeyMarker and VersionMarker continue a listing: it resumes after
	// that version of that key (after every version of KeyMarker when
	// VersionMarker is zero). A VersionMarker naming a version deleted
	// since still resumes after where it was (implementations keep the
	// positions of deleted versions for a day at least); one never known
	// resumes at KeyMarker's first version, so that nothing is skipped.
	KeyMarker     string
	VersionMarker manifest.ID
	Max           int
	// Scan bounds the work of a filtered listing (see ListOptions.Scan);
	// the index itself examines at most Max versions.
	Scan int
}

// VersionPage is one page of a version listing, keys in order and each
// key's versions newest first.
type VersionPage struct {
	Versions          []Version
	CommonPrefixes    []string
	Truncated         bool
	NextKeyMarker     string
	NextVersionMarker manifest.ID
}

// Stats describes an index's size.
type Stats struct {
	Keys     int64 // keys whose latest version is not a delete marker
	Versions int64
	Bytes    int64 // storage used by the index
}

// CommitStats counts an index's writes since it was opened. An index that
// groups writes into shared transactions (boltindex) reports them through
// [Committer]; Wait/Writes is the mean time a write waited to be durable,
// Busy/Batches the mean time a shared transaction took with its flushes.
type CommitStats struct {
	Writes  uint64        // writes answered (committed or refused)
	Batches uint64        // transactions they went into
	Wait    time.Duration // summed over writes: from queued until answered
	Busy    time.Duration // summed over transactions: writing and flushing
}

// Committer is implemented by indexes that count their commits.
type Committer interface {
	CommitStats() CommitStats
}

// LatestTimer is implemented by indexes that read the creation time of a
// key's latest version without the rest of it: a put gives its new
// version a later time (vault's versionTime), and needs nothing else of
// the one before.
type LatestTimer interface {
	// LatestCreated returns the creation time of key's latest version
	// (which may be a delete marker); found is false when the key has
	// none.
	LatestCreated(ctx context.Context, vault, key string) (created int64, found bool, err error)
}

// Index is the metadata index.
//
// Put adds a version and makes it the key's latest if it is the newest.
// Latest returns the newest version of a key, which may be a delete marker.
// Delete removes one version; removing the latest makes the next newest the
// latest. All calls are safe for concurrent use; writes are durable when
// they return.
type Index interface {
	Put(ctx context.Context, v Version) error
	// PutIf is Put when p holds for v's key, checked and written in one
	// transaction; otherwise it writes nothing and returns the error of
	// p.Check.
	PutIf(ctx context.Context, v Version, p Precondition) error
	PutMany(ctx context.Context, vs []Version) error
	Get(ctx context.Context, vault, key string, id manifest.ID) (Version, error)
	Latest(ctx context.Context, vault, key string) (Version, error)
	Delete(ctx context.Context, vault, key string, id manifest.ID) error
	List(ctx context.Context, vault string, opts ListOptions) (ListPage, error)
	Versions(ctx context.Context, vault string, opts VersionOptions) (VersionPage, error)
	// Reset removes everything, before a rebuild.
	Reset(ctx context.Context) error
	Stats(ctx context.Context) (Stats, error)
	// VaultEmpty reports whether a vault has no versions at all.
	VaultEmpty(ctx context.Context, vault string) (bool, error)
	Uploads
	Close() error
}

// Precondition is a condition on a key's current object (its newest
// version, unless that is a delete marker), checked by PutIf in the same
// transaction as the write, so that two writers using it as a lock cannot
// both succeed. The fields hold S3's If-Match and If-None-Match header
// values: a comma-separated list of ETags (quoted or not), or "*".
type Precondition struct {
	// IfMatch: the key must have a current object whose ETag is listed
	// ("*": any current object). With no current object the write fails
	// with ErrNotFound.
	IfMatch string
	// IfNoneMatch: the key's current object, if any, must not have a
	// listed ETag ("*": there must be no current object).
	IfNoneMatch string
}

// IsZero reports whether p sets no condition.
func (p Precondition) IsZero() bool { return p.IfMatch == "" && p.IfNoneMatch == "" }

// Check evaluates p against a key's newest version (nil when the key has
// none): nil, ErrPreconditionFailed or ErrNotFound.
func (p Precondition) Check(latest *Version) error {
	current := latest != nil && !latest.DeleteMarker
	if p.IfMatch != "" {
		if !current {
			return fmt.Errorf("%w: If-Match and no current object", ErrNotFound)
		}
		if !ETagListed(p.IfMatch, latest.ETag) {
			return fmt.Errorf("%w: If-Match %s, current ETag %s", ErrPreconditionFailed, p.IfMatch, latest.ETag)
		}
	}
	if p.IfNoneMatch != "" && current && ETagListed(p.IfNoneMatch, latest.ETag) {
		return fmt.Errorf("%w: If-None-Match %s, current ETag %s", ErrPreconditionFailed, p.IfNoneMatch, latest.ETag)
	}
	return nil
}

// ETagListed reports whether list (an If-Match style header value: ETags,
// quoted or not, separated by commas, or "*") names etag.
func ETagListed(list, etag string) bool {
	norm := func(s string) string {
		return strings.ToLower(strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), "\""))
	}
	for c := range strings.SplitSeq(list, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || norm(c) == norm(etag) {
			return true
		}
	}
	return false
}

// ErrPreconditionFailed: a PutIf precondition does not hold.
var ErrPreconditionFailed = errors.New("index: precondition failed")

// ErrNotFound means no such key or version is indexed.
var ErrNotFound = errors.New("index: not found")

// MaxList is the largest page size.
const MaxList = 1000

// PageSize returns the effective page size for a requested max.
func PageSize(max int) int {
	if max <= 0 || max > MaxList {
		return MaxList
	}
	return max
}

// Successor returns the smallest string greater than every string with
// prefix p, or "" if there is none.
func Successor(p string) string {
	b := []byte(p)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return ""
	}
	b[len(b)-1]++
	return string(b)
}

// Upload is an in-progress multipart upload. Data is the engine's own
// record of it (opaque to the index). Uploads are node-local state, not a
// cache of the sites: an upload in progress when the node is lost is lost,
// as it would be if the client had crashed.
type Upload struct {
	Vault   string
	Key     string
	ID      string
	Created int64
	Data    []byte
}

// UploadPart is one uploaded part of a multipart upload.
type UploadPart struct {
	Number int
	Data   []byte
}

// UploadOptions selects uploads, as S3 ListMultipartUploads does.
type UploadOptions struct {
	Prefix    string
	Delimiter string
	KeyMarker string
	IDMarker  string
	Max       int
	// Scan bounds the work of a filtered listing (see ListOptions.Scan).
	Scan int
}

// UploadPage is one page of in-progress uploads, by key then creation.
type UploadPage struct {
	Uploads        []Upload
	CommonPrefixes []string
	Truncated      bool
	NextKeyMarker  string
	NextIDMarker   string
}

// Uploads is the multipart upload state an index keeps.
//
// PutUploadPart stores a part and returns the data of the part it
// replaced, if any, so the caller can remove its blobs. DeleteUpload
// removes an upload and its parts.
type Uploads interface {
	PutUpload(ctx context.Context, u Upload) error
	GetUpload(ctx context.Context, vault, id string) (Upload, error)
	DeleteUpload(ctx context.Context, vault, id string) error
	ListUploads(ctx context.Context, vault string, o UploadOptions) (UploadPage, error)
	PutUploadPart(ctx context.Context, vault, id string, p UploadPart) (prev []byte, err error)
	UploadParts(ctx context.Context, vault, id string) ([]UploadPart, error)
}

// StaleKind says why an index was marked stale: what follows from it
// (garbage collection refuses either way; 'embassy index rebuild' clears
// both).
type StaleKind string

const (
	// StaleBehind: the index is older than the sites, its commit
	// generations below theirs (restored from a backup, or copied from
	// another machine). It may still hold versions deleted since it was
	// current, whose blobs are gone: a scrub lists them as lost.
	StaleBehind StaleKind = "behind"
	// StaleIncomplete: the index was rebuilt while some sites could not
	// be listed; what only they hold is missing from it.
	StaleIncomplete StaleKind = "incomplete"
)
