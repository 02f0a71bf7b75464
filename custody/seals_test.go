package custody

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/seal"
)

// memSealStore is a SealStore that keeps what it was given, as a file
// would: each save replaces the last.
type memSealStore struct {
	mu    sync.Mutex
	saves int
	last  []byte
	fail  error
}

func (s *memSealStore) SaveSeals(recs []SealRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.saves++
	s.last = MarshalSealRecords(recs)
	return nil
}

func (s *memSealStore) load(t *testing.T) []SealRecord {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	recs, err := ParseSealRecords(s.last)
	if err != nil {
		t.Fatalf("the store's records do not parse: %v", err)
	}
	return recs
}

// sealsOf returns the counter's count of the key with id.
func sealsOf(c *SealCounter, id [8]byte) uint64 {
	for _, s := range c.States() {
		if s.KeyID == hex.EncodeToString(id[:]) {
			return s.Seals
		}
	}
	return 0
}

func countedKeyring(t *testing.T, k *Keyring, store SealStore, l SealLimits, log *slog.Logger) *Keyring {
	t.Helper()
	return k.WithSealCounter(NewSealCounter(store, l, log))
}

func sealN(t *testing.T, k *Keyring, n int) {
	t.Helper()
	for range n {
		if _, _, err := k.SealManifest([]byte("aad"), []byte("plain")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSealCounterRecordsBlocksAhead(t *testing.T) {
	store := &memSealStore{}
	k := countedKeyring(t, testKeyring(t), store, SealLimits{Block: 4}, nil)
	sealN(t, k, 9)
	// Seals 1, 5 and 9 each needed a block: three writes, not nine.
	if store.saves != 3 {
		t.Errorf("9 seals in blocks of 4 wrote the store %d times, want 3", store.saves)
	}
	recs := store.load(t)
	if len(recs) != 1 || recs[0].Seals != 12 || recs[0].KeyID != hex.EncodeToString(k.keyID[:]) {
		t.Errorf("store holds %+v, want the manifest key reserved through 12", recs)
	}
	if got := sealsOf(k.SealCounter(), k.keyID); got != 9 {
		t.Errorf("counter shows %d seals, want 9", got)
	}
}

// A process killed at any point leaves a count at least what it sealed:
// the new counter starts from the stored reservation.
func TestSealCountNeverLowerAfterRestart(t *testing.T) {
	store := &memSealStore{}
	base := testKeyring(t)
	for _, made := range []int{1, 3, 4, 5, 11} {
		first := countedKeyring(t, base, store, SealLimits{Block: 4}, nil)
		before := sealsOf(first.SealCounter(), base.keyID)
		if recs := store.load(t); recs != nil {
			if err := first.SealCounter().Merge(recs); err != nil {
				t.Fatal(err)
			}
			before = sealsOf(first.SealCounter(), base.keyID)
		}
		sealN(t, first, made)
		dk, _ := seal.NewDataKey()
		if _, err := first.WrapDataKey("registry", 1, dk, nil); err != nil {
			t.Fatal(err)
		}
		// "Kill": drop the counter without a word; start another from the store.
		again := NewSealCounter(store, SealLimits{Block: 4}, nil)
		if err := again.Merge(store.load(t)); err != nil {
			t.Fatal(err)
		}
		if got, want := sealsOf(again, base.keyID), before+uint64(made); got < want {
			t.Errorf("after %d seals on top of %d, a restarted counter shows %d: lower than what was sealed", made, before, got)
		}
		kid, _ := base.VaultKeyID("registry", 1)
		if sealsOf(again, kid) < 1 {
			t.Errorf("the vault key's wrap was not counted across the restart")
		}
	}
}

// The counts of a copy restored from an older backup and of a newer copy
// merge to the newer: the maximum of what survives.
func TestSealCountMergeTakesMaximum(t *testing.T) {
	base := testKeyring(t)
	old, newer := &memSealStore{}, &memSealStore{}
	a := countedKeyring(t, base, old, SealLimits{Block: 2}, nil)
	sealN(t, a, 3)
	b := countedKeyring(t, base, newer, SealLimits{Block: 2}, nil)
	b.SealCounter().Merge(old.load(t))
	sealN(t, b, 10)
	for _, order := range [][]*memSealStore{{old, newer}, {newer, old}} {
		c := NewSealCounter(nil, SealLimits{}, nil)
		for _, s := range order {
			c.Merge(s.load(t))
		}
		if got := sealsOf(c, base.keyID); got < 13 {
			t.Errorf("merged counts show %d seals, want at least the 13 made", got)
		}
	}
	// Seals made after a merge add to the highest copy, not to the lower.
	c := countedKeyring(t, base, nil, SealLimits{}, nil)
	c.SealCounter().Merge(old.load(t))
	sealN(t, c, 2)
	c.SealCounter().Merge(newer.load(t))
	if got, want := sealsOf(c.SealCounter(), base.keyID), sealsOf(func() *SealCounter {
		x := NewSealCounter(nil, SealLimits{}, nil)
		x.Merge(newer.load(t))
		return x
	}(), base.keyID)+2; got != want {
		t.Errorf("2 seals after merging, then a higher copy: %d, want %d", got, want)
	}
}

type logRecords struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.Key + "=" + a.Value.String()); return true })
	h.msgs = append(h.msgs, b.String())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

func TestSealWarningsAndLimit(t *testing.T) {
	logs := &logRecords{}
	k := countedKeyring(t, testKeyring(t), &memSealStore{}, SealLimits{Limit: 6, Warn: []uint64{4, 2}, Block: 4}, slog.New(logs))
	sealN(t, k, 1)
	if len(logs.msgs) != 0 {
		t.Fatalf("a warning below the first threshold: %q", logs.msgs)
	}
	sealN(t, k, 3)
	if len(logs.msgs) != 2 {
		t.Fatalf("after 4 seals with thresholds 2 and 4: %d warnings, want 2: %q", len(logs.msgs), logs.msgs)
	}
	for _, m := range logs.msgs {
		if !strings.HasPrefix(m, "WARN") || !strings.Contains(m, "rotate_with=embassy key rotate-root") || !strings.Contains(m, hex.EncodeToString(k.keyID[:])) {
			t.Errorf("warning %q does not name the key and the rotation command", m)
		}
	}
	sealN(t, k, 2)
	if len(logs.msgs) != 2 {
		t.Errorf("a threshold was logged twice: %q", logs.msgs)
	}
	_, _, err := k.SealManifest([]byte("aad"), []byte("plain"))
	if !errors.Is(err, ErrSealLimit) || !strings.Contains(err.Error(), "embassy key rotate-root") || !strings.Contains(err.Error(), hex.EncodeToString(k.keyID[:])) {
		t.Fatalf("the seal past the limit returned %v, want ErrSealLimit naming the key and 'embassy key rotate-root'", err)
	}
	// Vault keys have limits of their own, and name their rotation.
	dk, _ := seal.NewDataKey()
	for range 6 {
		if _, err := k.WrapDataKey("registry/abc", 1, dk, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = k.WrapDataKey("registry/abc", 1, dk, nil)
	if !errors.Is(err, ErrSealLimit) || !strings.Contains(err.Error(), "'embassy key rotate registry'") || !strings.Contains(err.Error(), "generation 1") {
		t.Fatalf("the wrap past the limit returned %v, want ErrSealLimit naming vault registry, generation 1 and 'embassy key rotate registry'", err)
	}
	// A new generation is a new key: its count starts at zero.
	if _, err := k.WrapDataKey("registry/abc", 2, dk, nil); err != nil {
		t.Fatalf("generation 2 refused after generation 1 reached its limit: %v", err)
	}
}

// Rotation resets the count: a new root's manifest key and vault keys, and
// a vault key's next generation, are new keys with counts of their own.
func TestSealRotationResets(t *testing.T) {
	c := NewSealCounter(&memSealStore{}, SealLimits{Limit: 5, Block: 2}, nil)
	old := testKeyring(t).WithSealCounter(c)
	sealN(t, old, 5)
	dk, _ := seal.NewDataKey()
	for range 5 {
		old.WrapDataKey("registry", 1, dk, nil)
	}
	if _, _, err := old.SealManifest(nil, nil); !errors.Is(err, ErrSealLimit) {
		t.Fatalf("the old manifest key sealed past its limit: %v", err)
	}
	next := testKeyring(t).WithSealCounter(c).WithPrevious(old)
	if _, _, err := next.SealManifest(nil, nil); err != nil {
		t.Errorf("the new root's manifest key refused its first seal: %v", err)
	}
	if _, err := next.WrapDataKey("registry", 1, dk, nil); err != nil {
		t.Errorf("the new root's vault key refused its first wrap: %v", err)
	}
	if _, err := old.WrapDataKey("registry", 2, dk, nil); err != nil {
		t.Errorf("the next generation refused its first wrap: %v", err)
	}
	if got := sealsOf(c, next.keyID); got != 1 {
		t.Errorf("the new manifest key shows %d seals, want 1", got)
	}
	// Keyrings made from a counted one count in the same counter.
	if next.WithIdentity(nil).SealCounter() != c || RootlessCopy(next).SealCounter() != c {
		t.Error("a keyring made from a counted one lost its counter")
	}
}

// A count that cannot be recorded is not handed out.
func TestSealRefusedWhenNotRecorded(t *testing.T) {
	store := &memSealStore{fail: errors.New("disk full")}
	k := countedKeyring(t, testKeyring(t), store, SealLimits{Block: 4}, nil)
	if _, _, err := k.SealManifest(nil, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("a seal whose count could not be recorded returned %v", err)
	}
	store.fail = nil
	sealN(t, k, 1)
	if got := sealsOf(k.SealCounter(), k.keyID); got != 1 {
		t.Errorf("after a refused and a made seal the count is %d, want 1", got)
	}
}

func TestParseSealRecords(t *testing.T) {
	good := `{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":5},{"key_id":"00112233445566ff","vault":"registry/x","generation":2,"seals":7}]}`
	recs, err := ParseSealRecords([]byte(good))
	if err != nil || len(recs) != 2 || recs[1].Vault != "registry/x" || recs[1].Seals != 7 {
		t.Fatalf("ParseSealRecords(good) = %+v, %v", recs, err)
	}
	if back, err := ParseSealRecords(MarshalSealRecords(recs)); err != nil || len(back) != 2 || back[0] != recs[0] || back[1] != recs[1] {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	for name, in := range map[string]string{
		"unknown field":     `{"format":1,"keys":[],"extra":1}`,
		"other format":      `{"format":2,"keys":[]}`,
		"short key id":      `{"format":1,"keys":[{"key_id":"0123","seals":5}]}`,
		"upper-case id":     `{"format":1,"keys":[{"key_id":"0123456789ABCDEF","seals":5}]}`,
		"negative count":    `{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":-5}]}`,
		"vault, no gen":     `{"format":1,"keys":[{"key_id":"0123456789abcdef","vault":"v","seals":5}]}`,
		"gen, no vault":     `{"format":1,"keys":[{"key_id":"0123456789abcdef","generation":3,"seals":5}]}`,
		"listed twice":      `{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":5},{"key_id":"0123456789abcdef","seals":9}]}`,
		"trailing data":     good + `{}`,
		"not json":          `seals: 5`,
		"unknown key field": `{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":5,"x":1}]}`,
	} {
		if _, err := ParseSealRecords([]byte(in)); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}

func FuzzParseSealRecords(f *testing.F) {
	f.Add([]byte(`{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":5},{"key_id":"00112233445566ff","vault":"registry/x","generation":2,"seals":7}]}`))
	f.Add([]byte(`{"format":1,"keys":[]}`))
	f.Add([]byte(`{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":18446744073709551615}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := ParseSealRecords(b)
		if err != nil {
			return
		}
		// What parses merges without error and encodes to what parses
		// to the same records.
		c := NewSealCounter(nil, SealLimits{}, nil)
		if err := c.Merge(recs); err != nil {
			t.Fatalf("parsed records do not merge: %v", err)
		}
		back, err := ParseSealRecords(MarshalSealRecords(recs))
		if err != nil || len(back) != len(recs) {
			t.Fatalf("re-encoded records: %v", err)
		}
		for i := range recs {
			if back[i] != recs[i] {
				t.Fatalf("record %d: %+v, then %+v", i, recs[i], back[i])
			}
		}
	})
}

// BenchmarkSealManifest: what counting adds to one seal (a mutex and an
// add; a durable write per block, here to memory).
func BenchmarkSealManifest(b *testing.B) {
	r, _ := GenerateRootKey()
	plain, _ := NewKeyring(r)
	for _, c := range []struct {
		name string
		k    *Keyring
	}{{"plain", plain}, {"counted", plain.WithSealCounter(NewSealCounter(&memSealStore{}, SealLimits{}, nil))}} {
		b.Run(c.name, func(b *testing.B) {
			msg := make([]byte, 350)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := c.k.SealManifest([]byte("EMBM\x02"), msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// A count loaded past a threshold is logged when it is loaded: a node
// restarted with a key past one says so at once, not at its next seal.
func TestSealWarningAtLoad(t *testing.T) {
	logs := &logRecords{}
	c := NewSealCounter(nil, SealLimits{Limit: 100, Warn: []uint64{10, 50}}, slog.New(logs))
	c.Merge([]SealRecord{{KeyID: "0123456789abcdef", Vault: "registry", Generation: 3, Seals: 60}})
	if len(logs.msgs) != 2 || !strings.Contains(logs.msgs[1], "rotate_with=embassy key rotate registry") || !strings.Contains(logs.msgs[1], "generation 3") {
		t.Errorf("loading a count of 60 past thresholds 10 and 50 logged %q", logs.msgs)
	}
}

// A stored count near 2^64 (a seals.json edited by hand, "as high as it
// goes" to stop the node) refuses seals: it must not wrap to a count
// under the limit.
func TestSealCountNearTheTopRefuses(t *testing.T) {
	k := testKeyring(t)
	id := hex.EncodeToString(k.keyID[:])
	for _, n := range []uint64{1<<64 - 1, 1<<64 - 2, 1<<64 - DefaultSealBlock} {
		store := &memSealStore{}
		c := countedKeyring(t, k, store, SealLimits{}, nil)
		if err := c.SealCounter().Merge([]SealRecord{{KeyID: id, Seals: n}}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, _, err := c.SealManifest(nil, nil); !errors.Is(err, ErrSealLimit) {
				t.Fatalf("a stored count of %d, seal %d: %v; want ErrSealLimit", n, i+1, err)
			}
		}
		if got := sealsOf(c.SealCounter(), k.keyID); got < DefaultSealLimit {
			t.Errorf("a stored count of %d shows as %d", n, got)
		}
	}
}

// A block configured near 2^64 reserves up to the limit: no seal is made
// past what the store holds.
func TestSealHugeBlockStillRecordsAhead(t *testing.T) {
	k := testKeyring(t)
	store := &memSealStore{}
	c := countedKeyring(t, k, store, SealLimits{Block: 1<<64 - 1}, nil)
	if err := c.SealCounter().Merge([]SealRecord{{KeyID: hex.EncodeToString(k.keyID[:]), Seals: 10}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sealN(t, c, 1)
		recs := store.load(t)
		if len(recs) != 1 || recs[0].Seals < sealsOf(c.SealCounter(), k.keyID) {
			t.Fatalf("after seal %d the store holds %+v, the counter %d: a seal past what is recorded", i+1, recs, sealsOf(c.SealCounter(), k.keyID))
		}
	}
}
