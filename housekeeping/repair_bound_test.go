package housekeeping

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/vault"
)

// repairCompute does, in memory and on the calling goroutine, the CPU work
// a repair does per stripe besides its reads and writes, for objects bytes
// of objects of k+m shards whose shards lost are gone (the same set for
// every stripe), and returns the process's CPU time it took (getrusage,
// after benchutil.Settle, so other goroutines' work is mostly not in it).
// Per stripe, as vault's rebuildShards and partReader do it:
//   - verify each of the k surviving blocks read (XXH3 over the block and
//     its header, in place: erasure.Checksum.VerifyIn);
//   - rebuild the lost data shards (erasure.Coder.ReconstructData), join
//     the data shards into the sealed stripe (a copy of a stripe), and
//     authenticate and decrypt it in place (AES-GCM: seal.Stripes.Open);
//   - rebuild the lost parity shards (ReconstructSome);
//   - sum each rebuilt block in place (SumIn) and copy it once more, as
//     the site's Put copies it out of the rebuild's queue into its write
//     buffer.
//
// It cycles over a few distinct stripes (more than the CPU caches hold),
// sealed, coded and summed beforehand (not measured). The blocks come
// from memory another core did not just write, unlike the repair's, which
// the kernel has just copied in: if anything it is cheaper than the
// repair's own compute.
func repairCompute(tb testing.TB, objects int64, stripe, k, m int, lost []int) time.Duration {
	tb.Helper()
	coder, err := erasure.New(k, m)
	if err != nil {
		tb.Fatal(err)
	}
	dk, err := seal.NewDataKey()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := seal.NewStripes(dk, seal.StripeContext{Part: 1})
	if err != nil {
		tb.Fatal(err)
	}
	const distinct = 24 // 24 stripes of 1 MiB: 36 MiB of shards
	sum := erasure.XXH3
	sealedLen := stripe + seal.Overhead
	ss := coder.ShardSize(sealedLen)
	n := k + m
	id := func(j, i int) erasure.BlockID {
		return erasure.BlockID{Part: 1, Stripe: uint64(j), Shard: uint8(i)}
	}
	// stored[j][i]: shard i of stripe j as a block reader holds it:
	// erasure.HeadRoom bytes, the shard, its checksum.
	stored := make([][][]byte, distinct)
	plain := make([][]byte, distinct)
	for j := range stored {
		plain[j] = make([]byte, stripe)
		io.ReadFull(&benchutil.Gen{Left: int64(stripe), State: uint64(j + 1)}, plain[j])
		buf := make([]byte, coder.BufferSize(sealedLen))
		st.Seal(buf[:0], plain[j], uint64(j), false)
		shards, err := coder.Encode(buf, sealedLen)
		if err != nil {
			tb.Fatal(err)
		}
		stored[j] = make([][]byte, n)
		for i, sh := range shards {
			b := make([]byte, erasure.HeadRoom+ss+sum.Size())
			copy(b[erasure.HeadRoom:], sh)
			sum.Sum(b[erasure.HeadRoom+ss:], id(j, i), sh)
			stored[j][i] = b
		}
	}
	isLost := make([]bool, n)
	for _, i := range lost {
		isLost[i] = true
	}
	// The rebuilt blocks (with room before them), the joined stripe, and
	// a site's write buffer.
	rebuilt := make([][]byte, n)
	for _, i := range lost {
		rebuilt[i] = make([]byte, erasure.HeadRoom+ss+sum.Size())
	}
	out := make([]byte, sealedLen)
	wbuf := make([]byte, ss+sum.Size())
	shards := make([][]byte, n)
	required := make([]bool, n)
	stripes := max(1, objects/int64(stripe))

	runtime.GC()
	benchutil.Settle(2 * time.Second)
	cpu0 := benchutil.ProcessCPU()
	for s := range stripes {
		j := int(s % distinct)
		for i := range n {
			shards[i], required[i] = nil, false
			if isLost[i] {
				continue
			}
			data, err := sum.VerifyIn(id(j, i), stored[j][i])
			if err != nil {
				tb.Fatal(err)
			}
			shards[i] = data
		}
		for i := range k {
			if isLost[i] {
				shards[i] = rebuilt[i][erasure.HeadRoom:erasure.HeadRoom]
			}
		}
		if err := coder.ReconstructData(shards); err != nil {
			tb.Fatal(err)
		}
		if err := coder.Join(out, shards, sealedLen); err != nil {
			tb.Fatal(err)
		}
		if _, err := st.Open(out[:0], out, uint64(j), false); err != nil {
			tb.Fatalf("stripe %d: %v", j, err)
		}
		for i := k; i < n; i++ {
			if isLost[i] {
				shards[i], required[i] = rebuilt[i][erasure.HeadRoom:erasure.HeadRoom], true
			}
		}
		if err := coder.ReconstructSome(shards, required); err != nil {
			tb.Fatal(err)
		}
		for _, i := range lost {
			sum.SumIn(rebuilt[i][erasure.HeadRoom+ss:], id(j, i), rebuilt[i][:erasure.HeadRoom+ss])
			copy(wbuf, rebuilt[i][erasure.HeadRoom:])
		}
		if s == 0 {
			// Once, unmeasured in effect: the rebuilt blocks are the
			// lost ones, checksums included.
			for _, i := range lost {
				if !bytes.Equal(rebuilt[i][erasure.HeadRoom:], stored[j][i][erasure.HeadRoom:]) {
					tb.Fatalf("stripe %d: shard %d rebuilt wrong", j, i)
				}
			}
		}
	}
	return benchutil.ProcessCPU() - cpu0
}

// genCPU returns the CPU time benchutil.Gen takes to make n bytes, in the
// chunks a dir site's Put reads (1 MiB): what the write reference spends
// making its bytes, which the repair, copying blocks it rebuilt, does not.
func genCPU(n int64) time.Duration {
	buf := make([]byte, 1<<20)
	g := &benchutil.Gen{Left: n, State: 1}
	benchutil.Settle(2 * time.Second)
	cpu0 := benchutil.ProcessCPU()
	for {
		if _, err := g.Read(buf); err != nil {
			break
		}
	}
	return benchutil.ProcessCPU() - cpu0
}

// lostShards returns the shard indices of a version's shards on the sites
// lost (by id).
func lostShards(locs []vault.ShardLocation, lost []string) []int {
	var out []int
	for _, l := range locs {
		if slices.Contains(lost, l.Site) {
			out = append(out, l.Shard)
		}
	}
	slices.Sort(out)
	return out
}

// TestRepairCompute checks the compute reference does what it says: it
// rebuilds the lost shards right (it fails if a rebuilt block differs from
// the lost one, or a stripe fails to authenticate), for data shards, parity
// shards and one of each, and takes CPU time.
func TestRepairCompute(t *testing.T) {
	for _, lost := range [][]int{{0, 1}, {4, 5}, {2, 5}} {
		t.Run(fmt.Sprint(lost), func(t *testing.T) {
			cpu := repairCompute(t, 32<<20, 1<<20, 4, 2, lost)
			if cpu <= 0 {
				t.Fatalf("no CPU time measured for 32 MiB: %v", cpu)
			}
		})
	}
}
