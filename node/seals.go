package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/evidence"
)

// The count of encryptions under each key that seals with random GCM
// nonces (custody.SealCounter) is kept in two places, and the node takes
// the highest count either holds:
//
//   - seals.json in the node directory, written (atomically, synced)
//     before the node hands out a block of encryptions beyond what it
//     holds: a kill or a crash loses no counted encryption;
//   - node/seals on every site (evidence.SealsBlob), sealed and signed,
//     written shortly after each of those writes and when the node
//     closes: it survives a node directory restored from a backup (with
//     the index, which lives there by default) and a node recovered
//     onto a new machine.
//
// The index holds no copy: it lives in the node directory by default, so
// a restored node directory brings back an index as old, and an index
// restored or rebuilt alone leaves seals.json as it was.

// SealsFile is the seal counts' file in the node directory.
const SealsFile = "seals.json"

// sealState is the node's seal counter and its copy on the sites.
type sealState struct {
	// counter is made at the first start and kept across seal and
	// unseal (read by metrics while the node starts).
	counter atomic.Pointer[custody.SealCounter]

	mu      sync.Mutex
	pending []byte // the newest counts not yet on the sites
	running bool
	// read is set once the sites' copies were read at start: until then
	// nothing is written to them, so that counts raised only from an
	// older seals.json never overwrite the sites' higher ones.
	read bool
	wg   sync.WaitGroup
}

// sealStore writes the node directory's copy (custody.SealStore).
type sealStore struct{ n *Node }

func (s sealStore) SaveSeals(recs []custody.SealRecord) error {
	b := custody.MarshalSealRecords(recs)
	if err := writeFileAtomic(filepath.Join(s.n.Dir, SealsFile), b); err != nil {
		return err
	}
	s.n.sealsToSites(b)
	return nil
}

// countSeals returns k counting its encryptions in the node's counter.
func (n *Node) countSeals(k *custody.Keyring) *custody.Keyring {
	c := n.seals.counter.Load()
	if k == nil || c == nil || k.SealCounter() == c {
		return k
	}
	return k.WithSealCounter(c)
}

// loadSealCounts makes the node's counter (once) and raises it to the
// node directory's copy.
func (n *Node) loadSealCounts() error {
	c := n.seals.counter.Load()
	if c == nil {
		c = custody.NewSealCounter(sealStore{n}, n.conf().KeyUse.limits(), n.Log)
		n.seals.counter.Store(c)
	}
	b, err := os.ReadFile(filepath.Join(n.Dir, SealsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	recs, err := custody.ParseSealRecords(b)
	if err != nil {
		// Not a reason to refuse to start: the sites' copy is read next,
		// and the file is rewritten at the next block.
		n.Log.Error("the node directory's encryption counts do not parse; using the sites' copy", "file", SealsFile, "err", err)
		return nil
	}
	return c.Merge(recs)
}

// sealCountsAtOpen bounds the read of the sites' copy when the node
// starts.
const sealCountsAtOpen = 30 * time.Second

// loadSealCountsFromSites raises the counter to the highest copy on the
// sites, then writes the merged counts back to them. Sites that do not
// answer, or hold no copy this node sealed, are skipped.
func (n *Node) loadSealCountsFromSites(ctx context.Context) {
	keys, c := n.Keys(), n.seals.counter.Load()
	if keys == nil || n.Engine == nil || c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sealCountsAtOpen)
	defer cancel()
	var mu sync.Mutex
	var all [][]custody.SealRecord
	var wg sync.WaitGroup
	sites := n.Engine.Sites()
	for _, s := range sites {
		wg.Go(func() {
			rc, err := s.Store.Get(ctx, evidence.SealsBlob, 0, evidence.MaxBatch+1)
			if err != nil {
				return
			}
			b, err := io.ReadAll(io.LimitReader(rc, evidence.MaxBatch+1))
			rc.Close()
			if err != nil {
				return
			}
			c, err := evidence.OpenSealCounts(keys, n.conf().Node.ID, b)
			if err != nil {
				n.Log.Warn("a site's encryption counts do not open", "site", s.ID, "err", err)
				return
			}
			recs, err := custody.ParseSealRecords(c)
			if err != nil {
				n.Log.Warn("a site's encryption counts do not parse", "site", s.ID, "err", err)
				return
			}
			mu.Lock()
			all = append(all, recs)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, recs := range all {
		if err := c.Merge(recs); err != nil {
			n.Log.Warn("encryption counts from a site", "err", err)
		}
	}
	// Written back now, before the node serves, unless every site holds
	// the counts already: what was recorded while the sites were not read
	// yet is in them.
	cur := custody.MarshalSealRecords(c.Records())
	same := len(all) == len(sites)
	for _, recs := range all {
		same = same && bytes.Equal(custody.MarshalSealRecords(recs), cur)
	}
	n.seals.mu.Lock()
	n.seals.read, n.seals.pending = true, nil
	n.seals.mu.Unlock()
	if !same {
		n.writeSealCounts(cur)
	}
}

// sealsToSites has b written to every site, in the background: writes
// that come while one runs are coalesced into the next.
func (n *Node) sealsToSites(b []byte) {
	st := &n.seals
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pending = b
	if st.running || !st.read {
		return
	}
	st.running = true
	st.wg.Go(func() {
		for {
			st.mu.Lock()
			b := st.pending
			st.pending = nil
			if b == nil {
				st.running = false
				st.mu.Unlock()
				return
			}
			st.mu.Unlock()
			n.writeSealCounts(b)
		}
	})
}

// writeSealCounts writes b, sealed, to every site of the engine.
func (n *Node) writeSealCounts(b []byte) {
	keys := n.Keys()
	if keys == nil || n.Engine == nil {
		return
	}
	blob, err := evidence.SealSealCounts(keys, n.conf().Node.ID, b)
	if err != nil {
		n.Log.Warn("encryption counts not written to the sites", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range n.Engine.Sites() {
		wg.Go(func() {
			if err := s.Store.Put(ctx, evidence.SealsBlob, bytes.NewReader(blob), int64(len(blob))); err != nil {
				n.Log.Warn("encryption counts not written to a site", "site", s.ID, "err", err)
			}
		})
	}
	wg.Wait()
}

// closeSealCounts writes the counts to the sites one last time and waits
// for the writes.
func (n *Node) closeSealCounts() {
	c := n.seals.counter.Load()
	if c == nil {
		return
	}
	n.sealsToSites(custody.MarshalSealRecords(c.Records()))
	n.seals.wg.Wait()
}

// SealStates returns the encryption count of every key the node has
// counted, or nil before it first started.
func (n *Node) SealStates() []custody.SealState {
	c := n.seals.counter.Load()
	if c == nil {
		return nil
	}
	return c.States()
}
