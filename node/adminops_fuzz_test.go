package node

import (
	"encoding/json"
	"reflect"
	"testing"
)

// adminParsers are the admin API's request parsers, each returning what it
// accepted.
var adminParsers = []struct {
	name  string
	parse func([]byte) (any, error)
}{
	{"site", func(b []byte) (any, error) { return ParseSiteRequest(b) }},
	{"drain", func(b []byte) (any, error) { return ParseDrainRequest(b) }},
	{"vault", func(b []byte) (any, error) { return ParseVaultRequest(b) }},
	{"policy", func(b []byte) (any, error) { return ParsePolicyChange(b) }},
	{"rotate", func(b []byte) (any, error) { return ParseRotateRequest(b) }},
	{"principal", func(b []byte) (any, error) { return ParsePrincipalRequest(b) }},
	{"relabel", func(b []byte) (any, error) { q, _, err := ParseRelabel(b); return q, err }},
	{"scrub", func(b []byte) (any, error) { q, _, err := ParseScrubRequest(b); return q, err }},
	{"drill", func(b []byte) (any, error) { return ParseDrillRequest(b) }},
	{"rate", func(b []byte) (any, error) { q, _, err := ParseRateRequest(b); return q, err }},
	{"config", func(b []byte) (any, error) { return ParseConfigProposal(b) }},
}

// FuzzAdminRequests: the admin API's request bodies come from the network
// (after authentication, but from any operator's client), so no parser may
// panic, and what one accepts, written back as JSON, is accepted again as
// the same request.
func FuzzAdminRequests(f *testing.F) {
	for _, s := range []string{
		`{"id": "swe-1", "jurisdiction": "SWE", "provider": "gov-dc", "driver": "dir", "path": "/srv/swe-1"}`,
		`{"id": "s3-1", "jurisdiction": "SWE", "provider": "p", "driver": "s3", "s3": {"endpoint": "h:1", "bucket": "b", "access_key": "a", "secret_key": "s"}}`,
		`{"sites": "provider=cloudco,site=est-1"}`,
		`{"name": "maps", "erasure": "4+2", "survive": "jurisdictions=1", "jurisdictions": ["EST"]}`,
		`{"erasure": "4+3", "jurisdictions": []}`, `{"outside_home": false}`,
		`{"resume": true}`, `{"body": "node:\n  id: x\n", "base_generation": 3}`, `{"body": ""}`, ``, `{}`, `null`, `[]`, `{"a":1}{"b":2}`,
		`{"name": "dora", "nation": "EST", "clearances": {"NATO": "SECRET"}, "roles": ["operator"], "vault_roles": {"r": ["writer"]}}`,
		`{"vault": "registry", "key": "k", "version": "0123456789abcdef0123456789abcdef", "label": "NATO SECRET"}`,
		`{"repair": true, "vaults": ["registry"], "rate": "50MiB"}`, `{"rate": "-1"}`,
		`{"lose": "jurisdiction=EST", "sample": -1}`, `{"rate": "20MiB"}`, `{"rate": "0"}`, `{"sites": "site=a", "rate": "1x"}`,
	} {
		for i := range adminParsers {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := adminParsers[int(which)%len(adminParsers)]
		v, err := p.parse(body)
		if err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: accepted %q but cannot marshal it: %v", p.name, body, err)
		}
		if p.name == "site" {
			return // an s3 site's secret is redacted when marshalled
		}
		v2, err := p.parse(b)
		if err != nil {
			t.Fatalf("%s: accepted %q, but not itself written back, %s: %v", p.name, body, b, err)
		}
		b2, _ := json.Marshal(v2)
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("%s: %q round-trips to %s, then %s", p.name, body, b, b2)
		}
	})
}
