package access

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestPrincipalValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(p *Principal)
		wantErr string
	}{
		{"valid", func(*Principal) {}, ""},
		{"national and alias clearances", func(p *Principal) { p.Clearances = map[string]string{"nato": "NS", "EST": "SALAJANE"} }, ""},
		{"missing name", func(p *Principal) { p.Name = "" }, "principal: name: missing"},
		{"lower-case nation", func(p *Principal) { p.Nation = "est" }, `principal "kadri": nation: "est" is not an ISO 3166-1 alpha-3 code`},
		{"alpha-2 nation", func(p *Principal) { p.Nation = "EE" }, `nation: "EE"`},
		{"missing nation", func(p *Principal) { p.Nation = "" }, `nation: ""`},
		{"unknown policy", func(p *Principal) { p.Clearances["FRA"] = "SECRET DEFENSE" }, `clearances["FRA"]: unknown policy "FRA"`},
		{"unknown level", func(p *Principal) { p.Clearances["NATO"] = "ULTRA" }, `clearances["NATO"]: policy NATO: unknown level "ULTRA"`},
		{"two clearances in one policy", func(p *Principal) { p.Clearances["nato"] = "SECRET" }, `clearances["nato"]: policy NATO already has a clearance under "NATO"`},
		{"empty category tag", func(p *Principal) { p.Categories[""] = []string{"X"} }, "categories: empty tag name"},
		{"category without values", func(p *Principal) { p.Categories["Compartment"] = nil }, `categories["Compartment"]: no values`},
		{"empty category value", func(p *Principal) { p.Categories["Compartment"] = []string{"ALPHA", ""} }, `categories["Compartment"][1]: empty value`},
		{"repeated category value", func(p *Principal) { p.Categories["Compartment"] = []string{"ALPHA", "ALPHA"} }, `categories["Compartment"][1]: "ALPHA" repeated`},
		{"empty role", func(p *Principal) { p.Roles = []string{"custodian", ""} }, "roles[1]: empty"},
	}
	reg := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := analyst()
			tt.edit(&p)
			err := p.Validate(reg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestPrincipalConfigShape decodes the configuration shape documented in
// docs/labels.md (in JSON, whose keys the YAML tags share) and checks that
// every field's yaml and json keys agree.
func TestPrincipalConfigShape(t *testing.T) {
	typ := reflect.TypeFor[Principal]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		y, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		j, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if y == "" || y != j {
			t.Errorf("field %s: yaml key %q, json key %q", f.Name, y, j)
		}
	}
	var p Principal
	err := json.Unmarshal([]byte(`{
		"name": "kadri", "nation": "EST",
		"clearances": {"NATO": "SECRET", "EST": "SALAJANE"},
		"categories": {"Compartment": ["ALPHA"]},
		"roles": ["analyst"]
	}`), &p)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(registry(t)); err != nil {
		t.Fatal(err)
	}
	if p.Clearances["EST"] != "SALAJANE" || p.Categories["Compartment"][0] != "ALPHA" || p.Roles[0] != "analyst" {
		t.Fatalf("decoded %+v", p)
	}
}
