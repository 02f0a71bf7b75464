package audit

import (
	"testing"
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
