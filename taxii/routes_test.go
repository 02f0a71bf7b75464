package taxii_test

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/taxii"
)

// TestRoutesAuthorize walks every route of the table with principals of
// every role: a route is answered only for a principal holding its role
// (on the collection's vault for collection routes), refused with 403
// otherwise, and a collection on whose vault the principal holds no role
// is not found. A route added without its role in the table fails here.
func TestRoutesAuthorize(t *testing.T) {
	h := newHarness(t)
	st := h.post("analyst", readIncident(t))
	const obj = "indicator--830b74d3-00d1-4c74-804b-a83ae16031a8"
	vars := strings.NewReplacer("{root}", taxii.APIRoot, "{status}", st.ID, "{collection}", "cti", "{object}", obj)
	who := map[string]struct {
		roles []access.Role // roles held on the vault
	}{
		"reader": {[]access.Role{access.RoleReader}},
		"clerk":  {[]access.Role{access.RoleReader, access.RoleWriter}},
		"ops":    {[]access.Role{access.RoleReader, access.RoleWriter, access.RoleOperator}},
		"aud":    {nil},
		"other":  {nil}, // writer on another vault only
	}
	holds := func(name string, r access.Role) bool {
		for _, x := range who[name].roles {
			if x == r {
				return true
			}
		}
		return false
	}
	envelope, _ := json.Marshal(map[string]any{"objects": []any{}})
	routes := taxii.Routes()
	if len(routes) != 11 {
		t.Errorf("%d routes; update this test with the new ones", len(routes))
	}
	// Deletion last: it changes what the others see.
	last := slices.Clone(routes)
	slices.SortStableFunc(last, func(a, b taxii.RouteInfo) int {
		return cmp.Compare(boolInt(a.Method == "DELETE"), boolInt(b.Method == "DELETE"))
	})
	for _, name := range []string{"reader", "clerk", "aud", "other", "ops"} {
		for _, rt := range last {
			if rt.Role == "" {
				t.Fatalf("route %s %s names no role", rt.Method, rt.Path)
			}
			var body []byte
			if rt.Method == "POST" {
				body = envelope
			}
			r := h.do(rt.Method, vars.Replace(rt.Path), name, body)
			allowed := holds(name, rt.Role)
			if !rt.OnVault {
				// Node routes need the role on some vault: "other" is a
				// writer (so a reader) on its own vault.
				allowed = holds(name, rt.Role) || name == "other" && access.RoleWriter.Grants(rt.Role)
			}
			switch {
			case allowed:
				if r.status == 401 || r.status == 403 || r.status == 404 && rt.Name != "Get Status" {
					t.Errorf("%s %s as %s: %d %s, want it answered", rt.Method, rt.Path, name, r.status, r.body)
				}
			case rt.OnVault && len(who[name].roles) == 0:
				if r.status != http.StatusNotFound {
					t.Errorf("%s %s as %s (no role on the vault): %d %s, want 404", rt.Method, rt.Path, name, r.status, r.body)
				}
			default:
				if r.status != http.StatusForbidden {
					t.Errorf("%s %s as %s: %d %s, want 403", rt.Method, rt.Path, name, r.status, r.body)
				}
			}
		}
	}
	// Without credentials, or with a wrong secret, nothing is answered.
	for _, rt := range routes {
		for _, edit := range []func(*http.Request){
			func(r *http.Request) {},
			func(r *http.Request) { r.SetBasicAuth(keyOf("ops"), "wrong") },
			func(r *http.Request) { r.SetBasicAuth("AKNOBODY", secretOf("ops")) },
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secretOf("ops")) },
		} {
			r := h.do(rt.Method, vars.Replace(rt.Path), "", nil, edit)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") || strings.Contains(string(r.body), "indicator") {
				t.Errorf("%s %s unauthenticated: %d %v %s", rt.Method, rt.Path, r.status, r.header, r.body)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
