package taxii_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
)

// indicator returns indicator number i at version (modified) v, marked
// with marking.
func indicator(i int, v time.Time, marking string) map[string]any {
	return map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": fmt.Sprintf("indicator--%08x-0000-4000-8000-000000000000", i),
		"created": "2026-01-01T00:00:00.000Z", "modified": v.UTC().Format("2006-01-02T15:04:05.000Z"),
		"pattern": fmt.Sprintf("[ipv4-addr:value = '198.51.100.%d']", i%256), "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
		"object_marking_refs": []string{marking},
	}
}

func malware(i int) map[string]any {
	return map[string]any{"type": "malware", "spec_version": "2.1", "id": fmt.Sprintf("malware--%08x-0000-4000-8000-000000000000", i),
		"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "name": fmt.Sprintf("m%d", i), "is_family": false,
		"object_marking_refs": []string{taxii.TLP2Green}}
}

var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFilters(t *testing.T) {
	h := newHarness(t)
	// Three versions of indicator 1, one of indicator 2, one malware.
	h.post("analyst", objectsOf(indicator(1, day, taxii.TLP2Green), indicator(2, day, taxii.TLP2Green)))
	h.post("analyst", objectsOf(indicator(1, day.Add(time.Hour), taxii.TLP2Green), malware(1)))
	h.post("analyst", objectsOf(indicator(1, day.Add(2*time.Hour), taxii.TLP2Red)))
	id1, id2, m1 := indicator(1, day, "")["id"].(string), indicator(2, day, "")["id"].(string), malware(1)["id"].(string)
	count := func(who, query string) []string {
		t.Helper()
		env, r := h.get(who, query)
		if r.status != 200 {
			t.Fatalf("%s %s: %d %s", who, query, r.status, r.body)
		}
		return env.ids()
	}
	cases := []struct {
		who, query string
		want       []string
	}{
		{"analyst", "", []string{id2, m1, id1}},                                     // the last version of each, by date added
		{"lux", "", []string{id2, id1, m1}},                                         // the last version LUX may read: the RED one is not
		{"analyst", q("match[version]", "all"), []string{id1, id2, id1, m1, id1}},   // every version
		{"analyst", q("match[version]", "first"), []string{id1, id2, m1}},           // the first of each
		{"analyst", q("match[version]", "first,last"), []string{id1, id2, m1, id1}}, // both
		{"analyst", q("match[version]", "2026-01-01T01:00:00.000Z"), []string{id1}}, // one version by its time
		{"analyst", q("match[type]", "malware"), []string{m1}},                      // by type
		{"analyst", q("match[type]", "malware,indicator", "match[version]", "all"), []string{id1, id2, id1, m1, id1}},
		{"analyst", q("match[id]", id2+","+m1), []string{id2, m1}}, // by id
		{"analyst", q("match[id]", id1, "match[version]", "all"), []string{id1, id1, id1}},
		{"analyst", q("match[spec_version]", "2.0"), nil}, // nothing of 2.0 is stored
		{"analyst", q("match[spec_version]", "2.1", "match[type]", "indicator"), []string{id2, id1}},
		{"fin", q("match[id]", id1, "match[version]", "all"), []string{id1, id1}}, // FIN: the GREEN versions
		{"usa", "", nil}, // USA: none is CLEAR
	}
	for _, c := range cases {
		if got := count(c.who, c.query); !slices.Equal(got, c.want) {
			t.Errorf("%s ?%s: %v, want %v", c.who, c.query, got, c.want)
		}
	}
	// added_after: the date added of the second request's objects.
	env, r := h.get("analyst", q("match[version]", "all", "limit", "2"))
	first := r.header.Get("X-TAXII-Date-Added-First")
	last := r.header.Get("X-TAXII-Date-Added-Last")
	if len(env.Objects) != 2 || !env.More || env.Next == "" || first == "" || last <= first {
		t.Fatalf("page of 2: %v more=%v next=%q first=%q last=%q", env.ids(), env.More, env.Next, first, last)
	}
	if got := count("analyst", q("match[version]", "all", "added_after", last)); !slices.Equal(got, []string{id1, m1, id1}) {
		t.Errorf("added_after the second: %v", got)
	}
	// One object and its versions.
	var one envelope
	h.do("GET", objectsPath+id1+"/", "analyst", nil).json(t, &one)
	if len(one.Objects) != 1 || !strings.Contains(string(one.Objects[0]), "02:00:00.000Z") {
		t.Errorf("object %s: %s", id1, one.Objects)
	}
	h.do("GET", objectsPath+id1+"/?"+q("match[version]", "all"), "fin", nil).json(t, &one)
	if len(one.Objects) != 2 {
		t.Errorf("object %s for FIN, all versions: %d", id1, len(one.Objects))
	}
	var vs struct {
		More     bool     `json:"more"`
		Versions []string `json:"versions"`
	}
	h.do("GET", objectsPath+id1+"/versions/", "analyst", nil).json(t, &vs)
	if !slices.Equal(vs.Versions, []string{"2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z", "2026-01-01T02:00:00.000Z"}) || vs.More {
		t.Errorf("versions: %+v", vs)
	}
	h.do("GET", objectsPath+id1+"/versions/?limit=2", "lux", nil).json(t, &vs)
	if len(vs.Versions) != 2 || vs.More {
		t.Errorf("versions for LUX (two are GREEN): %+v", vs)
	}
	if r := h.do("GET", objectsPath+id1+"/", "usa", nil); r.status != http.StatusNotFound {
		t.Errorf("an object USA may not read: %d %s", r.status, r.body)
	}
	// The manifest.
	var man struct {
		More    bool `json:"more"`
		Objects []struct {
			ID        string `json:"id"`
			DateAdded string `json:"date_added"`
			Version   string `json:"version"`
			MediaType string `json:"media_type"`
		} `json:"objects"`
	}
	h.do("GET", root+"collections/cti/manifest/?"+q("match[id]", id1), "analyst", nil).json(t, &man)
	if len(man.Objects) != 1 || man.Objects[0].ID != id1 || man.Objects[0].Version != "2026-01-01T02:00:00.000Z" || man.Objects[0].MediaType != taxii.MediaSTIX || man.Objects[0].DateAdded == "" {
		t.Errorf("manifest: %+v", man)
	}
	// Bad filters are refused, not ignored.
	for _, query := range []string{"match[color]=red", "added_after=yesterday", "limit=x", "next=forged", "match[id]=nope"} {
		if _, r := h.get("analyst", query); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "http_status") {
			t.Errorf("?%s: %d %s", query, r.status, r.body)
		}
	}
	// A next token of one listing does not continue another.
	if _, r := h.get("analyst", "next="+env.Next); r.status != 200 {
		t.Errorf("next of the same listing: %d %s", r.status, r.body)
	}
	if r := h.do("GET", objectsPath+id1+"/versions/?next="+env.Next, "analyst", nil); r.status != http.StatusBadRequest {
		t.Errorf("next of another listing: %d %s", r.status, r.body)
	}
}

// TestPagingUnderConcurrentWrites: a client paging with next while others
// add objects sees every object added, exactly once, whatever the
// interleaving (the listing never passes a date added a write in flight
// will take).
func TestPagingUnderConcurrentWrites(t *testing.T) {
	h := newHarness(t)
	const writers, envelopes, per = 3, 8, 5
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for e := range envelopes {
				var objs []map[string]any
				for i := range per {
					objs = append(objs, indicator(w*1000+e*per+i, day, taxii.TLP2Green))
				}
				h.post("analyst", objectsOf(objs...))
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[string]int{}
	next, after := "", ""
	finished := false
	for {
		query := q("limit", "3")
		switch {
		case next != "":
			query = q("limit", "3", "next", next)
		case after != "":
			query = q("limit", "3", "added_after", after)
		}
		env, r := h.get("reader", query)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, id := range env.ids() {
			seen[id]++
		}
		if l := r.header.Get("X-TAXII-Date-Added-Last"); l != "" {
			after = l
		}
		next = ""
		if env.More {
			next = env.Next
			continue
		}
		if finished && len(env.Objects) == 0 {
			break
		}
		select {
		case <-done:
			finished = true
		default:
		}
	}
	if len(seen) != writers*envelopes*per {
		t.Errorf("saw %d objects, want %d", len(seen), writers*envelopes*per)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", id, n)
		}
	}
}

// TestIndexRebuilt: the secondary index is a cache: thrown away, it is
// rebuilt from the vault on first use, and the collection reads the same.
func TestIndexRebuilt(t *testing.T) {
	h := newHarness(t)
	h.post("analyst", readIncident(t))
	h.post("analyst", objectsOf(indicator(1, day, taxii.TLP2Green), indicator(1, day.Add(time.Hour), taxii.TLP2Amber)))
	before, _ := h.get("analyst", q("match[version]", "all"))
	_, r := h.get("analyst", q("match[version]", "all", "limit", "1"))
	firstAdded := r.header.Get("X-TAXII-Date-Added-First")
	h.restart(func() {
		if err := os.Remove(filepath.Join(h.dir, node.TAXIIFile)); err != nil {
			t.Fatal(err)
		}
	})
	after, r := h.get("analyst", q("match[version]", "all"))
	if !slices.Equal(before.ids(), after.ids()) {
		t.Errorf("after a rebuild: %v, before %v", after.ids(), before.ids())
	}
	if got := r.header.Get("X-TAXII-Date-Added-First"); got != firstAdded {
		t.Errorf("dates added changed: %s, was %s", got, firstAdded)
	}
	if env, _ := h.get("fin", ""); len(env.Objects) != 5 {
		t.Errorf("FIN after a rebuild: %v", env.ids())
	}
	// A duplicate is still known as one.
	if st := h.post("analyst", objectsOf(indicator(1, day, taxii.TLP2Green))); st.Successes[0].Message != "already in the collection" {
		t.Errorf("duplicate after a rebuild: %+v", st)
	}
	// An explicit rebuild while serving gives the same.
	store, err := h.n.TAXII()
	if err != nil {
		t.Fatal(err)
	}
	col, _ := store.Collection("cti")
	st, err := store.Rebuild(t.Context(), col)
	if err != nil || st.Indexed != 14 || st.Skipped != 0 {
		t.Errorf("rebuild: %+v %v", st, err)
	}
	if again, _ := h.get("analyst", q("match[version]", "all")); !slices.Equal(before.ids(), again.ids()) {
		t.Errorf("after an explicit rebuild: %v", again.ids())
	}
}

func TestStatusResource(t *testing.T) {
	h := newHarness(t)
	st := h.post("analyst", readIncident(t))
	var got taxii.Status
	r := h.do("GET", root+"status/"+st.ID+"/", "analyst", nil)
	r.json(t, &got)
	if r.status != 200 || got.ID != st.ID || got.Status != "complete" || got.SuccessCount != 12 || len(got.Successes) != 12 || got.PendingCount != 0 {
		t.Errorf("own status: %d %+v", r.status, got)
	}
	if r := h.do("GET", root+"status/"+st.ID+"/", "clerk", nil); r.status != http.StatusNotFound {
		t.Errorf("another writer's status: %d %s", r.status, r.body)
	}
	if r := h.do("GET", root+"status/"+st.ID+"/", "ops", nil); r.status != 200 {
		t.Errorf("an operator: %d %s", r.status, r.body)
	}
	// Kept for the retention period only.
	c := *h.n.Config
	c.TAXII.StatusRetention = "1ms"
	if err := h.n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if r := h.do("GET", root+"status/"+st.ID+"/", "analyst", nil); r.status != http.StatusNotFound {
		t.Errorf("an expired status: %d %s", r.status, r.body)
	}
}

func TestDeleteObject(t *testing.T) {
	h := newHarness(t)
	h.post("analyst", objectsOf(indicator(1, day, taxii.TLP2Green), indicator(1, day.Add(time.Hour), taxii.TLP2Red), indicator(2, day, taxii.TLP2Green)))
	id1 := indicator(1, day, "")["id"].(string)
	// A writer may not remove versions; an operator may, one version or all.
	if r := h.do("DELETE", objectsPath+id1+"/", "clerk", nil); r.status != http.StatusForbidden {
		t.Errorf("writer delete: %d %s", r.status, r.body)
	}
	if r := h.do("DELETE", objectsPath+id1+"/?"+q("match[version]", "first"), "ops", nil); r.status != 200 {
		t.Fatalf("operator delete: %d %s", r.status, r.body)
	}
	var vs struct{ Versions []string }
	h.do("GET", objectsPath+id1+"/versions/", "analyst", nil).json(t, &vs)
	if !slices.Equal(vs.Versions, []string{"2026-01-01T01:00:00.000Z"}) {
		t.Errorf("after deleting the first version: %v", vs.Versions)
	}
	if r := h.do("DELETE", objectsPath+id1+"/", "ops", nil); r.status != 200 {
		t.Fatalf("operator delete all: %d %s", r.status, r.body)
	}
	if r := h.do("GET", objectsPath+id1+"/", "analyst", nil); r.status != http.StatusNotFound {
		t.Errorf("deleted object: %d %s", r.status, r.body)
	}
	if r := h.do("DELETE", objectsPath+id1+"/", "ops", nil); r.status != http.StatusNotFound {
		t.Errorf("deleting again: %d %s", r.status, r.body)
	}
	env, _ := h.get("analyst", q("match[version]", "all"))
	if len(env.Objects) != 1 {
		t.Errorf("left: %v", env.ids())
	}
}
