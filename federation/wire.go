package federation

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The peer protocol's endpoints (all POST, under PathPrefix):
//
//	grants  {}                   → GrantsResponse: the grants in force to the caller
//	list    ListRequest          → ListResponse: one page of a grant's scope, as the principal may see it
//	object  ObjectRequest        → ObjectResponse: a version's manifest view and its data keys wrapped to the caller
//	blob    BlobRequest          → the bytes (ciphertext shard blocks) of one blob range

// Endpoint names.
const (
	EndpointGrants = "grants"
	EndpointList   = "list"
	EndpointObject = "object"
	EndpointBlob   = "blob"
)

// Principal is who, on the grantee's node, a request reads for, as that
// node asserts: the owner trusts it only up to the grant's ceiling and only
// for the grant's nation.
type Principal struct {
	Name       string              `json:"name"`
	Nation     string              `json:"nation"`
	Clearances map[string]string   `json:"clearances,omitempty"`
	Categories map[string][]string `json:"categories,omitempty"`
}

func (p Principal) check() error {
	if p.Name == "" || len(p.Name) > 256 || !utf8.ValidString(p.Name) {
		return errors.New("principal: name must be 1 to 256 bytes of UTF-8")
	}
	if !validNation(p.Nation) {
		return fmt.Errorf("principal: nation %.10q is not an ISO 3166-1 alpha-3 code", p.Nation)
	}
	if len(p.Clearances) > 16 || len(p.Categories) > 64 {
		return errors.New("principal: too many clearances or categories")
	}
	return nil
}

// GrantsResponse lists signed grants (Grant.Raw).
type GrantsResponse struct {
	Grants []string `json:"grants"`
}

// ListRequest asks for a page of a grant's scope.
type ListRequest struct {
	Grant     string    `json:"grant"`
	Principal Principal `json:"principal"`
	Prefix    string    `json:"prefix,omitempty"`
	Delimiter string    `json:"delimiter,omitempty"`
	After     string    `json:"after,omitempty"`
	Max       int       `json:"max,omitempty"`
}

// ListEntry is one object version listed.
type ListEntry struct {
	Key     string `json:"key"`
	Size    int64  `json:"size"`
	ETag    string `json:"etag,omitempty"`
	Created int64  `json:"created"` // Unix nanoseconds
}

// ListResponse is one page.
type ListResponse struct {
	Entries        []ListEntry `json:"entries"`
	CommonPrefixes []string    `json:"common_prefixes,omitempty"`
	Truncated      bool        `json:"truncated,omitempty"`
	Next           string      `json:"next,omitempty"`
}

// ObjectRequest asks for a version (the latest when Version is empty).
type ObjectRequest struct {
	Grant     string    `json:"grant"`
	Principal Principal `json:"principal"`
	Key       string    `json:"key"`
	Version   string    `json:"version,omitempty"`
}

// ObjectResponse is a version's manifest view: the manifest as the grantee
// needs it to fetch, check and decrypt the shards (JSON of
// manifest.Manifest), in which each part's wrapped_key is its data key
// wrapped to the grantee's HPKE key (seal.WrapTo, info KeyInfo) instead of
// the owner's vault key, and a ticket naming the blobs the grantee may
// then fetch.
type ObjectResponse struct {
	Manifest json.RawMessage `json:"manifest"`
	Ticket   string          `json:"ticket"`
}

// BlobRequest asks for a byte range of a blob of a ticket's version, held
// by the named site of the owner (Length < 0: to the end).
type BlobRequest struct {
	Ticket string `json:"ticket"`
	Site   string `json:"site"`
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// KeyInfo is the HPKE info a part's data key is wrapped with: it binds
// the key to the grant, the version, the part and the recipient node.
func KeyInfo(grant, version string, part int, grantee string) []byte {
	return fmt.Appendf(nil, "embassy shared data key v1\x00%s\x00%s\x00%d\x00%s", grant, version, part, grantee)
}

func checkGrantID(id string) error {
	if len(id) != 32 {
		return errors.New("grant: not a grant id")
	}
	return nil
}

// ParseListRequest decodes and checks a list request.
func ParseListRequest(b []byte) (ListRequest, error) {
	var q ListRequest
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if err := checkGrantID(q.Grant); err != nil {
		return q, err
	}
	if q.Max < 0 || q.Max > 1000 {
		return q, errors.New("max: must be 0 to 1000")
	}
	if len(q.Prefix) > 1024 || len(q.After) > 1024 || len(q.Delimiter) > 16 {
		return q, errors.New("prefix, after or delimiter too long")
	}
	return q, q.Principal.check()
}

// ParseObjectRequest decodes and checks an object request.
func ParseObjectRequest(b []byte) (ObjectRequest, error) {
	var q ObjectRequest
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if err := checkGrantID(q.Grant); err != nil {
		return q, err
	}
	if q.Key == "" || len(q.Key) > 1024 {
		return q, errors.New("key: must be 1 to 1024 bytes")
	}
	if len(q.Version) > 64 {
		return q, errors.New("version: too long")
	}
	return q, q.Principal.check()
}

// ParseBlobRequest decodes and checks a blob request.
func ParseBlobRequest(b []byte) (BlobRequest, error) {
	var q BlobRequest
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if len(q.Ticket) != 32 || q.Site == "" || len(q.Site) > 64 || q.Name == "" || len(q.Name) > 256 {
		return q, errors.New("ticket, site or name missing or malformed")
	}
	if q.Offset < 0 || q.Length < -1 {
		return q, errors.New("offset or length negative")
	}
	return q, nil
}

// ParseGrantsRequest checks a grants request's body: an empty object.
func ParseGrantsRequest(b []byte) error {
	var q struct{}
	return DecodeStrict(b, &q)
}

// ParseGrantsResponse decodes a grants answer.
func ParseGrantsResponse(b []byte) (GrantsResponse, error) {
	var r GrantsResponse
	return r, decodeAnswer(b, &r)
}

// ParseListResponse decodes a list answer.
func ParseListResponse(b []byte) (ListResponse, error) {
	var r ListResponse
	return r, decodeAnswer(b, &r)
}

// ParseObjectResponse decodes an object answer (the manifest inside is
// decoded and validated by the caller).
func ParseObjectResponse(b []byte) (ObjectResponse, error) {
	var r ObjectResponse
	if err := decodeAnswer(b, &r); err != nil {
		return r, err
	}
	if len(r.Ticket) != 32 || len(r.Manifest) == 0 {
		return r, errors.New("object answer: ticket or manifest missing")
	}
	return r, nil
}

// MaxAnswer bounds a JSON answer from a peer.
const MaxAnswer = 16 << 20

func decodeAnswer(b []byte, v any) error {
	if len(b) > MaxAnswer {
		return fmt.Errorf("answer larger than %d bytes", MaxAnswer)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// PeerError is a peer's refusal, as JSON.
type PeerError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
