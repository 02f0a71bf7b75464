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
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
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
	// heard holds the sites whose copy this process has read (or found
	// missing): a site is written only once it is in it, so that a site
	// that did not answer at start (its disk not mounted yet) has its
	// copy, possibly higher than a restored seals.json, taken in before
	// it is written over. A site is read once a process: its copy is
	// then one this counter wrote, which a merge would count twice.
	heard map[string]bool
	// fileRead is set once seals.json was read (or found missing) into
	// the counter: at the first start that got that far (under the
	// node's seal lock, or before the node serves).
	fileRead bool
	wg       sync.WaitGroup
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
	if n.seals.fileRead {
		// Read at an earlier start: the file holds what this counter
		// recorded since, which a second merge would count twice.
		return nil
	}
	b, err := os.ReadFile(filepath.Join(n.Dir, SealsFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// The start fails, and the next reads the file again: the
		// counter has counted nothing meanwhile.
		return err
	}
	n.seals.fileRead = true
	if err != nil {
		return nil
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
// answer are read again before they are first written (writeSealCounts);
// a copy this node did not seal is skipped (and written over).
func (n *Node) loadSealCountsFromSites(ctx context.Context) {
	keys, c := n.Keys(), n.seals.counter.Load()
	if keys == nil || n.Engine == nil || c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sealCountsAtOpen)
	defer cancel()
	sites := n.Engine.Sites()
	all, heard := n.readSealCopies(ctx, keys, c, sites)
	// Written back, unless every site holds the counts already: what was
	// recorded while the sites were not read yet is in them. Through the
	// one writer (sealsToSites), which writes the counts as they are when
	// it writes: a later block's write cannot be overtaken by this one.
	cur := custody.MarshalSealRecords(c.Records())
	same := len(all) == len(sites)
	for _, recs := range all {
		same = same && bytes.Equal(custody.MarshalSealRecords(recs), cur)
	}
	n.seals.mu.Lock()
	n.seals.read = true
	pending := n.seals.pending != nil
	n.seals.mu.Unlock()
	if (!same && heard > 0) || pending {
		n.sealsToSites(custody.MarshalSealRecords(c.Records()))
	}
}

// readSealCopies reads the copies of the sites not yet heard, merges
// them into c and marks the sites that answered heard. It returns the
// copies that opened and how many sites are heard.
func (n *Node) readSealCopies(ctx context.Context, keys *custody.Keyring, c *custody.SealCounter, sites []vault.Site) ([][]custody.SealRecord, int) {
	var mu sync.Mutex
	var all [][]custody.SealRecord
	answered := map[string]bool{}
	var wg sync.WaitGroup
	for _, s := range sites {
		n.seals.mu.Lock()
		done := n.seals.heard[s.ID]
		n.seals.mu.Unlock()
		if done {
			continue
		}
		wg.Go(func() {
			recs, ok := n.readSealCopy(ctx, keys, s)
			mu.Lock()
			defer mu.Unlock()
			answered[s.ID] = ok
			if recs != nil {
				all = append(all, recs)
			}
		})
	}
	wg.Wait()
	for _, recs := range all {
		if err := c.Merge(recs); err != nil {
			n.Log.Warn("encryption counts from a site", "err", err)
		}
	}
	n.seals.mu.Lock()
	defer n.seals.mu.Unlock()
	if n.seals.heard == nil {
		n.seals.heard = map[string]bool{}
	}
	heard := 0
	for _, s := range sites {
		if answered[s.ID] {
			n.seals.heard[s.ID] = true
		}
		if n.seals.heard[s.ID] {
			heard++
		}
	}
	return all, heard
}

// readSealCopy reads a site's copy of the counts. ok is false when the
// site did not answer; a copy missing, or one that does not open or
// parse (logged), is an answer without counts.
func (n *Node) readSealCopy(ctx context.Context, keys *custody.Keyring, s vault.Site) (recs []custody.SealRecord, ok bool) {
	rc, err := s.Store.Get(ctx, evidence.SealsBlob, 0, evidence.MaxBatch+1)
	if errors.Is(err, site.ErrNotFound) {
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(rc, evidence.MaxBatch+1))
	rc.Close()
	if err != nil {
		return nil, false
	}
	plain, err := evidence.OpenSealCounts(keys, n.conf().Node.ID, b)
	if err != nil {
		n.Log.Warn("a site's encryption counts do not open", "site", s.ID, "err", err)
		return nil, true
	}
	recs, err = custody.ParseSealRecords(plain)
	if err != nil {
		n.Log.Warn("a site's encryption counts do not parse", "site", s.ID, "err", err)
		return nil, true
	}
	return recs, true
}

// sealsToSites has the counts written to every site, in the background:
// writes that come while one runs are coalesced into the next. b, the
// counts when asked, only marks a write as due: the writer writes the
// counts as they are when it writes, which are never lower.
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
			n.writeSealCounts()
		}
	})
}

// writeSealCounts writes the counts, sealed, to every site of the engine
// whose copy was read. A site not heard yet is read first, and written
// only if it answers, with the counts raised to its copy's.
func (n *Node) writeSealCounts() {
	keys, c := n.Keys(), n.seals.counter.Load()
	if keys == nil || n.Engine == nil || c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sites := n.Engine.Sites()
	n.readSealCopies(ctx, keys, c, sites)
	// The counts as they are now, not b: writes that overtook one another
	// still leave the newest on the sites.
	b := custody.MarshalSealRecords(c.Records())
	n.seals.mu.Lock()
	var heard []vault.Site
	for _, s := range sites {
		if n.seals.heard[s.ID] {
			heard = append(heard, s)
		}
	}
	n.seals.mu.Unlock()
	if len(heard) == 0 {
		return
	}
	blob, err := evidence.SealSealCounts(keys, n.conf().Node.ID, b)
	if err != nil {
		n.Log.Warn("encryption counts not written to the sites", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, s := range heard {
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
