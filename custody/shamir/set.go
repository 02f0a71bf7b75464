package shamir

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// MinSetSecretLen is the shortest secret SplitSet accepts. A share set
// carries a commitment to its secret, which lets anyone holding one share
// test guesses of the secret; only a secret too long to guess, such as a key,
// keeps Shamir's guarantee.
const MinSetSecretLen = 16

// commitmentLabel starts the message whose HMAC commits a share set to its
// secret.
const commitmentLabel = "embassy shamir commitment v1"

// Errors of the checked layer. Each is wrapped with the details (which share,
// which set, how many), so test for them with errors.Is.
var (
	// ErrNotEnoughShares means fewer shares than the set's threshold were
	// given. Gather more custodians' shares and try again.
	ErrNotEnoughShares = errors.New("not enough shares")

	// ErrForeignShare means a share belongs to a different share set, for
	// example one of another node or of an older split. Leave it out.
	ErrForeignShare = errors.New("belongs to another share set")

	// ErrCommitmentMismatch means the shares are well formed and enough, yet
	// the secret they yield is not the one the set was made from: at least
	// one share (or its metadata) is corrupt or forged. When the error names
	// the shares that disagree, combine without them.
	ErrCommitmentMismatch = errors.New("commitment mismatch")
)

// A SetID names one split of one secret. It is random, chosen by SplitSet,
// and not secret.
type SetID [16]byte

// String returns the id in hex.
func (id SetID) String() string { return hex.EncodeToString(id[:]) }

// A Set describes one split: its id, its threshold and size, and a
// commitment to its secret. None of it is secret; a node can keep its Set
// to check, later, that custodians bring shares of the right split.
type Set struct {
	ID        SetID
	Threshold int // shares needed, 2..Total
	Total     int // shares made, Threshold..255
	// Commitment is HMAC-SHA256 keyed with the secret over
	// "embassy shamir commitment v1" || ID || Threshold || Total
	// (each of the last two as one byte).
	Commitment [32]byte
}

// String describes the set for people.
func (s Set) String() string {
	return fmt.Sprintf("share set %s (%d of %d)", s.ID, s.Threshold, s.Total)
}

func (s Set) check() error {
	if s.Threshold < MinThreshold || s.Threshold > s.Total || s.Total > MaxShares {
		return fmt.Errorf("share set %s: threshold %d of %d is impossible", s.ID, s.Threshold, s.Total)
	}
	return nil
}

// commit computes the commitment of secret to the set s.
func (s Set) commit(secret []byte) [32]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(commitmentLabel))
	m.Write(s.ID[:])
	m.Write([]byte{byte(s.Threshold), byte(s.Total)})
	var c [32]byte
	m.Sum(c[:0])
	return c
}

// Verify reports whether secret is the secret the set was made from. It
// runs in time independent of where the commitments differ.
func (s Set) Verify(secret []byte) bool {
	c := s.commit(secret)
	return hmac.Equal(c[:], s.Commitment[:])
}

// A SetShare is a Share together with the description of the set it belongs
// to. Its encoding (MarshalBinary) is what a custodian holds.
type SetShare struct {
	Set   Set
	Share Share
}

// String describes the share without its secret bytes.
func (s SetShare) String() string {
	return fmt.Sprintf("share %d of %s", s.Share.X, s.Set)
}

// GoString is String, so that %#v does not print the share's secret bytes.
func (s SetShare) GoString() string { return s.String() }

// LogValue keeps the share's secret bytes out of structured logs.
func (s SetShare) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("set", s.Set.ID.String()),
		slog.Int("x", int(s.Share.X)),
		slog.Int("threshold", s.Set.Threshold),
		slog.Int("total", s.Set.Total),
	)
}

// SplitSet splits secret like Split and tags every share with a new Set:
// a random id, t, n and a commitment to the secret. Combining shares with
// CombineSet or Set.Combine then detects too few shares, shares of another
// set, and corrupt shares, instead of returning a wrong secret.
//
// The secret must be 16..1024 bytes long (see MinSetSecretLen).
func SplitSet(secret []byte, n, t int) (Set, []SetShare, error) {
	return splitSet(rand.Reader, secret, n, t)
}

func splitSet(random io.Reader, secret []byte, n, t int) (Set, []SetShare, error) {
	if len(secret) > 0 && len(secret) < MinSetSecretLen {
		return Set{}, nil, fmt.Errorf("split: secret is %d bytes; a share set needs at least %d, or its commitment makes the secret guessable", len(secret), MinSetSecretLen)
	}
	if err := checkParams(len(secret), n, t); err != nil {
		return Set{}, nil, err
	}
	set := Set{Threshold: t, Total: n}
	if _, err := io.ReadFull(random, set.ID[:]); err != nil {
		return Set{}, nil, fmt.Errorf("read randomness: %w", err)
	}
	set.Commitment = set.commit(secret)
	shares, err := split(random, secret, n, t)
	if err != nil {
		return Set{}, nil, err
	}
	out := make([]SetShare, n)
	for i, s := range shares {
		out[i] = SetShare{Set: set, Share: s}
	}
	return set, out, nil
}

// CombineSet recovers the secret from shares of one share set, checking it
// against the set's commitment. The set is the one most of the shares
// describe (the first share's, on a tie); shares of any other set are an error
// wrapping ErrForeignShare. Use Set.Combine instead when the expected set is
// known, as it is to a node that kept its Set.
func CombineSet(shares []SetShare) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: have none", ErrNotEnoughShares)
	}
	// Count whole Sets, not ids, so that one share with altered metadata
	// does not decide what the others are checked against.
	counts := make(map[Set]int)
	best := shares[0].Set
	for _, s := range shares {
		counts[s.Set]++
		if counts[s.Set] > counts[best] {
			best = s.Set
		}
	}
	return best.Combine(shares)
}

// Bounds on the search for a consistent subset of shares when more than the
// threshold were given and they disagree: at most maxSubsets subsets, and at
// most about maxSearchWork field multiplications in all.
const (
	maxSubsets    = 5000
	maxSearchWork = 20_000_000
)

// Combine recovers the secret from shares, which must all belong to the set
// s, and checks it against the set's commitment. The errors name what was
// wrong:
//
//   - a share of another set: ErrForeignShare;
//   - a share whose metadata disagrees with s, or that lies outside it, or
//     that was given twice: a plain error naming the share;
//   - fewer than s.Threshold shares: ErrNotEnoughShares, saying how many are
//     needed and how many were given;
//   - a secret that does not match the commitment: ErrCommitmentMismatch.
//     When more than the threshold were given, Combine looks for the shares
//     that disagree with the rest and names them.
func (s Set) Combine(shares []SetShare) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var seen [256]bool
	plain := make([]Share, 0, len(shares))
	for _, sh := range shares {
		x := sh.Share.X
		switch {
		case sh.Set.ID != s.ID:
			return nil, fmt.Errorf("share %d %w (%s, not %s)", x, ErrForeignShare, sh.Set.ID, s.ID)
		case sh.Set != s:
			return nil, fmt.Errorf("share %d of share set %s disagrees with the set's threshold, size or commitment (%d of %d)", x, s.ID, sh.Set.Threshold, sh.Set.Total)
		case x == 0 || int(x) > s.Total:
			return nil, fmt.Errorf("share %d is outside share set %s, whose shares are numbered 1 to %d", x, s.ID, s.Total)
		case seen[x]:
			return nil, fmt.Errorf("share %d was given twice", x)
		}
		seen[x] = true
		plain = append(plain, sh.Share)
	}
	if len(plain) < s.Threshold {
		return nil, fmt.Errorf("%w: need %d shares, have %d", ErrNotEnoughShares, s.Threshold, len(plain))
	}
	if err := checkShares(plain); err != nil {
		return nil, err
	}
	secret := interpolate(plain, 0)
	if s.Verify(secret) {
		return secret, nil
	}
	clear(secret)
	if len(plain) == s.Threshold {
		return nil, fmt.Errorf("%w: these %d shares do not yield the secret of share set %s; at least one of them is corrupt", ErrCommitmentMismatch, len(plain), s.ID)
	}
	if bad := s.findBad(plain); len(bad) > 0 {
		return nil, fmt.Errorf("%w: share%s %s disagree%s with the other %d shares of share set %s; combine without %s",
			ErrCommitmentMismatch, plural(len(bad)), joinX(bad), singular(len(bad)), len(plain)-len(bad), s.ID, pronoun(len(bad)))
	}
	return nil, fmt.Errorf("%w: the %d shares do not yield the secret of share set %s, and which of them are corrupt cannot be told", ErrCommitmentMismatch, len(plain), s.ID)
}

// findBad looks for threshold-sized subsets of shares that yield the
// committed secret and returns the x coordinates of the shares that do not
// lie on the polynomials of the best of them, the one that explains the most
// shares. It returns nil if no subset verifies among those it has time to
// try, or if two subsets explain equally many shares but disagree on which
// are bad: then which shares are corrupt cannot be told.
//
// It tries the k cyclic windows of t consecutive shares first, which finds a
// consistent subset whenever t good shares sit together (always, with one
// bad share), then subsets in lexicographic order.
func (s Set) findBad(shares []Share) []byte {
	t, k := s.Threshold, len(shares)
	cost := t * (t + len(shares[0].Y)) // multiplications per interpolation
	work, tries := maxSearchWork, 0
	more := func() bool { return work > 0 && tries < maxSubsets }

	var best []byte
	var isBad [256]bool // the shares best leaves out
	found, ambiguous := false, false
	subset := make([]Share, t)
	try := func(idx func(i int) int) {
		tries++
		within := found // whether the subset lies among best's good shares
		for i := range subset {
			subset[i] = shares[idx(i)]
			within = within && !isBad[subset[i].X]
		}
		if within {
			return // it defines best's polynomial again
		}
		work -= cost
		secret := interpolate(subset, 0)
		ok := s.Verify(secret)
		clear(secret)
		if !ok {
			return
		}
		work -= k * cost
		bad := []byte{}
		for _, sh := range shares {
			y := interpolate(subset, sh.X)
			if !hmac.Equal(y, sh.Y) {
				bad = append(bad, sh.X)
			}
			clear(y)
		}
		switch {
		case !found || len(bad) < len(best):
			best, found, ambiguous = bad, true, false
			isBad = [256]bool{}
			for _, x := range bad {
				isBad[x] = true
			}
		case len(bad) == len(best) && !bytes.Equal(bad, best):
			ambiguous = true
		}
	}

	for start := 0; start < k && more(); start++ {
		try(func(i int) int { return (start + i) % k })
	}
	idx := make([]int, t) // the current combination, in lexicographic order
	for i := range idx {
		idx[i] = i
	}
	for more() {
		try(func(i int) int { return idx[i] })
		// Advance to the next combination.
		i := t - 1
		for i >= 0 && idx[i] == k-t+i {
			i--
		}
		if i < 0 {
			break
		}
		idx[i]++
		for j := i + 1; j < t; j++ {
			idx[j] = idx[j-1] + 1
		}
	}
	if ambiguous {
		return nil
	}
	return best
}

func joinX(xs []byte) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func singular(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}
