package vault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
)

// TestShardReader: a shard blob's body is each stripe's block followed by
// its checksum, in stripe order, however the site reads it; a stripe is
// given back once read past or drained; a write that failed ends the body
// with its cause instead of EOF (so that the site stores nothing); and a
// read after the put returned fails.
func TestShardReader(t *testing.T) {
	const shards, blockLen = 3, 1000
	sumSize := erasure.XXH3.Size() // the stripe buffers hold MaxSumSize
	mkJobs := func(n int) ([]*stripeJob, []byte) {
		var want []byte
		jobs := make([]*stripeJob, n)
		for s := range jobs {
			j := &stripeJob{buf: &stripeBuf{sums: make([][erasure.MaxSumSize]byte, shards)}}
			for i := range shards {
				block := bytes.Repeat([]byte{byte(16*s + i)}, blockLen+s)
				j.shards = append(j.shards, block)
				for k := range j.buf.sums[i] {
					j.buf.sums[i][k] = byte(200 + s + i)
				}
				if i == 1 {
					want = append(append(want, block...), j.buf.sums[i][:sumSize]...)
				}
			}
			j.refs.Store(1)
			jobs[s] = j
		}
		return jobs, want
	}
	feed := func(jobs []*stripeJob) chan *stripeJob {
		in := make(chan *stripeJob, len(jobs))
		for _, j := range jobs {
			in <- j
		}
		close(in)
		return in
	}
	released := func(jobs []*stripeJob) int {
		n := 0
		for _, j := range jobs {
			if j.refs.Load() == 0 {
				n++
			}
		}
		return n
	}
	release := func(j *stripeJob) { j.refs.Add(-1) }

	for _, piece := range []int{1, 7, blockLen, blockLen + sumSize + 3, 1 << 20} {
		jobs, want := mkJobs(5)
		r := &shardReader{ctx: context.Background(), in: feed(jobs), shard: 1, sumSize: sumSize, release: release}
		var got []byte
		buf := make([]byte, piece)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("pieces of %d: %v", piece, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("pieces of %d: read %d bytes, not the %d of the shard's blocks and checksums in order", piece, len(got), len(want))
		}
		r.drain()
		if n := released(jobs); n != len(jobs) {
			t.Errorf("pieces of %d: %d of %d stripes given back", piece, n, len(jobs))
		}
		if _, err := r.Read(buf); !errors.Is(err, errDrained) {
			t.Errorf("read after drain: %v, want errDrained", err)
		}
	}

	// A put that stops early (a failed site): drain gives back the rest.
	jobs, _ := mkJobs(4)
	r := &shardReader{ctx: context.Background(), in: feed(jobs), shard: 0, sumSize: sumSize, release: release}
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	r.drain()
	if n := released(jobs); n != len(jobs) {
		t.Errorf("early stop: %d of %d stripes given back", n, len(jobs))
	}

	// The write failed: the body ends with the cause, not EOF.
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("the client went away")
	cancel(cause)
	jobs, _ = mkJobs(1)
	r = &shardReader{ctx: ctx, in: feed(jobs), shard: 2, sumSize: sumSize, release: release}
	if _, err := io.ReadAll(r); !errors.Is(err, cause) {
		t.Errorf("body of a failed write ended with %v, want its cause", err)
	}
}
