package federation

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Hosted sites: a node that hosts an ally (its guest) keeps the guest's
// blobs, sealed shards and manifests it cannot open, in a store of the
// guest's own, up to a quota. The guest's site driver reaches that store
// with these endpoints; the store is always the calling node's own (the
// host finds it from the authenticated caller, never from the request),
// so no request can name another guest's blobs.
//
//	hosted/put     HostedPut in the HeaderHostedPut header; the blob's bytes are the body
//	hosted/get     HostedBlob   → the bytes of a range of the blob
//	hosted/stat    HostedBlob   → HostedInfo
//	hosted/delete  HostedBlob   → {}
//	hosted/list    HostedList   → HostedInfo lines (JSON, one per line), then HostedListEnd
//	hosted/usage   {}           → HostedUsage
//
// hosted/put streams: its body is the blob, not JSON, so what the
// signature covers in place of the body is the HostedPut header's value
// (the blob's name and size). The bytes are bound to the request by the
// pinned mutual TLS connection they arrive on, and the guest's own block
// checksums and manifest signatures check them on every read. The host
// refuses a put that would take the guest past its quota before it reads
// a byte of it, or as soon as the bytes go past the size declared (or,
// when the size is not declared, past the quota): a refused put leaves
// nothing behind. A declared size is the blob's exact size: a body whose
// Content-Length is another is refused before a byte of it is read, and
// one that goes on past it, or ends before it, is refused (CodeSize).

// Hosted endpoint names.
const (
	EndpointHostedPut    = "hosted/put"
	EndpointHostedGet    = "hosted/get"
	EndpointHostedStat   = "hosted/stat"
	EndpointHostedDelete = "hosted/delete"
	EndpointHostedList   = "hosted/list"
	EndpointHostedUsage  = "hosted/usage"
)

// HeaderHostedPut carries a hosted/put's HostedPut, as base64 of its JSON.
const HeaderHostedPut = "Embassy-Hosted-Put"

// Codes of a host's refusals (PeerError.Code) a guest acts on.
const (
	// CodeNotHosted: the host has not agreed to host the calling node.
	CodeNotHosted = "not_hosted"
	// CodeQuota: the put would take the guest past its quota; nothing
	// was written.
	CodeQuota = "quota"
	// CodeNotFound: no such blob.
	CodeNotFound = "not_found"
	// CodeSize: the body was not of the size the HostedPut header
	// declares (its Content-Length said another, or its bytes went on past
	// it or ended before it); nothing was stored.
	CodeSize = "size"
	// CodeUnavailable: the guest's store cannot be reached on the host
	// (its volume missing): nothing is read or written until the host's
	// operators bring it back.
	CodeUnavailable = "unavailable"
)

// MaxBlobName bounds a hosted blob's name (site.MaxNameLen).
const MaxBlobName = 512

// HostedPut names the blob a hosted/put stores and its size (-1:
// unknown, the host then counts the bytes against the quota as they
// come).
type HostedPut struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// HostedBlob names a blob, and for hosted/get a range of it (Length < 0:
// to the end).
type HostedBlob struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset,omitempty"`
	Length int64  `json:"length"`
}

// HostedList asks for the blobs whose names start with Prefix.
type HostedList struct {
	Prefix string `json:"prefix"`
}

// HostedInfo is a blob's size and time of writing (Unix nanoseconds).
type HostedInfo struct {
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Modified int64  `json:"modified"`
}

// HostedListEnd is the last line of a hosted/list answer: a listing
// without it was cut short.
type HostedListEnd struct {
	End   bool  `json:"end"`
	Count int64 `json:"count"`
}

// HostedUsage is what the guest holds on the host and its quota, in bytes.
type HostedUsage struct {
	Bytes int64 `json:"bytes"`
	Blobs int64 `json:"blobs"`
	Quota int64 `json:"quota"`
}

func checkBlobName(name string) error {
	if name == "" || len(name) > MaxBlobName || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return fmt.Errorf("blob name %.80q: want 1 to %d bytes, no leading '/', no '..'", name, MaxBlobName)
	}
	return nil
}

// EncodeHostedPut returns HeaderHostedPut's value for p.
func EncodeHostedPut(p HostedPut) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseHostedPut decodes HeaderHostedPut's value: the JSON it carries
// (what the request's signature covers) and the request.
func ParseHostedPut(v string) ([]byte, HostedPut, error) {
	var p HostedPut
	if len(v) > 4<<10 {
		return nil, p, fmt.Errorf("%s: longer than 4 KiB", HeaderHostedPut)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, p, fmt.Errorf("%s: not base64", HeaderHostedPut)
	}
	if err := DecodeStrict(b, &p); err != nil {
		return nil, p, fmt.Errorf("%s: %w", HeaderHostedPut, err)
	}
	if err := checkBlobName(p.Name); err != nil {
		return nil, p, err
	}
	if p.Size < -1 {
		return nil, p, errors.New("size: must be -1 (unknown) or more")
	}
	return b, p, nil
}

// ParseHostedBlob decodes a hosted/get, hosted/stat or hosted/delete body.
func ParseHostedBlob(b []byte) (HostedBlob, error) {
	var q HostedBlob
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if err := checkBlobName(q.Name); err != nil {
		return q, err
	}
	if q.Offset < 0 || q.Length < -1 {
		return q, errors.New("offset or length negative")
	}
	return q, nil
}

// ParseHostedList decodes a hosted/list body.
func ParseHostedList(b []byte) (HostedList, error) {
	var q HostedList
	if err := DecodeStrict(b, &q); err != nil {
		return q, err
	}
	if len(q.Prefix) > MaxBlobName || strings.Contains(q.Prefix, "..") {
		return q, errors.New("prefix: at most 512 bytes, no '..'")
	}
	return q, nil
}

// ParseHostedInfo decodes a hosted/stat answer or a hosted/list line.
func ParseHostedInfo(b []byte) (HostedInfo, error) {
	var i HostedInfo
	if err := decodeAnswer(b, &i); err != nil {
		return i, err
	}
	if err := checkBlobName(i.Name); err != nil {
		return i, err
	}
	if i.Size < 0 {
		return i, errors.New("size negative")
	}
	return i, nil
}

// ParseHostedListLine decodes a line of a hosted/list answer: a blob, or
// the end line (end true).
func ParseHostedListLine(b []byte) (i HostedInfo, end bool, err error) {
	if len(b) > 4<<10 {
		return i, false, errors.New("listing line longer than 4 KiB")
	}
	var e HostedListEnd
	if json.Unmarshal(b, &e) == nil && e.End {
		return i, true, nil
	}
	i, err = ParseHostedInfo(b)
	return i, false, err
}

// ParseHostedUsage decodes a hosted/usage answer.
func ParseHostedUsage(b []byte) (HostedUsage, error) {
	var u HostedUsage
	if err := decodeAnswer(b, &u); err != nil {
		return u, err
	}
	if u.Bytes < 0 || u.Blobs < 0 || u.Quota < 0 {
		return u, errors.New("usage: negative")
	}
	return u, nil
}
