package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/custody"
)

// testWitness starts a witness (another node's identity) that follows the
// log of k, on a loopback HTTP server, and returns it, its vkey and
// verifier, and its URL root.
func testWitness(t *testing.T, k *custody.Keyring) (*Witness, string, note.Verifier, *url.URL) {
	t.Helper()
	wk := testKeys(t)
	const name = "witness.lux.example"
	signer, err := wk.WitnessSigner(name)
	if err != nil {
		t.Fatal(err)
	}
	wkey := custody.WitnessVerifierKey(name, wk.Identity().Public())
	wv, err := fnote.NewVerifier(wkey)
	if err != nil {
		t.Fatal(err)
	}
	origin := Origin("0123456789abcdef")
	vkey, err := VerifierKey(origin, k.Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWitness(signer, filepath.Join(t.TempDir(), "witness.json"), []WitnessedLog{{Origin: origin, Key: vkey}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/add-checkpoint", w)
	mux.HandleFunc("/checkpoint", w.ServeLatest)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return w, wkey, wv, u
}

// TestWitnessCosignsAndRefusesAFork: a log configured with a witness
// publishes only checkpoints the witness cosigned (the cosignature
// verifies, and a proof file carries it); the witness then refuses a
// checkpoint of another history signed with the same key (a fork), and an
// unknown log, and a checkpoint not signed by the log.
func TestWitnessCosignsAndRefusesAFork(t *testing.T) {
	k := testKeys(t)
	w, wkey, wv, root := testWitness(t, k)
	tw, err := tessera.NewWitness(wkey, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, k, t.TempDir(), nil)
	cfg.Witnesses = tessera.NewWitnessGroup(1, tw)
	l := openLog(t, cfg)
	var last uint64
	for i := range 40 {
		if last, err = l.Append(t.Context(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := l.ProveEntry(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	raw, cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(raw, note.VerifierList(wv)); err != nil {
		t.Fatalf("the published checkpoint carries no valid cosignature by the witness: %v\n%s", err, raw)
	}
	ed, pq, _ := Verifiers(cfg.Origin, k.Identity().Public())
	pc, err := VerifyProof(p, cfg.Origin, ed[0], pq[0], []note.Verifier{wv}, 1)
	if err != nil || len(pc.Witnesses) != 1 {
		t.Fatalf("a proof against a witnessed checkpoint: %v %+v", err, pc)
	}
	closeLog(t, l)

	// A fork: the same key, another history, longer than what the witness
	// cosigned; its own consistency proof does not lead from the witnessed
	// tree.
	fcfg := testConfig(t, k, t.TempDir(), nil)
	fork := openLog(t, fcfg)
	for i := range 60 {
		if last, err = fork.Append(t.Context(), Event{Kind: "object.put", Actor: "mallory", Vault: "v", Key: fmt.Sprint("forged", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fork.ProveEntry(ctx, last); err != nil {
		t.Fatal(err)
	}
	fraw, fcp, err := fork.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := client.NewProofBuilder(ctx, fcp.Size, fork.Reader().ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := pb.ConsistencyProof(ctx, cp.Size, fcp.Size)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("old %d\n", cp.Size)
	for _, h := range hashes {
		body += base64.StdEncoding.EncodeToString(h) + "\n"
	}
	body += "\n" + string(fraw)
	_, err = w.AddCheckpoint([]byte(body))
	var we *WitnessError
	if !errors.As(err, &we) || we.Status != http.StatusUnprocessableEntity {
		t.Fatalf("a fork's checkpoint: %v, want 422", err)
	}
	// Claiming the witness knows nothing does not help: 409 with its size.
	_, err = w.AddCheckpoint([]byte("old 0\n\n" + string(fraw)))
	if !errors.As(err, &we) || we.Status != http.StatusConflict || !we.SizeHint || we.Size != cp.Size {
		t.Fatalf("old 0 on a witnessed log: %v", err)
	}
	closeLog(t, fork)

	// Over HTTP: an unknown log is 404, a checkpoint not signed by the log
	// is 403, garbage is 400, and a 409 carries the size.
	post := func(body string) (int, string, string) {
		r, err := http.Post(root.JoinPath("add-checkpoint").String(), "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b := new(bytes.Buffer)
		b.ReadFrom(r.Body)
		return r.StatusCode, r.Header.Get("Content-Type"), b.String()
	}
	other := strings.Replace(string(fraw), cfg.Origin, "embassy/ffffffffffffffff", 1)
	if st, _, b := post("old 0\n\n" + other); st != http.StatusNotFound {
		t.Errorf("unknown log: %d %s", st, b)
	}
	edited := strings.Replace(string(raw), fmt.Sprintf("\n%d\n", cp.Size), fmt.Sprintf("\n%d\n", cp.Size+1), 1)
	if st, _, b := post(fmt.Sprintf("old %d\n\n", cp.Size) + edited); st != http.StatusForbidden {
		t.Errorf("an edited checkpoint: %d %s", st, b)
	}
	if st, _, b := post("new 0\n\n" + string(raw)); st != http.StatusBadRequest {
		t.Errorf("garbage: %d %s", st, b)
	}
	if st, ct, b := post("old 0\n\n" + string(raw)); st != http.StatusConflict || ct != "text/x.tlog.size" || b != fmt.Sprintf("%d\n", cp.Size) {
		t.Errorf("old 0: %d %q %q", st, ct, b)
	}
	// The same checkpoint again is cosigned again (idempotent).
	if st, _, b := post(fmt.Sprintf("old %d\n\n", cp.Size) + string(raw)); st != http.StatusOK || !strings.HasPrefix(b, "— witness.lux.example ") {
		t.Errorf("the same checkpoint again: %d %s", st, b)
	}
}

// TestCheckWitnessFindsASplitView: witnesses are put in force on a
// running log (SetWitnesses), and CheckWitness asks each for the latest
// checkpoint of the log it cosigned: one that cosigned the log's own
// checkpoints agrees; one that was shown another history signed with the
// log's key (a fork, cosigned before the log ever reached it) is a split
// view; one that cosigned nothing, or cannot be reached, is the window.
func TestCheckWitnessFindsASplitView(t *testing.T) {
	k := testKeys(t)
	honest, hkey, _, hroot := testWitness(t, k)
	_, skey, _, sroot := testWitness(t, k)
	cfg := testConfig(t, k, t.TempDir(), nil)
	l := openLog(t, cfg)
	defer closeLog(t, l)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second}

	// Nothing cosigned yet: the window, not a problem.
	if wc := l.CheckWitness(ctx, hc, hkey, hroot.String()); wc.Problem != "" || !strings.Contains(wc.Window, "cosigned no checkpoint") {
		t.Fatalf("a witness that cosigned nothing: %+v", wc)
	}
	// Put the honest witness in force while the log runs.
	tw, err := tessera.NewWitness(hkey, hroot)
	if err != nil {
		t.Fatal(err)
	}
	l.SetWitnesses(tessera.NewWitnessGroup(1, tw))
	var last uint64
	for i := range 20 {
		if last, err = l.Append(ctx, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.ProveEntry(ctx, last); err != nil {
		t.Fatal(err)
	}
	if honest.Latest(cfg.Origin) == nil {
		t.Fatal("the witness put in force while the log ran cosigned nothing")
	}
	wc := l.CheckWitness(ctx, hc, hkey, hroot.String())
	if wc.Problem != "" || wc.Size == 0 || wc.Witness != "witness.lux.example" {
		t.Fatalf("the honest witness: %+v", wc)
	}

	// Another history signed with the log's key, shown to the second
	// witness first: it cosigns it, and CheckWitness calls it a split view.
	fork := openLog(t, testConfig(t, k, t.TempDir(), nil))
	for i := range 5 {
		if last, err = fork.Append(ctx, Event{Kind: "object.put", Actor: "mallory", Vault: "v", Key: fmt.Sprint("forged", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fork.ProveEntry(ctx, last); err != nil {
		t.Fatal(err)
	}
	fraw, _, err := fork.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closeLog(t, fork)
	r, err := http.Post(sroot.JoinPath("add-checkpoint").String(), "text/plain", strings.NewReader("old 0\n\n"+string(fraw)))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("the fork's first checkpoint: %s", r.Status)
	}
	wc = l.CheckWitness(ctx, hc, skey, sroot.String())
	if !strings.Contains(wc.Problem, "not a checkpoint of the node's log") || wc.Size != 5 {
		t.Fatalf("a witness shown a fork: %+v", wc)
	}
	// The honest one is still fine; the wrong key for a witness is a
	// problem (its answer is not cosigned by the key configured); nobody
	// listening is the window.
	if wc := l.CheckWitness(ctx, hc, hkey, hroot.String()); wc.Problem != "" {
		t.Fatalf("the honest witness after the fork: %+v", wc)
	}
	if wc := l.CheckWitness(ctx, hc, hkey, sroot.String()); !strings.Contains(wc.Problem, "not cosigned by the witness's key") {
		t.Fatalf("the answer of another witness: %+v", wc)
	}
	if wc := l.CheckWitness(ctx, hc, hkey, "http://127.0.0.1:1/w"); wc.Problem != "" || !strings.Contains(wc.Window, "not reached") {
		t.Fatalf("an unreachable witness: %+v", wc)
	}
}

// TestCosignInTheBackground: a log sends its published checkpoints to a
// witness it does not wait for (Log.Cosign), keeps what comes back
// (Cosignatures) and checks it (CheckCosigned). Another history signed
// with the log's key is refused whatever its size — the same size as the
// one cosigned, larger, or smaller — and the witness reports each refusal
// as a split view (OnSplit) with the refused checkpoint as evidence; the
// sender is told the witness holds another history.
func TestCosignInTheBackground(t *testing.T) {
	k := testKeys(t)
	w, _, wv, root := testWitness(t, k)
	var mu sync.Mutex
	var splitsSeen []*WitnessError
	w.OnSplit = func(e *WitnessError) { mu.Lock(); splitsSeen = append(splitsSeen, e); mu.Unlock() }
	reported := func() []*WitnessError { mu.Lock(); defer mu.Unlock(); return slices.Clone(splitsSeen) }
	post := func(ctx context.Context, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, root.JoinPath("add-checkpoint").String(), bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer r.Body.Close()
		b := new(bytes.Buffer)
		b.ReadFrom(r.Body)
		return r.StatusCode, b.Bytes(), nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	appendN := func(l *Log, n int, actor string) {
		t.Helper()
		var last uint64
		var err error
		for i := range n {
			if last, err = l.Append(ctx, Event{Kind: "object.put", Actor: actor, Vault: "v", Key: fmt.Sprint("k", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.ProveEntry(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, k, t.TempDir(), nil)
	l := openLog(t, cfg)
	appendN(l, 20, "alice")
	cs, err := l.Cosign(ctx, wv, post, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Size != 20 || cs.Witness != wv.Name() {
		t.Fatalf("cosigned: %+v", cs)
	}
	if err := l.CheckCosigned(ctx, wv, cs); err != nil {
		t.Fatalf("the cosigned checkpoint: %v", err)
	}
	// Kept across a reopen.
	path := filepath.Join(t.TempDir(), "cosigned.json")
	kept, err := OpenCosignatures(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := kept.Put(cs); err != nil {
		t.Fatal(err)
	}
	if kept, err = OpenCosignatures(path); err != nil {
		t.Fatal(err)
	}
	if got, ok := kept.Get(wv.Name()); !ok || got != cs {
		t.Fatalf("kept: %+v %v", got, ok)
	}
	// The next checkpoint goes with a consistency proof; a sender that
	// does not know what the witness holds learns it (409) and goes on.
	appendN(l, 7, "alice")
	if cs, err = l.Cosign(ctx, wv, post, 0); err != nil || cs.Size != 27 {
		t.Fatalf("the next checkpoint, from 0: %+v %v", cs, err)
	}
	appendN(l, 3, "alice")
	if cs, err = l.Cosign(ctx, wv, post, 27); err != nil || cs.Size != 30 {
		t.Fatalf("the next checkpoint, from 27: %+v %v", cs, err)
	}
	// A checkpoint of another log's witness does not pass as this one's.
	other := cs
	other.Checkpoint = strings.Replace(cs.Checkpoint, "— witness.lux.example ", "— witness.fin.example ", 1)
	if err := l.CheckCosigned(ctx, wv, other); err == nil {
		t.Fatal("a checkpoint without the witness's cosignature passed")
	}
	closeLog(t, l)

	// The node directory is restored from an older copy, or someone holds
	// the key: another history, of the same size (30), then larger (45).
	fork := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, fork)
	appendN(fork, 30, "mallory")
	var re *RefusedError
	if _, err := fork.Cosign(ctx, wv, post, 0); !errors.As(err, &re) || !re.Split || !errors.Is(err, ErrWitnessRefused) {
		t.Fatalf("another history of the same size: %v", err)
	}
	appendN(fork, 15, "mallory")
	if _, err := fork.Cosign(ctx, wv, post, 0); !errors.As(err, &re) || !re.Split || re.Status != http.StatusUnprocessableEntity {
		t.Fatalf("another history, larger: %v", err)
	}
	splits := reported()
	if len(splits) != 2 || splits[0].Split != "fork" || splits[1].Split != "inconsistent" {
		t.Fatalf("the witness reported %d splits: %+v", len(splits), splits)
	}
	for _, s := range splits {
		if s.Origin != cfg.Origin || s.Cosigned != 30 || !bytes.HasPrefix(s.Checkpoint, []byte(cfg.Origin+"\n")) {
			t.Errorf("split evidence: %+v", s)
		}
	}
	// A smaller one, sent as if the witness held it: a rollback reported.
	// A sender that learns the witness holds more says so to the witness
	// too, which reports it again.
	small := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, small)
	appendN(small, 4, "mallory")
	sraw, _, err := small.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, b, _ := post(ctx, []byte("old 30\n\n"+string(sraw)))
	if splits = reported(); st != http.StatusBadRequest || len(splits) != 3 || splits[2].Split != "rollback" {
		t.Fatalf("a smaller checkpoint: %d %s, splits %d", st, b, len(splits))
	}
	if _, err := small.Cosign(ctx, wv, post, 0); !errors.As(err, &re) || !re.Split || !strings.Contains(re.Reason, "cosigned a checkpoint of 30 entries") {
		t.Fatalf("a smaller history: %v", err)
	}
	if splits = reported(); len(splits) != 4 || splits[3].Split != "rollback" || splits[3].Cosigned != 30 {
		t.Fatalf("the smaller history sent by Cosign: splits %+v", splits)
	}
	// The witness still holds the first history.
	if cp := w.Latest(cfg.Origin); !bytes.Contains(cp, []byte("\n30\n")) {
		t.Fatalf("the witness's latest after the forks:\n%s", cp)
	}
}
