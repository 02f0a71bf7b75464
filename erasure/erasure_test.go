package erasure

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
)

const (
	blake3Vector = "d7c43853692c54d7f1ac94e6575fd25df85bbcb1a1b035789f38abc4bcff15ec"
	xxh3Vector   = "0fbb47d341e2b7ccd28009188d64380c"
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
	for _, c := range []Checksum{BLAKE3, XXH3} {
		t.Run(c.String(), func(t *testing.T) {
			id := BlockID{Version: [16]byte{1}, Part: 1, Stripe: 3, Shard: 2}
			data := []byte("shard block bytes")
			var sum [MaxSumSize]byte
			stored := append(bytes.Clone(data), c.Sum(sum[:], id, data)...)
			if len(stored) != len(data)+c.Size() {
				t.Fatalf("stored block of %d bytes, want %d", len(stored), len(data)+c.Size())
			}
			if got, err := c.Verify(id, stored); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Verify genuine = %q, %v", got, err)
			}
			other := BLAKE3
			if c == BLAKE3 {
				other = XXH3
			}
			mutate := []struct {
				name string
				c    Checksum
				id   BlockID
				b    []byte
			}{
				{"other stripe", c, BlockID{Version: id.Version, Part: 1, Stripe: 4, Shard: 2}, stored},
				{"other shard", c, BlockID{Version: id.Version, Part: 1, Stripe: 3, Shard: 1}, stored},
				{"other part", c, BlockID{Version: id.Version, Part: 2, Stripe: 3, Shard: 2}, stored},
				{"other version", c, BlockID{Part: 1, Stripe: 3, Shard: 2}, stored},
				{"bit rot", c, id, func() []byte { b := bytes.Clone(stored); b[0] ^= 1; return b }()},
				{"bit rot in the checksum", c, id, func() []byte { b := bytes.Clone(stored); b[len(b)-1] ^= 1; return b }()},
				{"torn", c, id, stored[:len(stored)-1]},
				{"empty", c, id, nil},
				{"read as the other algorithm", other, id, stored},
			}
			for _, tc := range mutate {
				if _, err := tc.c.Verify(tc.id, tc.b); !errors.Is(err, ErrChecksum) {
					t.Errorf("%s: err = %v, want ErrChecksum", tc.name, err)
				}
			}
		})
	}
}

// TestChecksumVectors pins both algorithms' bytes, as a second reader
// written from docs/storage-format.md computes them: the hash of the
// 37-byte header (domain tag, blob id, BE32 part, BE64 stripe, shard
// index) followed by the shard bytes, in one call of the reference
// function. The XXH3-128 value was checked with xxhsum -H2 (the xxHash
// reference implementation, Debian package xxhash) over the same 37+17
// bytes; the BLAKE3-256 value is what every version before XXH3 wrote.
func TestChecksumVectors(t *testing.T) {
	id := BlockID{Version: [16]byte{0: 0x01, 15: 0xff}, Part: 7, Stripe: 0x0102030405, Shard: 5}
	data := []byte("shard block bytes")
	for _, tc := range []struct {
		c    Checksum
		want string
	}{
		{BLAKE3, blake3Vector},
		{XXH3, xxh3Vector},
	} {
		var sum [MaxSumSize]byte
		if got := hex.EncodeToString(tc.c.Sum(sum[:], id, data)); got != tc.want {
			t.Errorf("%v = %s, want %s", tc.c, got, tc.want)
		}
	}
	// The streaming hashers over header then block agree with one-shot
	// hashes of their concatenation at every length around the hashers'
	// internal block sizes (XXH3: 16, 128, 240, 1024 bytes; BLAKE3: 64,
	// 1024).
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 256<<10+1000)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for _, n := range []int{0, 1, 15, 16, 17, 91, 128, 129, 203, 204, 240, 241, 987, 1024, 1025, 1087, 2048, 4096 + 37, 65536, 256 << 10, len(big)} {
		block := big[:n]
		for _, c := range []Checksum{BLAKE3, XXH3} {
			domain := "EMBSHDv1"
			if c == XXH3 {
				domain = "EMBSHDv2"
			}
			hdr := id.header(domain)
			whole := append(hdr[:], block...)
			var want []byte
			if c == XXH3 {
				s := xxh3.Hash128(whole).Bytes()
				want = s[:]
			} else {
				s := blake3.Sum256(whole)
				want = s[:]
			}
			var sum [MaxSumSize]byte
			if got := c.Sum(sum[:], id, block); !bytes.Equal(got, want) {
				t.Fatalf("%v over %d bytes: streaming %x, one-shot %x", c, n, got, want)
			}
		}
	}
}

func TestChecksumNames(t *testing.T) {
	for _, c := range []Checksum{BLAKE3, XXH3} {
		b, err := c.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Checksum = 9
		if err := back.UnmarshalText(b); err != nil || back != c {
			t.Fatalf("%s: read back %v, %v", b, back, err)
		}
	}
	var c Checksum
	if err := c.UnmarshalText([]byte("sha1")); !errors.Is(err, ErrUnknownChecksum) || !strings.Contains(err.Error(), `"sha1"`) {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := Checksum(2).MarshalText(); !errors.Is(err, ErrUnknownChecksum) {
		t.Fatalf("unknown value marshalled: %v", err)
	}
	if _, err := Checksum(7).Verify(BlockID{}, make([]byte, 64)); !errors.Is(err, ErrUnknownChecksum) || !strings.Contains(err.Error(), "7") {
		t.Fatalf("Verify with an unknown algorithm: %v", err)
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

// BenchmarkSum256KiB: a full 4+2 block of a 1 MiB stripe, each algorithm.
func BenchmarkSum256KiB(b *testing.B) {
	data := make([]byte, 256<<10)
	for _, c := range []Checksum{BLAKE3, XXH3} {
		b.Run(c.String(), func(b *testing.B) {
			var s [MaxSumSize]byte
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c.Sum(s[:], BlockID{}, data)
			}
		})
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

// TestCodingInCallersGoroutine: coding a full stripe (shards of 256 KiB,
// as the engine's) starts no goroutines. The library's default split one
// such shard across ~16 new goroutines per call, and a repair coding eight
// versions at once on a loaded machine spent its Reed-Solomon time waiting
// for them to be scheduled.
func TestCodingInCallersGoroutine(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c, err := New(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1<<20 + 28
	buf := make([]byte, c.BufferSize(n))
	for i := range n {
		buf[i] = byte(i * 7)
	}
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			t.Fatalf("this Go has no %s metric (Go 1.26 does)", s[0].Name)
		}
		return s[0].Value.Uint64()
	}
	const calls = 20
	before := created()
	for range calls {
		shards, err := c.Encode(buf, n)
		if err != nil {
			t.Fatal(err)
		}
		lost := make([][]byte, len(shards))
		copy(lost, shards)
		lost[0], lost[5] = make([]byte, 0, len(shards[0])), make([]byte, 0, len(shards[5]))
		if err := c.ReconstructData(lost); err != nil {
			t.Fatal(err)
		}
		if err := c.ReconstructSome(lost, []bool{false, false, false, false, false, true}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(lost[0], shards[0]) || !bytes.Equal(lost[5], shards[5]) {
			t.Fatal("rebuilt wrong")
		}
	}
	// Fewer than one a call: the runtime may start one of its own meanwhile.
	if d := created() - before; d >= calls {
		t.Fatalf("%d calls of each coding function started %d goroutines", calls, d)
	}
}

// TestVerifyIn: summing and verifying a block in place, with the header written into
// the room before it, accepts exactly what Verify accepts, for both
// algorithms and sizes around XXH3's 1 KiB blocks, leaves the block's bytes
// as they were, and refuses a changed byte, checksum or identity.
func TestVerifyIn(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []Checksum{XXH3, BLAKE3} {
		for _, n := range []int{0, 1, 63, 64, 1000, 1023, 1024, 1025, 2048 - 37, 4096, 256<<10 + 28} {
			id := BlockID{Part: rng.Uint32(), Stripe: rng.Uint64(), Shard: uint8(rng.UintN(6))}
			for i := range id.Version {
				id.Version[i] = byte(rng.Uint32())
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			var sum [MaxSumSize]byte
			stored := append(bytes.Clone(data), c.Sum(sum[:], id, data)...)
			buf := make([]byte, HeadRoom+len(stored))
			for i := range HeadRoom {
				buf[i] = 0xee // scratch: whatever it holds must not matter
			}
			copy(buf[HeadRoom:], stored)
			in := make([]byte, HeadRoom+n)
			copy(in[HeadRoom:], data)
			if got := c.SumIn(make([]byte, MaxSumSize), id, in); !bytes.Equal(got, stored[n:]) || !bytes.Equal(in[HeadRoom:], data) {
				t.Fatalf("%v, %d bytes: SumIn = %x, want Sum's %x, the block untouched", c, n, got, stored[n:])
			}
			got, err := c.VerifyIn(id, buf)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%v, %d bytes: VerifyIn = %d bytes, %v; want the data", c, n, len(got), err)
			}
			if len(got) > 0 && &got[0] != &buf[HeadRoom] {
				t.Fatalf("%v, %d bytes: the data returned is not within buf", c, n)
			}
			if !bytes.Equal(buf[HeadRoom:], stored) {
				t.Fatalf("%v, %d bytes: VerifyIn changed the stored block", c, n)
			}
			for _, bad := range []func(b []byte, id *BlockID){
				func(b []byte, id *BlockID) { b[HeadRoom+rng.IntN(len(b)-HeadRoom)] ^= 1 },
				func(b []byte, id *BlockID) { id.Stripe++ },
				func(b []byte, id *BlockID) { id.Version[3] ^= 0x80 },
			} {
				b, bid := bytes.Clone(buf), id
				bad(b, &bid)
				_, err := c.VerifyIn(bid, b)
				if _, werr := c.Verify(bid, b[HeadRoom:]); !errors.Is(err, ErrChecksum) || !errors.Is(werr, ErrChecksum) {
					t.Fatalf("%v, %d bytes, damaged: VerifyIn = %v, Verify = %v; want ErrChecksum from both", c, n, err, werr)
				}
			}
		}
	}
	if _, err := XXH3.VerifyIn(BlockID{}, make([]byte, HeadRoom+3)); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a block shorter than its checksum: %v", err)
	}
}

// BenchmarkVerify: a 256 KiB shard block's check, streaming (Verify) and in
// place (VerifyIn); compare the two lines of one run.
func BenchmarkVerify(b *testing.B) {
	const n = 256<<10 + 28
	for _, c := range []Checksum{XXH3, BLAKE3} {
		data := make([]byte, n)
		var sum [MaxSumSize]byte
		stored := append(data, c.Sum(sum[:], BlockID{}, data)...)
		buf := append(make([]byte, HeadRoom), stored...)
		b.Run(c.String()+"/streaming", func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				if _, err := c.Verify(BlockID{}, stored); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.String()+"/in-place", func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				if _, err := c.VerifyIn(BlockID{}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSumShards: the checksums SumShards writes over Encode's output, with
// the shards where Encode put them, are Sum's of each shard, for both
// algorithms, stripes whose shards are shorter than the header and longer
// than XXH3's 1 KiB blocks, and 4+2, 1+0 and 10+4; and the buffer, room
// in front included, holds what it held before (a header left in a shard's
// tail would be written to the sites as data).
func TestSumShards(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, km := range [][2]int{{4, 2}, {1, 0}, {10, 4}} {
		coder, err := New(km[0], km[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []Checksum{XXH3, BLAKE3} {
			for _, n := range []int{1, 17, 37, 64, 150, 4096 + 16, 1<<20 + 16} {
				id := BlockID{Part: rng.Uint32(), Stripe: rng.Uint64()}
				for i := range id.Version {
					id.Version[i] = byte(rng.Uint32())
				}
				room := make([]byte, HeadRoom+coder.BufferSize(n))
				for i := range room {
					room[i] = byte(rng.Uint32())
				}
				shards, err := coder.Encode(room[HeadRoom:], n)
				if err != nil {
					t.Fatal(err)
				}
				before := bytes.Clone(room)
				sums := make([][MaxSumSize]byte, len(shards))
				c.SumShards(sums, id, room, coder.ShardSize(n))
				if !bytes.Equal(room, before) {
					t.Fatalf("%v %d+%d, %d bytes: SumShards changed the buffer", c, km[0], km[1], n)
				}
				for i, sh := range shards {
					sid := id
					sid.Shard = uint8(i)
					var want [MaxSumSize]byte
					c.Sum(want[:], sid, sh)
					if sums[i] != want {
						t.Fatalf("%v %d+%d, %d bytes, shard %d: SumShards %x, Sum %x", c, km[0], km[1], n, i, sums[i][:c.Size()], want[:c.Size()])
					}
				}
			}
		}
	}
}

// BenchmarkSumShards: the checksums of one full 4+2 stripe as the put
// writes it (1 MiB sealed with 16 bytes of tag: six shards of 256 KiB + 4),
// streaming (Sum of each shard, as the put did) and in place (SumShards);
// compare the two lines of one run. MB/s are of the sealed stripe: the
// blocks hashed hold 1.5 times as many bytes.
func BenchmarkSumShards(b *testing.B) {
	coder, _ := New(4, 2)
	n := 1<<20 + 16
	room := make([]byte, HeadRoom+coder.BufferSize(n))
	shards, err := coder.Encode(room[HeadRoom:], n)
	if err != nil {
		b.Fatal(err)
	}
	sums := make([][MaxSumSize]byte, len(shards))
	for _, c := range []Checksum{XXH3, BLAKE3} {
		b.Run(c.String()+"/streaming", func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				for i, sh := range shards {
					c.Sum(sums[i][:], BlockID{Shard: uint8(i)}, sh)
				}
			}
		})
		b.Run(c.String()+"/in-place", func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				c.SumShards(sums, BlockID{}, room, coder.ShardSize(n))
			}
		})
	}
}
