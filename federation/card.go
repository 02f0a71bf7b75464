package federation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/embassy-dev/embassy/custody"
)

// maxRecord bounds a card or a grant (custody.ParseSignedLines reads both).
const maxRecord = 16 << 10

// A peer card introduces a node to its allies:
//
//	embassy peer card v1
//	node <node id>
//	nation <ISO 3166-1 alpha-3>
//	endpoint <host:port of the peer listener>
//	ed25519 <base64 identity key>
//	ml-dsa-44 <base64 identity key>
//	hpke <base64: KEM id 0x647a || MLKEM768-X25519 public key>
//	tls <SHA256:… pin of the peer listener's TLS public key>
//	[hosting-jurisdiction <ISO 3166-1 alpha-3>]
//	[hosting-provider <organisation>]
//	[hosting-control <ISO 3166-1 alpha-3>]
//	[hosting-accredited <label, text form>]
//	signature <base64 hybrid signature by the identity over the lines above>
//
// The hosting lines are the node's commitment to the allies it hosts
// (docs/alliance.md, "Host an ally's site"): where the blobs it keeps for
// them physically sit, who provides the storage, whose law controls that
// provider and, optionally, the highest classification it is accredited
// for. They come as the first three together, with the fourth or without
// it, or not at all (a node that hosts nobody).
//
// The card's fingerprint is the SHA-256 of those lines (the signature
// excluded), as "SHA256:" and unpadded base64: what the two nations'
// operators compare out of band before 'embassy peer add'.
const cardHeader = "embassy peer card v1\n"

var cardKeys = []string{"node", "nation", "endpoint", "ed25519", "ml-dsa-44", "hpke", "tls", "signature"}

// hostingKeys are the optional hosting lines, in order.
var hostingKeys = []string{"hosting-jurisdiction", "hosting-provider", "hosting-control", "hosting-accredited"}

// Hosting is what a node commits to, on its card, about the storage it
// offers its guests: the site attributes a guest's hosted site takes.
type Hosting struct {
	Jurisdiction string
	Provider     string
	Control      string
	// Accredited is the highest classification the storage is
	// accredited for (label text form); empty: unclassified only.
	Accredited string
}

// Check reports whether h can be written on a card.
func (h Hosting) Check() error {
	if !validNation(h.Jurisdiction) {
		return fmt.Errorf("%w: hosting jurisdiction %.10q is not an ISO 3166-1 alpha-3 code", ErrCard, h.Jurisdiction)
	}
	if !validNation(h.Control) {
		return fmt.Errorf("%w: hosting control %.10q is not an ISO 3166-1 alpha-3 code", ErrCard, h.Control)
	}
	for what, v := range map[string]string{"provider": h.Provider, "accredited": h.Accredited} {
		if len(v) > 200 || !utf8.ValidString(v) || strings.ContainsAny(v, "\n\r") || v != strings.TrimSpace(v) {
			return fmt.Errorf("%w: hosting %s %.60q: at most 200 bytes of UTF-8 on one line, no spaces around it", ErrCard, what, v)
		}
	}
	if h.Provider == "" {
		return fmt.Errorf("%w: hosting provider: must be set", ErrCard)
	}
	return nil
}

// Card is a verified peer card.
type Card struct {
	NodeID   string
	Nation   string
	Endpoint string
	Identity custody.PublicIdentity
	// HPKE is the recipient key's encoding (custody.ParseHPKEPublicKey).
	HPKE []byte
	// TLSPin is the peer listener's TLS key pin (custody.SPKIPin).
	TLSPin string
	// Hosting is the node's hosting commitment, nil when it hosts
	// nobody.
	Hosting *Hosting
	// Fingerprint identifies the card (see above).
	Fingerprint string
	// Raw is the card as signed.
	Raw []byte
}

// ErrCard: a card is malformed or its signature does not verify.
var ErrCard = errors.New("peer card refused")

func cardBody(c Card) []byte {
	b := fmt.Appendf(nil, "%snode %s\nnation %s\nendpoint %s\ned25519 %s\nml-dsa-44 %s\nhpke %s\ntls %s\n", cardHeader,
		c.NodeID, c.Nation, c.Endpoint, base64.StdEncoding.EncodeToString(c.Identity.Ed25519),
		base64.StdEncoding.EncodeToString(c.Identity.MLDSA44.Bytes()), base64.StdEncoding.EncodeToString(c.HPKE), c.TLSPin)
	if h := c.Hosting; h != nil {
		b = fmt.Appendf(b, "hosting-jurisdiction %s\nhosting-provider %s\nhosting-control %s\n", h.Jurisdiction, h.Provider, h.Control)
		if h.Accredited != "" {
			b = fmt.Appendf(b, "hosting-accredited %s\n", h.Accredited)
		}
	}
	return b
}

// cardLayout returns the keys of the card's lines: the required ones with
// the hosting lines the card carries inserted before the signature.
func cardLayout(b []byte) []string {
	keys := slices.Clone(cardKeys[:len(cardKeys)-1])
	for _, k := range hostingKeys {
		if bytes.Contains(b, []byte("\n"+k+" ")) {
			keys = append(keys, k)
		}
	}
	return append(keys, "signature")
}

// Fingerprint returns "SHA256:" and the unpadded base64 of the SHA-256 of b.
func Fingerprint(b []byte) string {
	h := sha256.Sum256(b)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// MakeCard writes and signs c's card; sign is the node identity's hybrid
// signature.
func MakeCard(c Card, sign func([]byte) ([]byte, error)) ([]byte, error) {
	if err := checkCardFields(c.NodeID, c.Nation, c.Endpoint, c.TLSPin); err != nil {
		return nil, err
	}
	if c.Hosting != nil {
		if err := c.Hosting.Check(); err != nil {
			return nil, err
		}
	}
	b, err := custody.SignLines(cardBody(c), sign)
	if err != nil {
		return nil, fmt.Errorf("peer card: %w", err)
	}
	return b, nil
}

func checkCardFields(node, nation, endpoint, pin string) error {
	if !validNodeID(node) {
		return fmt.Errorf("%w: node id %.40q is not 1 to 64 letters, digits or '-'", ErrCard, node)
	}
	if !validNation(nation) {
		return fmt.Errorf("%w: nation %.10q is not an ISO 3166-1 alpha-3 code", ErrCard, nation)
	}
	if _, port, err := net.SplitHostPort(endpoint); err != nil || port == "" || strings.ContainsAny(endpoint, " \t/") {
		return fmt.Errorf("%w: endpoint %.80q is not host:port", ErrCard, endpoint)
	}
	if !strings.HasPrefix(pin, "SHA256:") || len(pin) != len("SHA256:")+43 {
		return fmt.Errorf("%w: tls pin %.60q is not SHA256:<43 base64 characters>", ErrCard, pin)
	}
	return nil
}

func validNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validNation(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// ParseCard reads a card and checks its self-signature. It does not say
// whether the card is to be trusted: that is the fingerprint confirmed out
// of band ('peer add --fingerprint').
func ParseCard(b []byte) (Card, error) {
	f, body, err := custody.ParseSignedLines(b, cardHeader, cardLayout(b), maxRecord)
	if err != nil {
		return Card{}, fmt.Errorf("%w: %v", ErrCard, err)
	}
	if err := checkCardFields(f["node"], f["nation"], f["endpoint"], f["tls"]); err != nil {
		return Card{}, err
	}
	id, err := custody.ParsePublicKeys(f["ed25519"], f["ml-dsa-44"])
	if err != nil {
		return Card{}, fmt.Errorf("%w: %v", ErrCard, err)
	}
	hp, err := base64.StdEncoding.DecodeString(f["hpke"])
	if err != nil {
		return Card{}, fmt.Errorf("%w: hpke: not base64", ErrCard)
	}
	if _, err := custody.ParseHPKEPublicKey(hp); err != nil {
		return Card{}, fmt.Errorf("%w: hpke: %v", ErrCard, err)
	}
	sig, err := base64.StdEncoding.DecodeString(f["signature"])
	if err != nil || len(sig) != custody.HybridSignatureSize {
		return Card{}, fmt.Errorf("%w: signature malformed (want %d bytes of base64)", ErrCard, custody.HybridSignatureSize)
	}
	c := Card{NodeID: f["node"], Nation: f["nation"], Endpoint: f["endpoint"], Identity: id, HPKE: hp, TLSPin: f["tls"]}
	if _, ok := f["hosting-jurisdiction"]; ok || f["hosting-provider"] != "" || f["hosting-control"] != "" || f["hosting-accredited"] != "" {
		h := &Hosting{Jurisdiction: f["hosting-jurisdiction"], Provider: f["hosting-provider"], Control: f["hosting-control"], Accredited: f["hosting-accredited"]}
		if err := h.Check(); err != nil {
			return Card{}, err
		}
		c.Hosting = h
	}
	if !bytes.Equal(cardBody(c), body) {
		return Card{}, fmt.Errorf("%w: not in canonical form", ErrCard)
	}
	if err := id.Verify(body, sig); err != nil {
		return Card{}, fmt.Errorf("%w: signature does not verify with the card's identity key (forged or altered): %v", ErrCard, err)
	}
	c.Fingerprint = Fingerprint(body)
	c.Raw = bytes.Clone(b)
	return c, nil
}
