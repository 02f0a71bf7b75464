package main

import (
	"bytes"
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
	trustEachOther(t, cli, est, lux)
	estNode, err := node.LoadConfig(est)
	if err != nil {
		t.Fatal(err)
	}
	origin := audit.Origin(estNode.Node.ID)

	cli(est, "vault", "create", "registry", "--erasure", "1+0")
	note1 := filepath.Join(work, "minutes.txt")
	if err := os.WriteFile(note1, []byte("minutes of the council"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(est, "put", note1, "registry/2026/minutes.txt")
	// Their public identities, as 'embassy identity export' gives them.
	pub := func(dir string) string {
		out, _ := cli(dir, "identity", "export")
		f := dir + ".pub"
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	estPub, luxPub := pub(est), pub(lux)

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
	// EST keeps LUX's cosignature (audit/cosigned.json) once LUX's answer
	// is back.
	luxNode, err := node.LoadConfig(lux)
	if err != nil {
		t.Fatal(err)
	}
	luxWitness := audit.WitnessName(luxNode.Node.ID)
	for {
		if b, _ := os.ReadFile(filepath.Join(est, "audit", "cosigned.json")); bytes.Contains(b, []byte(luxWitness)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("EST kept no cosignature of LUX's within a minute of both serving")
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

	// A proof file made on EST carries LUX's cosignature, kept from the
	// background round: with EST's key alone it verifies and says what it
	// did not check; with LUX's public identity (node.pub) as --witness it
	// checks LUX's cosignature too; altered, that cosignature is refused
	// naming LUX's witness key.
	proofFile := filepath.Join(work, "minutes.proof")
	if _, errOut := cli(est, "audit", "proof", "registry/2026/minutes.txt", "-o", proofFile); !strings.Contains(errOut, "(object.put) written to") {
		t.Fatalf("audit proof: %s", errOut)
	}
	out, _ = cli(work, "audit", "verify-proof", proofFile, "--key", estPub)
	if !strings.HasPrefix(out, "ok: entry #") || !strings.Contains(out, "not checked: signatures by "+luxWitness+" (no key given for them)") {
		t.Fatalf("verify-proof with EST's key alone:\n%s", out)
	}
	out, _ = cli(work, "audit", "verify-proof", proofFile, "--key", estPub, "--witness", luxPub, "--quorum", "1")
	if !strings.Contains(out, "signed by the node with Ed25519 and ML-DSA-44, cosigned by "+luxWitness+")") || strings.Contains(out, "not checked") {
		t.Fatalf("verify-proof with LUX as witness:\n%s", out)
	}
	proof, err := os.ReadFile(proofFile)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(proof, []byte("— "+luxWitness+" "))
	if at < 0 {
		t.Fatalf("no cosignature by LUX in the proof file:\n%s", proof)
	}
	at += len("— "+luxWitness+" ") + 30
	proof[at] ^= 'A' ^ 'B'
	if proof[at] != 'A' && proof[at] != 'B' {
		proof[at] = 'A'
	}
	altered := filepath.Join(work, "altered.proof")
	if err := os.WriteFile(altered, proof, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runCLI(t, "audit", "verify-proof", altered, "--key", estPub, "--witness", luxPub); err == nil ||
		!strings.Contains(errOut, "the checkpoint's signature by "+luxWitness+" does not verify with the key given for it") {
		t.Fatalf("verify-proof of an altered cosignature: %v\n%s", err, errOut)
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
	ed, pq, err := en.Keys().CheckpointSigners(origin)
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
	vkey, err := audit.VerifierKey(origin, n.Keys().Identity().Public())
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
	trustEachOther(t, cli, est, lux)
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
	ed, pq, err := en.Keys().CheckpointSigners(origin)
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
