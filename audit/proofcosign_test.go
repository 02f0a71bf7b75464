package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestProofCarriesBackgroundCosignatures: a proof file carries the
// cosignatures of the witnesses that cosign in the background (allies), not
// only those tessera asked before publishing: made against the checkpoint
// that carries the most of them, it verifies with the witness's key; an
// altered cosignature is refused naming the signer; an entry no cosigned
// checkpoint covers is proved against the published checkpoint.
func TestProofCarriesBackgroundCosignatures(t *testing.T) {
	k := testKeys(t)
	_, _, wv, root := testWitness(t, k)
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
	cfg := testConfig(t, k, t.TempDir(), nil)
	l := openLog(t, cfg)
	defer closeLog(t, l)
	appendN := func(n int) uint64 {
		t.Helper()
		var last uint64
		var err error
		for i := range n {
			if last, err = l.Append(ctx, Event{Kind: "object.put", Actor: "alice", Vault: "v", Key: fmt.Sprint("k", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.ProveEntry(ctx, last); err != nil {
			t.Fatal(err)
		}
		return last
	}
	ed, pq, _ := Verifiers(cfg.Origin, k.Identity().Public())
	verify := func(p []byte, ws []note.Verifier, quorum int) (ProofCheck, error) {
		return VerifyProof(p, cfg.Origin, ed[0], pq[0], ws, quorum)
	}
	appendN(20)
	cs, err := l.Cosign(ctx, wv, post, 0)
	if err != nil || cs.Size != 20 {
		t.Fatalf("cosign: %+v %v", cs, err)
	}
	late := appendN(5)

	// Entry 3: the cosigned checkpoint of 20 entries carries the witness.
	p, err := l.ProveEntry(ctx, 3, cs)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := verify(p, []note.Verifier{wv}, 1)
	if err != nil || pc.TreeSize != 20 || len(pc.Witnesses) != 1 || pc.Witnesses[0] != wv.Name() || pc.Index != 3 {
		t.Fatalf("a proof with the background witness's cosignature: %v %+v", err, pc)
	}
	// Without the witness's key it still verifies, and says what it did
	// not check.
	if pc, err := verify(p, nil, 0); err != nil || len(pc.Unverified) != 1 || pc.Unverified[0] != wv.Name() {
		t.Fatalf("without the witness's key: %v %+v", err, pc)
	}
	// The cosignature altered: refused, naming whose it claims to be.
	line := "— " + wv.Name() + " "
	i := bytes.Index(p, []byte(line))
	if i < 0 {
		t.Fatalf("no cosignature line in\n%s", p)
	}
	bad := bytes.Clone(p)
	j := i + len(line) + 20
	if bad[j] == 'A' {
		bad[j] = 'B'
	} else {
		bad[j] = 'A'
	}
	if _, err := verify(bad, []note.Verifier{wv}, 1); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), "signature by "+wv.Name()+" does not verify") {
		t.Fatalf("an altered cosignature: %v", err)
	}
	// An entry after what the witness cosigned: the published checkpoint.
	p, err = l.ProveEntry(ctx, late, cs)
	if err != nil {
		t.Fatal(err)
	}
	if pc, err := verify(p, []note.Verifier{wv}, 0); err != nil || pc.TreeSize != 25 || len(pc.Witnesses) != 0 {
		t.Fatalf("an entry no cosigned checkpoint covers: %v %+v", err, pc)
	}
	if _, err := verify(p, []note.Verifier{wv}, 1); !errors.Is(err, ErrProof) {
		t.Fatalf("a quorum the checkpoint does not have: %v", err)
	}
	// Once the witness cosigned the latest checkpoint, proofs are made
	// against it, its cosignature added to the published copy.
	if cs, err = l.Cosign(ctx, wv, post, cs.Size); err != nil || cs.Size != 25 {
		t.Fatalf("cosign again: %+v %v", cs, err)
	}
	p, err = l.ProveEntry(ctx, 3, cs)
	if err != nil {
		t.Fatal(err)
	}
	if pc, err := verify(p, []note.Verifier{wv}, 1); err != nil || pc.TreeSize != 25 {
		t.Fatalf("the latest checkpoint, cosigned: %v %+v", err, pc)
	}
}

// TestWithCosignatures: cosignature lines of the same checkpoint text are
// added once per signer; those of another text are not.
func TestWithCosignatures(t *testing.T) {
	raw := []byte("o\n3\nAAAA\n\n— o sigA\n")
	got := WithCosignatures(raw, []Cosigned{
		{Witness: "w1", Checkpoint: "o\n3\nAAAA\n\n— o sigA\n— w1 sig1\n"},
		{Witness: "w2", Checkpoint: "o\n3\nAAAA\n\n— o sigA\n— w2 sig2\n— w1 sig1b\n"},
		{Witness: "w3", Checkpoint: "o\n4\nBBBB\n\n— o sigB\n— w3 sig3\n"},
	})
	if want := "o\n3\nAAAA\n\n— o sigA\n— w1 sig1\n— w2 sig2\n"; string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
