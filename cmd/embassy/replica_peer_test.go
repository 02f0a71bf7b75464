package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
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
	luxCard, luxFP := trustEachOther(t, cli, est, lux)
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

	// EST writes on after LUX's last pull, and LUX, witnessing EST's log,
	// cosigns a checkpoint that covers it: a history the replica lacks.
	estConf, err := node.LoadConfig(est)
	if err != nil {
		t.Fatal(err)
	}
	origin := audit.Origin(estConf.Node.ID)
	late := filepath.Join(work, "in-late")
	if err := os.WriteFile(late, []byte("written after the pull"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(est, "put", late, "registry/2026/late.txt")
	luxSrv := startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	srv = startServe(t, "--dir", est, "--address", "127.0.0.1:0")
	witnessed := awaitCosigned(t, luxSrv.addr, origin, 1)
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

	out, _ = cli(est, "recover", "--from-peer", luxCard, "--fingerprint", luxFP, "--key", keyFile)
	t.Logf("recover --from-peer:\n%s", out)
	for _, want := range []string{`replica of node [0-9a-f]{16} at [0-9a-f]{16} \(LUX\): \d+ blobs`, `recovered into`, `index rebuilt from 3 sites: 3 versions`, `audit log: all 3 versions of the replicated scopes it records are back`,
		fmt.Sprintf(`(?m)^  witness embassy-witness/[0-9a-f]{16} \(peer LUX\) cosigned %d entries: it accepted the restart$`, witnessed)} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("recover --from-peer output lacks %q:\n%s", want, out)
		}
	}
	// The log says exactly what was lost: the entries LUX cosigned beyond
	// the replica's copy of the log, and the restart is its next entry.
	m := regexp.MustCompile(`(?m)^audit log: (\d+) entries recovered; the witnesses cosigned (\d+) more, written after the ally's last pull: LOST`).FindStringSubmatch(out)
	r := regexp.MustCompile(`(?m)^audit log: entry #(\d+) \(log.restart\) records the loss; the log goes on from it$`).FindStringSubmatch(out)
	if m == nil || r == nil {
		t.Fatalf("recover --from-peer does not say what of the log was lost:\n%s", out)
	}
	recovered, lost, entry := atoi(t, m[1]), atoi(t, m[2]), atoi(t, r[1])
	if lost == 0 || recovered+lost != witnessed || entry < recovered {
		t.Errorf("recovered %d entries, %d lost, restart at #%d; LUX had cosigned %d", recovered, lost, entry, witnessed)
	}
	// The version written after the pull is gone with them, and no
	// version of the recovered log is said to be.
	if _, errOut, err := runCLI(t, "--dir", est, "get", "registry/2026/late.txt", "-"); err == nil {
		t.Errorf("the version written after the pull came back: %s", errOut)
	}
	out, _ = cli(est, "audit", "log", "--kind", "log.restart")
	if !regexp.MustCompile(fmt.Sprintf(`#%d log.restart by recovery .*base=%d .*lost=%d .*witnessed=%d `, entry, recovered, lost, witnessed)).MatchString(out) {
		t.Errorf("EST's log.restart:\n%s", out)
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
	// LUX's checkpoint is the restarted log's (behind it, since the log
	// went on offline): no split view.
	if !strings.Contains(out, "ok: nothing contradicts the audit log") || !regexp.MustCompile(`(?m)^  witness embassy-witness/[0-9a-f]{16} \(peer LUX\) +\d+ entries  `).MatchString(out) {
		t.Errorf("audit verify:\n%s", out)
	}

	// The recovered node writes, serves, and LUX goes on cosigning its
	// log, past the size it cosigned of the lost history, with no split
	// recorded.
	after := filepath.Join(work, "after.txt")
	if err := os.WriteFile(after, []byte("written after the recovery"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(est, "put", after, "registry/2026/after.txt")
	srv = startServe(t, "--dir", est, "--address", "127.0.0.1:0")
	awaitCosigned(t, luxSrv.addr, origin, uint64(entry)+2)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if err := luxSrv.stop(); err != nil {
		t.Fatal(err)
	}
	out, _ = cli(lux, "audit", "log", "--kind", "witness.restart")
	if !regexp.MustCompile(fmt.Sprintf(`witness.restart by witness .*cosigned=%d .*lost=%d .*nation=EST .*recovered=%d`, witnessed, lost, recovered)).MatchString(out) {
		t.Errorf("LUX's witness.restart:\n%s", out)
	}
	if out, _ = cli(lux, "audit", "log", "--kind", "witness.split"); strings.Contains(out, "witness.split") {
		t.Errorf("LUX recorded a split of EST's recovered log:\n%s", out)
	}
}

// awaitCosigned waits until the node serving at addr has cosigned a
// checkpoint of the log origin of at least min entries, and returns its
// size.
func awaitCosigned(t *testing.T, addr, origin string, min uint64) uint64 {
	t.Helper()
	latest := "http://" + addr + "/_embassy/v1/witness/checkpoint?origin=" + url.QueryEscape(origin)
	deadline := time.Now().Add(time.Minute)
	for {
		if r, err := http.Get(latest); err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			lines := strings.SplitN(string(b), "\n", 3)
			if r.StatusCode == http.StatusOK && len(lines) == 3 {
				if n, err := strconv.ParseUint(lines[1], 10, 64); err == nil && n >= min {
					return n
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %s of %d entries or more cosigned within a minute", origin, min)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func atoi(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecoverFromAPeerWithShares is TestRecoverFromAPeer for a node whose
// root key is split among custodians (2 of 3), as a nation's is: EST
// grants LUX a replica (two custodians approve), LUX pulls it while EST
// serves (unsealed by two custodians over the admin API), EST loses its
// node directory and every site it controls, and 'embassy recover
// --from-peer' with two custodians' shares brings every version back byte
// for byte, with EST's identity and custody (sealed again, opened by the
// same shares); 'audit verify' passes. One share is refused, saying how
// many are needed, before anything is written or the ally is asked.
func TestRecoverFromAPeerWithShares(t *testing.T) {
	work := t.TempDir()
	est, lux := filepath.Join(work, "est"), filepath.Join(work, "lux")
	keys, shares := filepath.Join(work, "keys"), filepath.Join(work, "shares")
	cli := dirCLI(t)
	var pubs []string
	for _, name := range []string{"alice", "bob", "carol"} {
		if _, errOut, err := runCLI(t, "custodian", "keygen", name, "--out", keys, "--no-passphrase"); err != nil {
			t.Fatalf("keygen %s: %v\n%s", name, err, errOut)
		}
		pubs = append(pubs, "--custodian", filepath.Join(keys, name+".pub"))
	}
	cli(est, append([]string{"init", "--nation", "EST", "--threshold", "2", "--shares-out", shares}, pubs...)...)
	shareKey := func(name string) string {
		return filepath.Join(shares, name+".share") + ":" + filepath.Join(keys, name+".key")
	}
	u := []string{"--unseal", shareKey("alice"), "--unseal", shareKey("carol")}
	ucli := func(args ...string) (string, string) {
		t.Helper()
		return cli(est, append(append([]string{}, u...), args...)...)
	}
	// A two-person request, approved offline by alice and bob.
	twoPerson := func(args ...string) {
		t.Helper()
		_, errOut, err := runCLI(t, append(append([]string{"--dir", est}, u...), args...)...)
		m := regexp.MustCompile(`request ([0-9a-f]{12}) awaits 2 custodian approvals`).FindStringSubmatch(errOut)
		if err == nil || m == nil {
			t.Fatalf("%s: not a two-person request: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		ucli("approve", m[1], "--offline", "--key", filepath.Join(keys, "alice.key"))
		if out, _ := ucli("approve", m[1], "--offline", "--key", filepath.Join(keys, "bob.key")); !strings.Contains(out, "executed (2 of 2 approvals)") {
			t.Fatalf("%s: approvals:\n%s", strings.Join(args, " "), out)
		}
	}
	peerDevNodes(t, cli, lux, "LUX")
	en := unsealedNode(t, est, filepath.Join(shares, "alice.share"), filepath.Join(keys, "alice.key"), filepath.Join(shares, "bob.share"), filepath.Join(keys, "bob.key"))
	c := *en.Config
	c.Alliance.Listen = freeAddr(t)
	c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTADMIN02", SecretKey: "not-for-printing-0123456789"}}
	if err := en.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	en.Close()
	for _, s := range []struct{ id, j string }{{"est-1", "EST"}, {"est-2", "EST"}, {"fin-1", "FIN"}} {
		ucli("site", "add", s.id, "--path", filepath.Join(work, "est-sites", s.id), "--jurisdiction", s.j, "--provider", "gov-dc", "--control", "EST")
	}
	for _, s := range []struct{ id, j string }{{"lux-1", "LUX"}, {"lux-2", "LUX"}, {"bel-1", "BEL"}} {
		cli(lux, "site", "add", s.id, "--path", filepath.Join(work, "lux-sites", s.id), "--jurisdiction", s.j, "--provider", "gov-dc", "--control", "LUX")
	}
	ucli("vault", "create", "registry", "--erasure", "2+1")
	cli(lux, "vault", "create", "est-replica", "--erasure", "2+1")
	lc, err := node.LoadConfig(lux)
	if err != nil {
		t.Fatal(err)
	}
	lc.Alliance.ReplicaVault = "est-replica"
	if err := node.SaveConfig(lux, lc); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"2026/census.bin": make([]byte, 1<<20+77), "2026/note.txt": []byte("small"), "land/parcels.csv": []byte("id,area\n1,300\n")}
	rand.Read(files["2026/census.bin"])
	for k, b := range files {
		p := filepath.Join(work, "in-"+strings.ReplaceAll(k, "/", "_"))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ucli("put", p, "registry/"+k)
	}
	fp := regexp.MustCompile(`fingerprint (SHA256:\S+)`)
	estCard, luxCard := est+".card", lux+".card"
	_, errOut := ucli("peer", "card", "-o", estCard)
	estFP := fp.FindStringSubmatch(errOut)
	_, errOut = cli(lux, "peer", "card", "-o", luxCard)
	luxFP := fp.FindStringSubmatch(errOut)
	if estFP == nil || luxFP == nil {
		t.Fatal("no card fingerprint printed")
	}
	cli(lux, "peer", "add", estCard, "--fingerprint", estFP[1])
	twoPerson("peer", "add", luxCard, "--fingerprint", luxFP[1])
	twoPerson("share", "grant", "registry", "--to", "LUX", "--level", "replicate", "--ceiling", "NATO UNCLASSIFIED", "--expires", "365d")
	ids := map[string]string{}
	for k := range files {
		out, _ := ucli("--json", "stat", "registry/"+k)
		m := regexp.MustCompile(`"version_id": "([^"]+)"`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("stat %s:\n%s", k, out)
		}
		ids[k] = m[1]
	}
	estID := c.Node.ID

	// EST serves sealed; two custodians unseal it. While LUX serves too,
	// each witnesses the other's log; then LUX pulls.
	luxConf, err := node.LoadConfig(lux)
	if err != nil {
		t.Fatal(err)
	}
	luxSrv := startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	srv := startServe(t, "--dir", est, "--address", "127.0.0.1:0")
	for _, name := range []string{"alice", "carol"} {
		if _, errOut, err := runCLI(t, "unseal", "--node", "http://"+srv.addr, "--share", filepath.Join(shares, name+".share"), "--key", filepath.Join(keys, name+".key")); err != nil {
			t.Fatalf("unseal by %s: %v\n%s", name, err, errOut)
		}
	}
	awaitCosigned(t, srv.addr, audit.Origin(luxConf.Node.ID), 1)
	if err := luxSrv.stop(); err != nil {
		t.Fatal(err)
	}
	out, _ := cli(lux, "replica", "pull")
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16} \(EST\) grant [0-9a-f]{32}: log entries 0 to \d+ of \d+: 3 versions, 0 deletions, \d+ blobs`).MatchString(out) {
		t.Fatalf("replica pull:\n%s", out)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	// The disaster: the node directory and every EST site. The custodians
	// keep their shares and keys apart.
	for _, p := range []string{est, filepath.Join(work, "est-sites")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	startServe(t, "--dir", lux, "--address", "127.0.0.1:0")

	// One share is not enough: refused, naming what is missing, and nothing
	// is written (no node directory, no site made anew).
	_, errOut, err = runCLI(t, "--dir", est, "recover", "--from-peer", luxCard, "--fingerprint", luxFP[1], "--share", shareKey("bob"))
	if err == nil || !strings.Contains(errOut, "embassy: error: custody: not enough shares: need 2 shares, have 1\nhint: nothing was written") {
		t.Fatalf("recover with one share of 2: %v\n%s", err, errOut)
	}
	for _, p := range []string{est, filepath.Join(work, "est-sites")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after a refused recovery: %v (want nothing written)", p, err)
		}
	}

	out, _ = cli(est, "recover", "--from-peer", luxCard, "--fingerprint", luxFP[1], "--share", shareKey("bob"), "--share", shareKey("carol"))
	for _, want := range []string{`replica of node ` + estID + ` at [0-9a-f]{16} \(LUX\): \d+ blobs`, `node ` + estID + ` \(EST\) recovered into`, `index rebuilt from 3 sites: 3 versions`, `audit log: all 3 versions of the replicated scopes it records are back`,
		// What EST cosigned of LUX's log came back with the replica.
		`witness memory: the latest checkpoints this node cosigned of 1 logs, from the sites`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("recover --from-peer output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(est, "root.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the recovered node has a root key file (%v): its root must stay with the custodians", err)
	}
	// Sealed as before: the same custodians' shares open it.
	if _, errOut, err := runCLI(t, "--dir", est, "get", "registry/2026/note.txt", "-"); err == nil || !strings.Contains(errOut, "sealed") {
		t.Errorf("the recovered node opened without shares: %v\n%s", err, errOut)
	}
	u = []string{"--unseal", shareKey("alice"), "--unseal", shareKey("bob")}
	for k, want := range files {
		p := filepath.Join(work, "out-"+strings.ReplaceAll(k, "/", "_"))
		ucli("get", "registry/"+k, p)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after recovery: %d bytes (%v), want %d", k, len(got), err, len(want))
		}
		out, _ := ucli("--json", "stat", "registry/"+k)
		if !strings.Contains(out, `"version_id": "`+ids[k]+`"`) {
			t.Errorf("%s after recovery is not version %s:\n%s", k, ids[k], out)
		}
	}
	if _, errOut = ucli("peer", "card", "-o", filepath.Join(work, "est-again.card")); !strings.Contains(errOut, estFP[1]) {
		t.Errorf("the recovered node's card fingerprint: %s, want %s", errOut, estFP[1])
	}
	out, _ = ucli("audit", "verify")
	if !strings.Contains(out, "ok: nothing contradicts the audit log") {
		t.Errorf("audit verify:\n%s", out)
	}
}
