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
		{"empty role", func(p *Principal) { p.Roles = []string{"reader", ""} }, "roles[1]: empty"},
		{"unknown role", func(p *Principal) { p.Roles = []string{"analyst"} }, `roles[0]: unknown role "analyst" (the roles are reader, writer, operator, admin, auditor)`},
		{"repeated role", func(p *Principal) { p.Roles = []string{"writer", "writer"} }, `roles[1]: "writer" repeated`},
		{"vault roles", func(p *Principal) { p.VaultRoles = map[string][]string{"registry": {"operator"}} }, ""},
		{"unknown vault role", func(p *Principal) { p.VaultRoles = map[string][]string{"registry": {"custodian"}} }, `vault_roles["registry"][0]: unknown role "custodian"`},
		{"vault without roles", func(p *Principal) { p.VaultRoles = map[string][]string{"registry": nil} }, `vault_roles["registry"]: no roles`},
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
		"roles": ["writer"],
		"vault_roles": {"registry": ["operator"]}
	}`), &p)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(registry(t)); err != nil {
		t.Fatal(err)
	}
	if p.Clearances["EST"] != "SALAJANE" || p.Categories["Compartment"][0] != "ALPHA" || p.Roles[0] != "writer" || p.VaultRoles["registry"][0] != "operator" {
		t.Fatalf("decoded %+v", p)
	}
}

// TestRoles is the role rule as a table: what each configuration of roles
// allows on vault "registry" and on another vault.
func TestRoles(t *testing.T) {
	tests := []struct {
		name       string
		nation     string
		roles      []string
		vaultRoles map[string][]string
		// want lists, for reader, writer, operator, admin and auditor, what
		// is allowed on registry ('R') and on other ('O').
		want [5]string
	}{
		{"no roles: reader and writer everywhere", "EST", nil, nil, [5]string{"RO", "RO", "", "", ""}},
		{"no nation: nothing", "", nil, nil, [5]string{"", "", "", "", ""}},
		{"reader", "EST", []string{"reader"}, nil, [5]string{"RO", "", "", "", ""}},
		{"writer", "EST", []string{"writer"}, nil, [5]string{"RO", "RO", "", "", ""}},
		{"operator", "EST", []string{"operator"}, nil, [5]string{"RO", "RO", "RO", "", ""}},
		{"admin", "EST", []string{"admin"}, nil, [5]string{"RO", "RO", "RO", "RO", ""}},
		{"auditor reads no data", "EST", []string{"auditor"}, nil, [5]string{"", "", "", "", "RO"}},
		{"operator of one vault only", "EST", nil, map[string][]string{"registry": {"operator"}}, [5]string{"R", "R", "R", "", ""}},
		{"reader everywhere, writer of one vault", "EST", []string{"reader"}, map[string][]string{"registry": {"writer"}}, [5]string{"RO", "R", "", "", ""}},
		{"auditor and admin of one vault", "EST", []string{"auditor"}, map[string][]string{"registry": {"admin"}}, [5]string{"R", "R", "R", "R", "RO"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Principal{Name: "p", Nation: tt.nation, Roles: tt.roles, VaultRoles: tt.vaultRoles}
			for i, r := range Roles {
				got := ""
				if p.Can("registry", r) {
					got += "R"
				}
				if p.Can("other", r) {
					got += "O"
				}
				if got != tt.want[i] {
					t.Errorf("%s: allowed on %q, want %q", r, got, tt.want[i])
				}
			}
		})
	}
	if !(Principal{Nation: "EST", VaultRoles: map[string][]string{"x": {"operator"}}}).Administrative() {
		t.Error("an operator of one vault is not administrative")
	}
	if (Principal{Nation: "EST"}).Administrative() || (Principal{Nation: "EST", Roles: []string{"auditor", "writer"}}).Administrative() {
		t.Error("a writer or auditor is administrative")
	}
}
