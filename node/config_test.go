package node

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/taxii"
)

// validConfig is a complete configuration that passes Validate: six sites
// in three jurisdictions on two providers, and one vault. Tests change one
// thing in it at a time.
func validConfig() *Config {
	return &Config{
		Node:  NodeConfig{ID: "0123456789abcdef", Nation: "EST"},
		Index: IndexConfig{Driver: "bolt", Path: "index.db"},
		Keys:  KeysConfig{RootKeyFile: "root.key"},
		Log:   LogConfig{Level: "info", Format: "text"},
		Sites: []SiteConfig{
			dirSite("est-1", "EST", "gov-dc", "EST"),
			dirSite("est-2", "EST", "cloudco", "USA"),
			dirSite("lux-1", "LUX", "gov-dc", "EST"),
			dirSite("lux-2", "LUX", "cloudco", "USA"),
			dirSite("fin-1", "FIN", "gov-dc", "EST"),
			dirSite("fin-2", "FIN", "cloudco", "USA"),
		},
		Vaults: []VaultConfig{{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1,sites=1", OutsideHome: true}},
	}
}

func dirSite(id, jurisdiction, provider, control string) SiteConfig {
	return SiteConfig{
		Descriptor: site.Descriptor{ID: id, Jurisdiction: jurisdiction, Provider: provider, Control: control},
		Driver:     "dir",
		Path:       "sites/" + id,
	}
}

func TestValidConfigIsValid(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("validConfig: %v", err)
	}
}

// TestValidate: every error names the field that is wrong (path from the
// top of node.yaml) and, where there is one, the offending value.
func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *Config)
		want   []string // every one of these appears in the error
	}{
		{"node id missing", func(c *Config) { c.Node.ID = "" }, []string{"node.id", "must be set"}},
		{"node nation lower case", func(c *Config) { c.Node.Nation = "est" }, []string{"node.nation", `"est"`}},
		{"node nation missing", func(c *Config) { c.Node.Nation = "" }, []string{"node.nation", `""`}},
		{"index driver", func(c *Config) { c.Index.Driver = "postgres" }, []string{"index.driver", `"postgres"`}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level", `"verbose"`}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format", `"xml"`}},
		{"witness key", func(c *Config) { c.Audit.Witnesses = []WitnessConfig{{Key: "nokey", URL: "https://w.example"}} }, []string{"audit.witnesses[0].key"}},
		{"witness url", func(c *Config) {
			c.Audit.Witnesses = []WitnessConfig{{Key: "w.example+06264980+BBtHu+jlWRd8eRJgyx2B4ybG4pZ1Vm3UFfFOlBFmjsnG", URL: "ftp://w.example"}}
		}, []string{"audit.witnesses[0].url", "ftp://w.example"}},
		{"witness quorum", func(c *Config) { c.Audit.Quorum = 2 }, []string{"audit.quorum 2", "0 (all) to 0"}},
		{"copy interval too short", func(c *Config) { iv := copyIntervalYAML(100 * time.Millisecond); c.Audit.CopyInterval = &iv },
			[]string{"audit.copy_interval", "100ms", "shorter than 200ms"}},
		{"copy interval zero", func(c *Config) { iv := copyIntervalYAML(0); c.Audit.CopyInterval = &iv }, []string{"audit.copy_interval", "0s", "shorter than 200ms"}},
		{"copy interval negative", func(c *Config) { iv := copyIntervalYAML(-time.Second); c.Audit.CopyInterval = &iv }, []string{"audit.copy_interval", "-1s", "shorter than 200ms"}},
		{"copy interval too long", func(c *Config) { iv := copyIntervalYAML(61 * time.Second); c.Audit.CopyInterval = &iv },
			[]string{"audit.copy_interval", "1m1s", "longer than 1m0s"}},
		{"witnessed origin", func(c *Config) {
			c.Audit.Witnessed = []WitnessedLogConfig{{Origin: "embassy/x", Key: "embassy/y+1c26541f+ARtHu+jlWRd8eRJgyx2B4ybG4pZ1Vm3UFfFOlBFmjsnG"}}
		}, []string{"audit.witnessed[0].key", "verifier hash"}},

		{"site id", func(c *Config) { c.Sites[2].ID = "Lux_1" }, []string{"sites[2]", `"Lux_1"`}},
		{"site id missing", func(c *Config) { c.Sites[0].ID = "" }, []string{"sites[0]", "site id"}},
		{"site jurisdiction", func(c *Config) { c.Sites[1].Jurisdiction = "Estonia" }, []string{"sites[1]", "jurisdiction", `"Estonia"`}},
		{"site provider missing", func(c *Config) { c.Sites[3].Provider = "" }, []string{"sites[3]", "provider", "must be set"}},
		{"site control", func(c *Config) { c.Sites[4].Control = "US" }, []string{"sites[4]", "control", `"US"`}},
		{"site control missing", func(c *Config) { c.Sites[4].Control = "" }, []string{"sites[4]", "control"}},
		{"site connectivity", func(c *Config) { c.Sites[5].Connectivity = "satellite" }, []string{"sites[5]", "connectivity", `"satellite"`}},
		{"site id twice", func(c *Config) { c.Sites[3].ID = "est-1" }, []string{"sites[3].id", "est-1", "twice"}},
		{"site driver", func(c *Config) { c.Sites[1].Driver = "ftp" }, []string{"sites[1].driver", `"ftp"`}},
		{"s3 site without settings", func(c *Config) { c.Sites[1].Driver = "s3" }, []string{"sites[1].s3", "endpoint"}},
		{"site driver missing", func(c *Config) { c.Sites[1].Driver = "" }, []string{"sites[1].driver", `""`}},
		{"dir site without path", func(c *Config) { c.Sites[0].Path = "" }, []string{"sites[0].path"}},
		{"site accreditation", func(c *Config) { c.Sites[2].Accredited = "SUPER SECRET" }, []string{"sites[2].accredited"}},

		{"vault name", func(c *Config) { c.Vaults[0].Name = "Registry" }, []string{"vaults[0].name", `"Registry"`}},
		{"vault name short", func(c *Config) { c.Vaults[0].Name = "ab" }, []string{"vaults[0].name", `"ab"`}},
		{"vault name twice", func(c *Config) { c.Vaults = append(c.Vaults, c.Vaults[0]) }, []string{"vaults[1].name", "registry", "twice"}},
		{"vault owner", func(c *Config) { c.Vaults[0].Owner = "lux" }, []string{"vaults[0].owner", `"lux"`}},
		{"vault erasure missing", func(c *Config) { c.Vaults[0].Erasure = "" }, []string{"vaults[0]", "erasure", `""`}},
		{"vault erasure syntax", func(c *Config) { c.Vaults[0].Erasure = "4-2" }, []string{"vaults[0]", "erasure", `"4-2"`}},
		{"vault erasure no data", func(c *Config) { c.Vaults[0].Erasure = "0+2" }, []string{"vaults[0]", "erasure", `"0+2"`}},
		{"vault erasure too wide", func(c *Config) { c.Vaults[0].Erasure = "40+30" }, []string{"vaults[0]", "erasure", `"40+30"`}},
		{"vault erasure negative", func(c *Config) { c.Vaults[0].Erasure = "4+-1" }, []string{"vaults[0]", "erasure", `"4+-1"`}},
		{"vault survive dimension", func(c *Config) { c.Vaults[0].Survive = "planets=1" }, []string{"vaults[0]", "survive", `"planets"`}},
		{"vault survive count", func(c *Config) { c.Vaults[0].Survive = "sites=many" }, []string{"vaults[0]", "survive", `"many"`}},
		{"vault survive twice", func(c *Config) { c.Vaults[0].Survive = "sites=1,site=2" }, []string{"vaults[0]", "survive", "twice"}},
		{"vault survive syntax", func(c *Config) { c.Vaults[0].Survive = "sites" }, []string{"vaults[0]", "survive", `"sites"`}},
		{"vault jurisdiction", func(c *Config) { c.Vaults[0].Jurisdictions = []string{"LUX", "fin"} }, []string{"vaults[0].jurisdictions[1]", `"fin"`}},
		{"vault stripe size unit", func(c *Config) { c.Vaults[0].StripeSize = "1MB" }, []string{"vaults[0].stripe_size", "1M"}},
		{"vault stripe size negative", func(c *Config) { c.Vaults[0].StripeSize = "-64KiB" }, []string{"vaults[0].stripe_size", "-64"}},
		{"vault stripe size too large", func(c *Config) { c.Vaults[0].StripeSize = "3GiB" }, []string{"vaults[0].stripe_size", "3"}},
		{"vault stripe size fraction", func(c *Config) { c.Vaults[0].StripeSize = "1.5MiB" }, []string{"vaults[0].stripe_size", "1.5"}},
		{"vault stripe size 2GiB", func(c *Config) { c.Vaults[0].StripeSize = "2GiB" }, []string{"vaults[0].stripe_size", `"2GiB"`, "4KiB to 64MiB"}},
		{"vault stripe size 2KiB", func(c *Config) { c.Vaults[0].StripeSize = "2KiB" }, []string{"vaults[0].stripe_size", `"2KiB"`, "4KiB to 64MiB"}},
		{"scrub interval negative", func(c *Config) { iv := durationYAML(-time.Hour); c.Scrub.Interval = &iv }, []string{"scrub.interval", "-1h0m0s", "negative"}},
		{"two-person ttl negative", func(c *Config) { c.TwoPerson.TTL = durationYAML(-time.Minute) }, []string{"two_person.ttl", "-1m0s", "negative"}},
		{"two-person approvals negative", func(c *Config) { c.TwoPerson.Approvals = -2 }, []string{"two_person.approvals", "-2", "at least 2"}},
		{"two-person approvals one", func(c *Config) { c.TwoPerson.Approvals = 1 }, []string{"two_person.approvals", "1", "at least 2"}},
		{"two-person per operation one", func(c *Config) { c.TwoPerson.PerOperation = map[string]int{"vault.delete": 1} }, []string{"two_person.per_operation.vault.delete", "at least 2"}},
		{"two-person per operation misspelt", func(c *Config) { c.TwoPerson.PerOperation = map[string]int{"vault.delte": 3} }, []string{"two_person.per_operation", `"vault.delte"`, "vault.delete"}},
		{"vault default label", func(c *Config) { c.Vaults[0].DefaultLabel = "NATO ULTRA" }, []string{"vaults[0].default_label"}},
		{"vault object lock mode", func(c *Config) { c.Vaults[0].ObjectLock = &ObjectLockConfig{Mode: "FOREVER", Days: 1} }, []string{"vaults[0].object_lock.mode", `"FOREVER"`}},
		{"vault object lock days and years", func(c *Config) { c.Vaults[0].ObjectLock = &ObjectLockConfig{Mode: "GOVERNANCE", Days: 1, Years: 1} }, []string{"vaults[0].object_lock", "days or years"}},
		{"vault object lock no period", func(c *Config) { c.Vaults[0].ObjectLock = &ObjectLockConfig{Mode: "COMPLIANCE"} }, []string{"vaults[0].object_lock", "days or years"}},
		{"vault object lock negative", func(c *Config) { c.Vaults[0].ObjectLock = &ObjectLockConfig{Mode: "COMPLIANCE", Days: 5, Years: -1} }, []string{"vaults[0].object_lock"}},
		{"vault defaults erasure", func(c *Config) { c.VaultDefaults.Erasure = "six" }, []string{"vault_defaults", "erasure", `"six"`}},
		{"vault defaults survive", func(c *Config) { c.VaultDefaults.Survive = "moons=1" }, []string{"vault_defaults", "survive", `"moons"`}},

		{"s3 credential principal", func(c *Config) {
			c.S3.Credentials = []CredentialConfig{{AccessKey: "AKEXAMPLE", SecretKey: "secret-key-1"}}
		}, []string{"s3.credentials[0].principal"}},
		{"s3 credential access key short", func(c *Config) {
			c.S3.Credentials = []CredentialConfig{{Principal: "admin", AccessKey: "AK", SecretKey: "secret-key-1"}}
		}, []string{"s3.credentials[0].access_key", "must be 3 to 128 characters, got 2"}},
		{"s3 credential access key with a slash", func(c *Config) {
			c.S3.Credentials = []CredentialConfig{{Principal: "admin", AccessKey: "AK/EXAMPLE", SecretKey: "secret-key-1"}}
		}, []string{"s3.credentials[0].access_key", "'/'"}},
		{"s3 credential secret short", func(c *Config) {
			c.S3.Credentials = []CredentialConfig{{Principal: "admin", AccessKey: "AKEXAMPLE", SecretKey: "short"}}
		}, []string{"s3.credentials[0].secret_key"}},
		{"s3 credential twice", func(c *Config) {
			c.S3.Credentials = []CredentialConfig{
				{Principal: "admin", AccessKey: "AKEXAMPLE", SecretKey: "secret-key-1"},
				{Principal: "other", AccessKey: "AKEXAMPLE", SecretKey: "secret-key-2"},
			}
		}, []string{"s3.credentials[1].access_key", "twice"}},
		{"s3 tls cert without key", func(c *Config) { c.S3.TLSCert = "cert.pem" }, []string{"s3.tls_cert", "s3.tls_key"}},

		{"principal nation", func(c *Config) {
			c.Principals = []access.Principal{{Name: "alice", Nation: "Estonia"}}
		}, []string{"principals[0]", "nation", `"Estonia"`}},
		{"principal clearance", func(c *Config) {
			c.Principals = []access.Principal{{Name: "alice", Nation: "EST", Clearances: map[string]string{"NATO": "ULTRA"}}}
		}, []string{"principals[0]", "clearances", "NATO"}},
		{"principal twice", func(c *Config) {
			c.Principals = []access.Principal{{Name: "alice", Nation: "EST"}, {Name: "alice", Nation: "LUX"}}
		}, []string{"principals[1].name", "alice", "twice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestValidateAccepts: settings that are valid, including the optional
// ones at their edges.
func TestValidateAccepts(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *Config)
	}{
		{"defaults left empty", func(c *Config) { c.Index, c.Keys, c.Log = IndexConfig{}, KeysConfig{}, LogConfig{} }},
		{"no sites or vaults", func(c *Config) { c.Sites, c.Vaults = nil, nil }},
		{"survive none", func(c *Config) { c.Vaults[0].Survive = "none" }},
		{"survive singular dimensions", func(c *Config) { c.Vaults[0].Survive = "site=1,provider=1,jurisdiction=1,control=1" }},
		{"no parity", func(c *Config) {
			c.Vaults[0].Erasure, c.Vaults[0].Survive, c.Vaults[0].OutsideHome = "1+0", "none", false
		}},
		{"widest erasure", func(c *Config) { c.Vaults[0].Erasure = "32+32" }},
		{"stripe size in bytes", func(c *Config) { c.Vaults[0].StripeSize = "4096" }},
		{"stripe size 64MiB", func(c *Config) { c.Vaults[0].StripeSize = "64MiB" }},
		{"stripe size 0 is the default", func(c *Config) { c.Vaults[0].StripeSize = "0" }},
		{"scrub off", func(c *Config) { iv := durationYAML(0); c.Scrub.Interval = &iv }},
		{"copy interval at its least", func(c *Config) { iv := copyIntervalYAML(MinCopyInterval); c.Audit.CopyInterval = &iv }},
		{"copy interval at its most", func(c *Config) { iv := copyIntervalYAML(MaxCopyInterval); c.Audit.CopyInterval = &iv }},
		{"two-person settings", func(c *Config) {
			c.TwoPerson = TwoPersonConfig{Approvals: 3, PerOperation: map[string]int{"root.rotate": 4}, TTL: durationYAML(time.Hour)}
		}},
		{"owner and jurisdictions", func(c *Config) { c.Vaults[0].Owner, c.Vaults[0].Jurisdictions = "LUX", []string{"LUX", "FIN"} }},
		{"isolated site", func(c *Config) { c.Sites[5].Connectivity = site.Isolated }},
		{"accredited site", func(c *Config) { c.Sites[2].Accredited = "NATO SECRET" }},
		{"object lock without default retention", func(c *Config) { c.Vaults[0].ObjectLock = &ObjectLockConfig{} }},
		{"object lock governance days", func(c *Config) { c.Vaults[0].ObjectLock = &ObjectLockConfig{Mode: "GOVERNANCE", Days: 30} }},
		{"vault defaults", func(c *Config) { c.VaultDefaults = VaultDefaults{Erasure: "4+2", Survive: "jurisdictions=1"} }},
		{"s3 with tls", func(c *Config) { c.S3 = S3Config{Address: "0.0.0.0:443", TLSCert: "c.pem", TLSKey: "k.pem"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

// TestParseConfigErrors: problems in the YAML itself. Unknown fields are
// errors, so a misspelt setting is never silently ignored.
func TestParseConfigErrors(t *testing.T) {
	const head = "node:\n  id: 0123456789abcdef\n  nation: EST\n"
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"config", "the file is empty", "node.id and node.nation"}},
		{"only comments", "# embassy node configuration\n", []string{"config", "the file is empty", "node.id and node.nation"}},
		{"duration", head + "scrub:\n  interval: 1d\n", []string{"config", "line 5", `duration "1d"`}},
		{"negative scrub interval", head + "scrub:\n  interval: -5m\n", []string{"scrub.interval", "-5m0s", "negative"}},
		{"negative ttl", head + "two_person:\n  ttl: -1h\n", []string{"two_person.ttl", "negative"}},
		{"copy interval not a duration", head + "audit:\n  copy_interval: 5\n", []string{"config", "line 5", `audit.copy_interval "5" is not a duration`, "200ms to 1m0s"}},
		{"copy interval in words", head + "audit:\n  copy_interval: often\n", []string{"line 5", `audit.copy_interval "often"`}},
		{"copy interval too long", head + "audit:\n  copy_interval: 1h\n", []string{"audit.copy_interval", "1h0m0s", "longer than 1m0s"}},
		{"negative approvals", head + "two_person:\n  approvals: -1\n", []string{"two_person.approvals", "-1"}},
		{"no node", "sites: []\n", []string{"node.id", "must be set"}},
		{"unknown top-level field", head + "nodes: 3\n", []string{"config", "field nodes not found"}},
		{"unknown node field", "node:\n  id: x\n  nation: EST\n  country: EST\n", []string{"field country not found"}},
		{"misspelt site field", head + "sites:\n  - id: est-1\n    jurisdiction: EST\n    provider: p\n    control: EST\n    driver: dir\n    paht: /srv\n", []string{"field paht not found"}},
		{"misspelt vault field", head + "vaults:\n  - name: registry\n    erasue: 4+2\n", []string{"field erasue not found"}},
		{"site jurisdiction", head + "sites:\n  - {id: est-1, jurisdiction: EST, provider: p, control: EST, driver: dir, path: /a}\n  - {id: lux-1, jurisdiction: Lux, provider: p, control: EST, driver: dir, path: /b}\n", []string{"sites[1]", "jurisdiction", `"Lux"`}},
		{"vault erasure", head + "vaults:\n  - {name: registry, erasure: four+two}\n", []string{"vaults[0]", "erasure", `"four+two"`}},
		{"vault stripe size", head + "vaults:\n  - {name: registry, erasure: 4+2, stripe_size: 1 megabyte}\n", []string{"vaults[0].stripe_size", "1 megabyte"}},
		{"sites not a list", head + "sites: 5\n", []string{"config", "line 4", "SiteConfig"}},
		{"erasure not a string", head + "vaults:\n  - {name: registry, erasure: [4, 2]}\n", []string{"config"}},
		{"outside_home not a bool", head + "vaults:\n  - {name: registry, erasure: 4+2, outside_home: abroad}\n", []string{"config", "abroad"}},
		{"yaml syntax", head + "sites: [\n", []string{"config", "yaml"}},
		{"tab indentation", "node:\n\tid: x\n", []string{"config", "yaml"}},
		{"larger than 1 MiB", head + "# " + strings.Repeat("x", 1<<20) + "\n", []string{"config", "1 MiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseConfig accepted it: %+v", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// fullConfig sets every field of the configuration.
func fullConfig() *Config {
	c := validConfig()
	c.Node.Dev = true
	c.S3 = S3Config{
		Address: "0.0.0.0:9443", Region: "eu-north-1", Domain: "s3.embassy.example",
		TLSCert: "tls/cert.pem", TLSKey: "tls/key.pem", AllowInsecure: true,
		Credentials: []CredentialConfig{{Principal: "backup", AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG"}},
	}
	c.VaultDefaults = VaultDefaults{Erasure: "4+2", Survive: "jurisdictions=1", OutsideHome: true}
	c.TwoPerson = TwoPersonConfig{Approvals: 3, PerOperation: map[string]int{"vault.delete": 4}, TTL: durationYAML(36 * time.Hour), PrincipalLevel: "NATO CONFIDENTIAL"}
	c.Principals = []access.Principal{
		{Name: "admin", Nation: "EST", Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Roles: []string{"admin"}},
		{Name: "backup", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA", "BRAVO"}}},
	}
	c.Sites[1].Operator = "cloudco eesti"
	c.Sites[2].Accredited = "NATO SECRET"
	c.Sites[5].Connectivity = site.Isolated
	c.Vaults = append(c.Vaults, VaultConfig{
		Name: "shared.lux", Owner: "LUX", Erasure: "2+2", Survive: "jurisdictions=1",
		Jurisdictions: []string{"LUX", "FIN"}, StripeSize: "256KiB", DefaultLabel: "NATO RESTRICTED", KeyGen: 2,
		Created:    time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC),
		ObjectLock: &ObjectLockConfig{Mode: "COMPLIANCE", Years: 7},
	})
	iv := copyIntervalYAML(5 * time.Second)
	c.Audit.CopyInterval = &iv
	c.TAXII = taxii.Config{
		StatusRetention: "72h", MaxContentLength: 8 << 20,
		Collections: []taxii.CollectionConfig{{ID: "3c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30", Alias: "cti", Title: "Incidents", Description: "CERT-EE incidents",
			Vault: "shared.lux", Classification: "NATO RESTRICTED", Community: []string{"LUX", "FIN"}, Amber: []string{"LUX"}, DefaultTLP: "amber",
			Statements: []string{"marking-definition--0693b0af-4746-4438-a437-8e423ec07442"}, AllowUnknownMarkings: true}},
		Sync: []taxii.SyncConfig{{Name: "lux", Collection: "cti", URL: "https://lux.example/_embassy/taxii2/api/collections/x/", Direction: "both",
			User: "AKEST", Password: "est-secret", As: "backup", Recipient: "backup", Interval: "1m", AllowInsecure: true}},
	}
	return c
}

// TestMarshalRoundTrip: what Marshal writes, ParseConfig reads back to the
// same value, and writing that again gives the same bytes.
func TestMarshalRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		c    *Config
	}{
		{"minimal", &Config{Node: NodeConfig{ID: "n", Nation: "LUX"}}},
		{"six sites", validConfig()},
		{"every field", fullConfig()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.c.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.HasPrefix(b, []byte("# embassy node configuration.")) {
				t.Errorf("Marshal output does not start with the header comment:\n%s", b)
			}
			got, err := ParseConfig(b)
			if err != nil {
				t.Fatalf("ParseConfig(Marshal()): %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, tc.c) {
				t.Errorf("round trip changed the configuration\n got: %+v\nwant: %+v\nyaml:\n%s", got, tc.c, b)
			}
			b2, err := got.Marshal()
			if err != nil {
				t.Fatalf("Marshal again: %v", err)
			}
			if !bytes.Equal(b, b2) {
				t.Errorf("second Marshal differs:\n%s\n---\n%s", b, b2)
			}
		})
	}
}

// TestMarshalFieldNames pins the YAML names operators write by hand.
func TestMarshalFieldNames(t *testing.T) {
	b, err := fullConfig().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nnode:\n  id: 0123456789abcdef\n  nation: EST\n  dev: true\n",
		"\nindex:\n  driver: bolt\n  path: index.db\n",
		"\nkeys:\n  root_key_file: root.key\n",
		"\nlog:\n  level: info\n  format: text\n",
		"\n  tls_cert: tls/cert.pem\n", "\n  allow_insecure: true\n",
		"\n    - principal: backup\n      access_key: AKIDEXAMPLE\n",
		"\nvault_defaults:\n  erasure: 4+2\n  survive: jurisdictions=1\n  outside_home: true\n",
		"\n  - id: est-1\n    jurisdiction: EST\n    provider: gov-dc\n    control: EST\n    driver: dir\n    path: sites/est-1\n",
		"\n    operator: cloudco eesti\n", "\n    accredited: NATO SECRET\n", "\n    connectivity: isolated\n",
		"\n  - name: shared.lux\n    owner: LUX\n    erasure: 2+2\n    survive: jurisdictions=1\n",
		"\n    jurisdictions: [LUX, FIN]\n", "\n    stripe_size: 256KiB\n", "\n    default_label: NATO RESTRICTED\n",
		"\naudit:\n  copy_interval: 5s\n",
		"\n    key_gen: 2\n", "\n    created: 2026-11-25T10:30:00Z\n", "\n    object_lock:\n      mode: COMPLIANCE\n      years: 7\n",
		"\ntwo_person:\n  approvals: 3\n  per_operation:\n    vault.delete: 4\n  ttl: 36h0m0s\n  principal_level: NATO CONFIDENTIAL\n",
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("Marshal output lacks %q:\n%s", want, b)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"0", 0},
		{"4096", 4096},
		{"100B", 100},
		{"512KiB", 512 << 10},
		{"1MiB", 1 << 20},
		{"1 MiB", 1 << 20},
		{" 64KiB ", 64 << 10},
		{"2GiB", 2 << 30},
		{"2147483648", 1 << 31},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if err != nil {
				t.Fatalf("ParseSize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, in := range []string{
		"", "MiB", "B", "1MB", "1mib", "1 megabyte", "-1", "-64KiB", "1.5MiB", "0x10", "1e6",
		"3GiB", "2049MiB", "2147483649", "99999999999999999999", "1KiBKiB",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseSize(in)
			if err == nil {
				t.Fatalf("ParseSize(%q) = %d, want an error", in, got)
			}
			if !strings.Contains(err.Error(), "KiB, MiB or GiB") {
				t.Errorf("error %q does not say which units are accepted", err)
			}
		})
	}
}
