package federation

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/custody"
)

// Replication (grant level replicate). The grantee's node pulls, by a
// cursor over the owner's audit log, the site blobs of the versions in the
// grant's scope — sealed manifest copies and shard blobs, exactly as the
// owner wrote them — and, at the end of each pass, the owner's sealed node
// descriptor, its site markers and a copy of its audit log (tiles,
// bundles and checkpoint). It opens none of them. A deletion reaches the
// replica only as a deletion record the owner signed.
//
//	replicate         ReplicateRequest → ReplicateResponse: one page from a cursor, and a ticket for the blob endpoint
//	recover/list      RecoverListRequest → RecoverListResponse: the blobs the replica holds (owner's recovery key only)
//	recover/blob      RecoverBlobRequest → the bytes of one of them
//
// The recover/ endpoints are reached by the owner rebuilding itself: it
// has lost its identity and peer keys with its node directory, so it
// presents a TLS key derived from its root key (custody.RecoveryKeys),
// whose pin it gave the replica with every page (RecoveryPin).

// Endpoint names of replication and recovery.
const (
	EndpointReplicate   = "replicate"
	EndpointRecoverList = "recover/list"
	EndpointRecoverBlob = "recover/blob"
)

// BlobRef names a blob on one of the owner's sites.
type BlobRef struct {
	Site string `json:"site"`
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// AllSites, as a recovery listing's site, marks a blob that belongs on
// every site: the descriptor, the witness's memory and the log copy.
const AllSites = "*"

// Blob name classes a replica holds.
const (
	BlobDescriptor = "node/descriptor"
	BlobMarker     = "node/marker"
	// BlobWitness is the owner's witness memory: the latest checkpoint it
	// cosigned of each log it witnesses, with its cosignature.
	BlobWitness   = "node/witness"
	BlobLogPrefix = "log/"
)

// CheckBlobRef checks that r names a site and a blob a replica may hold:
// a manifest copy (m/), a shard (s/), the log (log/), the descriptor or a
// site marker; names are plain paths of letters, digits and ._-.
func CheckBlobRef(r BlobRef) error {
	if r.Site == AllSites {
		if r.Name != BlobDescriptor && r.Name != BlobWitness && !strings.HasPrefix(r.Name, BlobLogPrefix) {
			return fmt.Errorf("blob %.70q: only the descriptor, the witness's memory and the log belong to every site", r.Name)
		}
		if r.Size < 0 {
			return fmt.Errorf("blob %s: negative size", r.Name)
		}
		return CheckBlobName(r.Name)
	}
	if r.Site == "" || len(r.Site) > 64 || strings.Trim(r.Site, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" || r.Site[0] == '.' {
		return fmt.Errorf("blob site %.70q: not a site id", r.Site)
	}
	if r.Size < 0 {
		return fmt.Errorf("blob %s: negative size", r.Name)
	}
	return CheckBlobName(r.Name)
}

// CheckBlobName checks a replicated blob's name (see CheckBlobRef).
func CheckBlobName(name string) error {
	switch {
	case name == BlobDescriptor, name == BlobMarker, name == BlobWitness:
		return nil
	case len(name) > 256 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") != "":
		return fmt.Errorf("blob name %.70q: not a plain path", name)
	case strings.Contains(name, "//") || strings.Contains(name, "..") || strings.HasSuffix(name, "/"):
		return fmt.Errorf("blob name %.70q: not a plain path", name)
	case strings.HasPrefix(name, "m/"), strings.HasPrefix(name, "s/"), strings.HasPrefix(name, BlobLogPrefix):
		return nil
	}
	return fmt.Errorf("blob name %.70q: not a manifest, shard, log, descriptor or marker blob", name)
}

// ReplicateRequest asks for the changes to a replicate grant's scope from
// the owner's log entry After on.
type ReplicateRequest struct {
	Grant string `json:"grant"`
	After uint64 `json:"after"`
	// Max bounds the entries of the page (versions and deletions).
	Max int `json:"max,omitempty"`
}

// ReplicaEntry is one change in the scope, at the owner's log entry
// Index: a version written or revised (Version and the blobs it has now),
// or deleted (Deletion, a signed deletion record).
type ReplicaEntry struct {
	Index    uint64    `json:"index"`
	Version  string    `json:"version,omitempty"`
	Blobs    []BlobRef `json:"blobs,omitempty"`
	Deletion string    `json:"deletion,omitempty"`
}

// ReplicateResponse is one page. Its blobs are fetched through the blob
// endpoint under Ticket. When Done, the page also names what the owner
// needs to rebuild itself: its descriptor, its site markers, and its log
// copy on one site, whose checkpoint (Checkpoint, covering LogSize
// entries) the grantee stores last.
type ReplicateResponse struct {
	Entries []ReplicaEntry `json:"entries"`
	// Next is the cursor to ask from next.
	Next uint64 `json:"next"`
	// Done: Next reached LogSize; nothing more to pull for now.
	Done    bool   `json:"done,omitempty"`
	LogSize uint64 `json:"log_size"`
	Ticket  string `json:"ticket"`
	// On the last page:
	Descriptor *BlobRef `json:"descriptor,omitempty"`
	// Witness is the owner's witness memory, when its sites hold one.
	Witness    *BlobRef  `json:"witness,omitempty"`
	Markers    []BlobRef `json:"markers,omitempty"`
	Log        []BlobRef `json:"log,omitempty"`
	Checkpoint []byte    `json:"checkpoint,omitempty"`
	// RecoveryPin is the pin of the owner's root-derived recovery TLS key.
	RecoveryPin string `json:"recovery_pin"`
}

// ParseReplicateRequest decodes and checks a replicate request.
func ParseReplicateRequest(b []byte) (ReplicateRequest, error) {
	var q ReplicateRequest
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if err := checkGrantID(q.Grant); err != nil {
		return q, err
	}
	if q.Max < 0 || q.Max > 10000 {
		return q, errors.New("max: must be 0 to 10000")
	}
	return q, nil
}

// ParseReplicateResponse decodes and checks a replicate answer. Deletion
// records are checked by the caller, against the owner's identity.
func ParseReplicateResponse(b []byte) (ReplicateResponse, error) {
	var r ReplicateResponse
	if err := decodeAnswer(b, &r); err != nil {
		return r, err
	}
	if len(r.Ticket) != 32 {
		return r, errors.New("replicate answer: no ticket")
	}
	if r.Next > r.LogSize && r.LogSize > 0 {
		return r, fmt.Errorf("replicate answer: next %d beyond the log's %d entries", r.Next, r.LogSize)
	}
	for _, e := range r.Entries {
		if e.Index >= r.Next {
			return r, fmt.Errorf("replicate answer: entry %d not before next %d", e.Index, r.Next)
		}
		if (e.Version == "") == (e.Deletion == "") {
			return r, fmt.Errorf("replicate answer: entry %d is neither a version nor a deletion", e.Index)
		}
		if e.Version != "" && !validVersion(e.Version) {
			return r, fmt.Errorf("replicate answer: entry %d: version %.40q", e.Index, e.Version)
		}
		for _, br := range e.Blobs {
			if err := CheckBlobRef(br); err != nil {
				return r, fmt.Errorf("replicate answer: entry %d: %w", e.Index, err)
			}
		}
	}
	refs := append(append([]BlobRef{}, r.Markers...), r.Log...)
	if r.Descriptor != nil {
		refs = append(refs, *r.Descriptor)
		if r.Descriptor.Name != BlobDescriptor {
			return r, errors.New("replicate answer: the descriptor is not node/descriptor")
		}
	}
	if r.Witness != nil {
		refs = append(refs, *r.Witness)
		if r.Witness.Name != BlobWitness {
			return r, errors.New("replicate answer: the witness memory is not node/witness")
		}
	}
	for _, br := range refs {
		if err := CheckBlobRef(br); err != nil {
			return r, fmt.Errorf("replicate answer: %w", err)
		}
	}
	for _, br := range r.Markers {
		if br.Name != BlobMarker {
			return r, fmt.Errorf("replicate answer: marker %s is not node/marker", br.Name)
		}
	}
	for _, br := range r.Log {
		if !strings.HasPrefix(br.Name, BlobLogPrefix) {
			return r, fmt.Errorf("replicate answer: log blob %s is not under log/", br.Name)
		}
	}
	if len(r.Checkpoint) > 64<<10 {
		return r, errors.New("replicate answer: checkpoint too large")
	}
	if !strings.HasPrefix(r.RecoveryPin, "SHA256:") || len(r.RecoveryPin) != len("SHA256:")+43 {
		return r, fmt.Errorf("replicate answer: recovery pin %.60q", r.RecoveryPin)
	}
	return r, nil
}

func validVersion(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

// RecoverListRequest asks a replica for a page of the blobs it holds for
// the owner, in name order after After (site, then name, joined by "/").
type RecoverListRequest struct {
	After string `json:"after,omitempty"`
	Max   int    `json:"max,omitempty"`
}

// RecoverListResponse is one page of them.
type RecoverListResponse struct {
	Owner     string    `json:"owner"`
	Blobs     []BlobRef `json:"blobs"`
	Truncated bool      `json:"truncated,omitempty"`
	Next      string    `json:"next,omitempty"`
	// Deletions counts the owner's deletion records the replica applied.
	Deletions int `json:"deletions"`
}

// RecoverBlobRequest asks for one blob the replica holds.
type RecoverBlobRequest struct {
	Site string `json:"site"`
	Name string `json:"name"`
}

// ParseRecoverListRequest decodes and checks a recovery listing request.
func ParseRecoverListRequest(b []byte) (RecoverListRequest, error) {
	var q RecoverListRequest
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if q.Max < 0 || q.Max > 10000 || len(q.After) > 400 {
		return q, errors.New("max must be 0 to 10000 and after at most 400 bytes")
	}
	return q, nil
}

// ParseRecoverListResponse decodes and checks a recovery listing.
func ParseRecoverListResponse(b []byte) (RecoverListResponse, error) {
	var r RecoverListResponse
	if err := decodeAnswer(b, &r); err != nil {
		return r, err
	}
	if !validNodeID(r.Owner) {
		return r, fmt.Errorf("recover answer: owner %.70q is not a node id", r.Owner)
	}
	for _, br := range r.Blobs {
		if err := CheckBlobRef(br); err != nil {
			return r, fmt.Errorf("recover answer: %w", err)
		}
	}
	return r, nil
}

// ParseRecoverBlobRequest decodes and checks a recovery blob request.
func ParseRecoverBlobRequest(b []byte) (RecoverBlobRequest, error) {
	var q RecoverBlobRequest
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	return q, CheckBlobRef(BlobRef{Site: q.Site, Name: q.Name})
}

// A deletion record tells a replica that the owner deleted a version:
//
//	embassy deletion v1
//	owner <owner node id>
//	grant <replicate grant id>
//	version <32 hex digits>
//	log-index <the owner's audit log entry of the deletion record>
//	deleted <RFC 3339>
//	signature <base64 hybrid signature by the owner's identity over the lines above>
//
// It is the replica's only evidence for removing the version's blobs
// (DESIGN.md invariant 10); one that does not verify is refused.
const deletionHeader = "embassy deletion v1\n"

var deletionKeys = []string{"owner", "grant", "version", "log-index", "deleted", "signature"}

// Deletion is a deletion record's terms.
type Deletion struct {
	Owner    string
	Grant    string
	Version  string
	LogIndex uint64
	Deleted  time.Time
	Raw      []byte
}

// ErrDeletion: a deletion record is malformed or not signed by the owner.
var ErrDeletion = errors.New("deletion record refused")

func (d Deletion) body() []byte {
	return fmt.Appendf(nil, "%sowner %s\ngrant %s\nversion %s\nlog-index %d\ndeleted %s\n", deletionHeader, d.Owner, d.Grant, d.Version, d.LogIndex, d.Deleted.UTC().Format(time.RFC3339Nano))
}

func (d Deletion) validate() error {
	switch {
	case !validNodeID(d.Owner):
		return fmt.Errorf("%w: owner is not a node id", ErrDeletion)
	case checkGrantID(d.Grant) != nil || strings.Trim(d.Grant, "0123456789abcdef") != "":
		return fmt.Errorf("%w: grant is not a grant id", ErrDeletion)
	case !validVersion(d.Version):
		return fmt.Errorf("%w: version %.40q is not 32 hex digits", ErrDeletion, d.Version)
	}
	return nil
}

// SignDeletion signs d with the owner's identity (sign makes a hybrid
// signature) and returns it with Raw set.
func SignDeletion(d Deletion, sign func([]byte) ([]byte, error)) (Deletion, error) {
	d.Deleted = d.Deleted.UTC()
	if err := d.validate(); err != nil {
		return d, err
	}
	raw, err := custody.SignLines(d.body(), sign)
	if err != nil {
		return d, err
	}
	d.Raw = raw
	return d, nil
}

// ParseDeletion reads a deletion record and checks its signature by the
// owner's identity.
func ParseDeletion(b []byte, owner custody.PublicIdentity) (Deletion, error) {
	d, body, sig, err := parseDeletion(b)
	if err != nil {
		return d, err
	}
	if err := owner.Verify(body, sig); err != nil {
		return Deletion{}, fmt.Errorf("%w: signature is not the owner node's (forged or altered): %v", ErrDeletion, err)
	}
	return d, nil
}

func parseDeletion(b []byte) (Deletion, []byte, []byte, error) {
	f, body, err := custody.ParseSignedLines(b, deletionHeader, deletionKeys, maxRecord)
	if err != nil {
		return Deletion{}, nil, nil, fmt.Errorf("%w: %v", ErrDeletion, err)
	}
	idx, err1 := strconv.ParseUint(f["log-index"], 10, 64)
	at, err2 := time.Parse(time.RFC3339Nano, f["deleted"])
	if err := errors.Join(err1, err2); err != nil {
		return Deletion{}, nil, nil, fmt.Errorf("%w: %v", ErrDeletion, err)
	}
	d := Deletion{Owner: f["owner"], Grant: f["grant"], Version: f["version"], LogIndex: idx, Deleted: at}
	if err := d.validate(); err != nil {
		return Deletion{}, nil, nil, err
	}
	if !bytes.Equal(d.body(), body) {
		return Deletion{}, nil, nil, fmt.Errorf("%w: not in canonical form", ErrDeletion)
	}
	sig, err := base64.StdEncoding.DecodeString(f["signature"])
	if err != nil || len(sig) != custody.HybridSignatureSize {
		return Deletion{}, nil, nil, fmt.Errorf("%w: signature malformed", ErrDeletion)
	}
	d.Raw = bytes.Clone(b)
	return d, body, sig, nil
}
