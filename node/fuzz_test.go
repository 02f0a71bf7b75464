package node

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/embassy-dev/embassy/custody"
)

// FuzzParseConfig: node.yaml is edited by hand and may come from anywhere,
// so ParseConfig must never panic. Whatever it accepts is valid, and
// writing it out with Marshal gives YAML that parses to the same value and
// marshals to the same bytes.
func FuzzParseConfig(f *testing.F) {
	for _, c := range []*Config{validConfig(), fullConfig(), {Node: NodeConfig{ID: "n", Nation: "EST"}}} {
		b, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"node: {id: x, nation: EST}\n",
		"node: {id: x, nation: EST}\nvaults:\n  - {name: registry, erasure: 4+2, survive: 'jurisdictions=1,sites=1', stripe_size: 64KiB}\n",
		"node: {id: x, nation: EST}\nsites:\n  - {id: est-1, jurisdiction: EST, provider: p, control: EST, driver: dir, path: /a, connectivity: isolated}\n",
		"node: {id: x, nation: EST}\nvaults:\n  - {name: registry, erasure: 4+2, created: 2001-12-14t21:59:43.10-05:00}\n",
		"node: &a {id: x, nation: EST}\nindex: *a\n",
		"node: {id: x, nation: EST}\nprincipals:\n  - {name: alice, nation: EST, clearances: {NATO: SECRET}, categories: {Compartment: [A]}}\n",
		"node: {id: x, nation: EST}\nsites: []\nvaults: []\nprincipals: []\n",
		"node:\n  id: \"\\u00e9\"\n  nation: EST\n",
		"node: {id: 'yes', nation: EST}\nsites:\n  - {id: est-1, jurisdiction: EST, provider: '1.5', control: EST, driver: dir, path: 'a: #b', operator: \"line\\nbreak\"}\n",
		"node: {id: x, nation: EST}\nsites:\n  - id: est-1\n    jurisdiction: EST\n    provider: |\n      two\n      lines\n    control: EST\n    driver: dir\n    path: ~/x\n",
		"node: {id: x, nation: EST}\nlog: {level: debug, format: json}\ns3: {address: ':9000', credentials: [{principal: p, access_key: abc, secret_key: 12345678}]}\n",
		"node: {id: x, nation: EST}\nvaults:\n  - {name: a.b-c, erasure: ' 4 + 2 ', survive: ' Sites = 1 , none=0 ', object_lock: {mode: GOVERNANCE, days: 1}}\n",
		"node: {id: x, nation: EST}\ntwo_person: {approvals: 2, per_operation: {site.remove: 3}, ttl: 90m, principal_level: NATO SECRET}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a configuration that does not validate: %v", err)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed configuration: %v", err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("ParseConfig(Marshal()): %v\ninput:\n%s\nmarshalled:\n%s", err, b, out)
		}
		if !reflect.DeepEqual(normalize(c), normalize(c2)) {
			t.Fatalf("re-parsed configuration differs\nfirst:  %+v\nsecond: %+v\nmarshalled:\n%s", c, c2, out)
		}
		out2, err := c2.Marshal()
		if err != nil {
			t.Fatalf("second Marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not stable:\n%s\n---\n%s", out, out2)
		}
	})
}

// normalize returns a copy of c in which empty slices and maps are nil:
// YAML's "sites: []" and a missing "sites" mean the same, and Marshal
// writes neither.
func normalize(c *Config) *Config {
	v := reflect.New(reflect.TypeFor[Config]())
	v.Elem().Set(reflect.ValueOf(*c))
	normalizeValue(v.Elem())
	return v.Interface().(*Config)
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(v.Elem())
			normalizeValue(p.Elem())
			v.Set(p)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalizeValue(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(s, v)
		for i := range s.Len() {
			normalizeValue(s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			normalizeValue(e)
			m.SetMapIndex(it.Key(), e)
		}
		v.Set(m)
	}
}

// FuzzNodeFile: a node file comes from the node directory, which whoever
// can write it controls. splitNodeFile never panics; what it calls an
// authenticated file verifies only if it is exactly what the node wrote;
// ParseConfigLines and the change list never panic on what it leaves.
func FuzzNodeFile(f *testing.F) {
	root, _ := custody.GenerateRootKey()
	keys, _ := custody.NewKeyring(root)
	body, _ := validConfig().Marshal()
	good, _ := authenticated(keys, ConfigFile, 3, body)
	f.Add(good)
	jgood, _ := authenticated(keys, RequestsFile, 2, []byte("[]\n"))
	f.Add(jgood)
	f.Add([]byte("node: {id: x, nation: EST}\n# embassy-authenticator: v1 generation 1 hmac-sha256 AAAA\n"))
	f.Add([]byte("[]\n{\"embassy_authenticator\":{\"version\":1,\"generation\":1,\"hmac_sha256\":\"\"}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, name := range []string{ConfigFile, RequestsFile} {
			nf, err := splitNodeFile(name, b)
			if err != nil {
				continue
			}
			if !bytes.HasPrefix(b, nf.body) {
				t.Fatalf("%s: body is not a prefix of the file", name)
			}
			if _, err := nf.verify(keys); err == nil && !bytes.Equal(b, good) && !bytes.Equal(b, jgood) {
				t.Fatalf("%s: a file the node did not write verifies:\n%q", name, b)
			}
		}
		if c, err := ParseConfigLines(b); err == nil {
			ConfigChanges(validConfig(), c)
		}
		lineOf(b, "vaults[0] (x): erasure bad")
	})
}

// FuzzOpenDescriptor: a node descriptor is read from a site (recover, the
// generation on opening), which is outside input. openDescriptor and
// VerifyDescriptor never panic, refuse with ErrDescriptor, and accept no
// descriptor but the one the node sealed.
func FuzzOpenDescriptor(f *testing.F) {
	root, _ := custody.GenerateRootKey()
	keys, _ := custody.NewKeyring(root) // no identity: format 1
	good, err := sealDescriptor(keys, descriptor{NodeID: "node-a", Config: []byte("node: {id: node-a}\n")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:descriptorHeader])
	two := bytes.Clone(good)
	two[4] = 2
	f.Add(two)
	id, err := custody.NewIdentity("node-a")
	if err != nil {
		f.Fatal(err)
	}
	pub := id.Public()
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := openDescriptor(keys, b)
		if err != nil && !errors.Is(err, ErrDescriptor) {
			t.Fatalf("error not ErrDescriptor: %v", err)
		}
		if err == nil && (!bytes.Equal(b, good) || d.NodeID != "node-a") {
			t.Fatalf("a descriptor the node did not seal opens: %q", b)
		}
		if VerifyDescriptor(b, pub) == nil {
			t.Fatalf("a descriptor pub did not sign verifies: %q", b)
		}
	})
}
