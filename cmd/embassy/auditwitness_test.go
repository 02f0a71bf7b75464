package main

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/audit/audittest"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/node"
)

// startWitness serves an allied witness (its own identity) that follows
// the log origin with the verifier key vkey: add-checkpoint and its latest
// checkpoint under one URL prefix. It returns its vkey and the prefix.
func startWitness(t *testing.T, name, origin, vkey string) (string, string) {
	t.Helper()
	k := audittest.Keys(t, "ffffffffffffffff")
	signer, err := k.WitnessSigner(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWitness(signer, filepath.Join(t.TempDir(), "witness.json"), []audit.WitnessedLog{{Origin: origin, Key: vkey}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/w/add-checkpoint", w)
	mux.HandleFunc("/w/checkpoint", w.ServeLatest)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return custody.WitnessVerifierKey(name, k.Identity().Public()), srv.URL + "/w"
}

// TestAuditVerifyFindsAWitnessSplitView: through the CLI, 'audit verify'
// asks the witnesses in node.yaml for the latest checkpoint of the log
// they cosigned. One witness was shown another history signed with the
// node's key (a stolen identity key, shown to an ally only) before the
// node reached it; the sites know nothing of it, so only the witness can
// tell. audit verify exits 1 naming that witness and the split view, and
// reports the honest witness as agreeing; get is unchanged.
func TestAuditVerifyFindsAWitnessSplitView(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "node")
	cli := func(args ...string) string {
		t.Helper()
		out, stderr, err := runCLI(t, append([]string{"--dir", dir}, args...)...)
		if err != nil {
			t.Fatalf("embassy %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	cli("init", "--nation", "EST")
	for _, s := range []string{"est", "lux", "fin"} {
		cli("site", "add", s+"-1", "--path", filepath.Join(work, "sites", s), "--jurisdiction", strings.ToUpper(s), "--provider", "gov-dc", "--control", "EST", "--accredited", "NATO SECRET")
	}
	cli("vault", "create", "registry", "--erasure", "2+1", "--survive", "sites=1")
	minutes := filepath.Join(work, "minutes.txt")
	if err := os.WriteFile(minutes, []byte("minutes of the council"), 0o644); err != nil {
		t.Fatal(err)
	}
	cli("put", minutes, "registry/minutes.txt")

	// The attacker, holding the node's identity key, signs a checkpoint of
	// another history and shows it to the LUX witness first.
	n, err := node.Open(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	origin := audit.Origin(n.Config.Node.ID)
	vkey, err := audit.VerifierKey(origin, n.Keys().Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	ed, pq, err := n.Keys().CheckpointSigners(origin)
	if err != nil {
		t.Fatal(err)
	}
	hash := make([]byte, 32)
	rand.Read(hash)
	forged, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: 3, Hash: hash}.Marshal())}, ed, pq)
	if err != nil {
		t.Fatal(err)
	}
	luxKey, luxURL := startWitness(t, "witness.lux.example", origin, vkey)
	finKey, finURL := startWitness(t, "witness.fin.example", origin, vkey)
	resp, err := http.Post(luxURL+"/add-checkpoint", "text/plain", strings.NewReader("old 0\n\n"+string(forged)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the witness refused the fork's first checkpoint: %s", resp.Status)
	}
	// The node's operator then configures both witnesses, any 1 of 2.
	c := *n.Config
	c.Audit.Witnesses = []node.WitnessConfig{{Key: luxKey, URL: luxURL}, {Key: finKey, URL: finURL}}
	c.Audit.Quorum = 1
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	n.Close()

	cli("put", minutes, "registry/again.txt")
	out, stderr, err := runCLI(t, "--dir", dir, "audit", "verify")
	if err == nil {
		t.Fatalf("audit verify passed with a witness shown a split view:\n%s", out)
	}
	for _, want := range []string{
		"PROBLEM: witness witness.lux.example cosigned a checkpoint of 3 entries that is not the log's: a split view",
		"  witness witness.lux.example 3 entries  SPLIT VIEW: ",
		"  witness witness.fin.example ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit verify does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PROBLEM: witness witness.fin.example") {
		t.Errorf("the honest witness is named as a problem:\n%s", out)
	}
	if !strings.Contains(stderr, "problem(s) contradict the audit log") {
		t.Errorf("stderr: %s", stderr)
	}
	got := filepath.Join(work, "got.txt")
	cli("get", "registry/minutes.txt", got)
	if b, _ := os.ReadFile(got); string(b) != "minutes of the council" {
		t.Fatalf("get after the split view: %q", b)
	}
}
