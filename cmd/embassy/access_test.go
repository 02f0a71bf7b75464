package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// The CLI applies the same access decision: a principal of each refused
// kind cannot get, stat or list the object; the cleared one can.
func TestCLIRefusesPrincipals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := node.Init(dir, node.InitOptions{Nation: "EST"}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), dir, node.NewLogger(node.LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ id, j, p string }{{"est-1", "EST", "a"}, {"est-2", "EST", "b"}, {"lux-1", "LUX", "a"}, {"lux-2", "LUX", "b"}, {"fin-1", "FIN", "a"}, {"fin-2", "FIN", "b"}} {
		err := n.AddSite(node.SiteConfig{Descriptor: site.Descriptor{ID: s.id, Jurisdiction: s.j, Provider: s.p, Control: s.j, Accredited: "NATO SECRET"},
			Driver: "dir", Path: filepath.Join(dir, "..", "sites", s.id)})
		if err != nil {
			t.Fatal(err)
		}
	}
	n.AddVault(node.VaultConfig{Name: "intel", Erasure: "4+2", Survive: "jurisdictions=1"})
	c := *n.Config
	c.Principals = append(c.Principals,
		access.Principal{Name: "officer", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}},
		access.Principal{Name: "ally", Nation: "USA", Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}},
		access.Principal{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "RESTRICTED"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}},
		access.Principal{Name: "outsider", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}},
	)
	if err := node.SaveConfig(dir, &c); err != nil {
		t.Fatal(err)
	}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	body := []byte("troop movements")
	if _, err := n.Engine.Put(n.As(context.Background(), "officer"), "intel", "report", bytes.NewReader(body), vault.PutOptions{
		Size: int64(len(body)), Label: "NATO SECRET//REL TO EST//RESTRICTIVE Compartment: ALPHA"}); err != nil {
		t.Fatal(err)
	}
	n.Close()
	cli := func(principal string, args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"--dir", dir, "--principal", principal}, args...), strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), err
	}
	for _, p := range []string{"ally", "clerk", "outsider"} {
		for _, args := range [][]string{{"get", "intel/report", "-"}, {"stat", "intel/report"}} {
			_, stderr, err := cli(p, args...)
			if err == nil || !strings.Contains(stderr, "access denied") {
				t.Errorf("%s %v: err %v, stderr %q; want access denied", p, args, err, stderr)
			}
		}
		out, _, err := cli(p, "ls", "-r", "intel")
		if err != nil || strings.Contains(out, "report") {
			t.Errorf("%s ls: %q, %v; the object must not be listed", p, out, err)
		}
	}
	out, _, err := cli("officer", "get", "intel/report", "-")
	if err != nil || out != string(body) {
		t.Fatalf("officer get: %q, %v", out, err)
	}
}
