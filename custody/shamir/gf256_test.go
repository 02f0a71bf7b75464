package shamir

import "testing"

// refMul is the textbook branching "Russian peasant" multiplication in the
// AES field, written independently of mul to serve as its reference.
func refMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}

func TestMulKnownAnswers(t *testing.T) {
	// Worked examples from FIPS 197, sections 4.2 and 4.2.1.
	tests := []struct {
		name    string
		a, b, p byte
	}{
		{"57*83", 0x57, 0x83, 0xc1},
		{"57*13", 0x57, 0x13, 0xfe},
		{"57*02", 0x57, 0x02, 0xae},
		{"57*04", 0x57, 0x04, 0x47},
		{"57*08", 0x57, 0x08, 0x8e},
		{"57*10", 0x57, 0x10, 0x07},
		{"zero", 0x00, 0xff, 0x00},
		{"one", 0x01, 0xa5, 0xa5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mul(tt.a, tt.b); got != tt.p {
				t.Errorf("mul(%#02x, %#02x) = %#02x, want %#02x", tt.a, tt.b, got, tt.p)
			}
			if got := mul(tt.b, tt.a); got != tt.p {
				t.Errorf("mul(%#02x, %#02x) = %#02x, want %#02x", tt.b, tt.a, got, tt.p)
			}
		})
	}
}

// TestMulMatchesLogTables compares mul on all 65,536 pairs against the
// classic log/exp-table multiplication with generator 0x03.
func TestMulMatchesLogTables(t *testing.T) {
	var exp [255]byte
	var log [256]int
	x := byte(1)
	for i := range exp {
		exp[i] = x
		log[x] = i
		x = refMul(x, 0x03)
	}
	if x != 1 {
		t.Fatalf("0x03 does not have order 255 in the reference field")
	}
	for i := range exp {
		for j := range i {
			if exp[i] == exp[j] {
				t.Fatalf("0x03^%d = 0x03^%d: the reference tables are wrong", i, j)
			}
		}
	}
	for a := range 256 {
		for b := range 256 {
			want := byte(0)
			if a != 0 && b != 0 {
				want = exp[(log[a]+log[b])%255]
			}
			if got := mul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#02x, %#02x) = %#02x, want %#02x", a, b, got, want)
			}
			if got := refMul(byte(a), byte(b)); got != want {
				t.Fatalf("refMul(%#02x, %#02x) = %#02x, want %#02x", a, b, got, want)
			}
		}
	}
}

func TestInv(t *testing.T) {
	// FIPS 197 section 5.1.1: the inverse of {53} is {ca}.
	if got := inv(0x53); got != 0xca {
		t.Errorf("inv(0x53) = %#02x, want 0xca", got)
	}
	if got := inv(0); got != 0 {
		t.Errorf("inv(0) = %#02x, want 0", got)
	}
	for a := 1; a < 256; a++ {
		if got := mul(byte(a), inv(byte(a))); got != 1 {
			t.Errorf("a·inv(a) = %#02x for a = %#02x, want 1", got, a)
		}
	}
}

func BenchmarkMul(b *testing.B) {
	var acc byte = 1
	for i := 0; b.Loop(); i++ {
		acc = mul(acc^byte(i), 0x57)
	}
	sink = acc
}

var sink byte
