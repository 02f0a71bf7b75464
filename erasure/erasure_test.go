package erasure

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestEncodeReconstruct(t *testing.T) {
	cases := []struct {
		name string
		k, m int
		n    int
		lose []int
	}{
		{"4+2 lose two data", 4, 2, 1000, []int{0, 3}},
		{"4+2 lose data and parity", 4, 2, 4096, []int{1, 5}},
		{"4+2 odd size", 4, 2, 4099, []int{2}},
		{"3+3 lose three", 3, 3, 777, []int{0, 1, 2}},
		{"6+0 lose none", 6, 0, 100, nil},
		{"1+2 replication-like", 1, 2, 50, []int{0, 1}},
		{"4+2 tiny", 4, 2, 1, []int{0}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.k, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, c.BufferSize(tc.n))
			for i := range tc.n {
				buf[i] = byte(rng.Uint32())
			}
			want := bytes.Clone(buf[:tc.n])
			shards, err := c.Encode(buf, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			got := make([][]byte, len(shards))
			for i := range shards {
				got[i] = bytes.Clone(shards[i])
			}
			for _, i := range tc.lose {
				got[i] = nil
			}
			if err := c.ReconstructData(got); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, tc.n)
			if err := c.Join(out, got, tc.n); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Fatal("reconstructed stripe differs")
			}
		})
	}
}

func TestTooFewShards(t *testing.T) {
	c, _ := New(4, 2)
	buf := make([]byte, c.BufferSize(100))
	shards, _ := c.Encode(buf, 100)
	shards[0], shards[1], shards[2] = nil, nil, nil
	if err := c.ReconstructData(shards); !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("err = %v, want ErrTooFewShards", err)
	}
}

func TestInvalidCoding(t *testing.T) {
	for _, km := range [][2]int{{0, 2}, {4, -1}, {60, 10}} {
		if _, err := New(km[0], km[1]); err == nil {
			t.Errorf("New(%d, %d) accepted", km[0], km[1])
		}
	}
}

func TestChecksumBindsIdentity(t *testing.T) {
	id := BlockID{Version: [16]byte{1}, Part: 1, Stripe: 3, Shard: 2}
	data := []byte("shard block bytes")
	var sum [SumSize]byte
	Sum(&sum, id, data)
	stored := append(bytes.Clone(data), sum[:]...)
	if got, err := Verify(id, stored); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Verify genuine = %q, %v", got, err)
	}
	mutate := []struct {
		name string
		id   BlockID
		b    []byte
	}{
		{"other stripe", BlockID{Version: id.Version, Part: 1, Stripe: 4, Shard: 2}, stored},
		{"other shard", BlockID{Version: id.Version, Part: 1, Stripe: 3, Shard: 1}, stored},
		{"other part", BlockID{Version: id.Version, Part: 2, Stripe: 3, Shard: 2}, stored},
		{"other version", BlockID{Part: 1, Stripe: 3, Shard: 2}, stored},
		{"bit rot", id, func() []byte { b := bytes.Clone(stored); b[0] ^= 1; return b }()},
		{"torn", id, stored[:len(stored)-1]},
		{"empty", id, nil},
	}
	for _, tc := range mutate {
		if _, err := Verify(tc.id, tc.b); !errors.Is(err, ErrChecksum) {
			t.Errorf("%s: err = %v, want ErrChecksum", tc.name, err)
		}
	}
}

func BenchmarkEncode4p2(b *testing.B) {
	c, _ := New(4, 2)
	n := 1 << 20
	buf := make([]byte, c.BufferSize(n))
	b.SetBytes(int64(n))
	for b.Loop() {
		if _, err := c.Encode(buf, n); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSum256KiB(b *testing.B) {
	data := make([]byte, 256<<10)
	var s [SumSize]byte
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Sum(&s, BlockID{}, data)
	}
}

// TestReconstructSome: only the shards asked for are rebuilt, into the
// caller's buffers when they have the capacity, and equal the originals;
// the others stay missing.
func TestReconstructSome(t *testing.T) {
	c, _ := New(4, 2)
	const n = 4099
	buf := make([]byte, c.BufferSize(n))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		buf[i] = byte(rng.Uint32())
	}
	shards, err := c.Encode(buf, n)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]byte, len(shards))
	for i := range shards {
		got[i] = bytes.Clone(shards[i])
	}
	// Lose data shard 1 and parity shard 5; ask for 1 only, then 5.
	mine := make([]byte, 0, len(shards[5]))
	got[1], got[5] = nil, mine
	if err := c.ReconstructSome(got, []bool{false, true, false, false, false, false}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[1], shards[1]) {
		t.Error("shard 1 rebuilt wrong")
	}
	if len(got[5]) != 0 {
		t.Error("shard 5 rebuilt though not asked for")
	}
	required := []bool{false, false, false, false, false, true}
	if err := c.ReconstructSome(got, required); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[5], shards[5]) {
		t.Error("shard 5 rebuilt wrong")
	}
	if &got[5][0] != &mine[:1][0] {
		t.Error("shard 5 not rebuilt into the buffer given")
	}
	got[0], got[2], got[3] = nil, nil, nil
	if err := c.ReconstructSome(got, required); !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("err = %v, want ErrTooFewShards", err)
	}
	if err := c.ReconstructSome(got, required[:4]); err == nil {
		t.Fatal("a required list of the wrong length was accepted")
	}
}
