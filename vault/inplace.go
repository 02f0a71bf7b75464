package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/seal"
)

// inPlace reads a large range's stripes with each data block read straight
// into its place in a stripe buffer, not into a block buffer of its own to
// be joined on the reader's goroutine. It is the common case of a large
// read only: a part reader uses it when the part is not inline, its range
// holds at least two stripes, and it reads no more than the k data shards,
// none of them excluded. Every block's checksum is still verified, by the
// stream that lands the stripe's last block (the shards lie one after
// another, so each is hashed in place as the put hashes them, SumShards,
// and its stored checksum is read apart, by an opener: see complete), and
// every stripe is
// authenticated, by an opener, before its bytes are returned. At the
// first stripe where a block does not verify, a stream's read fails or the
// stripe does not authenticate, nothing from that stripe on has been
// returned or reported, and the part reader goes on from it with the
// streams of block buffers (stripeWith), which report, bring in parity
// and recover.
type inPlace struct {
	pr     *partReader
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  []*slot
	landed chan *slot // stripes whose blocks have all landed, for the openers
	next   int64      // the stripe the reader takes next
	held   *slot      // the slot whose plaintext the reader returned last
}

// inPlaceSlots is how many stripes an in-place read holds at once: the
// one the reader returned last, and those the streams read ahead.
const inPlaceSlots = 4

// inPlaceOpeners is how many goroutines check and open an in-place read's
// stripes (no more than GOMAXPROCS).
const inPlaceOpeners = 2

// slot is one stripe buffer of an in-place read and its state: the data
// shards one after another after erasure.HeadRoom bytes, the stored
// checksums beside them.
type slot struct {
	buf   *[]byte
	j     int64
	sums  [][erasure.MaxSumSize]byte // the blocks' stored checksums
	got   [][erasure.MaxSumSize]byte // their checksums as computed
	errs  []error                    // by shard: the stream's read failed
	left  atomic.Int32               // blocks still to land
	free  []chan struct{}            // by shard: the stream may write stripe j
	done  chan struct{}              // the stripe is complete: checked and opened
	ok    bool                       // every block verified, the stripe authenticated
	plain []byte                     // its plaintext, within buf
}

// useInPlace says whether a part reader reads stripes first to last in
// place.
func (pr *partReader) useInPlace() bool {
	if pr.part.Inline || pr.r.readAll || pr.last-pr.first < 1 || !pr.g.sum.Known() {
		return false
	}
	for i := range pr.g.k {
		if pr.failed[i] {
			return false
		}
	}
	return true
}

// startInPlace starts the in-place read of the data shards.
func (pr *partReader) startInPlace() {
	g := pr.g
	ctx, cancel := context.WithCancel(pr.ctx)
	ip := &inPlace{pr: pr, ctx: ctx, cancel: cancel, next: pr.first, landed: make(chan *slot, inPlaceSlots)}
	ss := (g.stripe + seal.Overhead + g.k - 1) / g.k // a full stripe's shard size
	n := min(int64(inPlaceSlots), pr.last-pr.first+1)
	for r := range n {
		sl := &slot{buf: getBlock(erasure.HeadRoom + g.k*ss), sums: make([][erasure.MaxSumSize]byte, g.k), got: make([][erasure.MaxSumSize]byte, g.k),
			errs: make([]error, g.k), free: make([]chan struct{}, g.k), done: make(chan struct{}, 1)}
		for i := range sl.free {
			sl.free[i] = make(chan struct{}, 1)
		}
		ip.slots = append(ip.slots, sl)
		ip.arm(sl, pr.first+r)
	}
	for i := range g.k {
		ip.wg.Go(func() { ip.stream(i) })
	}
	for range min(int(n), inPlaceOpeners, runtime.GOMAXPROCS(0)) {
		ip.wg.Go(ip.opener)
	}
	pr.ip = ip
}

// arm readies sl for stripe j and lets the streams write it.
func (ip *inPlace) arm(sl *slot, j int64) {
	sl.j, sl.ok, sl.plain = j, false, nil
	clear(sl.errs)
	sl.left.Store(int32(len(sl.errs)))
	for _, f := range sl.free {
		f <- struct{}{}
	}
}

// stream reads data shard i's blocks of the range, each into its place.
func (ip *inPlace) stream(i int) {
	pr, g := ip.pr, ip.pr.g
	sid := pr.part.Sites[i]
	s, ok := pr.e.site(sid)
	var rc io.ReadCloser
	var err error
	if !ok {
		err = fmt.Errorf("site %s not configured", sid)
	} else {
		name := manifest.ShardBlobName(pr.part.Blob, i)
		rc, err = s.Store.Get(ip.ctx, name, pr.first*g.blockStride(), (pr.last-pr.first)*g.blockStride()+int64(g.blockSize(pr.last)))
	}
	if rc != nil {
		defer rc.Close()
	}
	sumSize := g.sum.Size()
	for j := pr.first; j <= pr.last; j++ {
		sl := ip.slots[int(j-pr.first)%len(ip.slots)]
		select {
		case <-sl.free[i]:
		case <-ip.ctx.Done():
			return
		}
		if err == nil {
			ss := g.shardSize(j)
			at := erasure.HeadRoom + i*ss
			if _, err = io.ReadFull(rc, (*sl.buf)[at:at+ss]); err == nil {
				_, err = io.ReadFull(rc, sl.sums[i][:sumSize])
			}
		}
		sl.errs[i] = err
		if sl.left.Add(-1) == 0 {
			// Never blocks: a slot is landed once an arming.
			ip.landed <- sl
		}
		if err != nil {
			return
		}
	}
}

// opener checks and opens the stripes whose blocks have all landed, as
// they land, until the read stops.
func (ip *inPlace) opener() {
	for {
		select {
		case sl := <-ip.landed:
			ip.complete(sl)
		case <-ip.ctx.Done():
			return
		}
	}
}

// complete checks a stripe whose blocks have all landed and opens it, on
// an opener, and hands it to the reader. The stream that landed the
// stripe's last block goes on to its next block at once: when that stream
// opened the stripe itself (up to the nineteenth pass), the stream that
// was late for one stripe was late, being busy opening, for the next ones
// too, and opened them all, one after another, on one core (docs/design.md,
// "Large GETs: the stripes opened beside the streams (issue 15, nineteenth
// pass)"). The hash just before the open brings the stripe into the
// opener's cache.
func (ip *inPlace) complete(sl *slot) {
	pr, g := ip.pr, ip.pr.g
	ok := true
	for _, err := range sl.errs {
		ok = ok && err == nil
	}
	if ok {
		ss := g.shardSize(sl.j)
		g.sum.SumShards(sl.got, blockID(pr.part, sl.j, 0), (*sl.buf)[:erasure.HeadRoom+g.k*ss], ss)
		size := g.sum.Size()
		for i := range g.k {
			ok = ok && bytes.Equal(sl.got[i][:size], sl.sums[i][:size])
		}
	}
	if ok {
		sl.plain, ok = ip.open(sl)
	}
	sl.ok = ok
	sl.done <- struct{}{}
}

// open authenticates and decrypts sl's stripe in place.
func (ip *inPlace) open(sl *slot) ([]byte, bool) {
	g := ip.pr.g
	sealed := (*sl.buf)[erasure.HeadRoom : erasure.HeadRoom+g.plainLen(sl.j)+seal.Overhead]
	plain, err := ip.pr.stripes.Open(sealed[:0], sealed, uint64(sl.j), sl.j == g.stripes()-1)
	return plain, err == nil
}

// take returns stripe j's plaintext, or ok false when it is not the next
// stripe or not intact (the part reader then reads it as before).
func (ip *inPlace) take(j int64) (plain []byte, ok bool, err error) {
	if j != ip.next {
		return nil, false, nil
	}
	if ip.held != nil {
		// Its plaintext has been used: the slot takes the stripe after
		// those held now.
		if n := ip.held.j + int64(len(ip.slots)); n <= ip.pr.last {
			ip.arm(ip.held, n)
		}
		ip.held = nil
	}
	sl := ip.slots[int(j-ip.pr.first)%len(ip.slots)]
	select {
	case <-sl.done:
	case <-ip.ctx.Done():
		return nil, false, context.Cause(ip.pr.ctx)
	}
	if !sl.ok {
		return nil, false, nil
	}
	ip.held, ip.next = sl, j+1
	return sl.plain, true, nil
}

// stop ends the streams and recycles the stripe buffers.
func (ip *inPlace) stop() {
	ip.cancel()
	ip.wg.Wait()
	for _, sl := range ip.slots {
		putBlock(sl.buf)
	}
	ip.slots, ip.held = nil, nil
}
