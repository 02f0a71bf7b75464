package audit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWitnessMemoryPersistedAndMerged: the witness hands its state to
// Persist before a cosignature leaves, and cosigns nothing when Persist
// fails; MergeWitnessStates brings back, for each log, the largest
// checkpoint a copy holds that carries the witness's own cosignature, and
// nothing a copy forged or altered.
func TestWitnessMemoryPersistedAndMerged(t *testing.T) {
	k := testKeys(t)
	w, _, wv, _ := testWitness(t, k)
	var persisted [][]byte
	fail := false
	w.Persist = func(b []byte) error {
		if fail {
			return errors.New("every site is down")
		}
		persisted = append(persisted, b)
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	l := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, l)
	add := func(n int) error {
		t.Helper()
		var last uint64
		for i := range n {
			last, _ = l.Append(ctx, event(i))
		}
		if _, err := l.ProveEntry(ctx, last); err != nil {
			t.Fatal(err)
		}
		post := func(_ context.Context, body []byte) (int, []byte, error) {
			rec := httptest.NewRecorder()
			sig, err := w.AddCheckpoint(body)
			WriteAddCheckpointAnswer(rec, sig, err)
			return rec.Code, rec.Body.Bytes(), nil
		}
		_, err := l.Cosign(ctx, wv, post, 0)
		return err
	}
	if err := add(5); err != nil {
		t.Fatal(err)
	}
	old := persisted[len(persisted)-1]
	if err := add(5); err != nil {
		t.Fatal(err)
	}
	newest := persisted[len(persisted)-1]
	var m map[string]witnessed
	if err := json.Unmarshal(newest, &m); err != nil || m[l.Origin()].Size != 10 {
		t.Fatalf("persisted state: %s (%v)", newest, err)
	}
	fail = true
	var re *RefusedError
	if err := add(1); !errors.As(err, &re) || re.Status != http.StatusServiceUnavailable {
		t.Fatalf("cosigning with no site to keep the memory: %v", err)
	}
	fail = false

	// A copy altered to claim more, or a checkpoint of 10 entries with
	// another root, is not taken; the newest genuine copy wins over an
	// older one, whatever the order.
	var forged map[string]witnessed
	json.Unmarshal(newest, &forged)
	f := forged[l.Origin()]
	f.Size = 99
	forged[l.Origin()] = f
	forgedB, _ := json.Marshal(forged)
	var altered map[string]witnessed
	json.Unmarshal(newest, &altered)
	a := altered[l.Origin()]
	a.Size = 11
	a.Checkpoint = strings.Replace(a.Checkpoint, "\n10\n", "\n11\n", 1)
	altered[l.Origin()] = a
	alteredB, _ := json.Marshal(altered)
	merged, took, err := MergeWitnessStates(wv, nil, old, forgedB, alteredB, newest, []byte("not json"))
	if err != nil || took != 1 {
		t.Fatalf("merge: %d logs, %v", took, err)
	}
	var got map[string]witnessed
	if err := json.Unmarshal(merged, &got); err != nil || got[l.Origin()].Size != 10 || got[l.Origin()].Checkpoint != m[l.Origin()].Checkpoint {
		t.Fatalf("merged: %s (%v)", merged, err)
	}
	// What the node directory holds stays when no copy has more.
	if merged, took, err = MergeWitnessStates(wv, newest, old); err != nil || took != 0 || string(merged) != string(mustCompact(t, newest)) {
		t.Fatalf("merge over a newer local state: %d, %v\n%s", took, err, merged)
	}
}

func mustCompact(t *testing.T, b []byte) []byte {
	t.Helper()
	var m map[string]witnessed
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(m)
	return out
}
