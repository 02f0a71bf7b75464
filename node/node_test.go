package node

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/vault"
)

// newNode initialises a node for EST in a temporary directory, opens it
// and adds six directory sites: EST, LUX and FIN, each with one gov-dc site
// (controlled from EST) and one cloudco site (controlled from the USA).
func newNode(t testing.TB) *Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, InitOptions{Nation: "EST"}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	for _, s := range validConfig().Sites {
		s.Path = filepath.Join(dir, "..", "sites", s.ID)
		if err := n.AddSite(s); err != nil {
			t.Fatalf("AddSite %s: %v", s.ID, err)
		}
	}
	return n
}

func readConfigFile(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configBody returns node.yaml without its authenticator line.
func configBody(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := splitNodeFile(ConfigFile, b)
	if err != nil || f.mac == nil {
		t.Fatalf("node.yaml has no valid authenticator line: %v", err)
	}
	return f.body
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	c, err := Init(dir, InitOptions{Nation: "LUX"})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if c.Node.Nation != "LUX" || len(c.Node.ID) != 16 {
		t.Errorf("Init returned node %+v, want nation LUX and a 16-digit id", c.Node)
	}
	for _, name := range []string{ConfigFile, "root.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("Init did not write %s: %v", name, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is mode %v: readable by others than the node's operators", name, fi.Mode().Perm())
		}
	}
	loaded, err := LoadConfig(dir)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if !reflect.DeepEqual(loaded, c) {
		t.Errorf("node.yaml holds %+v, Init returned %+v", loaded, c)
	}
}

// TestInitTwice: a second Init of the same directory refuses and touches
// neither the configuration nor the root key.
func TestInitTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, InitOptions{Nation: "EST"}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	conf := readConfigFile(t, dir)
	key, err := os.ReadFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Init(dir, InitOptions{Nation: "LUX"})
	if err == nil {
		t.Fatal("second Init succeeded")
	}
	if !strings.Contains(err.Error(), "already holds a node") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not say that %s already holds a node", err, dir)
	}
	if !bytes.Equal(readConfigFile(t, dir), conf) {
		t.Error("second Init changed node.yaml")
	}
	key2, err := os.ReadFile(filepath.Join(dir, "root.key"))
	if err != nil || !bytes.Equal(key2, key) {
		t.Errorf("second Init changed root.key (err %v)", err)
	}
}

func TestInitBadNation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	_, err := Init(dir, InitOptions{Nation: "Estonia"})
	if err == nil || !strings.Contains(err.Error(), "nation") || !strings.Contains(err.Error(), `"Estonia"`) {
		t.Fatalf("Init with nation Estonia: error %v, want one naming the nation", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Init with a bad nation created %s (stat: %v)", dir, err)
	}
}

func TestOpenUninitialised(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(t.Context(), dir, nil)
	if !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Open of an empty directory: %v, want ErrNotInitialized", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
}

// TestAddVaultInfeasible: a policy the sites cannot keep is refused with
// the constraint and sites named, and neither the running node nor
// node.yaml learns of the vault.
func TestAddVaultInfeasible(t *testing.T) {
	cases := []struct {
		name string
		v    VaultConfig
		want []string
	}{
		{"4+2 losing a provider on two providers",
			VaultConfig{Name: "impossible", Erasure: "4+2", Survive: "jurisdictions=1,providers=1"},
			[]string{"provider", "4+2", "cloudco: est-2, fin-2, lux-2", "gov-dc: est-1, fin-1, lux-1"}},
		{"4+2 losing everything under one country's law",
			VaultConfig{Name: "impossible", Erasure: "4+2", Survive: "controls=1"},
			[]string{"controlling jurisdiction", "EST: est-1, fin-1, lux-1", "USA: est-2, fin-2, lux-2"}},
		{"4+2 losing two jurisdictions",
			VaultConfig{Name: "impossible", Erasure: "4+2", Survive: "jurisdictions=2"},
			[]string{"any 2 jurisdictions"}},
		{"outside home with only home sites allowed",
			VaultConfig{Name: "impossible", Erasure: "4+2", Survive: "none", OutsideHome: true, Jurisdictions: []string{"EST"}},
			[]string{"home jurisdiction EST", "lux-1 is in LUX, outside the allowed jurisdictions EST"}},
		{"no allowed jurisdiction has a site",
			VaultConfig{Name: "impossible", Erasure: "2+1", Jurisdictions: []string{"DEU"}},
			[]string{"no eligible sites", "fin-2 is in FIN, outside the allowed jurisdictions DEU"}},
		{"survival without parity",
			VaultConfig{Name: "impossible", Erasure: "4+0", Survive: "sites=1"},
			[]string{"parity"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			before := readConfigFile(t, n.Dir)
			err := n.AddVault(tc.v)
			if err == nil {
				t.Fatal("AddVault accepted an infeasible policy")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if !bytes.Equal(readConfigFile(t, n.Dir), before) {
				t.Error("node.yaml changed")
			}
			if len(n.Config.Vaults) != 0 {
				t.Errorf("the node's configuration has vaults %+v", n.Config.Vaults)
			}
			if _, err := n.Engine.Vault(tc.v.Name); !errors.Is(err, vault.ErrNoSuchVault) {
				t.Errorf("the engine knows the refused vault (err %v)", err)
			}
		})
	}
}

// TestAddVaultInfeasibleIsErrInfeasible: callers can tell a policy the
// sites cannot keep from other failures.
func TestAddVaultInfeasibleIsErrInfeasible(t *testing.T) {
	n := newNode(t)
	err := n.AddVault(VaultConfig{Name: "impossible", Erasure: "4+2", Survive: "providers=1"})
	if !errors.Is(err, placement.ErrInfeasible) {
		t.Fatalf("AddVault: %v, want placement.ErrInfeasible", err)
	}
}

func TestAddVault(t *testing.T) {
	n := newNode(t)
	v := VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1,sites=1", OutsideHome: true}
	if err := n.AddVault(v); err != nil {
		t.Fatalf("AddVault: %v", err)
	}
	ev, err := n.Engine.Vault("registry")
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	if ev.Owner != "EST" || ev.Policy.K != 4 || ev.Policy.M != 2 || ev.Policy.Survive != (placement.Loss{Sites: 1, Jurisdictions: 1}) || !ev.Policy.OutsideHome {
		t.Errorf("engine vault %+v, want owner EST, 4+2 surviving sites=1,jurisdictions=1 outside home", ev)
	}
	c, err := LoadConfig(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Vaults) != 1 || c.Vaults[0].Name != "registry" || c.Vaults[0].Created.IsZero() {
		t.Errorf("node.yaml vaults %+v, want registry with its creation time", c.Vaults)
	}

	before := readConfigFile(t, n.Dir)
	err = n.AddVault(VaultConfig{Name: "registry", Erasure: "2+1"})
	if !errors.Is(err, ErrVaultExists) {
		t.Errorf("second AddVault registry: %v, want ErrVaultExists", err)
	}
	if !bytes.Equal(readConfigFile(t, n.Dir), before) {
		t.Error("refused AddVault changed node.yaml")
	}
}

// TestAddSiteRefused: a refused site leaves node.yaml and the running
// configuration as they were.
func TestAddSiteRefused(t *testing.T) {
	cases := []struct {
		name string
		s    SiteConfig
		want []string
	}{
		{"duplicate id", dirSite("est-1", "EST", "gov-dc", "EST"), []string{"est-1", "already exists"}},
		{"unknown driver", func() SiteConfig { s := dirSite("s3-1", "DEU", "cloudco", "USA"); s.Driver = "ftp"; return s }(), []string{"sites[6].driver", `"ftp"`}},
		{"bad jurisdiction", dirSite("est-3", "Estonia", "gov-dc", "EST"), []string{"sites[6]", "jurisdiction", `"Estonia"`}},
		{"no path", func() SiteConfig { s := dirSite("est-3", "EST", "gov-dc", "EST"); s.Path = ""; return s }(), []string{"sites[6].path"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			before := readConfigFile(t, n.Dir)
			err := n.AddSite(tc.s)
			if err == nil {
				t.Fatal("AddSite succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if !bytes.Equal(readConfigFile(t, n.Dir), before) {
				t.Error("node.yaml changed")
			}
			if len(n.Config.Sites) != 6 {
				t.Errorf("the node has %d sites, want the 6 it had", len(n.Config.Sites))
			}
		})
	}
}

// TestRemoveSite: a site that holds data stays; an empty one goes.
func TestRemoveSite(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	ctx := n.As(t.Context(), "admin")
	info, err := n.Engine.Put(ctx, "registry", "minutes.txt", strings.NewReader("Cabinet minutes"), vault.PutOptions{Size: 15})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	locs, err := n.Engine.Locate(ctx, "registry", "minutes.txt", info.VersionID)
	if err != nil || len(locs) != 6 {
		t.Fatalf("Locate: %d locations, %v", len(locs), err)
	}
	holder := locs[0].Site

	before := readConfigFile(t, n.Dir)
	err = n.RemoveSite(t.Context(), holder)
	if err == nil {
		t.Fatalf("RemoveSite %s, which holds a shard, succeeded", holder)
	}
	if !strings.Contains(err.Error(), holder) || !strings.Contains(err.Error(), "holds data") {
		t.Errorf("error %q does not say that site %s holds data", err, holder)
	}
	if !bytes.Equal(readConfigFile(t, n.Dir), before) {
		t.Error("refused RemoveSite changed node.yaml")
	}
	if len(n.Config.Sites) != 6 {
		t.Errorf("the node has %d sites after a refused RemoveSite, want 6", len(n.Config.Sites))
	}

	if err := n.RemoveSite(t.Context(), "nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("RemoveSite nosuch: %v, want an error naming it", err)
	}

	spare := dirSite("deu-1", "DEU", "other", "DEU")
	spare.Path = filepath.Join(n.Dir, "..", "sites", "deu-1")
	if err := n.AddSite(spare); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveSite(t.Context(), "deu-1"); err != nil {
		t.Fatalf("RemoveSite of an empty site: %v", err)
	}
	if after := readConfigFile(t, n.Dir); !bytes.Equal(configBody(t, after), configBody(t, before)) {
		t.Error("node.yaml after adding and removing an empty site differs from before")
	} else if bytes.Equal(after, before) {
		t.Error("node.yaml written twice with the same generation")
	}
	// The object still reads.
	r, err := n.Engine.Get(ctx, "registry", "minutes.txt", vault.GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "Cabinet minutes" {
		t.Errorf("Get after site changes: %q, %v", b, err)
	}
}

// TestVaultIncarnation: a new vault gets a random incarnation, recorded in
// node.yaml (and so in the descriptor); one deleted and created again under
// its old name gets another, and with it other keys.
func TestVaultIncarnation(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2"}); err != nil {
		t.Fatal(err)
	}
	inc := func() string {
		for _, v := range n.Config.Vaults {
			if v.Name == "registry" {
				return v.Incarnation
			}
		}
		return ""
	}
	first := inc()
	if len(first) != 16 || !strings.Contains(string(readConfigFile(t, n.Dir)), "incarnation: "+first) {
		t.Fatalf("incarnation %q, or not in node.yaml", first)
	}
	if err := n.removeVault(vault.AsSystem(t.Context()), "registry"); err != nil {
		t.Fatal(err)
	}
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2"}); err != nil {
		t.Fatal(err)
	}
	if second := inc(); second == "" || second == first {
		t.Fatalf("re-created with incarnation %q, was %q", second, first)
	}
}
