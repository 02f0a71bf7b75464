package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/node"
)

// TestRecoverFromAPeer runs docs/alliance.md's "Keep a copy with an ally"
// through the CLI: EST grants LUX a replica of its registry vault, LUX
// pulls it while EST serves ('embassy replica pull', 'replica ls'), EST
// loses its node directory and every site it controls, and 'embassy
// recover --from-peer lux.card' with EST's root key, while LUX serves,
// brings every version back byte for byte; 'audit verify' passes.
func TestRecoverFromAPeer(t *testing.T) {
	work := t.TempDir()
	est, lux := filepath.Join(work, "est"), filepath.Join(work, "lux")
	cli := dirCLI(t)
	peerDevNodes(t, cli, est, "EST", lux, "LUX")
	for _, s := range []struct{ id, j string }{{"est-1", "EST"}, {"est-2", "EST"}, {"fin-1", "FIN"}} {
		cli(est, "site", "add", s.id, "--path", filepath.Join(work, "est-sites", s.id), "--jurisdiction", s.j, "--provider", "gov-dc", "--control", "EST")
	}
	for _, s := range []struct{ id, j string }{{"lux-1", "LUX"}, {"lux-2", "LUX"}, {"bel-1", "BEL"}} {
		cli(lux, "site", "add", s.id, "--path", filepath.Join(work, "lux-sites", s.id), "--jurisdiction", s.j, "--provider", "gov-dc", "--control", "LUX")
	}
	cli(est, "vault", "create", "registry", "--erasure", "2+1")
	cli(lux, "vault", "create", "est-replica", "--erasure", "2+1")
	// LUX names the vault that keeps allies' replicas (docs: 'embassy config edit').
	c, err := node.LoadConfig(lux)
	if err != nil {
		t.Fatal(err)
	}
	c.Alliance.ReplicaVault = "est-replica"
	y, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(work, "lux-node.yaml")
	if err := os.WriteFile(edited, y, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _ := cli(lux, "config", "edit", "--apply", edited); !strings.Contains(out, `change: alliance.replica_vault "" → "est-replica"`) {
		t.Fatalf("config edit:\n%s", out)
	}
	var root []byte
	files := map[string][]byte{"2026/census.bin": make([]byte, 1<<20+77), "2026/note.txt": []byte("small"), "land/parcels.csv": []byte("id,area\n1,300\n")}
	rand.Read(files["2026/census.bin"])
	for k, b := range files {
		p := filepath.Join(work, "in-"+strings.ReplaceAll(k, "/", "_"))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cli(est, "put", p, "registry/"+k)
	}
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
	estCard, estFP := card(est)
	luxCard, luxFP := card(lux)
	cli(lux, "peer", "add", estCard, "--fingerprint", estFP)
	cli(est, "peer", "add", luxCard, "--fingerprint", luxFP)
	out, _ := cli(est, "share", "grant", "registry", "--to", "LUX", "--level", "replicate", "--ceiling", "NATO UNCLASSIFIED", "--expires", "365d")
	if !strings.Contains(out, "level replicate") {
		t.Fatalf("grant: %s", out)
	}

	srv := startServe(t, "--dir", est, "--address", "127.0.0.1:0")
	out, _ = cli(lux, "replica", "pull")
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16} \(EST\) grant [0-9a-f]{32}: log entries 0 to \d+ of \d+: 3 versions, 0 deletions, \d+ blobs`).MatchString(out) {
		t.Fatalf("replica pull:\n%s", out)
	}
	out, _ = cli(lux, "replica", "ls")
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16} +EST +\d+ +\d{7,} +0 +\d+ +\d{4}-`).MatchString(out) {
		t.Errorf("replica ls:\n%s", out)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	// The disaster. The root key is kept apart, as custodians' shares would be.
	root, err = os.ReadFile(filepath.Join(est, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(work, "est-root.key")
	if err := os.WriteFile(keyFile, root, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{est, filepath.Join(work, "est-sites")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}

	startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	out, _ = cli(est, "recover", "--from-peer", luxCard, "--fingerprint", luxFP, "--key", keyFile)
	for _, want := range []string{`replica of node [0-9a-f]{16} at [0-9a-f]{16} \(LUX\): \d+ blobs`, `recovered into`, `index rebuilt from 3 sites: 3 versions`, `audit log: all 3 versions of the replicated scopes it records are back`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("recover --from-peer output lacks %q:\n%s", want, out)
		}
	}
	for k, want := range files {
		p := filepath.Join(work, "out-"+strings.ReplaceAll(k, "/", "_"))
		cli(est, "get", "registry/"+k, p)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after recovery: %d bytes (%v), want %d", k, len(got), err, len(want))
		}
	}
	out, _ = cli(est, "audit", "verify")
	if !strings.Contains(out, "OK") && !strings.Contains(out, "ok") {
		t.Errorf("audit verify:\n%s", out)
	}
}
