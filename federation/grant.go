package federation

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/custody"
)

// A grant lets an allied nation read (or see described) part of a vault:
//
//	embassy grant v1
//	id <32 hex digits>
//	owner <owner node id>
//	owner-nation <nation>
//	vault <vault>
//	prefix <Go-quoted key prefix, "" for the whole vault>
//	to <grantee nation>
//	grantee <grantee node id>
//	grantee-card <the grantee's card fingerprint>
//	level catalog|read|replicate
//	ceiling <Go-quoted label: the highest label the grantee's principals are trusted up to>
//	issued <RFC 3339>
//	expires <RFC 3339>
//	signature <base64 hybrid signature by the owner's identity over the lines above>
const grantHeader = "embassy grant v1\n"

var grantKeys = []string{"id", "owner", "owner-nation", "vault", "prefix", "to", "grantee", "grantee-card", "level", "ceiling", "issued", "expires", "signature"}

// Levels of a grant.
const (
	LevelCatalog = "catalog"
	LevelRead    = "read"
	// LevelReplicate lets the grantee's node keep a full encrypted copy
	// of the scope: it pulls the ciphertext (sealed manifests, shards),
	// the owner's sealed descriptor and its audit log, and opens none of
	// it (docs/alliance.md, "Keep a copy with an ally").
	LevelReplicate = "replicate"
)

// Grant is a share grant's terms.
type Grant struct {
	ID          string
	Owner       string
	OwnerNation string
	Vault       string
	Prefix      string
	To          string
	Grantee     string
	GranteeCard string
	Level       string
	Ceiling     string
	Issued      time.Time
	Expires     time.Time
	// Raw is the signed grant (set by SignGrant and ParseGrant).
	Raw []byte
}

// ErrGrant: a grant is malformed or its signature does not verify.
var ErrGrant = errors.New("grant refused")

// NewGrantID returns a random grant id.
func NewGrantID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (g Grant) body() []byte {
	return fmt.Appendf(nil, "%sid %s\nowner %s\nowner-nation %s\nvault %s\nprefix %s\nto %s\ngrantee %s\ngrantee-card %s\nlevel %s\nceiling %s\nissued %s\nexpires %s\n",
		grantHeader, g.ID, g.Owner, g.OwnerNation, g.Vault, strconv.Quote(g.Prefix), g.To, g.Grantee, g.GranteeCard, g.Level,
		strconv.Quote(g.Ceiling), g.Issued.UTC().Format(time.RFC3339), g.Expires.UTC().Format(time.RFC3339))
}

// Validate checks the terms' shape.
func (g Grant) Validate() error {
	switch {
	case len(g.ID) != 32 || strings.Trim(g.ID, "0123456789abcdef") != "":
		return fmt.Errorf("%w: id %.40q is not 32 hex digits", ErrGrant, g.ID)
	case !validNodeID(g.Owner) || !validNodeID(g.Grantee):
		return fmt.Errorf("%w: owner or grantee is not a node id", ErrGrant)
	case !validNation(g.OwnerNation) || !validNation(g.To):
		return fmt.Errorf("%w: owner-nation or to is not an ISO 3166-1 alpha-3 code", ErrGrant)
	case g.To == g.OwnerNation:
		return fmt.Errorf("%w: a grant is to another nation, not the owner's own (%s)", ErrGrant, g.To)
	case g.Vault == "" || strings.ContainsAny(g.Vault, " /\n") || len(g.Vault) > 63:
		return fmt.Errorf("%w: vault %.70q", ErrGrant, g.Vault)
	case len(g.Prefix) > 1024 || strings.ContainsAny(g.Prefix, "\x00"):
		return fmt.Errorf("%w: prefix too long or holds a NUL", ErrGrant)
	case !strings.HasPrefix(g.GranteeCard, "SHA256:"):
		return fmt.Errorf("%w: grantee-card is not a SHA256: fingerprint", ErrGrant)
	case g.Level != LevelCatalog && g.Level != LevelRead && g.Level != LevelReplicate:
		return fmt.Errorf("%w: level %.20q is not catalog, read or replicate", ErrGrant, g.Level)
	case g.Ceiling == "" || len(g.Ceiling) > 512:
		return fmt.Errorf("%w: ceiling label missing or too long", ErrGrant)
	case !g.Expires.After(g.Issued):
		return fmt.Errorf("%w: expires (%s) is not after issued (%s)", ErrGrant, g.Expires.Format(time.RFC3339), g.Issued.Format(time.RFC3339))
	}
	return nil
}

// SignGrant validates g and signs it with the owner's identity (sign makes
// a hybrid signature), returning it with Raw set.
func SignGrant(g Grant, sign func([]byte) ([]byte, error)) (Grant, error) {
	g.Issued, g.Expires = g.Issued.UTC().Truncate(time.Second), g.Expires.UTC().Truncate(time.Second)
	if err := g.Validate(); err != nil {
		return g, err
	}
	raw, err := custody.SignLines(g.body(), sign)
	if err != nil {
		return g, err
	}
	g.Raw = raw
	return g, nil
}

// ParseGrant reads a signed grant and checks its signature by owner, the
// owner's identity (from its card, or the node's own).
func ParseGrant(b []byte, owner custody.PublicIdentity) (Grant, error) {
	g, body, sig, err := parseGrant(b)
	if err != nil {
		return g, err
	}
	if err := owner.Verify(body, sig); err != nil {
		return Grant{}, fmt.Errorf("%w: signature is not the owner node's: %v", ErrGrant, err)
	}
	return g, nil
}

func parseGrant(b []byte) (Grant, []byte, []byte, error) {
	f, body, err := custody.ParseSignedLines(b, grantHeader, grantKeys, maxRecord)
	if err != nil {
		return Grant{}, nil, nil, fmt.Errorf("%w: %v", ErrGrant, err)
	}
	prefix, err1 := strconv.Unquote(f["prefix"])
	ceiling, err2 := strconv.Unquote(f["ceiling"])
	issued, err3 := time.Parse(time.RFC3339, f["issued"])
	expires, err4 := time.Parse(time.RFC3339, f["expires"])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Grant{}, nil, nil, fmt.Errorf("%w: %v", ErrGrant, err)
	}
	g := Grant{ID: f["id"], Owner: f["owner"], OwnerNation: f["owner-nation"], Vault: f["vault"], Prefix: prefix, To: f["to"],
		Grantee: f["grantee"], GranteeCard: f["grantee-card"], Level: f["level"], Ceiling: ceiling, Issued: issued, Expires: expires}
	if err := g.Validate(); err != nil {
		return Grant{}, nil, nil, err
	}
	if !bytes.Equal(g.body(), body) {
		return Grant{}, nil, nil, fmt.Errorf("%w: not in canonical form", ErrGrant)
	}
	sig, err := base64.StdEncoding.DecodeString(f["signature"])
	if err != nil || len(sig) != custody.HybridSignatureSize {
		return Grant{}, nil, nil, fmt.Errorf("%w: signature malformed", ErrGrant)
	}
	g.Raw = bytes.Clone(b)
	return g, body, sig, nil
}

// Covers reports whether key, in vault, lies within the grant's scope.
func (g Grant) Covers(vault, key string) bool {
	return vault == g.Vault && strings.HasPrefix(key, g.Prefix)
}

// Active reports whether the grant is in force at now (revocation is the
// owner's record, not the grant's).
func (g Grant) Active(now time.Time) bool { return now.Before(g.Expires) }

// Scope is "vault/prefix".
func (g Grant) Scope() string { return g.Vault + "/" + g.Prefix }

// ODRL renders the grant's terms as an ODRL 2.2 Agreement (JSON-LD), so
// that a dataspace connector can read them: the owner node assigns the
// grantee node (of nation To) the right to read (level read) or index
// (level catalog) the scope until Expires, for labels up to Ceiling;
// distributing further is prohibited.
func (g Grant) ODRL() ([]byte, error) {
	action := "read"
	switch g.Level {
	case LevelCatalog:
		action = "index"
	case LevelReplicate:
		action = "reproduce" // a copy kept, never read: the grantee holds ciphertext only
	}
	target := fmt.Sprintf("urn:embassy:%s:vault:%s/%s", g.Owner, g.Vault, g.Prefix)
	doc := map[string]any{
		"@context": []any{"http://www.w3.org/ns/odrl.jsonld", map[string]string{"embassy": "urn:embassy:odrl:", "xsd": "http://www.w3.org/2001/XMLSchema#"}},
		"@type":    "Agreement",
		"uid":      "urn:embassy:grant:" + g.ID,
		"assigner": map[string]any{"@type": "Party", "uid": "urn:embassy:node:" + g.Owner, "embassy:nation": g.OwnerNation},
		"assignee": map[string]any{"@type": "Party", "uid": "urn:embassy:node:" + g.Grantee, "embassy:nation": g.To, "embassy:card": g.GranteeCard},
		"permission": []any{map[string]any{
			"target": target,
			"action": action,
			"constraint": []any{
				map[string]any{"leftOperand": "dateTime", "operator": "lt", "rightOperand": map[string]string{"@value": g.Expires.UTC().Format(time.RFC3339), "@type": "xsd:dateTime"}},
				map[string]any{"leftOperand": "embassy:classification", "operator": "lteq", "rightOperand": g.Ceiling},
				map[string]any{"leftOperand": "embassy:releasableTo", "operator": "isAnyOf", "rightOperand": g.To},
			},
		}},
		"prohibition":    []any{map[string]any{"target": target, "action": "distribute"}},
		"embassy:issued": map[string]string{"@value": g.Issued.UTC().Format(time.RFC3339), "@type": "xsd:dateTime"},
	}
	return json.MarshalIndent(doc, "", "  ")
}
