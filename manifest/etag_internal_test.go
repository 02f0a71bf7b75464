package manifest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestFormatETagAsConcatenated: the in-place formatETag gives the string
// the concatenation it replaced gave, for part counts at every width.
func TestFormatETagAsConcatenated(t *testing.T) {
	old := func(d [16]byte, n uint64) string {
		if n == 0 {
			return `"` + hex.EncodeToString(d[:]) + `"`
		}
		return `"` + hex.EncodeToString(d[:]) + "-" + strconv.FormatUint(n, 10) + `"`
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ns := []uint64{0, 1, 9, 10, 10000, math.MaxUint64 - 1, math.MaxUint64}
	for range 200 {
		ns = append(ns, rng.Uint64()>>rng.UintN(64))
	}
	for _, n := range ns {
		var d [16]byte
		for i := range d {
			d[i] = byte(rng.UintN(256))
		}
		if got, want := formatETag(d, n), old(d, n); got != want {
			t.Errorf("formatETag(%x, %d) = %s, want %s", d, n, got, want)
		}
	}
}

// FuzzSkipETag: SkipETag and AppendETagText accept exactly what ReadETag
// accepts, fail with the same error, and leave the same rest; what
// AppendETagText appends is ReadETag's string.
func FuzzSkipETag(f *testing.F) {
	for _, e := range []string{"", `"00112233445566778899aabbccddeeff"`, `"0123456789abcdef0123456789abcdef-2"`, "W/odd", `"abc"`} {
		f.Add(AppendETag(nil, e))
		f.Add(append(AppendETag(nil, e), 1, 2, 3))
	}
	f.Add([]byte{etagString, 34, '"', '0'})
	f.Add(append([]byte{etagString, 34}, `"00112233445566778899aabbccddeeff"`...))
	f.Add(append([]byte{etagMultipart}, make([]byte, 17)...))
	f.Add([]byte{etagMultipart, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x80, 0})
	f.Add([]byte{3})
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantRest, wantErr := ReadETag(b)
		text, textRest, textErr := AppendETagText([]byte("prefix"), b)
		if fmt.Sprint(textErr) != fmt.Sprint(wantErr) || wantErr == nil && (string(text) != "prefix"+want || !bytes.Equal(textRest, wantRest)) {
			t.Fatalf("AppendETagText(%x) = %q, %x, %v; ReadETag's %q, %x, %v", b, text, textRest, textErr, want, wantRest, wantErr)
		}
		gotRest, gotErr := SkipETag(b)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("SkipETag(%x): error %v, ReadETag's %v", b, gotErr, wantErr)
		}
		if gotErr == nil && !bytes.Equal(gotRest, wantRest) {
			t.Fatalf("SkipETag(%x): rest %x, ReadETag's %x", b, gotRest, wantRest)
		}
	})
}
