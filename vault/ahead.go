package vault

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/embassy-dev/embassy/seal"
)

// A large read decodes its stripes ahead of its reader, on as many
// goroutines as there are Ps (at most aheadDepth): joining a stripe's
// data blocks and opening it (AES-GCM) is most of a large GET's CPU
// (0.33 of 0.58 CPU-s/GB at 1 GiB on the development VM), and on the
// reader's own goroutine it bounded the GET below what the disk and the
// kernel deliver (docs/design.md, "Large GETs: decoding ahead (issue 15,
// fifteenth pass)").
//
// Only the common case is decoded ahead: every stripe's k data blocks
// read and verified (their checksums), joined, and the stripe
// authenticated. At the first stripe where that is not so (a block
// missing or corrupt, a stream ended, authentication failed), nothing
// from it on is returned or reported: the reader gets errAheadStopped
// and reads on from that stripe with a part reader that decodes on its
// own goroutine, which reports the damage, brings in parity and recovers
// as before. Every block is still verified, every stripe authenticated
// before its bytes are returned.

const (
	// aheadDepth is how many stripes a reader may have decoded or being
	// decoded ahead of it, the one it holds included: as many buffers of a
	// stripe (and as many stripes' blocks waiting to be decoded).
	aheadDepth = 4
	// aheadMin is the fewest stripes a part reader's range must hold for
	// it to decode ahead.
	aheadMin = 4
)

// decodeAhead: large reads decode ahead (a test may turn it off to
// compare).
var decodeAhead = true

// errAheadStopped: stripe j was not decoded ahead (see above).
var errAheadStopped = errors.New("vault: decoding ahead stopped")

// stripeAhead decodes a part reader's stripes ahead of its reader: a
// collector takes the k data blocks of each stripe from the shard streams
// in order and queues them, with a stripe buffer, to the workers, which
// join and open them; the reader takes the stripes in order.
type stripeAhead struct {
	pr    *partReader
	order chan *aheadJob // every stripe collected, in order (and the stop)
	jobs  chan *aheadJob // the stripes to decode
	free  chan *[]byte   // stripe buffers not in use
	bufs  []*[]byte      // every stripe buffer, returned to the pool at close
	held  *[]byte        // the buffer of the stripe the reader holds
	wg    sync.WaitGroup // the collector and the workers
	// stopped: stripe returned errAheadStopped, and returns it from then on.
	stopped bool
}

// aheadJob is one stripe to decode ahead.
type aheadJob struct {
	j      int64
	shards [][]byte  // the k data blocks, verified
	blocks []*[]byte // their buffers
	out    *[]byte   // the stripe's buffer
	plain  []byte    // the stripe's plaintext, in out
	err    error     // decoding failed
	stop   bool      // the collector stopped here
	done   chan struct{}
}

// startAhead has pr decode ahead when its range holds at least aheadMin
// full stripes and every data shard's stream is running (a part read with
// a data shard excluded or missing decodes on the reader's goroutine).
func (pr *partReader) startAhead() {
	if pr.last-pr.first+1 < aheadMin || pr.g.size < int64(pr.g.stripe) {
		return
	}
	for i := range pr.g.k {
		if st := pr.streams[i]; st == nil || st.dead {
			return
		}
	}
	workers := min(aheadDepth-1, max(1, runtime.GOMAXPROCS(0)))
	a := &stripeAhead{
		pr:    pr,
		order: make(chan *aheadJob, aheadDepth+1),
		jobs:  make(chan *aheadJob, aheadDepth),
		free:  make(chan *[]byte, aheadDepth),
	}
	for range aheadDepth {
		b := getBlock(pr.g.stripe + seal.Overhead)
		a.bufs = append(a.bufs, b)
		a.free <- b
	}
	pr.ahead = a
	a.wg.Go(a.collect)
	for range workers {
		a.wg.Go(a.work)
	}
}

// collect takes each stripe's k data blocks from the streams, in order,
// and queues them to the workers, until the range ends, a block is not
// intact (it queues a stop there) or the part reader is closed.
func (a *stripeAhead) collect() {
	pr := a.pr
	defer close(a.jobs)
	done := pr.ctx.Done()
	release := func(job *aheadJob) {
		for _, b := range job.blocks {
			putBlock(b)
		}
		job.shards, job.blocks = nil, nil
	}
	for j := pr.first; j <= pr.last; j++ {
		job := &aheadJob{j: j, done: make(chan struct{})}
		for i := range pr.g.k {
			b := pr.take(i, j)
			if b.err != nil || b.stripe != j {
				if b.buf != nil {
					putBlock(b.buf)
				}
				job.stop = true
				break
			}
			job.shards, job.blocks = append(job.shards, b.data), append(job.blocks, b.buf)
		}
		if job.stop {
			release(job)
			close(job.done)
			select {
			case a.order <- job:
			case <-done:
			}
			return
		}
		select {
		case job.out = <-a.free:
		case <-done:
			release(job)
			return
		}
		// order has room for every buffer and the stop: this does not
		// block.
		a.order <- job
		select {
		case a.jobs <- job:
		case <-done:
			release(job)
			job.err = context.Cause(pr.ctx)
			close(job.done)
			return
		}
	}
}

// work joins and opens the stripes queued to it.
func (a *stripeAhead) work() {
	pr := a.pr
	for job := range a.jobs {
		out := *job.out
		sealedLen := pr.g.plainLen(job.j) + seal.Overhead
		err := pr.coder.Join(out, job.shards, sealedLen)
		if err == nil {
			job.plain, err = pr.stripes.Open(out[:0], out[:sealedLen], uint64(job.j), job.j == pr.g.stripes()-1)
		}
		for _, b := range job.blocks {
			putBlock(b)
		}
		job.shards, job.blocks, job.err = nil, nil, err
		close(job.done)
	}
}

// stripe returns stripe j's plaintext, decoded ahead (j at or after the
// last stripe returned), or errAheadStopped. The plaintext is valid until
// the next call.
func (a *stripeAhead) stripe(j int64) ([]byte, error) {
	pr := a.pr
	if a.stopped || j < pr.first || j > pr.last {
		a.stopped = true
		return nil, errAheadStopped
	}
	if a.held != nil {
		a.free <- a.held // free has room for every buffer
		a.held = nil
	}
	done := pr.ctx.Done()
	for {
		var job *aheadJob
		var ok bool
		select {
		case job, ok = <-a.order:
		case <-done:
			return nil, context.Cause(pr.ctx)
		}
		if !ok {
			a.stopped = true
			return nil, errAheadStopped
		}
		select {
		case <-job.done:
		case <-done:
			return nil, context.Cause(pr.ctx)
		}
		if job.stop || job.err != nil {
			if job.out != nil {
				a.free <- job.out
			}
			if err := context.Cause(pr.ctx); err != nil {
				return nil, err
			}
			a.stopped = true
			return nil, errAheadStopped
		}
		if job.j < j {
			a.free <- job.out
			continue
		}
		if job.j > j {
			a.free <- job.out
			a.stopped = true
			return nil, errAheadStopped
		}
		a.held = job.out
		return job.plain, nil
	}
}
