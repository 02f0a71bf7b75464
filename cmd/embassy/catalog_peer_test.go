package main

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/node"
)

// dirCLI returns a runner of embassy commands on a node directory that
// fails the test when one fails.
func dirCLI(t *testing.T) func(dir string, args ...string) (string, string) {
	return func(dir string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := runCLI(t, append([]string{"--dir", dir}, args...)...)
		if err != nil {
			t.Fatalf("embassy %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
}

// peerDevNodes creates development nodes (gated changes are made with a
// warning) in the directories given, each followed by its nation, each
// with a peer listener on a free loopback port and the admin's S3
// credential.
func peerDevNodes(t *testing.T, cli func(dir string, args ...string) (string, string), dirNation ...string) {
	t.Helper()
	for i := 0; i+1 < len(dirNation); i += 2 {
		dir, nation := dirNation[i], dirNation[i+1]
		cli(dir, "init", "--nation", nation)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := node.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		c.Node.Dev = true
		c.Alliance.Listen = addr
		c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTADMIN01", SecretKey: "not-for-printing-0123456789"}}
		if err := node.SaveConfig(dir, c); err != nil {
			t.Fatal(err)
		}
	}
}

// trustEachOther makes nodes a and b peers: each writes its card ('peer
// card') and adds the other's with the fingerprint it printed. It returns
// b's card file and fingerprint (what recovering a from b takes).
func trustEachOther(t *testing.T, cli func(dir string, args ...string) (string, string), a, b string) (string, string) {
	t.Helper()
	fp := regexp.MustCompile(`fingerprint (SHA256:\S+)`)
	card := func(dir string) (string, string) {
		file := dir + ".card"
		_, errOut := cli(dir, "peer", "card", "-o", file)
		m := fp.FindStringSubmatch(errOut)
		if m == nil {
			t.Fatalf("no fingerprint in %q", errOut)
		}
		return file, m[1]
	}
	aCard, aFP := card(a)
	bCard, bFP := card(b)
	cli(b, "peer", "add", aCard, "--fingerprint", aFP)
	cli(a, "peer", "add", bCard, "--fingerprint", bFP)
	return bCard, bFP
}

// TestCatalogFromAPeer: 'embassy catalog' on LUX's node searches EST's
// catalogue over the peer link while EST serves: LUX finds the dataset EST
// released to LUX and granted it at level catalog, and nothing of the one
// for Estonians only.
func TestCatalogFromAPeer(t *testing.T) {
	work := t.TempDir()
	est, lux := filepath.Join(work, "est"), filepath.Join(work, "lux")
	cli := dirCLI(t)
	peerDevNodes(t, cli, est, "EST", lux, "LUX")
	for _, s := range []struct{ id, j string }{{"est-1", "EST"}, {"lux-1", "LUX"}, {"fin-1", "FIN"}} {
		cli(est, "site", "add", s.id, "--path", filepath.Join(work, "sites", s.id), "--jurisdiction", s.j, "--provider", "gov-dc", "--control", "EST")
	}
	cli(est, "vault", "create", "registry", "--erasure", "2+1")
	trustEachOther(t, cli, est, lux)
	cli(est, "dataset", "describe", "registry/shared/", "--title", "Land parcels", "--keyword", "cadastre", "--label", "NATO UNCLASSIFIED//REL TO EST, LUX")
	cli(est, "dataset", "describe", "registry/own/", "--title", "For Estonians", "--keyword", "cadastre", "--label", "NATO UNCLASSIFIED")
	cli(est, "share", "grant", "registry/shared/", "--to", "LUX", "--level", "catalog", "--ceiling", "NATO UNCLASSIFIED", "--expires", "30d")
	srv := startServe(t, "--dir", est, "--address", "127.0.0.1:0")

	out, _ := cli(lux, "catalog", "cadastre")
	if !regexp.MustCompile(`(?m)^EST +registry/shared/ +Land parcels +NATO UNCLASSIFIED//REL TO EST, LUX +cadastre`).MatchString(out) || strings.Contains(out, "registry/own/") {
		t.Errorf("LUX searching every catalogue:\n%s", out)
	}
	out, _ = cli(lux, "--json", "catalog", "--peer", "EST")
	if !strings.Contains(out, `"nation": "EST"`) || !strings.Contains(out, `"dct:identifier": "registry/shared/"`) || strings.Contains(out, "For Estonians") || strings.Contains(out, `"local"`) {
		t.Errorf("LUX searching EST's catalogue, JSON:\n%s", out)
	}
	// EST's node logged what it served to LUX (read once it has stopped:
	// the node directory is the serving node's until then).
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	out, _ = cli(est, "audit", "log", "--kind", "catalog.serve")
	if !strings.Contains(out, "catalog.serve by peer:LUX") {
		t.Errorf("EST's audit log:\n%s", out)
	}
}
