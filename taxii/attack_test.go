package taxii_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
)

// TestAttacker: what a principal may not do, tried through the real HTTP
// interface. A writer of another nation cannot add to a vault EST owns;
// objects beyond a principal's TLP reach are not found even by id, in
// versions or the manifest; a clearance below the collection's
// classification reads nothing; a forged or foreign next token is refused.
func TestAttacker(t *testing.T) {
	const secretID = "5f0e8d1c-7b6a-4e5d-9c4b-3a2918070605"
	h := newHarness(t, harnessOptions{edit: func(c *node.Config) {
		c.Principals = append(c.Principals, access.Principal{Name: "luxw", Nation: "LUX", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"writer"}})
		c.S3.Credentials = append(c.S3.Credentials, node.CredentialConfig{Principal: "luxw", AccessKey: keyOf("luxw"), SecretKey: secretOf("luxw")})
		c.TAXII.Collections = append(c.TAXII.Collections, taxii.CollectionConfig{ID: secretID, Alias: "secret", Vault: "intel", Classification: "NATO SECRET",
			Community: []string{"LUX", "FIN"}, Amber: []string{"LUX"}})
	}})
	h.post("analyst", readIncident(t))

	// Another nation's writer adds nothing to EST's vault.
	r := h.do("POST", objectsPath, "luxw", objectsOf(indicator(1, day, taxii.TLP2Green)))
	var st taxii.Status
	if r.status == http.StatusAccepted {
		r.json(t, &st)
	}
	if r.status != http.StatusForbidden && st.SuccessCount != 0 {
		t.Fatalf("a LUX writer added to EST's collection: %d %s", r.status, r.body)
	}
	if env, _ := h.get("analyst", "limit=1000"); len(env.Objects) != 12 {
		t.Fatalf("the collection holds %d objects, want the 12 of the incident", len(env.Objects))
	}

	// Beyond the TLP reach: FIN is in the community (GREEN), not an AMBER
	// peer; USA reads CLEAR only; LUX, an AMBER peer, never RED.
	const amber = "threat-actor--a675cd8b-4912-43c6-a9a3-06fb195c597b"
	const green = "malware--c2ab920f-7fad-4234-b29d-467638e99df0"
	const red = "indicator--630d8403-f1e6-43c9-aca9-257c65ef1495"
	for _, c := range []struct{ who, id string }{{"fin", amber}, {"usa", green}, {"usa", amber}, {"lux", red}, {"fin", red}} {
		for _, p := range []string{objectsPath + c.id + "/", objectsPath + c.id + "/versions/"} {
			if r := h.do("GET", p, c.who, nil); r.status != http.StatusNotFound || strings.Contains(string(r.body), c.id+`"`) && strings.Contains(string(r.body), "spec_version") {
				t.Errorf("%s GET %s: %d %s, want 404", c.who, p, r.status, r.body)
			}
		}
		r := h.do("GET", root+"collections/cti/manifest/?match[id]="+c.id, c.who, nil)
		if r.status != http.StatusOK || strings.Contains(string(r.body), c.id) {
			t.Errorf("%s manifest of %s: %d %s", c.who, c.id, r.status, r.body)
		}
		if env, _ := h.get(c.who, "match[id]="+c.id); len(env.Objects) != 0 {
			t.Errorf("%s lists %s", c.who, c.id)
		}
	}
	// Deleting needs the operator role: a writer is refused, and the
	// object stays.
	if r := h.do("DELETE", objectsPath+green+"/", "analyst", nil); r.status != http.StatusForbidden {
		t.Errorf("a writer deletes: %d %s", r.status, r.body)
	}
	if env, _ := h.get("reader", "match[id]="+green); len(env.Objects) != 1 {
		t.Error("the object is gone after a refused delete")
	}

	// The label ceiling: a collection classified NATO SECRET; a reader
	// cleared UNCLASSIFIED reads none of its objects, even CLEAR ones.
	secretObjects := root + "collections/secret/objects/"
	if r := h.do("POST", secretObjects, "analyst", objectsOf(indicator(2, day, taxii.TLP2Clear))); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	for who, want := range map[string]int{"analyst": 1, "reader": 0, "clerk": 0, "fin": 1} {
		var env envelope
		if r := h.do("GET", secretObjects, who, nil); r.status == 200 {
			r.json(t, &env)
		}
		if len(env.Objects) != want {
			t.Errorf("%s reads %d objects of the SECRET collection, want %d", who, len(env.Objects), want)
		}
	}
	// A clerk (UNCLASSIFIED) cannot write into it either.
	r = h.do("POST", secretObjects, "clerk", objectsOf(indicator(3, day, taxii.TLP2Green)))
	st = taxii.Status{}
	r.json(t, &st)
	if st.SuccessCount != 0 || st.FailureCount != 1 {
		t.Errorf("an UNCLASSIFIED writer wrote into the SECRET collection: %s", r.body)
	}

	// Cursors: forged, or from another listing, are 400.
	first, _ := h.get("analyst", "limit=2")
	if first.Next == "" {
		t.Fatal("no next")
	}
	for _, bad := range []string{"AAAA", first.Next[:len(first.Next)-2] + "xx", strings.ToUpper(first.Next)} {
		if _, r := h.get("analyst", q("next", bad)); r.status != http.StatusBadRequest {
			t.Errorf("forged next %q: %d %s", bad, r.status, r.body)
		}
	}
	if r := h.do("GET", secretObjects+"?"+q("next", first.Next), "analyst", nil); r.status != http.StatusBadRequest {
		t.Errorf("a next of another collection: %d %s", r.status, r.body)
	}
}
