package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/node"
)

// TestPeersWitnessEachOtherCLI runs the commands of docs/alliance.md,
// "Witnessing each other": two nodes that trust each other witness each
// other's logs with no witness setting; while both serve, EST's checkpoint
// reaches LUX in the background; 'embassy audit verify' on EST shows LUX
// as a witness that cosigned the log; a checkpoint of EST's log of another
// history, signed with EST's key and shown to LUX, is refused and LUX's
// audit log has the witness.split with it.
func TestPeersWitnessEachOtherCLI(t *testing.T) {
	work := t.TempDir()
	est, lux := filepath.Join(work, "est"), filepath.Join(work, "lux")
	cli := dirCLI(t)
	peerDevNodes(t, cli, est, "EST", lux, "LUX")
	for _, d := range []struct{ dir, nation string }{{est, "EST"}, {lux, "LUX"}} {
		cli(d.dir, "site", "add", "s1", "--path", filepath.Join(work, d.nation+"-sites", "s1"), "--jurisdiction", d.nation, "--provider", "gov-dc")
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
	estNode, err := node.LoadConfig(est)
	if err != nil {
		t.Fatal(err)
	}
	origin := audit.Origin(estNode.Node.ID)

	// Both serve; EST's node sends its checkpoint to LUX in the background.
	luxSrv := startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	estSrv := startServe(t, "--dir", est, "--address", "127.0.0.1:0")
	latest := "http://" + luxSrv.addr + "/_embassy/v1/witness/checkpoint?origin=" + url.QueryEscape(origin)
	var cosigned []byte
	deadline := time.Now().Add(time.Minute)
	for cosigned == nil {
		if r, err := http.Get(latest); err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				cosigned = b
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("LUX cosigned no checkpoint of EST's log within a minute of both serving")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := estSrv.stop(); err != nil {
		t.Fatal(err)
	}

	// audit verify on EST (LUX still serving) names LUX as a witness.
	out, _ := cli(est, "audit", "verify")
	if !regexp.MustCompile(`(?m)^  witness embassy-witness/[0-9a-f]{16} \(peer LUX\) +\d+ entries  cosigned a checkpoint of the log$`).MatchString(out) ||
		!strings.Contains(out, "ok: nothing contradicts the audit log") {
		t.Fatalf("audit verify on EST:\n%s", out)
	}

	// Another history of EST's log, signed with EST's key, shown to LUX as
	// the size LUX cosigned: refused, and recorded by LUX.
	n, err := note.Open(cosigned, note.VerifierList(mustVerifier(t, est, origin)))
	if err != nil {
		t.Fatal(err)
	}
	cp := new(log.Checkpoint)
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	en, err := node.Open(t.Context(), est, nil)
	if err != nil {
		t.Fatal(err)
	}
	ed, pq, err := en.Keys.CheckpointSigners(origin)
	if err != nil {
		t.Fatal(err)
	}
	fork := log.Checkpoint{Origin: origin, Size: cp.Size, Hash: make([]byte, 32)}
	forged, err := note.Sign(&note.Note{Text: string(fork.Marshal())}, ed, pq)
	if err != nil {
		t.Fatal(err)
	}
	en.Close()
	r, err := http.Post("http://"+luxSrv.addr+"/_embassy/v1/witness/add-checkpoint", "text/plain", strings.NewReader(fmt.Sprintf("old %d\n\n%s", cp.Size, forged)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusConflict || !strings.Contains(string(b), "a fork") {
		t.Fatalf("the fork shown to LUX: %s %s", r.Status, b)
	}
	if err := luxSrv.stop(); err != nil {
		t.Fatal(err)
	}
	out, _ = cli(lux, "audit", "log", "--kind", "witness.split")
	want := fmt.Sprintf(`witness.split by witness — a checkpoint of %d entries with another root than the one cosigned: a fork`, cp.Size)
	if !strings.Contains(out, want) || !strings.Contains(out, "nation=EST") || !strings.Contains(out, "split=fork") {
		t.Fatalf("LUX's audit log, witness.split:\n%s\nwant %q", out, want)
	}
}

func mustVerifier(t *testing.T, dir, origin string) note.Verifier {
	t.Helper()
	n, err := node.Open(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	vkey, err := audit.VerifierKey(origin, n.Keys.Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWitnessMemoryOnSites: LUX witnesses EST's log, then loses its node
// directory and is recovered from its site ('embassy recover
// --from-dir'). Its witness memory comes back from the site: it serves the
// checkpoint of EST's log it had cosigned, and a checkpoint of another
// history of that size, signed with EST's key, is refused as a fork
// (with a memory in the node directory only, the recovered LUX had
// forgotten it and cosigned the fork).
func TestWitnessMemoryOnSites(t *testing.T) {
	work := t.TempDir()
	est, lux := filepath.Join(work, "est"), filepath.Join(work, "lux")
	cli := dirCLI(t)
	peerDevNodes(t, cli, est, "EST", lux, "LUX")
	for _, d := range []struct{ dir, nation string }{{est, "EST"}, {lux, "LUX"}} {
		cli(d.dir, "site", "add", "s1", "--path", filepath.Join(work, d.nation+"-sites", "s1"), "--jurisdiction", d.nation, "--provider", "gov-dc")
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
	estNode, err := node.LoadConfig(est)
	if err != nil {
		t.Fatal(err)
	}
	origin := audit.Origin(estNode.Node.ID)
	latest := func(addr string) (int, []byte) {
		r, err := http.Get("http://" + addr + "/_embassy/v1/witness/checkpoint?origin=" + url.QueryEscape(origin))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, b
	}

	luxSrv := startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	estSrv := startServe(t, "--dir", est, "--address", "127.0.0.1:0")
	size := awaitCosigned(t, luxSrv.addr, origin, 1)
	if err := estSrv.stop(); err != nil {
		t.Fatal(err)
	}
	_, cosigned := latest(luxSrv.addr)
	if err := luxSrv.stop(); err != nil {
		t.Fatal(err)
	}

	// LUX's node directory is lost; its site and root key are not.
	root, err := os.ReadFile(filepath.Join(lux, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(work, "lux-root.key")
	if err := os.WriteFile(keyFile, root, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(lux); err != nil {
		t.Fatal(err)
	}
	out, _ := cli(lux, "recover", "--from-dir", filepath.Join(work, "LUX-sites", "s1"), "--key", keyFile)
	if !strings.Contains(out, "witness memory: the latest checkpoints this node cosigned of 1 logs, from the sites") {
		t.Errorf("recover:\n%s", out)
	}
	luxSrv = startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	if st, b := latest(luxSrv.addr); st != http.StatusOK || string(b) != string(cosigned) {
		t.Fatalf("the recovered LUX's latest checkpoint of EST's log: %d\n%s\nwant\n%s", st, b, cosigned)
	}
	en, err := node.Open(t.Context(), est, nil)
	if err != nil {
		t.Fatal(err)
	}
	ed, pq, err := en.Keys.CheckpointSigners(origin)
	if err != nil {
		t.Fatal(err)
	}
	fork := log.Checkpoint{Origin: origin, Size: size, Hash: make([]byte, 32)}
	forged, err := note.Sign(&note.Note{Text: string(fork.Marshal())}, ed, pq)
	if err != nil {
		t.Fatal(err)
	}
	en.Close()
	r, err := http.Post("http://"+luxSrv.addr+"/_embassy/v1/witness/add-checkpoint", "text/plain", strings.NewReader(fmt.Sprintf("old %d\n\n%s", size, forged)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusConflict || !strings.Contains(string(b), "a fork") {
		t.Fatalf("a fork shown to the recovered LUX: %s %s", r.Status, b)
	}
}
