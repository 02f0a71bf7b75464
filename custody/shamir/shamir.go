package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Limits on what Split accepts.
const (
	MaxShares    = 255  // at most 255 shares: x coordinates are the non-zero bytes
	MinThreshold = 2    // a threshold of 1 would make every share a copy of the secret
	MaxSecretLen = 1024 // bytes; a root key is 32
)

// A Share is one point of the secret's polynomials: the same X for every
// byte of the secret, one Y byte per secret byte.
//
// Y is secret material. A Share redacts Y when printed with the fmt verbs or
// logged with log/slog.
type Share struct {
	X byte   // the x coordinate, 1..255; never 0, which is where the secret lies
	Y []byte // the polynomials' values at X, as long as the secret
}

// String describes the share without its secret bytes.
func (s Share) String() string {
	return fmt.Sprintf("shamir.Share{X: %d, Y: <%d bytes redacted>}", s.X, len(s.Y))
}

// GoString is String, so that %#v does not print Y either.
func (s Share) GoString() string { return s.String() }

// LogValue keeps Y out of structured logs.
func (s Share) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("x", int(s.X)), slog.Int("len", len(s.Y)))
}

// Split splits secret into n shares, any t of which recover it with Combine.
// Fewer than t shares reveal nothing about the secret: every value of it is
// equally consistent with them. Randomness comes from crypto/rand.
//
// The shares have x coordinates 1..n, in that order. 2 ≤ t ≤ n ≤ 255 and the
// secret must be 1..1024 bytes long.
func Split(secret []byte, n, t int) ([]Share, error) {
	return split(rand.Reader, secret, n, t)
}

// split is Split with its source of randomness exposed, for tests.
func split(random io.Reader, secret []byte, n, t int) ([]Share, error) {
	if err := checkParams(len(secret), n, t); err != nil {
		return nil, err
	}
	// coeffs[k*len(secret)+b] is the coefficient of x^(k+1) in the polynomial
	// of secret byte b. They are uniform, zero included: excluding zero from
	// the top coefficient would rule out one candidate secret per t-1 shares.
	coeffs := make([]byte, (t-1)*len(secret))
	defer clear(coeffs)
	if _, err := io.ReadFull(random, coeffs); err != nil {
		return nil, fmt.Errorf("read randomness: %w", err)
	}
	shares := make([]Share, n)
	for i := range shares {
		x := byte(i + 1)
		y := make([]byte, len(secret))
		for b := range secret {
			// Horner's rule from the highest coefficient down to the secret.
			var acc byte
			for k := t - 2; k >= 0; k-- {
				acc = mul(acc, x) ^ coeffs[k*len(secret)+b]
			}
			y[b] = mul(acc, x) ^ secret[b]
		}
		shares[i] = Share{X: x, Y: y}
	}
	return shares, nil
}

func checkParams(secretLen, n, t int) error {
	switch {
	case secretLen == 0:
		return errors.New("split: secret is empty")
	case secretLen > MaxSecretLen:
		return fmt.Errorf("split: secret is %d bytes, more than the %d allowed", secretLen, MaxSecretLen)
	case t < MinThreshold:
		return fmt.Errorf("split: threshold %d is below %d", t, MinThreshold)
	case n < t:
		return fmt.Errorf("split: %d shares are fewer than the threshold %d", n, t)
	case n > MaxShares:
		return fmt.Errorf("split: %d shares are more than the %d possible", n, MaxShares)
	}
	return nil
}

// Combine recovers the secret from shares by Lagrange interpolation at x = 0.
//
// Combine cannot tell whether it was given enough shares, or the right ones:
// t-1 shares, shares of different secrets or a corrupted share all yield a
// wrong secret without error. Use the checked layer (SplitSet, CombineSet)
// when that matters. Combine does reject inputs that are malformed: fewer
// than two shares, an x coordinate of 0, the same x twice, or Y values of
// different lengths.
func Combine(shares []Share) ([]byte, error) {
	if err := checkShares(shares); err != nil {
		return nil, err
	}
	return interpolate(shares, 0), nil
}

func checkShares(shares []Share) error {
	if len(shares) < 2 {
		return fmt.Errorf("combine: need at least 2 shares, have %d", len(shares))
	}
	var seen [256]bool
	n := len(shares[0].Y)
	for i, s := range shares {
		if s.X == 0 {
			return fmt.Errorf("combine: share %d of %d has x = 0, which no share can have", i+1, len(shares))
		}
		if seen[s.X] {
			return fmt.Errorf("combine: share x = %d appears twice", s.X)
		}
		seen[s.X] = true
		if len(s.Y) == 0 {
			return fmt.Errorf("combine: share x = %d is empty", s.X)
		}
		if len(s.Y) != n {
			return fmt.Errorf("combine: share x = %d is %d bytes long but share x = %d is %d", s.X, len(s.Y), shares[0].X, n)
		}
	}
	return nil
}

// interpolate evaluates at x the polynomials through the shares' points.
// The shares must have distinct x coordinates and Y values of one length.
func interpolate(shares []Share, x byte) []byte {
	out := make([]byte, len(shares[0].Y))
	for j, sj := range shares {
		// The Lagrange basis polynomial of point j, evaluated at x:
		// prod over m != j of (x - x_m) / (x_j - x_m).
		num, den := byte(1), byte(1)
		for m, sm := range shares {
			if m == j {
				continue
			}
			num = mul(num, x^sm.X)
			den = mul(den, sj.X^sm.X)
		}
		l := mul(num, inv(den))
		for i, y := range sj.Y {
			out[i] ^= mul(l, y)
		}
	}
	return out
}
