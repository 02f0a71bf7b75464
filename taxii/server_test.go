package taxii_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/taxii"
)

// TestIncidentVisibility: an incident bundle marked CLEAR, GREEN, AMBER and
// RED, posted by an analyst cleared for RED, is read by each principal as
// its TLP level and the collection's community decide, through the one
// access decision.
func TestIncidentVisibility(t *testing.T) {
	h := newHarness(t)
	st := h.post("analyst", readIncident(t))
	if st.Status != "complete" || st.TotalCount != 12 || st.SuccessCount != 12 || st.FailureCount != 0 {
		t.Fatalf("status %+v", st)
	}
	cases := []struct {
		who  string
		want int
	}{
		{"analyst", 12}, // EST, holds TLP: RED
		{"ops", 12},
		{"reader", 9}, // EST without RED
		{"clerk", 9},  // writer, EST without RED
		{"lux", 9},    // CLEAR, GREEN (community) and AMBER (peer); RED never, even holding the category
		{"fin", 4},    // CLEAR and GREEN
		{"usa", 1},    // CLEAR only
	}
	for _, c := range cases {
		env, r := h.get(c.who, "")
		if r.status != 200 || len(env.Objects) != c.want {
			t.Errorf("%s reads %d objects (%d), want %d: %v", c.who, len(env.Objects), r.status, c.want, env.ids())
		}
		for _, o := range env.Objects {
			if c.who != "analyst" && c.who != "ops" && strings.Contains(string(o), taxii.TLP2Red) {
				t.Errorf("%s reads a RED object: %s", c.who, o)
			}
		}
	}
	// Roles: an auditor reads no data, and like a principal with no role
	// on the vault does not see the collection at all.
	if _, r := h.get("aud", ""); r.status != http.StatusNotFound {
		t.Errorf("auditor: %d %s", r.status, r.body)
	}
	if r := h.do("GET", taxii.Prefix, "aud", nil); r.status != http.StatusForbidden {
		t.Errorf("auditor discovery: %d %s", r.status, r.body)
	}
	if _, r := h.get("other", ""); r.status != http.StatusNotFound {
		t.Errorf("no role on the vault: %d %s", r.status, r.body)
	}
	var cols struct {
		Collections []map[string]any `json:"collections"`
	}
	h.do("GET", root+"collections/", "other", nil).json(t, &cols)
	if len(cols.Collections) != 0 {
		t.Errorf("collections shown to a principal with no role on their vault: %v", cols.Collections)
	}
	h.do("GET", root+"collections/", "reader", nil).json(t, &cols)
	if len(cols.Collections) != 1 || cols.Collections[0]["can_read"] != true || cols.Collections[0]["can_write"] != false || cols.Collections[0]["alias"] != "cti" {
		t.Errorf("collections for a reader: %v", cols.Collections)
	}
	var one map[string]any
	h.do("GET", root+"collections/"+collID+"/", "analyst", nil).json(t, &one)
	if one["id"] != collID || one["can_write"] != true {
		t.Errorf("collection by id for a writer: %v", one)
	}
}

// TestObjectsStoredAsReceived: what comes back is the object as posted,
// every property and marking kept, compacted.
func TestObjectsStoredAsReceived(t *testing.T) {
	h := newHarness(t)
	h.post("analyst", readIncident(t))
	var in envelope
	json.Unmarshal(readIncident(t), &in)
	env, _ := h.get("analyst", q("match[version]", "all", "limit", "100"))
	got := map[string]string{}
	for _, o := range env.Objects {
		var x struct{ ID string }
		json.Unmarshal(o, &x)
		got[x.ID] = string(o)
	}
	for _, o := range in.Objects {
		var x struct{ ID string }
		json.Unmarshal(o, &x)
		var a, b any
		json.Unmarshal(o, &a)
		json.Unmarshal([]byte(got[x.ID]), &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s changed on the way:\n in %s\nout %s", x.ID, ja, jb)
		}
	}
}

// TestInvalidRefusedPerObject: an envelope mixing valid and invalid
// objects stores the valid ones; each invalid one is a failure naming the
// property at fault, and nothing of it is stored.
func TestInvalidRefusedPerObject(t *testing.T) {
	h := newHarness(t)
	good := map[string]any{"type": "indicator", "spec_version": "2.1", "id": "indicator--11111111-1111-4111-8111-111111111111",
		"created": "2026-03-02T08:30:00.000Z", "modified": "2026-03-02T08:30:00.000Z", "pattern": "[ipv4-addr:value = '198.51.100.7']",
		"pattern_type": "stix", "valid_from": "2026-03-02T08:30:00Z", "object_marking_refs": []string{taxii.TLP2Green}}
	bad := func(change map[string]any) map[string]any {
		o := map[string]any{}
		for k, v := range good {
			o[k] = v
		}
		for k, v := range change {
			if v == nil {
				delete(o, k)
			} else {
				o[k] = v
			}
		}
		return o
	}
	statement := "marking-definition--22222222-2222-4222-8222-222222222222"
	st := h.post("analyst", objectsOf(
		good,
		bad(map[string]any{"id": "indicator--33333333-3333-4333-8333-333333333333", "spec_version": "2.0"}),
		bad(map[string]any{"id": "malware--44444444-4444-4444-8444-444444444444"}),
		bad(map[string]any{"id": "indicator--55555555-5555-4555-8555-555555555555", "created": "yesterday"}),
		bad(map[string]any{"id": "indicator--66666666-6666-4666-8666-666666666666", "pattern": nil}),
		bad(map[string]any{"id": "indicator--77777777-7777-4777-8777-777777777777", "created_by_ref": "identity--nope"}),
		bad(map[string]any{"id": "indicator--88888888-8888-4888-8888-888888888888", "object_marking_refs": []string{statement}}),
	))
	if st.SuccessCount != 1 || st.FailureCount != 6 || st.TotalCount != 7 {
		t.Fatalf("status %+v", st)
	}
	want := []string{"spec_version", "does not start with the object's type", "created", "pattern: missing", "created_by_ref", "neither a TLP marking nor a statement"}
	for i, f := range st.Failures {
		if !strings.Contains(f.Message, want[i]) || f.ID == "" {
			t.Errorf("failure %d: %+v, want it to say %q", i, f, want[i])
		}
	}
	env, _ := h.get("analyst", q("match[version]", "all"))
	if ids := env.ids(); len(ids) != 1 || ids[0] != good["id"] {
		t.Errorf("stored %v, want only the valid object", ids)
	}
	// Nothing of the refused objects reached the vault.
	page, err := h.n.Engine.Versions(h.n.As(t.Context(), "analyst"), "intel", indexVersionOptions(taxii.KeyPrefix(collID)))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Versions) != 1 {
		t.Errorf("%d versions in the vault, want 1", len(page.Versions))
	}
	// A known statement marking is accepted once the collection knows it.
	c := *h.n.Config
	c.TAXII.Collections[0].Statements = []string{statement}
	if err := h.n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	st = h.post("analyst", objectsOf(bad(map[string]any{"id": "indicator--88888888-8888-4888-8888-888888888888", "object_marking_refs": []string{statement}})))
	if st.SuccessCount != 1 {
		t.Errorf("known statement: %+v", st)
	}
}

// TestRedNeedsTheCategory: a writer without TLP: RED cannot store RED
// objects (nobody writes into a compartment they do not hold); the status
// says so per object.
func TestRedNeedsTheCategory(t *testing.T) {
	h := newHarness(t)
	st := h.post("clerk", readIncident(t))
	if st.SuccessCount != 9 || st.FailureCount != 3 {
		t.Fatalf("status %+v", st)
	}
	for _, f := range st.Failures {
		if !strings.Contains(f.Message, "access denied") || !strings.Contains(f.Message, "RED") {
			t.Errorf("failure %+v", f)
		}
	}
}

func TestDuplicatesStoredOnce(t *testing.T) {
	h := newHarness(t)
	h.post("analyst", readIncident(t))
	st := h.post("analyst", readIncident(t))
	if st.SuccessCount != 12 {
		t.Fatalf("second post: %+v", st)
	}
	for _, s := range st.Successes {
		if s.Message != "already in the collection" {
			t.Errorf("%+v", s)
		}
	}
	page, err := h.n.Engine.Versions(h.n.As(t.Context(), "analyst"), "intel", indexVersionOptions(taxii.KeyPrefix(collID)))
	if err != nil || len(page.Versions) != 12 {
		t.Errorf("%d versions in the vault (%v), want 12", len(page.Versions), err)
	}
}
