package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// TestWitnessAcceptsADeclaredRestart: a log whose node was rebuilt from a
// copy that ends before what its witness cosigned is refused as a split
// view, as before; once it records a log.restart naming the witness's
// latest checkpoint, the witness cosigns its checkpoint that includes the
// entry, reports the restart, and holds the log to the new history from
// then on. A restart naming another checkpoint, or one not beyond the
// recovered base, or a proof of another entry or under another key, is
// refused; the same restart sent again names nothing the witness holds;
// and a fork without a restart is still refused.
func TestWitnessAcceptsADeclaredRestart(t *testing.T) {
	k := testKeys(t)
	w, _, wv, root := testWitness(t, k)
	var restarts []WitnessRestart
	w.OnRestart = func(r WitnessRestart) { restarts = append(restarts, r) }
	splits := 0
	w.OnSplit = func(*WitnessError) { splits++ }
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
	origin := Origin("0123456789abcdef")
	var lastRestart []byte
	restart := func(_ context.Context, body []byte) (int, []byte, error) {
		lastRestart = bytes.Clone(body)
		rec := httptest.NewRecorder()
		sig, err := w.RestartOf(origin, body)
		WriteAddCheckpointAnswer(rec, sig, err)
		return rec.Code, rec.Body.Bytes(), nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	appendN := func(l *Log, n int, actor string) uint64 {
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
		return last
	}

	// EST's log: 6 entries reach the ally's copy (site "ally"), 4 more
	// are written and cosigned by the witness, then everything but the
	// ally's copy is lost.
	ally, own := memory.New(), memory.New()
	sites := map[string]site.Site{"ally": ally, "own": own}
	cfg := testConfig(t, k, t.TempDir(), nil)
	// The copier reads the sites while the test replaces them.
	var sitesMu sync.Mutex
	cfg.Sites = func() map[string]site.Site {
		sitesMu.Lock()
		defer sitesMu.Unlock()
		return sites
	}
	l := openLog(t, cfg)
	appendN(l, 6, "alice")
	if err := l.Sync(ctx, 6, []string{"ally"}); err != nil {
		t.Fatal(err)
	}
	sitesMu.Lock()
	sites = map[string]site.Site{"own": own}
	sitesMu.Unlock()
	appendN(l, 4, "alice")
	cs, err := l.Cosign(ctx, wv, post, 0)
	if err != nil || cs.Size != 10 {
		t.Fatalf("cosigned before the loss: %+v %v", cs, err)
	}
	_, lost, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)

	rcfg := testConfig(t, k, t.TempDir(), map[string]site.Site{"ally": ally})
	rec := openLog(t, rcfg)
	defer closeLog(t, rec)
	if got := rec.Appended(); got != 6 {
		t.Fatalf("recovered %d entries, want the ally's 6", got)
	}
	base, err := rec.Root(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Holds(ctx, lost); err == nil {
		t.Fatal("the recovered log holds the checkpoint of 10 it lost")
	}
	// Going on without a word is another history: refused, as before.
	appendN(rec, 1, "node")
	var re *RefusedError
	if _, err := rec.Cosign(ctx, wv, post, 0); !errors.As(err, &re) || !re.Split {
		t.Fatalf("the recovered log going on silently: %v", err)
	}

	// A restart naming another checkpoint than the witness's is refused.
	wrong := LogRestart{Base: 6, BaseRoot: base, Witnessed: []Witnessed{{Size: 10, Root: base}}}
	i, err := rec.Append(ctx, wrong.Event("recovery", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Restart(ctx, wv, restart, i); !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("a restart naming another checkpoint: %v", err)
	}
	// One not beyond what was recovered: nothing of the witnessed was lost.
	notBeyond := LogRestart{Base: 10, BaseRoot: base, Witnessed: []Witnessed{{Size: 10, Root: lost.Hash}}}
	if i, err = rec.Append(ctx, notBeyond.Event("recovery", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Restart(ctx, wv, restart, i); !errors.As(err, &re) || re.Status != http.StatusConflict || !strings.Contains(re.Reason, "not beyond") {
		t.Fatalf("a restart not beyond its base: %v", err)
	}
	// A proof of an entry that is not a restart.
	if _, err := rec.Restart(ctx, wv, restart, 0); !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Fatalf("a proof of another entry: %v", err)
	}
	if len(restarts) != 0 {
		t.Fatalf("restarts accepted: %+v", restarts)
	}

	// The declared restart: named exactly, beyond the base.
	r := LogRestart{Base: 6, BaseRoot: base, Witnessed: []Witnessed{{Size: 10, Root: lost.Hash}}}
	if r.Lost() != 4 {
		t.Fatalf("lost %d entries, want 4", r.Lost())
	}
	if i, err = rec.Append(ctx, r.Event("recovery", map[string]string{"from": "LUX"})); err != nil {
		t.Fatal(err)
	}
	cs, err = rec.Restart(ctx, wv, restart, i)
	if err != nil {
		t.Fatalf("the declared restart: %v", err)
	}
	if err := rec.CheckCosigned(ctx, wv, cs); err != nil || cs.Size != i+1 {
		t.Fatalf("the restart's cosigned checkpoint (%d entries): %v", cs.Size, err)
	}
	if len(restarts) != 1 || restarts[0].Cosigned != 10 || restarts[0].Index != i || restarts[0].Restart.Base != 6 || restarts[0].Size != cs.Size {
		t.Fatalf("restarts reported: %+v", restarts)
	}
	if cp := w.Latest(origin); !bytes.Contains(cp, fmt.Appendf(nil, "\n%d\n", cs.Size)) {
		t.Fatalf("the witness's latest after the restart:\n%s", cp)
	}
	// From then on the new history extends as usual, past the old size.
	appendN(rec, 5, "alice")
	if cs, err = rec.Cosign(ctx, wv, post, cs.Size); err != nil || cs.Size <= 10 {
		t.Fatalf("after the restart: %+v %v", cs, err)
	}
	// The same restart again names nothing the witness holds.
	st, b, _ := restart(ctx, lastRestart)
	if st != http.StatusConflict || len(restarts) != 1 {
		t.Fatalf("the restart replayed: %d %s", st, b)
	}
	// The witness remembers across a restart of its own.
	w2, err := NewWitness(w.signer, w.path, []WitnessedLog{{Origin: origin, Key: mustVKey(t, k, origin)}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w2.Latest(origin), w.Latest(origin)) {
		t.Fatal("the witness's state after the restart is not durable")
	}

	// A fork without a restart is refused as ever; a restart signed by
	// another key is not a proof at all.
	before := splits
	fork := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, fork)
	appendN(fork, 30, "mallory")
	if _, err := fork.Cosign(ctx, wv, post, 0); !errors.As(err, &re) || !re.Split || splits == before {
		t.Fatalf("a fork after the restart: %v", err)
	}
	other := openLog(t, testConfig(t, testKeys(t), t.TempDir(), nil))
	defer closeLog(t, other)
	appendN(other, 2, "mallory")
	if i, err = other.Append(ctx, LogRestart{Base: 1, BaseRoot: base, Witnessed: []Witnessed{{Size: cs.Size, Root: mustRoot(t, w, origin)}}}.Event("mallory", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Restart(ctx, wv, restart, i); !errors.As(err, &re) || re.Status != http.StatusForbidden {
		t.Fatalf("a restart under another key: %v", err)
	}
	if len(restarts) != 1 {
		t.Fatalf("restarts accepted: %d", len(restarts))
	}
}

func mustVKey(t *testing.T, k *custody.Keyring, origin string) string {
	t.Helper()
	vkey, err := VerifierKey(origin, k.Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// mustRoot is the root of the latest checkpoint of origin w cosigned.
func mustRoot(t *testing.T, w *Witness, origin string) []byte {
	t.Helper()
	text, _, _ := bytes.Cut(w.Latest(origin), []byte("\n\n"))
	cp := new(log.Checkpoint)
	if _, err := cp.Unmarshal(append(text, '\n')); err != nil {
		t.Fatal(err)
	}
	return cp.Hash
}
