package vault

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// Multipart upload limits, as S3 has them.
const (
	MaxPartNumber = 10000
	MinPartSize   = 5 << 20
	MaxPartSize   = 5 << 30
)

// Multipart errors.
var (
	// ErrNoSuchUpload: the upload id is unknown (completed, aborted or never created).
	ErrNoSuchUpload = errors.New("no such upload")
	// ErrInvalidPart: a part named in a completion was not uploaded or its ETag differs.
	ErrInvalidPart = errors.New("invalid part")
	// ErrInvalidPartOrder: parts in a completion are not in ascending order.
	ErrInvalidPartOrder = errors.New("invalid part order")
	// ErrPartTooSmall: a part other than the last is smaller than MinPartSize.
	ErrPartTooSmall = errors.New("part too small")
)

// uploadRecord is the engine's record of an upload, kept in the index.
type uploadRecord struct {
	Version     manifest.ID       `json:"version"`
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Label       string            `json:"label,omitempty"`
	Lock        *manifest.Lock    `json:"lock,omitempty"`
	// Initiator is the principal that started the upload: only it, or an
	// operator of the vault, may add parts, list them, complete or abort.
	// Empty for uploads started before uploads had owners (and for the
	// node's own): those belong to operators only.
	Initiator string `json:"initiator,omitempty"`
	// K, M and StripeSize are the vault's code when the upload started.
	// Every part is written, and the object completed, with this code, so
	// that a policy change during the upload cannot make the parts and the
	// manifest disagree. Zero in records made before they were kept.
	K          int `json:"k,omitempty"`
	M          int `json:"m,omitempty"`
	StripeSize int `json:"stripe_size,omitempty"`
	// ChecksumAlgorithm and ChecksumType are those of PutOptions.
	ChecksumAlgorithm string `json:"checksum_algorithm,omitempty"`
	ChecksumType      string `json:"checksum_type,omitempty"`
}

// UploadInitiator returns the principal that started an upload, or "" if
// it is not recorded.
func UploadInitiator(u index.Upload) string {
	var rec uploadRecord
	if json.Unmarshal(u.Data, &rec) != nil {
		return ""
	}
	return rec.Initiator
}

// UploadChecksum returns the checksum algorithm and type an upload was
// created with (PutOptions), or "" if none.
func UploadChecksum(u index.Upload) (algorithm, checksumType string) {
	var rec uploadRecord
	if json.Unmarshal(u.Data, &rec) != nil {
		return "", ""
	}
	return rec.ChecksumAlgorithm, rec.ChecksumType
}

// coded returns v with the code recorded in rec, if any.
func (rec uploadRecord) coded(v Vault) Vault {
	if rec.K > 0 {
		v.Policy.K, v.Policy.M = rec.K, rec.M
		if rec.StripeSize > 0 {
			v.StripeSize = rec.StripeSize
		}
	}
	return v
}

// mayChangeUpload decides whether the context's principal may act on an
// upload of vault v: write into the vault (its owner's nationality), write
// the upload's label, and be the upload's initiator or an operator of the
// vault.
func (e *Engine) mayChangeUpload(ctx context.Context, v Vault, id string, rec uploadRecord) error {
	if err := e.canWrite(ctx, v); err != nil {
		return err
	}
	if err := e.mayReadUpload(ctx, v, id, rec); err != nil {
		return err
	}
	if rec.Label != "" && e.decider != nil && ctx.Value(systemKey{}) == nil {
		p, _ := PrincipalFrom(ctx)
		l, err := e.labelOf(rec.Label)
		if err != nil {
			return fmt.Errorf("upload %s: %w", id, invalidLabel(err))
		}
		if err := e.decider.CanWriteLabel(p, l); err != nil {
			return err
		}
	}
	return nil
}

// mayReadUpload decides whether the context's principal may see an upload
// (its parts, its existence in a listing): its initiator or an operator of
// the vault.
func (e *Engine) mayReadUpload(ctx context.Context, v Vault, id string, rec uploadRecord) error {
	if e.decider == nil || ctx.Value(systemKey{}) != nil {
		return nil
	}
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: %w", access.ErrDenied, ErrNoPrincipal)
	}
	if rec.Initiator != "" && p.Name == rec.Initiator && p.Nation != "" {
		return nil
	}
	if p.Can(v.Name, access.RoleOperator) {
		return nil
	}
	who := "before uploads had owners (operators only)"
	if rec.Initiator != "" {
		who = "by " + rec.Initiator
	}
	return &access.DeniedError{Principal: p.Name, Reason: access.ReasonOwner, Detail: fmt.Sprintf("upload %s of vault %s was started %s, and the operator role is not held", id, v.Name, who)}
}

// partRecord is the engine's record of one uploaded part.
type partRecord struct {
	Part     manifest.Part `json:"part"`
	Modified int64         `json:"modified"`
}

// UploadInfo describes an in-progress upload.
type UploadInfo struct {
	Vault       string
	Key         string
	ID          string
	Initiated   time.Time
	ContentType string
	Meta        map[string]string
	// ChecksumAlgorithm and ChecksumType are those the upload was
	// created with, if any (PutOptions).
	ChecksumAlgorithm string
	ChecksumType      string
}

// PartInfo describes an uploaded part.
type PartInfo struct {
	Number   int
	Size     int64
	ETag     string
	Modified time.Time
	// Checksums are the part's verified client checksums
	// (PartOptions.Checksums).
	Checksums map[string]string
}

// PartOptions describes a part being uploaded.
type PartOptions struct {
	// ETag, if set, is called after the body is read and gives the part's
	// ETag (the S3 front end passes the MD5).
	ETag func() string
	// Hash, if set, is fed the part's bytes in order beside the engine's
	// own digest of them (see PutOptions.Hash), and is complete when ETag
	// is called.
	Hash io.Writer
	// Checksums, if set, is called after the body is read and gives the
	// part's verified checksums (x-amz-checksum-* → base64), kept with the
	// part and, once the upload completes, in the object's manifest.
	Checksums func() map[string]string
}

// CreateUpload starts a multipart upload of key.
func (e *Engine) CreateUpload(ctx context.Context, vaultName, key string, o PutOptions) (UploadInfo, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return UploadInfo{}, err
	}
	if err := manifest.ValidKey(key); err != nil {
		return UploadInfo{}, err
	}
	text, _, err := e.putLabel(ctx, v, o.Label)
	if err != nil {
		return UploadInfo{}, err
	}
	o.Label = text
	now := time.Now()
	ver := manifest.NewID()
	// Upload ids sort by creation, as S3 lists them, and name the version
	// the upload completes as, so that a completion repeated after the
	// upload is forgotten finds its result.
	id := fmt.Sprintf("%016x%s", now.UnixNano(), ver.String())
	var initiator string
	if p, ok := PrincipalFrom(ctx); ok && ctx.Value(systemKey{}) == nil {
		initiator = p.Name
	}
	rec, err := json.Marshal(uploadRecord{Version: ver, ContentType: o.ContentType, Meta: o.Meta, Label: o.Label, Lock: o.Lock,
		Initiator: initiator, K: v.Policy.K, M: v.Policy.M, StripeSize: v.StripeSize,
		ChecksumAlgorithm: o.ChecksumAlgorithm, ChecksumType: o.ChecksumType})
	if err != nil {
		return UploadInfo{}, err
	}
	if err := e.index.PutUpload(ctx, index.Upload{Vault: v.Name, Key: key, ID: id, Created: now.UnixNano(), Data: rec}); err != nil {
		return UploadInfo{}, err
	}
	return UploadInfo{Vault: v.Name, Key: key, ID: id, Initiated: now.UTC(), ContentType: o.ContentType, Meta: o.Meta,
		ChecksumAlgorithm: o.ChecksumAlgorithm, ChecksumType: o.ChecksumType}, nil
}

func (e *Engine) upload(ctx context.Context, vault, key, id string) (index.Upload, uploadRecord, error) {
	u, err := e.index.GetUpload(ctx, vault, id)
	if errors.Is(err, index.ErrNotFound) || (err == nil && u.Key != key) {
		return u, uploadRecord{}, fmt.Errorf("%w: %s", ErrNoSuchUpload, id)
	}
	if err != nil {
		return u, uploadRecord{}, err
	}
	var rec uploadRecord
	if err := json.Unmarshal(u.Data, &rec); err != nil {
		return u, rec, fmt.Errorf("upload %s: record corrupt: %w", id, err)
	}
	return u, rec, nil
}

// PutPart stores part number of an upload from r (size bytes, or -1).
// etag, if set, is called after the body is read and gives the part's
// ETag (the S3 front end passes the MD5).
func (e *Engine) PutPart(ctx context.Context, vaultName, key, uploadID string, number int, r io.Reader, size int64, etagFn func() string) (PartInfo, error) {
	return e.PutPartWith(ctx, vaultName, key, uploadID, number, r, size, PartOptions{ETag: etagFn})
}

// PutPartWith is PutPart with the part's ETag and checksums from o.
func (e *Engine) PutPartWith(ctx context.Context, vaultName, key, uploadID string, number int, r io.Reader, size int64, o PartOptions) (PartInfo, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return PartInfo{}, err
	}
	if number < 1 || number > MaxPartNumber {
		return PartInfo{}, fmt.Errorf("part number %d: must be 1 to %d", number, MaxPartNumber)
	}
	_, rec, err := e.upload(ctx, v.Name, key, uploadID)
	if err != nil {
		return PartInfo{}, err
	}
	if err := e.mayChangeUpload(ctx, v, uploadID, rec); err != nil {
		return PartInfo{}, err
	}
	v = rec.coded(v)
	blobKey := manifest.NewID()
	var l *label.Label
	if rec.Label != "" {
		parsed, err := e.labelOf(rec.Label)
		if err != nil {
			return PartInfo{}, err
		}
		l = &parsed
	}
	sites, err := e.choose(v, blobKey, nil, l)
	if err != nil {
		return PartInfo{}, err
	}
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	wp, err := e.writePart(ctx, partSpec{vault: v, key: key, version: rec.Version, upload: uploadID, number: number, sites: sites, size: size, tee: o.Hash}, r)
	if err != nil {
		var se *siteError
		if errors.As(err, &se) {
			e.avoid(se)
		}
		return PartInfo{}, fullSites{}.wrap(err)
	}
	if o.ETag != nil {
		wp.ETag = o.ETag()
	}
	if o.Checksums != nil {
		if sums := o.Checksums(); len(sums) > 0 {
			wp.Checksums = sums
		}
	}
	if wp.ETag == "" {
		wp.ETag = fmt.Sprintf("\"%s\"", wp.Blob)
	}
	now := time.Now()
	data, err := json.Marshal(partRecord{Part: wp.Part, Modified: now.UnixNano()})
	if err != nil {
		e.abandon(ctx, evidence.Record{Version: rec.Version, Upload: uploadID}, wp.blobs())
		return PartInfo{}, err
	}
	prev, err := e.index.PutUploadPart(ctx, v.Name, uploadID, index.UploadPart{Number: number, Data: data})
	if err != nil {
		// Aborted or completed meanwhile: this part belongs to nothing.
		e.abandon(ctx, evidence.Record{Version: rec.Version, Upload: uploadID}, wp.blobs())
		if errors.Is(err, index.ErrNotFound) {
			return PartInfo{}, fmt.Errorf("%w: %s", ErrNoSuchUpload, uploadID)
		}
		return PartInfo{}, err
	}
	if prev != nil {
		var old partRecord
		if json.Unmarshal(prev, &old) == nil {
			if err := e.replacedPart(ctx, v.Name, key, uploadID, rec.Version, old.Part, wp.Part); err != nil {
				return PartInfo{}, err
			}
		}
	}
	return PartInfo{Number: number, Size: wp.Size, ETag: wp.ETag, Modified: now.UTC(), Checksums: wp.Checksums}, nil
}

// replacedPart deals with the blobs of a part uploaded again under the same
// number (old), once this one (part) has taken its place in the index. A
// completion under way may have read the parts before that and named old
// in the manifest it is writing: removing old's blobs at once (as until
// the twenty-first pass) left that object, acknowledged, without them. A
// completion holds the version's lock from its read of the parts to its
// end, so under that lock, taken after the index write, none is under way
// that could use old: either the upload completed meanwhile, and its
// committed manifest says what it used, or it did not, and a completion to
// come reads the index, which no longer names old. The blobs no committed
// manifest uses are then recorded as abandoned and removed. Only a part
// replaced takes the lock, after its index write: the parts of an upload
// are not put in line behind it. If the lock cannot be had (the call's
// context ended) the blobs are kept, and collection removes them on the
// records once the upload has ended, if its version does not use them.
//
// The upload may also have ended while part was written (after its record
// was put): a completion that read the parts before did not name it, an
// abort removed only the parts it read. Part then belongs to nothing and
// is abandoned too; the caller is told the upload is gone.
func (e *Engine) replacedPart(ctx context.Context, vault, key, uploadID string, version manifest.ID, old, part manifest.Part) error {
	keep := func(err error) error {
		e.log.WarnContext(ctx, "blobs of a part uploaded again kept: garbage collection removes them once the upload ended, if its version does not use them",
			"upload", uploadID, "part", old.Number, "err", err)
		return nil
	}
	unlock, err := e.lockVersion(ctx, version)
	if err != nil {
		return keep(err)
	}
	defer unlock()
	rec := evidence.Record{Version: version, Upload: uploadID}
	cur, err := e.index.Get(ctx, vault, key, version)
	if errors.Is(err, index.ErrNotFound) {
		// Not completed, as far as the index knows. An index restored
		// from a backup taken before the completion says so too, while
		// the sites hold the completed version's manifest: that index's
		// word is no evidence, and a copy of the manifest on any site (or
		// a site that cannot say) keeps the blobs for collection, which
		// decides on the records and refuses a stale index.
		if why := e.versionCopied(ctx, version); why != "" {
			return keep(errors.New(why))
		}
		// No completion holds old, and none to come can.
		e.abandon(ctx, rec, writtenPart{old}.blobs())
		if _, _, err := e.upload(ctx, vault, key, uploadID); errors.Is(err, ErrNoSuchUpload) {
			// Aborted after part was recorded: it was not removed.
			e.abandon(ctx, rec, writtenPart{part}.blobs())
			return err
		}
		return nil
	}
	if err != nil {
		return keep(err)
	}
	m, err := manifest.Open(cur.Envelope, e.readKeys())
	if err != nil {
		return keep(err)
	}
	// Completed meanwhile: what its manifest does not use is garbage.
	used := func(p manifest.Part) bool {
		return slices.ContainsFunc(m.Parts, func(q manifest.Part) bool { return q.Blob == p.Blob })
	}
	if !used(old) {
		e.abandon(ctx, rec, writtenPart{old}.blobs())
	}
	if !used(part) {
		e.abandon(ctx, rec, writtenPart{part}.blobs())
		return fmt.Errorf("%w: %s (completed while part %d was uploaded again, without it)", ErrNoSuchUpload, uploadID, part.Number)
	}
	return nil
}

// versionCopied says why version may have been committed by the sites'
// word: a site holds a manifest copy of it, or a site could not be asked;
// "" when every configured site answered that it holds none.
func (e *Engine) versionCopied(ctx context.Context, version manifest.ID) string {
	for id, s := range e.siteStores() {
		_, err := s.Stat(ctx, manifest.BlobName(version))
		switch {
		case err == nil:
			return "site " + id + " holds a manifest copy of version " + version.String()
		case !errors.Is(err, site.ErrNotFound):
			return "site " + id + " could not say whether it holds a manifest copy of version " + version.String() + ": " + err.Error()
		}
	}
	return ""
}

func (e *Engine) parts(ctx context.Context, vault, id string) (map[int]partRecord, error) {
	raw, err := e.index.UploadParts(ctx, vault, id)
	if errors.Is(err, index.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchUpload, id)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int]partRecord, len(raw))
	for _, p := range raw {
		var rec partRecord
		if err := json.Unmarshal(p.Data, &rec); err != nil {
			return nil, fmt.Errorf("upload %s part %d: record corrupt: %w", id, p.Number, err)
		}
		out[p.Number] = rec
	}
	return out, nil
}

// ListParts lists an upload's parts in order.
func (e *Engine) ListParts(ctx context.Context, vaultName, key, uploadID string) ([]PartInfo, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return nil, err
	}
	_, rec, err := e.upload(ctx, vaultName, key, uploadID)
	if err != nil {
		return nil, err
	}
	if err := e.mayReadUpload(ctx, v, uploadID, rec); err != nil {
		return nil, err
	}
	raw, err := e.index.UploadParts(ctx, vaultName, uploadID)
	if err != nil {
		return nil, err
	}
	var out []PartInfo
	for _, p := range raw {
		var rec partRecord
		if err := json.Unmarshal(p.Data, &rec); err != nil {
			return nil, err
		}
		out = append(out, PartInfo{Number: p.Number, Size: rec.Part.Size, ETag: rec.Part.ETag, Modified: time.Unix(0, rec.Modified).UTC(), Checksums: rec.Part.Checksums})
	}
	return out, nil
}

// UploadMeta returns an upload's metadata.
func (e *Engine) UploadMeta(ctx context.Context, vaultName, key, uploadID string) (UploadInfo, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return UploadInfo{}, err
	}
	u, rec, err := e.upload(ctx, vaultName, key, uploadID)
	if err != nil {
		return UploadInfo{}, err
	}
	if err := e.mayReadUpload(ctx, v, uploadID, rec); err != nil {
		return UploadInfo{}, err
	}
	return UploadInfo{Vault: vaultName, Key: key, ID: uploadID, Initiated: time.Unix(0, u.Created).UTC(), ContentType: rec.ContentType, Meta: rec.Meta,
		ChecksumAlgorithm: rec.ChecksumAlgorithm, ChecksumType: rec.ChecksumType}, nil
}

// CompletePart names a part in a completion.
type CompletePart struct {
	Number int
	ETag   string
}

// CompleteUpload assembles the named parts into a new version of the key.
// Completing an upload that already completed returns that version.
func (e *Engine) CompleteUpload(ctx context.Context, vaultName, key, uploadID string, want []CompletePart) (ObjectInfo, error) {
	return e.CompleteUploadIf(ctx, vaultName, key, uploadID, want, index.Precondition{})
}

// CompleteUploadIf is CompleteUpload when cond holds for the key's current
// object, checked first and again in the index transaction that commits
// the version (see PutOptions.If). When it fails the upload stays open.
func (e *Engine) CompleteUploadIf(ctx context.Context, vaultName, key, uploadID string, want []CompletePart, cond index.Precondition) (ObjectInfo, error) {
	return e.CompleteUploadWith(ctx, vaultName, key, uploadID, want, CompleteOptions{If: cond})
}

// CompleteOptions qualifies a completion.
type CompleteOptions struct {
	// If makes the completion conditional (CompleteUploadIf).
	If index.Precondition
	// Checksums, if set, is called with the upload's checksum algorithm
	// and type (PutOptions) and the parts the completion names, in order,
	// once they have been checked, and returns the checksums to keep for
	// the object (x-amz-checksum-* → base64), or an error that fails the
	// completion, leaving the upload open.
	Checksums func(algorithm, checksumType string, parts []PartInfo) (map[string]string, error)
}

// CompleteUploadWith is CompleteUpload with the options o. A part number
// named more than once counts once, with the ETag of its last mention (a
// client that uploaded a part again lists both answers, the one that
// finished last last), as ceph/rgw does.
func (e *Engine) CompleteUploadWith(ctx context.Context, vaultName, key, uploadID string, want []CompletePart, o CompleteOptions) (ObjectInfo, error) {
	cond := o.If
	v, err := e.Vault(vaultName)
	if err != nil {
		return ObjectInfo{}, err
	}
	_, rec, err := e.upload(ctx, v.Name, key, uploadID)
	if errors.Is(err, ErrNoSuchUpload) {
		// Completed before: S3 answers a repeated completion with the
		// object it made.
		if ver, ok := completedAs(uploadID); ok {
			if _, gerr := e.index.Get(ctx, v.Name, key, ver); gerr == nil {
				return e.Stat(ctx, v.Name, key, ver)
			}
		}
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := e.mayChangeUpload(ctx, v, uploadID, rec); err != nil {
		return ObjectInfo{}, err
	}
	v = rec.coded(v)
	// Under the version's lock from here to the clean-up of the parts not
	// used: a second completion of the same upload at the same time (a
	// client retrying one that takes long) would write its manifest over
	// the first's and commit it, and each would remove the parts the
	// other's list did not name but its manifest did. It waits, then
	// finds the version committed.
	unlock, err := e.lockVersion(ctx, rec.Version)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer unlock()
	if _, err := e.index.Get(ctx, v.Name, key, rec.Version); err == nil {
		// Completed before, then interrupted before the upload was
		// forgotten: finish forgetting it and report the version.
		e.index.DeleteUpload(ctx, v.Name, uploadID)
		return e.Stat(ctx, v.Name, key, rec.Version)
	}
	if _, _, err := e.upload(ctx, v.Name, key, uploadID); err != nil {
		return ObjectInfo{}, err // aborted while this waited for the lock
	}
	if len(want) == 0 {
		return ObjectInfo{}, fmt.Errorf("%w: a completion must name at least one part", ErrInvalidPart)
	}
	if err := e.precondition(ctx, v, key, cond); err != nil {
		return ObjectInfo{}, err
	}
	have, err := e.parts(ctx, v.Name, uploadID)
	if err != nil {
		return ObjectInfo{}, err
	}
	named := make([]CompletePart, 0, len(want))
	for i, w := range want {
		switch {
		case i > 0 && w.Number == want[i-1].Number:
			named[len(named)-1] = w
			continue
		case i > 0 && w.Number < want[i-1].Number:
			return ObjectInfo{}, fmt.Errorf("%w: part %d follows part %d", ErrInvalidPartOrder, w.Number, want[i-1].Number)
		}
		named = append(named, w)
	}
	want = named
	var parts []manifest.Part
	var infos []PartInfo
	var size int64
	md5s := make([]byte, 0, 16*len(want))
	allMD5 := true
	for i, w := range want {
		p, ok := have[w.Number]
		if !ok {
			return ObjectInfo{}, fmt.Errorf("%w: part %d was not uploaded", ErrInvalidPart, w.Number)
		}
		if normETag(w.ETag) != normETag(p.Part.ETag) {
			return ObjectInfo{}, fmt.Errorf("%w: part %d has ETag %s, not %s", ErrInvalidPart, w.Number, p.Part.ETag, w.ETag)
		}
		if n := len(p.Part.Sites); n != v.Policy.K+v.Policy.M {
			return ObjectInfo{}, fmt.Errorf("%w: part %d was stored as %d shards, but the object's code %d+%d needs %d (the vault's policy changed while the upload, started before codes were recorded, ran): abort it and upload again",
				ErrInvalidPart, w.Number, n, v.Policy.K, v.Policy.M, v.Policy.K+v.Policy.M)
		}
		if i < len(want)-1 && p.Part.Size < MinPartSize {
			return ObjectInfo{}, fmt.Errorf("%w: part %d is %d bytes; every part but the last must be at least %d", ErrPartTooSmall, w.Number, p.Part.Size, MinPartSize)
		}
		if b, err := hex.DecodeString(normETag(p.Part.ETag)); err == nil && len(b) == 16 {
			md5s = append(md5s, b...)
		} else {
			allMD5 = false
		}
		parts = append(parts, p.Part)
		infos = append(infos, PartInfo{Number: w.Number, Size: p.Part.Size, ETag: p.Part.ETag, Modified: time.Unix(0, p.Modified).UTC(), Checksums: p.Part.Checksums})
		size += p.Part.Size
	}
	var sums map[string]string
	if o.Checksums != nil {
		if sums, err = o.Checksums(rec.ChecksumAlgorithm, rec.ChecksumType, infos); err != nil {
			return ObjectInfo{}, err
		}
	}
	etag := ""
	if allMD5 {
		sum := md5.Sum(md5s)
		etag = fmt.Sprintf("\"%x-%d\"", sum, len(parts))
	} else {
		h := md5.New()
		for _, p := range parts {
			h.Write(p.Blob[:])
		}
		etag = fmt.Sprintf("\"%x-%d\"", h.Sum(nil), len(parts))
	}
	_, created := e.newVersion(ctx, v.Name, key)
	m := &manifest.Manifest{
		Node: e.node, Vault: v.Name, Key: key, Version: rec.Version, Created: created,
		Size: size, ETag: etag, ContentType: rec.ContentType, Meta: rec.Meta, Label: rec.Label, Lock: rec.Lock,
		K: v.Policy.K, M: v.Policy.M, StripeSize: v.StripeSize, KeyGen: keyGen(v), Parts: parts, Journaled: true, Checksums: sums,
	}
	if rec.Label != "" {
		l, err := e.labelOf(rec.Label)
		if err != nil {
			return ObjectInfo{}, err
		}
		if err := e.bindLabel(m, &l); err != nil {
			return ObjectInfo{}, err
		}
	}
	env, err := manifest.Seal(m, e.sealKeys())
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := e.writeCopies(ctx, rec.Version, env, manifestSites(m), nil); err != nil {
		return ObjectInfo{}, err
	}
	info, err := e.commit(ctx, m, env, nil, cond, true)
	if err != nil {
		return ObjectInfo{}, err
	}
	// The version is committed: forget the upload, then remove parts that
	// were uploaded but not used.
	if err := e.index.DeleteUpload(ctx, v.Name, uploadID); err != nil {
		e.log.WarnContext(ctx, "completed upload not forgotten", "upload", uploadID, "err", err)
	}
	used := map[int]bool{}
	for _, w := range want {
		used[w.Number] = true
	}
	unused := map[string][]string{}
	for n, p := range have {
		if !used[n] {
			for s, names := range (writtenPart{p.Part}).blobs() {
				unused[s] = append(unused[s], names...)
			}
		}
	}
	e.endUpload(ctx, rec.Version, uploadID, unused)
	return info, nil
}

// completedAs returns the version an upload id names (ids made since they
// carry it: 16 hex digits of time, then the version's 32).
func completedAs(uploadID string) (manifest.ID, bool) {
	if len(uploadID) != 48 {
		return manifest.ID{}, false
	}
	id, err := manifest.ParseID(uploadID[16:])
	return id, err == nil && !id.IsZero()
}

func normETag(s string) string { return strings.ToLower(strings.Trim(s, "\" ")) }

// AbortUpload forgets an upload and removes its parts' blobs. If the upload
// had in fact completed (a crash between commit and cleanup), the committed
// version keeps its blobs.
func (e *Engine) AbortUpload(ctx context.Context, vaultName, key, uploadID string) error {
	v, err := e.Vault(vaultName)
	if err != nil {
		return err
	}
	_, rec, err := e.upload(ctx, vaultName, key, uploadID)
	if err != nil {
		return err
	}
	if err := e.mayChangeUpload(ctx, v, uploadID, rec); err != nil {
		return err
	}
	// Under the version's lock, as a completion is: one under way would
	// otherwise commit after the check below, with the parts this removes.
	unlock, err := e.lockVersion(ctx, rec.Version)
	if err != nil {
		return err
	}
	defer unlock()
	have, err := e.parts(ctx, vaultName, uploadID)
	if err != nil {
		return err
	}
	if err := e.index.DeleteUpload(ctx, vaultName, uploadID); err != nil {
		return err
	}
	if _, err := e.index.Get(ctx, vaultName, key, rec.Version); err == nil {
		return nil
	}
	blobs := map[string][]string{}
	for _, p := range have {
		for s, names := range (writtenPart{p.Part}).blobs() {
			blobs[s] = append(blobs[s], names...)
		}
	}
	e.endUpload(ctx, manifest.ID{}, uploadID, blobs)
	return nil
}

// endUpload records that an upload ended — completed as version (zero:
// aborted) — so that parts of it no other record names are known to be
// garbage, then abandons the parts it did not use.
func (e *Engine) endUpload(ctx context.Context, version manifest.ID, uploadID string, unused map[string][]string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := e.journal.Append(rctx, nil, evidence.Record{Kind: evidence.UploadEnd, Version: version, Upload: uploadID}); err != nil {
		e.log.WarnContext(ctx, "end of upload not recorded", "upload", uploadID, "err", err)
	}
	e.abandon(ctx, evidence.Record{Version: version, Upload: uploadID}, unused)
}
