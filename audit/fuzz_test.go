package audit

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera/api"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// Entries come back from sites: opening one must never panic, and
// whatever opens must match its commitment.
func FuzzOpenEntry(f *testing.F) {
	k := testKeys(f)
	e, _ := SealEntry(k, Event{Kind: "object.put", Time: 1, Vault: "v", Key: "k"})
	f.Add(e)
	f.Add([]byte(entryMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, o, err := OpenEntry(k, b)
		if err != nil {
			return
		}
		if !o.Matches(b) || ev.Kind == "" {
			t.Fatalf("opened an entry that does not match its commitment: %+v", ev)
		}
	})
}

// Journal records are read back after crashes: decoding must never
// panic and must refuse what its checksum does not cover.
func FuzzJournalRecord(f *testing.F) {
	f.Add(appendRecord(nil, 7, []byte("entry")))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || string(appendRecord(nil, r.seq, r.entry)) != string(b[:n]) {
			t.Fatalf("decoded record does not re-encode to its bytes")
		}
	})
}

// fuzzLog builds a small log copied to a memory site and returns the site,
// the checkpoint it holds, a proof file of one entry and the verifiers.
func fuzzLog(f *testing.F) (s *memory.Site, cp []byte, proofFile []byte, cfg Config) {
	k := testKeys(f)
	s = memory.New()
	cfg = testConfig(f, k, f.TempDir(), map[string]site.Site{"a": s})
	l := openLog(f, cfg)
	var last uint64
	for i := range 300 {
		last, _ = l.Append(f.Context(), event(i))
	}
	ctx, cancel := context.WithTimeout(f.Context(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{"a"}); err != nil {
		f.Fatal(err)
	}
	p, err := l.ProveEntry(ctx, 7)
	if err != nil {
		f.Fatal(err)
	}
	closeLog(f, l)
	cp, err = SiteFetcher{s}.ReadCheckpoint(ctx)
	if err != nil {
		f.Fatal(err)
	}
	return s, cp, p, cfg
}

// Checkpoints come back from sites (and from other nodes' logs, to a
// witness): parsing one must never panic, and what parses is signed by
// the node and names its log.
func FuzzOpenCheckpoint(f *testing.F) {
	_, cp, _, cfg := fuzzLog(f)
	f.Add(cp)
	f.Add([]byte(cfg.Origin + "\n1\nAAAA\n\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := OpenCheckpoint(b, cfg.Origin, cfg.Verifiers)
		if err != nil {
			return
		}
		if c.Origin != cfg.Origin || len(c.Hash) == 0 {
			t.Fatalf("accepted a checkpoint of %q with root %x", c.Origin, c.Hash)
		}
	})
}

// Proof files are outside input to verify-proof: it must never panic, and
// a proof it accepts is one of the node's entries with a verified opening.
func FuzzVerifyProof(f *testing.F) {
	_, _, p, cfg := fuzzLog(f)
	f.Add(p)
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"))
	ed, pq, err := Verifiers(cfg.Origin, cfg.Keys.(*custody.Keyring).Identity().Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pc, err := VerifyProof(b, cfg.Origin, ed[0], pq[0], nil, 0)
		if err != nil {
			return
		}
		if !pc.Ed25519 || !pc.MLDSA44 || pc.Index >= pc.TreeSize || pc.Event.Kind != "object.put" {
			t.Fatalf("accepted %+v", pc)
		}
	})
}

// Tiles and entry bundles come back from sites: a copy whose one resource
// is replaced by anything must never make VerifyTree panic, and the
// original bytes must verify.
func FuzzVerifyTree(f *testing.F) {
	s, cp, _, cfg := fuzzLog(f)
	c, err := OpenCheckpoint(cp, cfg.Origin, cfg.Verifiers)
	if err != nil {
		f.Fatal(err)
	}
	names := []string{SitePrefix + "tile/0/000", SitePrefix + "tile/0/001.p/44", SitePrefix + "tile/1/000.p/1", SitePrefix + "tile/entries/000", SitePrefix + "tile/entries/001.p/44"}
	orig := map[string][]byte{}
	for _, n := range names {
		rc, err := s.Get(f.Context(), n, 0, -1)
		if err != nil {
			f.Fatalf("%s: %v", n, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		orig[n] = b
		f.Add(uint8(len(orig)-1), b)
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		n := names[int(which)%len(names)]
		ctx := context.Background()
		s.Put(ctx, n, bytes.NewReader(b), int64(len(b)))
		defer s.Put(ctx, n, bytes.NewReader(orig[n]), int64(len(orig[n])))
		_, err := VerifyTree(ctx, SiteFetcher{s}, c.Size, c.Hash, 0, nil)
		if bytes.Equal(b, orig[n]) && err != nil {
			t.Fatalf("the intact copy does not verify: %v", err)
		}
		if err == nil && strings.Contains(n, "entries") {
			// What verifies holds the same entries (a longer bundle may
			// stand in for a partial one).
			var got, want api.EntryBundle
			if got.UnmarshalText(b) != nil || want.UnmarshalText(orig[n]) != nil || len(got.Entries) < len(want.Entries) {
				t.Fatalf("an entry bundle replaced by %q verified", b)
			}
			for i := range want.Entries {
				if !bytes.Equal(got.Entries[i], want.Entries[i]) {
					t.Fatalf("entry %d of %s changed, and the copy verified", i, n)
				}
			}
		}
	})
}

// Add-checkpoint bodies come from any log that posts to the witness:
// parsing and checking one must never panic, and a body the witness
// cosigns holds a checkpoint signed by the log it follows.
func FuzzAddCheckpoint(f *testing.F) {
	_, cp, _, cfg := fuzzLog(f)
	k := cfg.Keys.(*custody.Keyring)
	signer, err := testKeys(f).WitnessSigner("w.example")
	if err != nil {
		f.Fatal(err)
	}
	vkey, err := VerifierKey(cfg.Origin, k.Identity().Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("old 0\n\n" + string(cp)))
	f.Add([]byte("old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n" + string(cp)))
	f.Add([]byte("old 00\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := NewWitness(signer, filepath.Join(t.TempDir(), "w.json"), []WitnessedLog{{Origin: cfg.Origin, Key: vkey}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.AddCheckpoint(b); err != nil {
			return
		}
		_, _, raw, err := parseAddCheckpoint(b)
		if err != nil {
			t.Fatalf("cosigned a body that does not parse: %v", err)
		}
		if _, err := OpenCheckpoint(raw, cfg.Origin, cfg.Verifiers); err != nil {
			t.Fatalf("cosigned a checkpoint the log did not sign: %v", err)
		}
	})
}

// A witness's latest checkpoint comes back over the network: checking one
// must never panic, and what passes is cosigned by the witness and signed
// by the log.
func FuzzWitnessCheckpoint(f *testing.F) {
	_, cp, _, cfg := fuzzLog(f)
	wk := testKeys(f)
	signer, err := wk.WitnessSigner("witness.example")
	if err != nil {
		f.Fatal(err)
	}
	w, err := NewWitness(signer, filepath.Join(f.TempDir(), "witness.json"), nil)
	if err != nil {
		f.Fatal(err)
	}
	vkey, _ := VerifierKey(cfg.Origin, cfg.Keys.(*custody.Keyring).Identity().Public())
	if err := w.SetLogs([]WitnessedLog{{Origin: cfg.Origin, Key: vkey}}); err != nil {
		f.Fatal(err)
	}
	if _, err := w.AddCheckpoint(append([]byte("old 0\n\n"), cp...)); err != nil {
		f.Fatal(err)
	}
	cosigned := w.Latest(cfg.Origin)
	wv, err := fnote.NewVerifier(custody.WitnessVerifierKey("witness.example", wk.Identity().Public()))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ParseWitnessCheckpoint(cosigned, cfg.Origin, cfg.Verifiers, wv); err != nil {
		f.Fatalf("the witness's own answer: %v", err)
	}
	f.Add(cosigned)
	f.Add(cp)
	f.Add([]byte(cfg.Origin + "\n1\nAAAA\n\n— witness.example AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseWitnessCheckpoint(b, cfg.Origin, cfg.Verifiers, wv)
		if err != nil {
			return
		}
		if c.Origin != cfg.Origin {
			t.Fatalf("accepted a checkpoint of %q", c.Origin)
		}
		if _, err := note.Open(b, note.VerifierList(wv)); err != nil {
			t.Fatalf("accepted a checkpoint the witness did not cosign: %v", err)
		}
	})
}

// A peer witness's answer to add-checkpoint is outside input: whatever
// it answers, Cosign never panics, and returns a cosigned checkpoint only
// when it carries a valid cosignature by the witness's key.
func FuzzCosignAnswer(f *testing.F) {
	k := testKeys(f)
	l := openLog(f, testConfig(f, k, f.TempDir(), nil))
	defer closeLog(f, l)
	ctx, cancel := context.WithTimeout(f.Context(), 30*time.Second)
	defer cancel()
	var last uint64
	for i := range 5 {
		last, _ = l.Append(ctx, event(i))
	}
	if _, err := l.ProveEntry(ctx, last); err != nil {
		f.Fatal(err)
	}
	wk := testKeys(f)
	signer, err := wk.WitnessSigner("witness.lux.example")
	if err != nil {
		f.Fatal(err)
	}
	wv, err := fnote.NewVerifier(custody.WitnessVerifierKey("witness.lux.example", wk.Identity().Public()))
	if err != nil {
		f.Fatal(err)
	}
	raw, _, err := l.Checkpoint(ctx)
	if err != nil {
		f.Fatal(err)
	}
	text, _, _ := bytes.Cut(raw, []byte("\n\n"))
	signed, _ := note.Sign(&note.Note{Text: string(text) + "\n"}, signer)
	_, sig, _ := bytes.Cut(signed, []byte("\n\n"))
	f.Add(200, sig)
	f.Add(409, []byte("3\n"))
	f.Add(409, []byte("99\n"))
	f.Add(409, []byte("a fork\n"))
	f.Add(422, []byte("inconsistent"))
	f.Add(200, []byte("— witness.lux.example AAAA\n"))
	f.Fuzz(func(t *testing.T, status int, answer []byte) {
		calls := 0
		post := func(ctx context.Context, body []byte) (int, []byte, error) {
			calls++
			if calls > 2 {
				t.Fatalf("Cosign posted %d times", calls)
			}
			return status, answer, nil
		}
		cs, err := l.Cosign(ctx, wv, post, 0)
		if err != nil {
			return
		}
		if _, err := note.Open([]byte(cs.Checkpoint), note.VerifierList(wv)); err != nil {
			t.Fatalf("Cosign accepted an answer that is no cosignature: %q", answer)
		}
	})
}

// A restart request comes from an allied node: whatever its body, the
// witness never panics, and it cosigns only a proof, under the log's key,
// of a log.restart naming the checkpoint it held.
func FuzzRestartOf(f *testing.F) {
	k := testKeys(f)
	ctx, cancel := context.WithTimeout(f.Context(), 30*time.Second)
	defer cancel()
	signer, err := testKeys(f).WitnessSigner("w.example")
	if err != nil {
		f.Fatal(err)
	}
	cfg := testConfig(f, k, f.TempDir(), nil)
	vkey, err := VerifierKey(cfg.Origin, k.Identity().Public())
	if err != nil {
		f.Fatal(err)
	}
	state := filepath.Join(f.TempDir(), "w.json")
	w, err := NewWitness(signer, state, []WitnessedLog{{Origin: cfg.Origin, Key: vkey}})
	if err != nil {
		f.Fatal(err)
	}
	l := openLog(f, cfg)
	var last uint64
	for i := range 3 {
		last, _ = l.Append(ctx, event(i))
	}
	if _, err := l.ProveEntry(ctx, last); err != nil {
		f.Fatal(err)
	}
	raw, cp, err := l.Checkpoint(ctx)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := w.AddCheckpoint([]byte("old 0\n\n" + string(raw))); err != nil {
		f.Fatal(err)
	}
	closeLog(f, l)
	held, err := os.ReadFile(state)
	if err != nil {
		f.Fatal(err)
	}
	rec := openLog(f, testConfig(f, k, f.TempDir(), nil))
	rec.Append(ctx, event(0))
	i, err := rec.Append(ctx, LogRestart{Base: 1, BaseRoot: make([]byte, 32), Witnessed: []Witnessed{{Size: cp.Size, Root: cp.Hash}}}.Event("recovery", nil))
	if err != nil {
		f.Fatal(err)
	}
	p, err := rec.ProveEntry(ctx, i)
	if err != nil {
		f.Fatal(err)
	}
	closeLog(f, rec)
	if _, err := w.RestartOf(cfg.Origin, p); err != nil {
		f.Fatalf("the seed restart: %v", err)
	}
	f.Add(p)
	f.Add(p[:len(p)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "w.json")
		if err := os.WriteFile(path, held, 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := NewWitness(signer, path, []WitnessedLog{{Origin: cfg.Origin, Key: vkey}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.RestartOf(cfg.Origin, b); err != nil {
			return
		}
		pc, err := VerifyProof(b, cfg.Origin, cfg.Verifiers[0], nil, nil, 0)
		if err != nil {
			t.Fatalf("cosigned a restart that is not a proof under the log's key: %v", err)
		}
		r, err := ParseLogRestart(pc.Event)
		if err != nil || !slices.ContainsFunc(r.Witnessed, func(w Witnessed) bool { return w.Size == cp.Size && bytes.Equal(w.Root, cp.Hash) }) {
			t.Fatalf("cosigned a restart that does not name the checkpoint held: %+v %v", r, err)
		}
	})
}

// FuzzMergeWitnessStates: a witness's memory is read back from every site
// (node/witness), which is outside input. MergeWitnessStates never panics,
// and takes nothing from a copy but checkpoints the witness cosigned: none
// here, the witness's key being fresh.
func FuzzMergeWitnessStates(f *testing.F) {
	_, vkey, err := note.GenerateKey(nil, "witness.example")
	if err != nil {
		f.Fatal(err)
	}
	wv, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"o":{"size":1,"hash":"AA==","checkpoint":"o\n1\nAA==\n\n— witness.example AAAAAQ==\n"}}`), []byte(nil))
	f.Add([]byte(`{"o":{"size":18446744073709551615}}`), []byte(`{"o":{"size":1}}`))
	f.Add([]byte(`[]`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, copy, local []byte) {
		merged, took, err := MergeWitnessStates(wv, local, copy)
		if err != nil {
			return // the local state is the node directory's, refused whole
		}
		if took != 0 {
			t.Fatalf("took %d logs from a copy the witness did not cosign", took)
		}
		again, _, err := MergeWitnessStates(wv, local)
		if err != nil || !bytes.Equal(merged, again) {
			t.Fatalf("a copy changed the state: %s, want %s (%v)", merged, again, err)
		}
	})
}
