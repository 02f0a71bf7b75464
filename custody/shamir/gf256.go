package shamir

// Arithmetic in GF(2^8) with the AES reduction polynomial
// x^8 + x^4 + x^3 + x + 1 (0x11b).
//
// Every operation here runs in time independent of its operands: there are no
// table lookups indexed by data and no data-dependent branches. Addition and
// subtraction are both XOR.

// mul returns a·b in GF(2^8). It is a carry-less shift-and-add
// multiplication whose conditional steps are done with masks.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a // add a when the low bit of b is set
		b >>= 1
		carry := -(a >> 7) // 0xff when the high bit of a is set
		a = a<<1 ^ 0x1b&carry
	}
	return p
}

// inv returns the multiplicative inverse of a, computed as a^254 (since
// a^255 = 1 for every non-zero a). inv(0) is 0, which callers never rely on:
// interpolation only inverts differences of distinct non-zero x coordinates.
func inv(a byte) byte {
	// 254 = 0b11111110: square-and-multiply with a fixed sequence.
	a2 := mul(a, a)      // a^2
	a4 := mul(a2, a2)    // a^4
	a8 := mul(a4, a4)    // a^8
	a16 := mul(a8, a8)   // a^16
	a32 := mul(a16, a16) // a^32
	a64 := mul(a32, a32) // a^64
	a128 := mul(a64, a64)
	r := mul(a128, a64) // a^192
	r = mul(r, a32)     // a^224
	r = mul(r, a16)     // a^240
	r = mul(r, a8)      // a^248
	r = mul(r, a4)      // a^252
	return mul(r, a2)   // a^254
}
