package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const sampleYAML = `node:
  id: n1
  nation: EST
s3:
  credentials:
    - principal: ops
      access_key: AKOPS
      secret_key: plain-secret-1   # a comment
    - principal: aud
      access_key: "AKAUD"
      secret_key: "quoted \"secret\" 2"
    - {principal: clerk, access_key: AKCLERK, secret_key: 'single ''secret'' 3'}
sites:
  - id: s3-1
    driver: s3
    s3:
      endpoint: h.example:9000
      bucket: b
      access_key: a
      secret_key: site-secret-4
taxii:
  sync:
    - name: misp
      url: https://misp.example/taxii2/
      password: sync-password-5
`

var sampleSecrets = []string{"plain-secret-1", `quoted \"secret\" 2`, `quoted "secret" 2`, `single ''secret'' 3`, "single 'secret' 3", "site-secret-4", "sync-password-5"}

// TestRedactConfig: every secret is replaced by its marker and nothing
// else changes; the markers put back give the file byte for byte.
func TestRedactConfig(t *testing.T) {
	red, err := RedactConfig([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sampleSecrets {
		if bytes.Contains(red, []byte(s)) {
			t.Errorf("the redacted file holds %q:\n%s", s, red)
		}
	}
	for _, m := range []string{"embassy-redacted:s3.credentials/AKOPS   # a comment", "secret_key: embassy-redacted:s3.credentials/AKAUD\n",
		"secret_key: embassy-redacted:s3.credentials/AKCLERK}", "embassy-redacted:sites/s3-1/s3", "password: embassy-redacted:taxii.sync/misp"} {
		if !bytes.Contains(red, []byte(m)) {
			t.Errorf("no %q in\n%s", m, red)
		}
	}
	// A secret that is also a word elsewhere in the file.
	short := strings.Replace(sampleYAML, "password: sync-password-5", "password: misp", 1)
	if red, err := RedactConfig([]byte(short)); err != nil || !bytes.Contains(red, []byte("password: embassy-redacted:taxii.sync/misp\n")) {
		t.Errorf("a password that is also the job's name: %v\n%s", err, red)
	}
	back, err := UnredactConfig([]byte(sampleYAML), red)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != sampleYAML {
		t.Errorf("round trip:\n%s\nwant\n%s", back, sampleYAML)
	}
	// A block scalar cannot be replaced in place: the file is re-encoded,
	// still without the secret.
	block := strings.Replace(sampleYAML, "secret_key: site-secret-4", "secret_key: |-\n        site-secret-4", 1)
	red, err = RedactConfig([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(red, []byte("site-secret-4")) || !bytes.Contains(red, []byte("embassy-redacted:sites/s3-1/s3")) {
		t.Errorf("block scalar:\n%s", red)
	}
}

// TestUnredactRefusals: a marker is honoured only as the secret it names,
// where it was.
func TestUnredactRefusals(t *testing.T) {
	red, err := RedactConfig([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"no such secret":     {"embassy-redacted:s3.credentials/AKOPS", "embassy-redacted:s3.credentials/AKNOPE"},
		"another's secret":   {"embassy-redacted:s3.credentials/AKAUD", "embassy-redacted:s3.credentials/AKOPS"},
		"renamed access key": {"access_key: AKOPS", "access_key: AKOPS2"},
		"new site endpoint":  {"endpoint: h.example:9000", "endpoint: evil.example:9000"},
		"new sync url":       {"url: https://misp.example/taxii2/", "url: https://evil.example/taxii2/"},
		"not a secret field": {"bucket: b", "bucket: embassy-redacted:sites/s3-1/s3"},
	} {
		proposed := strings.Replace(string(red), edit[0], edit[1], 1)
		if proposed == string(red) {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		out, err := UnredactConfig([]byte(sampleYAML), []byte(proposed))
		if !errors.Is(err, ErrBadMarker) || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: %v (%q)", name, err, out)
		}
	}
	// A new secret in clear replaces a marker.
	proposed := strings.Replace(string(red), "embassy-redacted:s3.credentials/AKOPS", "a-new-secret", 1)
	out, err := UnredactConfig([]byte(sampleYAML), []byte(proposed))
	if err != nil || !bytes.Contains(out, []byte("secret_key: a-new-secret")) || !bytes.Contains(out, []byte("site-secret-4")) {
		t.Errorf("%v\n%s", err, out)
	}
}

// FuzzUnredactConfig: the proposed file comes from an admin's client; no
// input panics, and what is accepted holds no marker that stood for a
// secret.
func FuzzUnredactConfig(f *testing.F) {
	red, err := RedactConfig([]byte(sampleYAML))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(red)
	f.Add([]byte(sampleYAML))
	f.Add([]byte("a: embassy-redacted:x\n"))
	f.Add([]byte("s3:\n  credentials:\n  - {access_key: AKOPS, secret_key: \"embassy-redacted:s3.credentials/AKOPS\"}\n"))
	f.Fuzz(func(t *testing.T, proposed []byte) {
		out, err := UnredactConfig([]byte(sampleYAML), proposed)
		if err != nil {
			return
		}
		for _, m := range []string{"embassy-redacted:s3.credentials/AKOPS", "embassy-redacted:sites/s3-1/s3", "embassy-redacted:taxii.sync/misp"} {
			// Accepted, a marker may remain only outside a value (in a
			// comment), never as one.
			if yamlHasValue(out, m) {
				t.Fatalf("accepted %q with the marker %s as a value:\n%s", proposed, m, out)
			}
		}
	})
}

// yamlHasValue reports whether a scalar of the YAML b is v.
func yamlHasValue(b []byte, v string) bool {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return false
	}
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.ScalarNode && n.Value == v {
			return true
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	return walk(&doc)
}

// TestConfigThroughAdminAPI: node.yaml fetched and changed through the
// admin API on a serving node: the GET never holds a secret; a PUT that
// keeps the markers and adds a credential in clear puts the credential in
// force at once; a tampered marker, a stale base, and a caller without
// the admin role are refused and change nothing.
func TestConfigThroughAdminAPI(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	get := func(who string) ConfigView {
		t.Helper()
		r := f.op(t, "GET", "/_embassy/v1/config", who, nil)
		if r.status != 200 {
			t.Fatalf("GET v1/config as %s: %d %s", who, r.status, r.body)
		}
		for _, p := range []string{"ops", "aud", "clerk", "boss", "viewer", "spy"} {
			if strings.Contains(r.body, "secret-of-"+p) {
				t.Fatalf("GET v1/config holds %s's secret:\n%s", p, r.body)
			}
		}
		var v ConfigView
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := get("ops")
	get("aud")
	if !strings.Contains(v.Body, "embassy-redacted:s3.credentials/AKOPS") {
		t.Fatalf("no marker:\n%s", v.Body)
	}
	// A new credential for the auditor, in clear; the others keep theirs.
	proposed := strings.Replace(v.Body, "    credentials:\n", "    credentials:\n        - principal: aud\n          access_key: AKNEWAUD\n          secret_key: brand-new-secret-9\n", 1)
	if proposed == v.Body {
		proposed = strings.Replace(v.Body, "  credentials:\n", "  credentials:\n    - principal: aud\n      access_key: AKNEWAUD\n      secret_key: brand-new-secret-9\n", 1)
	}
	if proposed == v.Body {
		t.Fatalf("cannot place a credential in\n%s", v.Body)
	}
	if r := f.sigv4(t, "GET", "/_embassy/v1/status", "AKNEWAUD", "brand-new-secret-9"); r.status != http.StatusForbidden {
		t.Fatalf("the new credential before: %d %s", r.status, r.body)
	}
	// Attacker side: an operator (not admin), an auditor, a writer.
	for _, who := range []string{"ops", "aud", "clerk", "viewer"} {
		before := nodeState(t, n)
		r := f.op(t, "PUT", "/_embassy/v1/config", who, ConfigProposal{Body: proposed})
		if r.status != http.StatusForbidden {
			t.Errorf("PUT v1/config as %s: %d %s", who, r.status, r.body)
		}
		if nodeState(t, n) != before {
			t.Errorf("PUT v1/config as %s changed the node", who)
		}
	}
	// A tampered marker.
	before := nodeState(t, n)
	tampered := strings.Replace(proposed, "embassy-redacted:s3.credentials/AKCLERK", "embassy-redacted:s3.credentials/AKOPS", 1)
	r := f.op(t, "PUT", "/_embassy/v1/config", "boss", ConfigProposal{Body: tampered})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "another entry's secret") {
		t.Errorf("tampered marker: %d %s", r.status, r.body)
	}
	forged := strings.Replace(proposed, "embassy-redacted:s3.credentials/AKCLERK", "embassy-redacted:s3.credentials/AKFORGED", 1)
	r = f.op(t, "PUT", "/_embassy/v1/config", "boss", ConfigProposal{Body: forged})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "names no secret") {
		t.Errorf("forged marker: %d %s", r.status, r.body)
	}
	// A stale base generation.
	r = f.op(t, "PUT", "/_embassy/v1/config", "boss", ConfigProposal{Body: proposed, BaseGeneration: v.Generation + 7})
	if r.status != http.StatusConflict || !strings.Contains(r.body, "changed since the edit started") {
		t.Errorf("stale base: %d %s", r.status, r.body)
	}
	if nodeState(t, n) != before {
		t.Error("a refused PUT changed the node")
	}
	// The admin's PUT applies, and the credential works at once.
	r = f.op(t, "PUT", "/_embassy/v1/config", "boss", ConfigProposal{Body: proposed, BaseGeneration: v.Generation})
	if r.status != 200 {
		t.Fatalf("PUT v1/config: %d %s", r.status, r.body)
	}
	var ans ConfigEditAnswer
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || !ans.Applied || ans.Generation <= v.Generation {
		t.Fatalf("%v %+v", err, ans)
	}
	if r := f.sigv4(t, "GET", "/_embassy/v1/status", "AKNEWAUD", "brand-new-secret-9"); r.status != 200 {
		t.Errorf("the new credential after: %d %s", r.status, r.body)
	}
	// The other secrets were kept.
	if r := f.sigv4(t, "GET", "/_embassy/v1/status", "AKOPS", "secret-of-ops"); r.status != 200 {
		t.Errorf("a kept credential: %d %s", r.status, r.body)
	}
	if r := f.op(t, "GET", "/_embassy/v1/config", "aud", nil); strings.Contains(r.body, "brand-new-secret-9") {
		t.Errorf("GET v1/config holds the new secret:\n%s", r.body)
	}
	// The same file again is no change.
	r = f.op(t, "PUT", "/_embassy/v1/config", "boss", ConfigProposal{Body: get("ops").Body})
	if err := json.Unmarshal([]byte(r.body), &ans); r.status != 200 || err != nil || ans.Applied || len(ans.Changes) != 0 {
		t.Errorf("unchanged: %d %s", r.status, r.body)
	}
	// A credential of an admin needs custodians: the answer names the
	// request.
	gated := strings.Replace(get("ops").Body, "secret_key: embassy-redacted:s3.credentials/AKBOSS", "secret_key: another-boss-secret", 1)
	r = f.op(t, "PUT", "/_embassy/v1/config", "boss", ConfigProposal{Body: gated})
	if err := json.Unmarshal([]byte(r.body), &ans); r.status != http.StatusConflict || err != nil || ans.RequestID == "" || ans.Code != "approval_required" || len(ans.Changes) == 0 {
		t.Errorf("gated: %d %s", r.status, r.body)
	}
}

// TestClearSecrets: the secrets a body holds in clear are named; a redacted
// body holds none.
func TestClearSecrets(t *testing.T) {
	got, err := ClearSecrets([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"s3.credentials[0].secret_key", "s3.credentials[1].secret_key", "s3.credentials[2].secret_key", "sites[0].s3.secret_key", "taxii.sync[0].password"}
	if !slices.Equal(got, want) {
		t.Errorf("ClearSecrets(sample) = %q, want %q", got, want)
	}
	red, err := RedactConfig([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ClearSecrets(red); err != nil || len(got) != 0 {
		t.Errorf("ClearSecrets(redacted) = %q, %v: want none", got, err)
	}
	if _, err := ClearSecrets([]byte("s3: [")); err == nil {
		t.Error("ClearSecrets of broken YAML: no error")
	}
}

func FuzzClearSecrets(f *testing.F) {
	f.Add([]byte(sampleYAML))
	f.Add([]byte("s3:\n  credentials:\n  - {access_key: AKOPS, secret_key: \"embassy-redacted:s3.credentials/AKOPS\"}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		clear, err := ClearSecrets(body)
		if err != nil {
			return
		}
		red, err := RedactConfig(body)
		if err != nil {
			return
		}
		// What redaction shows holds no secret in clear, whatever the
		// file held.
		if left, err := ClearSecrets(red); err != nil || len(left) != 0 {
			t.Fatalf("the redacted form of a body with %q in clear still holds %q (%v):\n%s", clear, left, err, red)
		}
	})
}
