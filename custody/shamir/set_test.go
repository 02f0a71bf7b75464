package shamir

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func newSet(t testing.TB, n, th int) ([]byte, Set, []SetShare) {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	set, shares, err := SplitSet(secret, n, th)
	if err != nil {
		t.Fatal(err)
	}
	return secret, set, shares
}

func TestSetCombineEverySubset(t *testing.T) {
	secret, set, shares := newSet(t, 5, 3)
	if set.Threshold != 3 || set.Total != 5 {
		t.Fatalf("set = %v, want 3 of 5", set)
	}
	if !set.Verify(secret) {
		t.Fatal("the set does not verify its own secret")
	}
	for i, s := range shares {
		if s.Set != set {
			t.Errorf("share %d carries set %v, want %v", i, s.Set, set)
		}
	}
	for k := 3; k <= 5; k++ {
		subsets(shares, k, func(sub []SetShare) {
			for name, combine := range map[string]func([]SetShare) ([]byte, error){
				"CombineSet":  CombineSet,
				"Set.Combine": set.Combine,
			} {
				got, err := combine(sub)
				if err != nil {
					t.Fatalf("%s of %d shares: %v", name, k, err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("%s of %d shares returned a wrong secret", name, k)
				}
			}
		})
	}
	for k := 1; k <= 2; k++ {
		subsets(shares, k, func(sub []SetShare) {
			got, err := CombineSet(sub)
			if !errors.Is(err, ErrNotEnoughShares) {
				t.Fatalf("combine %d shares: err = %v, want ErrNotEnoughShares", k, err)
			}
			want := "not enough shares: need 3 shares, have " + string(rune('0'+k))
			if err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
			if got != nil {
				t.Error("returned a secret with the error")
			}
		})
	}
}

func TestSplitSetRejectsShortSecret(t *testing.T) {
	_, _, err := SplitSet(make([]byte, MinSetSecretLen-1), 3, 2)
	if err == nil || !strings.Contains(err.Error(), "needs at least 16") {
		t.Errorf("err = %v, want a complaint about the secret's length", err)
	}
	if _, _, err := SplitSet(make([]byte, MinSetSecretLen), 3, 2); err != nil {
		t.Errorf("a %d-byte secret: %v", MinSetSecretLen, err)
	}
	if _, _, err := SplitSet(make([]byte, 32), 2, 3); err == nil {
		t.Error("SplitSet accepted 3 of 2")
	}
}

func TestSetCombineErrors(t *testing.T) {
	_, set, shares := newSet(t, 5, 3)
	_, other, otherShares := newSet(t, 5, 3)

	corrupt := func(s SetShare) SetShare {
		s.Share.Y = bytes.Clone(s.Share.Y)
		s.Share.Y[s.Share.X%32] ^= 0x40 // a byte of its own: errors cannot cancel out
		return s
	}
	withSet := func(s SetShare, f func(*Set)) SetShare {
		f(&s.Set)
		return s
	}
	sh := func(s ...SetShare) []SetShare { return s }

	tests := []struct {
		name    string
		expect  *Set // nil: CombineSet
		shares  []SetShare
		is      error
		wantErr string
	}{
		{
			name:    "no shares",
			shares:  nil,
			is:      ErrNotEnoughShares,
			wantErr: "not enough shares: have none",
		},
		{
			name:    "foreign share",
			shares:  sh(shares[0], shares[1], otherShares[2]),
			is:      ErrForeignShare,
			wantErr: "share 3 belongs to another share set (" + other.ID.String() + ", not " + set.ID.String() + ")",
		},
		{
			name:    "foreign share listed first",
			shares:  sh(otherShares[3], shares[0], shares[1]),
			is:      ErrForeignShare,
			wantErr: "share 4 belongs to another share set",
		},
		{
			name:    "all shares of another set than expected",
			expect:  &set,
			shares:  sh(otherShares[0], otherShares[1], otherShares[2]),
			is:      ErrForeignShare,
			wantErr: "share 1 belongs to another share set",
		},
		{
			name:    "too few, expected set",
			expect:  &set,
			shares:  sh(shares[4], shares[2]),
			is:      ErrNotEnoughShares,
			wantErr: "need 3 shares, have 2",
		},
		{
			name:    "corrupt share at threshold",
			shares:  sh(shares[0], corrupt(shares[1]), shares[2]),
			is:      ErrCommitmentMismatch,
			wantErr: "commitment mismatch: these 3 shares do not yield the secret",
		},
		{
			name:    "corrupt share with a spare",
			shares:  sh(shares[0], corrupt(shares[1]), shares[2], shares[3]),
			is:      ErrCommitmentMismatch,
			wantErr: "share 2 disagrees with the other 3 shares of share set " + set.ID.String() + "; combine without it",
		},
		{
			name:    "two corrupt shares with two spares",
			shares:  sh(corrupt(shares[0]), shares[1], shares[2], shares[3], corrupt(shares[4])),
			is:      ErrCommitmentMismatch,
			wantErr: "shares 1, 5 disagree with the other 3 shares",
		},
		{
			name:    "too many corrupt shares",
			shares:  sh(corrupt(shares[0]), corrupt(shares[1]), shares[2], shares[3]),
			is:      ErrCommitmentMismatch,
			wantErr: "the 4 shares do not yield the secret of share set " + set.ID.String() + ", and which of them are corrupt cannot be told",
		},
		{
			name:    "duplicate share",
			shares:  sh(shares[0], shares[1], shares[0]),
			wantErr: "share 1 was given twice",
		},
		{
			name:    "share outside the set",
			shares:  sh(shares[0], shares[1], withX(shares[2], 9)),
			wantErr: "share 9 is outside share set",
		},
		{
			name:    "share x zero",
			shares:  sh(shares[0], shares[1], withX(shares[2], 0)),
			wantErr: "share 0 is outside share set",
		},
		{
			name:    "threshold altered on one share",
			shares:  sh(shares[0], shares[1], withSet(shares[2], func(s *Set) { s.Threshold = 2 })),
			wantErr: "share 3 of share set " + set.ID.String() + " disagrees with the set's threshold, size or commitment (2 of 5)",
		},
		{
			name:    "threshold lowered on every share",
			shares:  sh(withSet(shares[0], func(s *Set) { s.Threshold = 2 }), withSet(shares[1], func(s *Set) { s.Threshold = 2 })),
			is:      ErrCommitmentMismatch,
			wantErr: "commitment mismatch",
		},
		{
			name:    "commitment altered on every share",
			shares:  sh(withSet(shares[0], func(s *Set) { s.Commitment[0] ^= 1 }), withSet(shares[1], func(s *Set) { s.Commitment[0] ^= 1 }), withSet(shares[2], func(s *Set) { s.Commitment[0] ^= 1 })),
			is:      ErrCommitmentMismatch,
			wantErr: "commitment mismatch",
		},
		{
			name:    "truncated y",
			shares:  sh(shares[0], shares[1], withY(shares[2], shares[2].Share.Y[:31])),
			wantErr: "share x = 3 is 31 bytes long but share x = 1 is 32",
		},
		{
			name:    "impossible expected set",
			expect:  &Set{ID: set.ID, Threshold: 1, Total: 5},
			shares:  sh(shares[0], shares[1]),
			wantErr: "threshold 1 of 5 is impossible",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			var err error
			if tt.expect != nil {
				got, err = tt.expect.Combine(tt.shares)
			} else {
				got, err = CombineSet(tt.shares)
			}
			if err == nil {
				t.Fatal("combine succeeded")
			}
			if got != nil {
				t.Error("returned a secret with the error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want one wrapping %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func withX(s SetShare, x byte) SetShare { s.Share.X = x; return s }

func withY(s SetShare, y []byte) SetShare { s.Share.Y = y; return s }

// TestCombineSetIgnoresOrder checks that spare shares of the right set in
// any order still recover the secret: CombineSet is not fooled by which
// share comes first.
func TestCombineSetIgnoresOrder(t *testing.T) {
	secret, _, shares := newSet(t, 4, 2)
	got, err := CombineSet([]SetShare{shares[3], shares[1], shares[0], shares[2]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Error("wrong secret")
	}
}

func TestSetVerify(t *testing.T) {
	secret, set, _ := newSet(t, 3, 2)
	wrong := bytes.Clone(secret)
	wrong[31] ^= 1
	if set.Verify(wrong) {
		t.Error("Verify accepted a secret differing in one bit")
	}
	moved := set
	moved.ID[0] ^= 1
	if moved.Verify(secret) {
		t.Error("Verify accepted the secret under another set id")
	}
	if !set.Verify(secret) {
		t.Error("Verify rejected the right secret")
	}
}

// TestSetCombineAmbiguous gives two genuine shares and two shares of a second
// split of the same secret dressed in the first set's metadata: each pair
// yields the secret, so which pair is bad cannot be told, and Combine must
// not guess.
func TestSetCombineAmbiguous(t *testing.T) {
	secret, set, shares := newSet(t, 4, 2)
	again, err := Split(secret, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	forged := []SetShare{shares[0], shares[1], {Set: set, Share: again[2]}, {Set: set, Share: again[3]}}
	_, err = set.Combine(forged)
	if !errors.Is(err, ErrCommitmentMismatch) || !strings.Contains(err.Error(), "cannot be told") {
		t.Errorf("err = %v, want a mismatch that names no share", err)
	}
	// With one forged share the genuine majority wins.
	_, err = set.Combine(forged[:3])
	if !errors.Is(err, ErrCommitmentMismatch) || !strings.Contains(err.Error(), "share 3 disagrees with the other 2 shares") {
		t.Errorf("err = %v, want share 3 named", err)
	}
}

// TestSetCombineLargeCorrupt bounds the work of looking for a corrupt share
// in the largest sets, wherever the corrupt share is.
func TestSetCombineLargeCorrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("large split")
	}
	secret := make([]byte, 64)
	rand.Read(secret)
	set, shares, err := SplitSet(secret, 255, 128)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{0, 127, 254} {
		t.Run(fmt.Sprint("share ", bad+1), func(t *testing.T) {
			given := slices.Clone(shares)
			given[bad].Share.Y = bytes.Clone(given[bad].Share.Y)
			given[bad].Share.Y[0] ^= 1
			start := time.Now()
			_, err = set.Combine(given)
			want := fmt.Sprintf("share %d disagrees with the other 254 shares", bad+1)
			if !errors.Is(err, ErrCommitmentMismatch) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want share %d named", err, bad+1)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("combining 255 shares with one corrupt took %v", d)
			}
		})
	}
}
