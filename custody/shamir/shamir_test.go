package shamir

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// subsets calls f with every subset of s of size k, in lexicographic order.
func subsets[T any](s []T, k int, f func([]T)) {
	var rec func(start int, cur []T)
	rec = func(start int, cur []T) {
		if len(cur) == k {
			f(append([]T(nil), cur...))
			return
		}
		for i := start; i < len(s); i++ {
			rec(i+1, append(cur, s[i]))
		}
	}
	rec(0, nil)
}

func TestSplitCombineEverySubset(t *testing.T) {
	secret := []byte("the root key of a data embassy!!")
	shares, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range shares {
		if s.X != byte(i+1) {
			t.Errorf("share %d has x = %d, want %d", i, s.X, i+1)
		}
		if bytes.Equal(s.Y, secret) {
			t.Errorf("share %d is the secret itself", s.X)
		}
	}
	for k := 3; k <= 5; k++ {
		subsets(shares, k, func(sub []Share) {
			got, err := Combine(sub)
			if err != nil {
				t.Fatalf("combine %v: %v", xs(sub), err)
			}
			if !bytes.Equal(got, secret) {
				t.Errorf("combine %v = %q, want the secret", xs(sub), got)
			}
		})
	}
	subsets(shares, 2, func(sub []Share) {
		got, err := Combine(sub)
		if err != nil {
			t.Fatalf("combine %v: %v", xs(sub), err)
		}
		if bytes.Equal(got, secret) {
			t.Errorf("combine %v of a 3-of-5 split yielded the secret from 2 shares", xs(sub))
		}
	})
}

func xs(shares []Share) []byte {
	var out []byte
	for _, s := range shares {
		out = append(out, s.X)
	}
	return out
}

// TestSplitPerfectSecrecy checks, for t = 2, that one share is a uniformly
// random value whatever the secret: as the random coefficient ranges over
// all 256 values, each share's y takes every value exactly once.
func TestSplitPerfectSecrecy(t *testing.T) {
	for _, secret := range []byte{0x00, 0x01, 0x80, 0xff} {
		for x := 1; x <= 5; x++ {
			var seen [256]bool
			for r := range 256 {
				shares, err := split(bytes.NewReader([]byte{byte(r)}), []byte{secret}, 5, 2)
				if err != nil {
					t.Fatal(err)
				}
				y := shares[x-1].Y[0]
				if seen[y] {
					t.Fatalf("secret %#02x, share %d: y = %#02x for two coefficients; one share leaks the secret", secret, x, y)
				}
				seen[y] = true
			}
		}
	}
}

// TestSplitDeterministic pins the polynomial evaluation: with coefficients
// a1 = 0x02, a2 = 0x03 and secret 0x57, share x = 2 is
// 0x57 + 0x02·2 + 0x03·4 = 0x57 ^ 0x04 ^ 0x0c = 0x5f.
func TestSplitDeterministic(t *testing.T) {
	shares, err := split(bytes.NewReader([]byte{0x02, 0x03}), []byte{0x57}, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x57 ^ 0x02 ^ 0x03,                         // x = 1
		0x57 ^ mul(0x02, 2) ^ mul(0x03, mul(2, 2)), // x = 2
		0x57 ^ mul(0x02, 3) ^ mul(0x03, mul(3, 3)), // x = 3
	}
	if want[1] != 0x5f {
		t.Fatalf("worked example is wrong: %#02x", want[1])
	}
	for i, s := range shares {
		if s.Y[0] != want[i] {
			t.Errorf("share %d = %#02x, want %#02x", s.X, s.Y[0], want[i])
		}
	}
}

func TestSplitUsesRandomness(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	a, err := Split(secret, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Split(secret, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[0].Y, b[0].Y) {
		t.Error("two splits of one secret gave the same first share")
	}
	_, err = split(bytes.NewReader(make([]byte, 10)), secret, 3, 2)
	if err == nil || !strings.Contains(err.Error(), "read randomness") {
		t.Errorf("split with too little randomness: err = %v, want a randomness error", err)
	}
}

func TestSplitParams(t *testing.T) {
	tests := []struct {
		name      string
		secretLen int
		n, t      int
		wantErr   string // "" for success
	}{
		{"smallest", 1, 2, 2, ""},
		{"longest secret, most shares", MaxSecretLen, 255, 2, ""},
		{"highest threshold", 4, 255, 255, ""},
		{"many shares low threshold", 32, 255, 2, ""},
		{"empty secret", 0, 3, 2, "secret is empty"},
		{"secret too long", MaxSecretLen + 1, 3, 2, "more than the 1024 allowed"},
		{"threshold one", 32, 3, 1, "threshold 1 is below 2"},
		{"threshold zero", 32, 3, 0, "threshold 0 is below 2"},
		{"fewer shares than threshold", 32, 2, 3, "2 shares are fewer than the threshold 3"},
		{"too many shares", 32, 256, 3, "256 shares are more than the 255 possible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := make([]byte, tt.secretLen)
			rand.Read(secret)
			shares, err := Split(secret, tt.n, tt.t)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(shares) != tt.n {
				t.Fatalf("got %d shares, want %d", len(shares), tt.n)
			}
			got, err := Combine(shares[len(shares)-tt.t:])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, secret) {
				t.Error("the last t shares do not recover the secret")
			}
		})
	}
}

func TestCombineRejects(t *testing.T) {
	y := func(b ...byte) []byte { return b }
	tests := []struct {
		name    string
		shares  []Share
		wantErr string
	}{
		{"no shares", nil, "need at least 2 shares, have 0"},
		{"one share", []Share{{1, y(1)}}, "need at least 2 shares, have 1"},
		{"x zero", []Share{{1, y(1)}, {0, y(2)}}, "share 2 of 2 has x = 0"},
		{"duplicate x", []Share{{1, y(1)}, {2, y(2)}, {1, y(1)}}, "share x = 1 appears twice"},
		{"lengths differ", []Share{{1, y(1, 2)}, {2, y(2)}}, "share x = 2 is 1 bytes long but share x = 1 is 2"},
		{"empty y", []Share{{1, nil}, {2, nil}}, "share x = 1 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Combine(tt.shares)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("returned %v with an error", got)
			}
		})
	}
}

// TestSplitCombineProperty splits random secrets of random sizes with
// random parameters and checks that a random t-subset, in random order,
// recovers the secret and a random (t-1)-subset does not.
func TestSplitCombineProperty(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	for i := range iterations {
		// Alternate between many shares of short secrets and few shares of
		// long ones, to cover both ranges without a slow test.
		size, n := 1+rng.IntN(64), 2+rng.IntN(MaxShares-1)
		if i%2 == 0 {
			size, n = 1+rng.IntN(MaxSecretLen), 2+rng.IntN(10)
		}
		th := 2 + rng.IntN(n-1)
		secret := make([]byte, size)
		rand.Read(secret)
		shares, err := Split(secret, n, th)
		if err != nil {
			t.Fatalf("split %d bytes %d of %d: %v", size, th, n, err)
		}
		rng.Shuffle(len(shares), func(a, b int) { shares[a], shares[b] = shares[b], shares[a] })
		got, err := Combine(shares[:th])
		if err != nil {
			t.Fatalf("combine %d of %d: %v", th, n, err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("%d of %d shares of a %d-byte secret did not recover it", th, n, size)
		}
		if size >= 8 {
			got, err := Combine(shares[:th-1])
			if th-1 < 2 {
				if err == nil {
					t.Fatal("combine accepted one share")
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, secret) {
				t.Fatalf("%d of %d shares of a %d-byte secret recovered it", th-1, n, size)
			}
		}
	}
}

func TestShareRedacts(t *testing.T) {
	secretY := []byte("SECRET-SHARE-BYTES")
	s := Share{X: 3, Y: secretY}
	set := SetShare{Set: Set{Threshold: 2, Total: 3}, Share: s}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("share", "share", s, "setshare", set)
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", s),
		"%+v":        fmt.Sprintf("%+v", s),
		"%#v":        fmt.Sprintf("%#v", s),
		"slice %v":   fmt.Sprintf("%v", []Share{s}),
		"set %v":     fmt.Sprintf("%v", set),
		"set %#v":    fmt.Sprintf("%#v", set),
		"set %+v":    fmt.Sprintf("%+v", set),
		"slog JSON":  logged.String(),
		"set String": set.String(),
	}
	leaks := []string{
		string(secretY),
		fmt.Sprint([]byte(secretY)[:4]), // "[83 69 67 82"
		"U0VDUkVU",                      // base64 of "SECRET"
		"5345435245",                    // hex of "SECRE"
	}
	for name, out := range outputs {
		for _, leak := range leaks {
			if strings.Contains(out, strings.Trim(leak, "]")) {
				t.Errorf("%s output %q contains the share's bytes (%q)", name, out, leak)
			}
		}
	}
	if !strings.Contains(outputs["%v"], "X: 3") {
		t.Errorf("%%v output %q does not name the share", outputs["%v"])
	}
}

func ExampleSplit() {
	secret := []byte("a 32-byte root key, for example.")
	shares, err := Split(secret, 5, 3)
	if err != nil {
		panic(err)
	}
	got, err := Combine([]Share{shares[4], shares[0], shares[2]})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(got))
	// Output: a 32-byte root key, for example.
}
