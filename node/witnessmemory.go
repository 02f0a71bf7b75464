package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	fnote "github.com/transparency-dev/formats/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/internal/atomicfile"
)

// A witness's memory — the latest checkpoint it cosigned of each log it
// witnesses, audit/witness.json — is what keeps it from cosigning a fork
// of what it cosigned. A node directory lost and recovered must not
// forget it, so it goes to every site like the node's other state: the
// witness writes it to the sites (WitnessBlob) before each cosignature
// leaves, and 'embassy recover' brings back, for each log, the largest
// checkpoint any site holds that carries this node's own cosignature
// (audit.MergeWitnessStates): a site can withhold the newest copy, never
// forge one.

// WitnessBlob is the blob name of the witness's memory on every site.
const WitnessBlob = federation.BlobWitness

// witnessFile is the witness's memory in the node directory.
func (n *Node) witnessFile() string { return filepath.Join(n.path(AuditDir), "witness.json") }

// persistWitness writes the witness's state to every site, and fails
// when none took it (a node without sites keeps it in its directory only).
func (n *Node) persistWitness(state []byte) error {
	if n.Engine == nil {
		return errors.New("the node's sites are not open")
	}
	sites := n.Engine.Sites()
	if len(sites) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for _, s := range sites {
		wg.Go(func() {
			if err := s.Store.Put(ctx, WitnessBlob, bytes.NewReader(state), int64(len(state))); err != nil {
				n.Log.Warn("witness: its memory not written to a site; it will be with the next cosignature", "site", s.ID, "err", err)
				mu.Lock()
				failed = append(failed, s.ID+": "+err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) == len(sites) {
		return fmt.Errorf("no site took the witness's memory (%s)", strings.Join(failed, "; "))
	}
	return nil
}

// restoreWitnessMemory merges the witness memories the node's sites hold
// into the node directory's, and starts witnessing with the result. It
// returns how many logs' memories came from the sites.
func (n *Node) restoreWitnessMemory(ctx context.Context) (int, error) {
	keys := n.Keys()
	if n.Engine == nil || keys == nil || keys.Identity() == nil {
		return 0, errors.New("the node is not open")
	}
	wkey := custody.WitnessVerifierKey(audit.WitnessName(n.conf().Node.ID), keys.Identity().Public())
	wv, err := fnote.NewVerifierForCosignatureV1(wkey)
	if err != nil {
		return 0, err
	}
	local, err := os.ReadFile(n.witnessFile())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	var copies [][]byte
	for _, s := range n.Engine.Sites() {
		if b, err := readBlob(ctx, s.Store, WitnessBlob, audit.MaxWitnessState); err == nil {
			copies = append(copies, b)
		}
	}
	if len(copies) == 0 {
		return 0, nil
	}
	merged, took, err := audit.MergeWitnessStates(wv, local, copies...)
	if err != nil || took == 0 {
		return 0, err
	}
	if err := os.MkdirAll(n.path(AuditDir), 0o700); err != nil {
		return 0, err
	}
	if err := atomicfile.Write(n.witnessFile(), merged, 0o600); err != nil {
		return 0, err
	}
	return took, n.openWitness(keys)
}
