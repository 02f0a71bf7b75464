package label

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// BindingMediaType is the IANA media type of a JSON binding data object.
const BindingMediaType = "application/vnd.nato.bindingdataobject+json"

// NamespaceBinding is the XML namespace of STANAG 4778 binding information.
const NamespaceBinding = "urn:nato:stanag:4778:bindinginformation:1:0"

// Digest algorithm names used in data references.
const (
	// DigestSHA256 is SHA-256 (32 bytes).
	DigestSHA256 = "sha-256"
	// DigestBLAKE3 is BLAKE3 with 32 bytes of output.
	DigestBLAKE3 = "blake3"
)

// Binding limits.
const (
	// MaxBindingSize caps the JSON form accepted by ParseBinding.
	MaxBindingSize = 128 << 10
	// MaxDataRefs caps the data references in one binding.
	MaxDataRefs = 16
	// MaxSignatureSize caps a signature (ML-DSA-87 signatures are 4,627
	// bytes).
	MaxSignatureSize = 8 << 10
)

// Errors from Verify and CheckData. Each tells the caller to treat the data
// as unlabelled: refuse to serve it and report the binding as tampered.
var (
	// ErrUnsigned: the binding carries no signature (a "weak" binding).
	ErrUnsigned = errors.New("label binding is unsigned")
	// ErrBadSignature: the signature does not verify over the binding's
	// canonical bytes with the named key.
	ErrBadSignature = errors.New("label binding signature does not verify")
	// ErrDataMismatch: the data's digest is not the one bound to the label.
	ErrDataMismatch = errors.New("data does not match the label binding")
)

// Signer signs binding bytes. Implementations live with the key material
// (custody); this package never sees private keys.
type Signer interface {
	// Sign returns a signature over msg, which it must not modify.
	Sign(msg []byte) ([]byte, error)
	// KeyID names the key, so that a Verifier can find its public half.
	KeyID() string
}

// Verifier checks binding signatures.
type Verifier interface {
	// Verify returns nil only if sig is a valid signature over msg by the
	// key named keyID. An unknown key is an error.
	Verify(keyID string, msg, sig []byte) error
}

// DataRef names data bound to a label and records its digest.
type DataRef struct {
	// URI identifies the data, e.g. "s3://vault/key?versionId=v".
	URI string
	// ContentType is the data's media type; optional.
	ContentType string
	// DigestAlg is DigestSHA256 or DigestBLAKE3.
	DigestAlg string
	// Digest of the data, computed by the caller (32 bytes).
	Digest []byte
}

// Binding binds a label to data after STANAG 4778: the label, references
// to the data with their digests, and a detached signature over the
// binding's canonical bytes (a "strong" binding). A binding without a
// signature is "weak".
type Binding struct {
	Label Label
	Data  []DataRef
	// KeyID names the signing key; set by Sign.
	KeyID string
	// Signature over SignedBytes; set by Sign.
	Signature []byte
}

// Validate checks the label and the data references.
func (b Binding) Validate() error {
	if err := b.Label.Validate(); err != nil {
		return fmt.Errorf("label: %w", err)
	}
	if len(b.Data) == 0 {
		return errors.New("no data references")
	}
	if len(b.Data) > MaxDataRefs {
		return fmt.Errorf("%d data references, over the limit of %d", len(b.Data), MaxDataRefs)
	}
	for i, r := range b.Data {
		if err := r.validate(); err != nil {
			return fmt.Errorf("data reference %d: %w", i+1, err)
		}
	}
	if b.KeyID != "" {
		if err := checkText(b.KeyID); err != nil {
			return fmt.Errorf("key id: %w", err)
		}
	}
	if len(b.Signature) > MaxSignatureSize {
		return fmt.Errorf("signature: %d bytes, over the limit of %d", len(b.Signature), MaxSignatureSize)
	}
	if len(b.Signature) > 0 && b.KeyID == "" {
		return errors.New("signature without a key id")
	}
	return nil
}

func (r DataRef) validate() error {
	if r.URI == "" {
		return errors.New("uri: missing")
	}
	if err := checkText(r.URI); err != nil {
		return fmt.Errorf("uri: %w", err)
	}
	if r.ContentType != "" {
		if err := checkText(r.ContentType); err != nil {
			return fmt.Errorf("content type: %w", err)
		}
	}
	switch r.DigestAlg {
	case DigestSHA256, DigestBLAKE3:
		if len(r.Digest) != 32 {
			return fmt.Errorf("digest: %d bytes, want 32 for %s", len(r.Digest), r.DigestAlg)
		}
	case "":
		return errors.New("digest algorithm: missing")
	default:
		return fmt.Errorf("digest algorithm: %q unknown (want %s or %s)", r.DigestAlg, DigestSHA256, DigestBLAKE3)
	}
	return nil
}

// bindingJSON is the JSON binding data object. Fields are declared in sorted
// key order; the signed bytes are this object without "signature".
type bindingJSON struct {
	Data      []dataRefJSON `json:"data"`
	KeyID     string        `json:"keyId,omitempty"`
	Label     labelJSON     `json:"label"`
	Signature []byte        `json:"signature,omitempty"`
	Type      string        `json:"type"`
	Version   int           `json:"version"`
}

type dataRefJSON struct {
	ContentType string `json:"contentType,omitempty"`
	Digest      []byte `json:"digest"`
	DigestAlg   string `json:"digestAlg"`
	URI         string `json:"uri"`
}

func (b Binding) toJSON(withSig bool) bindingJSON {
	j := bindingJSON{KeyID: b.KeyID, Label: b.Label.toJSON(), Type: BindingMediaType, Version: 1}
	if withSig {
		j.Signature = b.Signature
	}
	for _, r := range b.Data {
		j.Data = append(j.Data, dataRefJSON{ContentType: r.ContentType, Digest: r.Digest, DigestAlg: r.DigestAlg, URI: r.URI})
	}
	return j
}

// SignedBytes returns the bytes the signature covers: the canonical JSON of
// the binding object without its "signature" member, key id included. The
// media type in the "type" member separates these bytes from any other
// signed message.
func (b Binding) SignedBytes() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("label binding: %w", err)
	}
	return canonicalJSON(b.toJSON(false)), nil
}

// Sign sets the binding's key id from s, then signs its canonical bytes.
func (b *Binding) Sign(s Signer) error {
	b.KeyID = s.KeyID()
	b.Signature = nil
	msg, err := b.SignedBytes()
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	sig, err := s.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign label binding with key %q: %w", b.KeyID, err)
	}
	b.Signature = sig
	return nil
}

// Verify checks the binding's signature. It returns an error wrapping
// ErrUnsigned for a weak binding and ErrBadSignature, naming the key, when
// the label, the data references, the key id or the signature were changed
// after signing.
func (b Binding) Verify(v Verifier) error {
	if len(b.Signature) == 0 {
		return ErrUnsigned
	}
	msg, err := b.SignedBytes()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := v.Verify(b.KeyID, msg, b.Signature); err != nil {
		return fmt.Errorf("%w: key %q: %w", ErrBadSignature, b.KeyID, err)
	}
	return nil
}

// CheckData reports whether the binding covers data with the given URI and
// digest. Call it with a digest of the data actually read, after Verify.
func (b Binding) CheckData(uri, alg string, digest []byte) error {
	for _, r := range b.Data {
		if r.URI != uri {
			continue
		}
		if r.DigestAlg != alg {
			return fmt.Errorf("%w: %s is bound with a %s digest, not %s", ErrDataMismatch, uri, r.DigestAlg, alg)
		}
		if subtle.ConstantTimeCompare(r.Digest, digest) != 1 {
			return fmt.Errorf("%w: %s digest differs", ErrDataMismatch, uri)
		}
		return nil
	}
	return fmt.Errorf("%w: %s is not among the bound data", ErrDataMismatch, uri)
}

// SHA256 reads r to its end and returns its SHA-256 digest, for a DataRef.
func SHA256(r io.Reader) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("digest data: %w", err)
	}
	return h.Sum(nil), nil
}

// MarshalJSON returns the binding data object (media type BindingMediaType):
// the canonical JSON of the binding, signature included.
func (b Binding) MarshalJSON() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("encode label binding: %w", err)
	}
	return canonicalJSON(b.toJSON(true)), nil
}

// ParseBinding parses a JSON binding data object. It checks the structure
// but not the signature: call Verify, then CheckData.
func ParseBinding(data []byte) (Binding, error) {
	b, err := parseBinding(data)
	if err != nil {
		return Binding{}, fmt.Errorf("parse label binding: %w", err)
	}
	return b, nil
}

func parseBinding(data []byte) (Binding, error) {
	if len(data) > MaxBindingSize {
		return Binding{}, fmt.Errorf("%d bytes, over the limit of %d", len(data), MaxBindingSize)
	}
	var j bindingJSON
	if err := decodeStrict(data, &j); err != nil {
		return Binding{}, err
	}
	if j.Type != BindingMediaType {
		return Binding{}, fmt.Errorf("type %q, want %q", j.Type, BindingMediaType)
	}
	if j.Version != 1 {
		return Binding{}, fmt.Errorf("version %d unsupported (want 1)", j.Version)
	}
	if len(j.Data) > MaxDataRefs {
		return Binding{}, fmt.Errorf("%d data references, over the limit of %d", len(j.Data), MaxDataRefs)
	}
	l, err := j.Label.toLabel()
	if err != nil {
		return Binding{}, fmt.Errorf("label: %w", err)
	}
	b := Binding{Label: l, KeyID: j.KeyID, Signature: j.Signature}
	for _, r := range j.Data {
		b.Data = append(b.Data, DataRef{URI: r.URI, ContentType: r.ContentType, DigestAlg: r.DigestAlg, Digest: r.Digest})
	}
	if err := b.Validate(); err != nil {
		return Binding{}, err
	}
	return b, nil
}

// XML returns the binding as STANAG 4778 XML binding information for allies
// whose tools read that form: mb:BindingInformation holding the 4774 label as
// Metadata and one mb:DataReference per data reference. The export carries
// no XML-DSig signature (no canonicalisation library is at hand), so it is a
// weak binding; the strong binding is the signed JSON object.
func (b Binding) XML() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("encode label binding xml: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString(`<mb:BindingInformation xmlns:mb="` + NamespaceBinding + "\">\n")
	buf.WriteString("  <mb:MetadataBindingContainer>\n")
	buf.WriteString("    <mb:MetadataBinding>\n")
	buf.WriteString("      <mb:Metadata>\n")
	b.Label.writeXML(&buf, "        ")
	buf.WriteString("      </mb:Metadata>\n")
	for _, r := range b.Data {
		buf.WriteString(`      <mb:DataReference URI="`)
		escape(&buf, r.URI)
		buf.WriteString("\"/>\n")
	}
	buf.WriteString("    </mb:MetadataBinding>\n")
	buf.WriteString("  </mb:MetadataBindingContainer>\n")
	buf.WriteString("</mb:BindingInformation>\n")
	return buf.Bytes(), nil
}
