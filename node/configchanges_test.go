package node

import (
	"context"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/taxii"
	"github.com/embassy-dev/embassy/vault"
)

// TestConfigChangeGates: each change to node.yaml gets the gate of the
// command that makes the same change (docs/configuration.md, "What needs
// custodians").
func TestConfigChangeGates(t *testing.T) {
	base := func() *Config {
		c := validConfig()
		c.Principals = []access.Principal{
			{Name: "admin", Nation: "EST", Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Roles: []string{"admin"}},
			{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "UNCLASSIFIED"}},
			{Name: "officer", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}},
		}
		c.S3.Credentials = []CredentialConfig{{Principal: "admin", AccessKey: "AKADMIN", SecretKey: "admin-secret"}, {Principal: "clerk", AccessKey: "AKCLERK", SecretKey: "clerk-secret"}}
		c.Vaults[0].DefaultLabel = "NATO SECRET"
		c.Vaults[0].ObjectLock = &ObjectLockConfig{Mode: "COMPLIANCE", Days: 30}
		c.TAXII.Collections = []taxii.CollectionConfig{{ID: "3c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30", Alias: "cti", Vault: "registry", Community: []string{"LUX"}, DefaultTLP: "amber"},
			{ID: "5c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30", Alias: "old", Vault: "registry"}}
		c.TAXII.Sync = []taxii.SyncConfig{{Name: "feed", Collection: "cti", URL: "https://feed.example/taxii2/api/collections/x/", Direction: "pull", As: "clerk"}}
		return c
	}
	cases := []struct {
		name   string
		change func(c *Config)
		gate   Gate
		field  string
	}{
		{"node id", func(c *Config) { c.Node.ID = "fedcba9876543210" }, Refused, "node.id"},
		{"nation", func(c *Config) { c.Node.Nation = "LUX" }, Refused, "node.nation"},
		{"dev on", func(c *Config) { c.Node.Dev = true }, Custodians, "node.dev"},
		{"log level", func(c *Config) { c.Log.Level = "debug" }, Free, "log"},
		{"index path", func(c *Config) { c.Index.Path = "other.db" }, Free, "index"},
		{"root key file", func(c *Config) { c.Keys.RootKeyFile = "elsewhere.key" }, Refused, "keys.root_key_file"},
		{"s3 address", func(c *Config) { c.S3.Address = "127.0.0.1:9100" }, Free, "s3.address"},
		{"allow insecure", func(c *Config) { c.S3.AllowInsecure = true }, Custodians, "s3.allow_insecure"},
		{"admin credential added", func(c *Config) {
			c.S3.Credentials = append(c.S3.Credentials, CredentialConfig{Principal: "admin", AccessKey: "AKADMIN2", SecretKey: "another-secret"})
		}, Custodians, "s3.credentials"},
		{"admin secret changed", func(c *Config) { c.S3.Credentials[0].SecretKey = "changed-secret" }, Custodians, "s3.credentials"},
		{"clerk credential added", func(c *Config) {
			c.S3.Credentials = append(c.S3.Credentials, CredentialConfig{Principal: "clerk", AccessKey: "AKCLERK2", SecretKey: "another-secret"})
		}, Free, "s3.credentials"},
		{"credential removed", func(c *Config) { c.S3.Credentials = c.S3.Credentials[:1] }, Free, "s3.credentials"},
		{"policies", func(c *Config) {
			c.Policies = []label.Policy{{ID: "EST", Levels: []string{"AVALIK", "SALAJANE"}}}
		}, Custodians, "policies"},
		{"two_person", func(c *Config) { c.TwoPerson.Approvals = 3 }, Custodians, "two_person"},
		{"principal cleared above added", func(c *Config) {
			c.Principals = append(c.Principals, access.Principal{Name: "spy", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}})
		}, Custodians, "principals[spy]"},
		{"unclassified principal added", func(c *Config) {
			c.Principals = append(c.Principals, access.Principal{Name: "intern", Nation: "EST"})
		}, Free, "principals[intern]"},
		{"operator added", func(c *Config) {
			c.Principals = append(c.Principals, access.Principal{Name: "ops", Nation: "EST", Roles: []string{"operator"}})
		}, Custodians, "principals[ops]"},
		{"clerk made admin", func(c *Config) { c.Principals[1].Roles = []string{"admin"} }, Custodians, "principals[clerk]"},
		{"clerk made operator of one vault", func(c *Config) { c.Principals[1].VaultRoles = map[string][]string{"registry": {"operator"}} }, Custodians, "principals[clerk]"},
		{"clerk cleared secret", func(c *Config) { c.Principals[1].Clearances = map[string]string{"NATO": "SECRET"} }, Custodians, "principals[clerk]"},
		{"clerk to another nation", func(c *Config) { c.Principals[1].Nation = "USA" }, Custodians, "principals[clerk]"},
		{"officer lowered", func(c *Config) { c.Principals[2].Clearances = map[string]string{"NATO": "RESTRICTED"} }, Free, "principals[officer]"},
		{"officer given a category", func(c *Config) { c.Principals[2].Categories = map[string][]string{"Compartment": {"ALPHA"}} }, Custodians, "principals[officer]"},
		{"officer removed", func(c *Config) { c.Principals = c.Principals[:2] }, Custodians, "principals[officer]"},
		{"clerk removed", func(c *Config) { c.Principals = append(c.Principals[:1], c.Principals[2]) }, Free, "principals[clerk]"},
		{"site removed", func(c *Config) { c.Sites = c.Sites[1:] }, Custodians, "sites[est-1]"},
		{"site added", func(c *Config) { c.Sites = append(c.Sites, dirSite("deu-1", "DEU", "other", "DEU")) }, Free, "sites[deu-1]"},
		{"site moved", func(c *Config) { c.Sites[0].Path = "/mnt/elsewhere" }, Free, "sites[est-1]"},
		{"site jurisdiction", func(c *Config) { c.Sites[0].Jurisdiction = "LUX" }, Custodians, "sites[est-1]"},
		{"site accreditation", func(c *Config) { c.Sites[0].Accredited = "NATO SECRET" }, Custodians, "sites[est-1]"},
		{"site draining", func(c *Config) { c.Sites[0].Draining = true }, Free, "sites[est-1].draining"},
		{"vault removed", func(c *Config) { c.Vaults = nil }, Custodians, "vaults[registry]"},
		{"vault weakened", func(c *Config) { c.Vaults[0].Survive = "sites=1" }, Custodians, "vaults[registry]"},
		{"vault strengthened", func(c *Config) { c.Vaults[0].Erasure = "4+3" }, Free, "vaults[registry]"},
		{"vault owner", func(c *Config) { c.Vaults[0].Owner = "LUX" }, Custodians, "vaults[registry].owner"},
		{"vault key_gen", func(c *Config) { c.Vaults[0].KeyGen = 7 }, Refused, "vaults[registry].key_gen"},
		{"default label lowered", func(c *Config) { c.Vaults[0].DefaultLabel = "NATO RESTRICTED" }, Custodians, "vaults[registry].default_label"},
		{"default label raised", func(c *Config) { c.Vaults[0].DefaultLabel = "NATO COSMIC TOP SECRET" }, Free, "vaults[registry].default_label"},
		{"object lock removed", func(c *Config) { c.Vaults[0].ObjectLock = nil }, Custodians, "vaults[registry].object_lock"},
		{"object lock shortened", func(c *Config) { c.Vaults[0].ObjectLock.Days = 10 }, Custodians, "vaults[registry].object_lock"},
		{"object lock lengthened", func(c *Config) { c.Vaults[0].ObjectLock.Days = 90 }, Free, "vaults[registry].object_lock"},
		{"vault added", func(c *Config) { c.Vaults = append(c.Vaults, VaultConfig{Name: "archive", Erasure: "4+2"}) }, Free, "vaults[archive]"},
		{"scrub", func(c *Config) { c.Scrub.ReportOnly = true }, Free, "scrub"},
		{"copy interval lengthened", func(c *Config) { iv := copyIntervalYAML(10 * time.Second); c.Audit.CopyInterval = &iv }, Custodians, "audit.copy_interval"},
		{"copy interval shortened", func(c *Config) { iv := copyIntervalYAML(500 * time.Millisecond); c.Audit.CopyInterval = &iv }, Free, "audit.copy_interval"},
		{"copy interval written out", func(c *Config) { iv := copyIntervalYAML(time.Second); c.Audit.CopyInterval = &iv }, Free, "audit.copy_interval"},
		{"taxii status retention", func(c *Config) { c.TAXII.StatusRetention = "24h" }, Free, "taxii.status_retention"},
		{"collection added, home only", func(c *Config) {
			c.TAXII.Collections = append(c.TAXII.Collections, taxii.CollectionConfig{ID: "4c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30", Alias: "home", Vault: "registry", Community: []string{"EST"}})
		}, Free, "taxii.collections[home]"},
		{"collection added, shared", func(c *Config) {
			c.TAXII.Collections = append(c.TAXII.Collections, taxii.CollectionConfig{ID: "4c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30", Alias: "allies", Vault: "registry", Amber: []string{"FIN"}})
		}, Custodians, "taxii.collections[allies]"},
		{"community widened", func(c *Config) { c.TAXII.Collections[0].Community = []string{"LUX", "USA"} }, Custodians, "taxii.collections[cti]"},
		{"community narrowed", func(c *Config) { c.TAXII.Collections[0].Community = nil }, Free, "taxii.collections[cti]"},
		{"default TLP lowered", func(c *Config) { c.TAXII.Collections[0].DefaultTLP = "clear" }, Custodians, "taxii.collections[cti]"},
		{"default TLP raised", func(c *Config) { c.TAXII.Collections[0].DefaultTLP = "red" }, Free, "taxii.collections[cti]"},
		{"classification lowered", func(c *Config) { c.TAXII.Collections[0].Classification = "NATO UNCLASSIFIED" }, Free, "taxii.collections[cti]"},
		{"classification raised", func(c *Config) { c.TAXII.Collections[0].Classification = "NATO RESTRICTED" }, Free, "taxii.collections[cti]"},
		{"collection retitled", func(c *Config) { c.TAXII.Collections[0].Title = "Incidents" }, Free, "taxii.collections[cti]"},
		{"collection removed", func(c *Config) { c.TAXII.Collections = c.TAXII.Collections[:1] }, Free, "taxii.collections[old]"},
		{"pull job password", func(c *Config) { c.TAXII.Sync[0].User, c.TAXII.Sync[0].Password = "u", "a-secret" }, Free, "taxii.sync[feed]"},
		{"job made to push", func(c *Config) { c.TAXII.Sync[0].Direction, c.TAXII.Sync[0].Recipient = "both", "clerk" }, Custodians, "taxii.sync[feed]"},
		{"push job added", func(c *Config) {
			c.TAXII.Sync = append(c.TAXII.Sync, taxii.SyncConfig{Name: "lux", Collection: "cti", URL: "https://lux.example/taxii2/api/collections/y/", Direction: "push", Recipient: "clerk"})
		}, Custodians, "taxii.sync[lux]"},
		{"sync job removed", func(c *Config) { c.TAXII.Sync = nil }, Free, "taxii.sync[feed]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old, next := base(), base()
			tc.change(next)
			changes := ConfigChanges(old, next)
			if len(changes) != 1 {
				t.Fatalf("changes %+v, want one", changes)
			}
			if c := changes[0]; c.Gate != tc.gate || c.Field != tc.field || c.Text == "" {
				t.Fatalf("change %+v, want gate %s on %s", c, tc.gate, tc.field)
			}
			if strings.Contains(changes[0].Text, "secret") && strings.Contains(changes[0].Text, "-secret") {
				t.Errorf("a secret in the change text: %s", changes[0].Text)
			}
		})
	}
	if got := ConfigChanges(base(), base()); len(got) != 0 {
		t.Fatalf("no change gives %+v", got)
	}
}

// TestGateTableDocumented: every field of node.yaml has a row in
// docs/configuration.md's "What needs custodians" table.
func TestGateTableDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "#### What needs custodians")
	if !ok {
		t.Fatal("docs/configuration.md has no \"What needs custodians\" section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	named := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([a-z0-9_.*]+)`").FindAllStringSubmatch(first, -1) {
			named[m[1]] = true
		}
	}
	yamlName := func(f reflect.StructField) string {
		n, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		return n
	}
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		top := yamlName(ct.Field(i))
		if named[top] || named[top+".*"] {
			continue
		}
		ft := ct.Field(i).Type
		if ft.Kind() != reflect.Struct {
			t.Errorf("%s: not in the table", top)
			continue
		}
		for j := range ft.NumField() {
			if sub := top + "." + yamlName(ft.Field(j)); !named[sub] {
				t.Errorf("%s: not in the table", sub)
			}
		}
	}
}

// TestProposeConfig: an edit through the node: free changes apply and raise
// the generation; a gated one waits for custodians and is applied with
// them; one made against an older generation is refused when approved.
func TestProposeConfig(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	ctx := n.As(context.Background(), "admin")
	body, err := n.CurrentConfigBody()
	if err != nil {
		t.Fatal(err)
	}
	gen := n.configGen()
	// Free.
	res, err := n.ProposeConfig(ctx, []byte(strings.Replace(string(body), "principals:", "log:\n  level: debug\nprincipals:", 1)))
	if err != nil || !res.Applied || res.Generation != gen+1 || n.Config.Log.Level != "debug" {
		t.Fatalf("free edit: %+v, %v", res, err)
	}
	// Gated: a request, nothing changed yet.
	body, _ = n.CurrentConfigBody()
	gated := strings.Replace(string(body), "principals:\n", "principals:\n  - name: spy\n    nation: EST\n    clearances:\n      NATO: SECRET\n", 1)
	res, err = n.ProposeConfig(ctx, []byte(gated))
	if !errors.Is(err, vault.ErrApprovalRequired) || res.RequestID == "" || res.Applied {
		t.Fatalf("gated edit: %+v, %v", res, err)
	}
	if n.Principal("spy").Nation != "" {
		t.Fatal("the gated principal is in force before approval")
	}
	cn.decide(t, res.RequestID, "alice", true)
	if r, err := cn.decide(t, res.RequestID, "bob", true); err != nil || r.Status != StatusExecuted {
		t.Fatalf("approved edit: %+v, %v", r, err)
	}
	if n.Principal("spy").Nation != "EST" {
		t.Fatal("the approved edit is not in force")
	}
	// A gated edit overtaken by another change is refused when approved.
	body, _ = n.CurrentConfigBody()
	res, _ = n.ProposeConfig(ctx, []byte(strings.Replace(string(body), "  - name: spy\n", "  - name: spy\n    roles: [admin]\n", 1)))
	if _, err := n.ProposeConfig(ctx, []byte(strings.Replace(string(body), "level: debug", "level: info", 1))); err != nil {
		t.Fatal(err)
	}
	cn.decide(t, res.RequestID, "alice", true)
	if r, _ := cn.decide(t, res.RequestID, "carol", true); r.Status != StatusFailed || !strings.Contains(r.Result, "node.yaml changed since the edit was proposed") {
		t.Fatalf("stale edit: %+v", r)
	}
	if n.Principal("spy").Administrative() {
		t.Fatal("a stale edit was applied")
	}
	// A vault that holds versions cannot be removed this way.
	fill(t, n)
	body, _ = n.CurrentConfigBody()
	i := strings.Index(string(body), "vaults:\n")
	if _, err := n.ProposeConfig(ctx, body[:i]); !errors.Is(err, ErrRefusedChange) || !errors.Is(err, ErrVaultNotEmpty) {
		t.Fatalf("removing a vault with objects: %v", err)
	}
}
