package housekeeping

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/embassy-dev/embassy/vault"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/audit/audittest"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// crashNode is an engine over a node directory laid out by the crash
// tests (a key file, an index and six dir sites), with its index and audit
// log.
//
// A process must close it before another engine opens the same directory:
// like a node, which holds its index (and so its audit log) alone, the
// tests never have two audit logs of one directory open at once. Two would
// both take the entries a killed child left in the log's journal and add
// them to the tree; the second's sequencer then stops ("journal entry 68
// was sequenced at 69"), the evidence on the log cannot be read, and
// garbage collection does not run. That was the once-seen failure of
// TestDrainConvergesAfterCrashes ("10 blobs left on the drained site after
// a rerun"): the parent kept every engine it opened for its checks, and
// their logs, open until the test ended.
type crashNode struct {
	e      *vault.Engine
	ix     *boltindex.Index
	log    *audit.Log
	closed bool
}

// close closes the engine, then the audit log (which waits until the tree
// holds what its journal holds), then the index.
func (n *crashNode) close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := n.e.Close(ctx)
	if lerr := n.log.Close(ctx); lerr != nil {
		err = errors.Join(err, fmt.Errorf("close the audit log: %w", lerr))
	}
	return errors.Join(err, n.ix.Close())
}

// crashEngine opens the node directory at root with the index indexName.
func crashEngine(t testing.TB, root, indexName string) *crashNode {
	keyPath := filepath.Join(root, "root.key")
	if _, err := os.Stat(keyPath); err != nil {
		rk, _ := custody.GenerateRootKey()
		if err := custody.WriteKeyFile(keyPath, rk); err != nil {
			t.Fatal(err)
		}
	}
	rk, err := custody.ReadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := custody.NewKeyring(rk)
	ix, err := boltindex.Open(filepath.Join(root, indexName))
	if err != nil {
		t.Fatal(err)
	}
	var sites []vault.Site
	stores := map[string]site.Site{}
	for _, d := range topology {
		ds, err := dir.New(filepath.Join(root, "sites", d.ID))
		if err != nil {
			t.Fatal(err)
		}
		sites = append(sites, vault.Site{Descriptor: d, Store: ds})
		stores[d.ID] = ds
	}
	cfg := audittest.Config(t, audittest.KeysIn(t, root, "crash"), "crash", filepath.Join(root, "audit"), func() map[string]site.Site { return stores })
	l, err := audit.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := vault.New(vault.Config{NodeID: "crash", Keys: keys, Index: ix, Sites: sites, Audit: l, Vaults: []vault.Vault{{
		Name: "registry", Owner: "EST", StripeSize: testStripe,
		Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}, OutsideHome: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	n := &crashNode{e: e, ix: ix, log: l}
	t.Cleanup(func() {
		if err := n.close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// closeCrash closes n, failing the test if it cannot: the next engine over
// the directory must not open beside it.
func closeCrash(t testing.TB, n *crashNode) {
	t.Helper()
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
}

// seeded returns the content of a put with the given seed: its size and
// bytes follow from the seed, so a reader can check any version.
func seeded(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	size := []int{0, 1, 999, testStripe, testStripe + 1, 7*testStripe + 5, 40 * testStripe}[rng.IntN(7)]
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestCrashChild is the child process of TestCrashDuringPuts: it puts and
// deletes objects until it is killed, printing each acknowledged write.
func TestCrashChild(t *testing.T) {
	root := os.Getenv("EMBASSY_CRASH_CHILD")
	if root == "" {
		t.Skip("child process of TestCrashDuringPuts")
	}
	e := crashEngine(t, root, "index.db").e
	run, _ := strconv.ParseUint(os.Getenv("EMBASSY_CRASH_RUN"), 10, 64)
	out := bufio.NewWriter(os.Stdout)
	for i := uint64(0); ; i++ {
		seed := run<<32 | i
		key := fmt.Sprintf("crash/%d", seed%13)
		if seed%9 == 8 {
			if _, err := e.Delete(context.Background(), "registry", key, vault.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data := seeded(seed)
		info, err := e.Put(context.Background(), "registry", key, bytes.NewReader(data), vault.PutOptions{
			Size: int64(len(data)), Meta: map[string]string{"seed": strconv.FormatUint(seed, 10)},
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(out, "acked %s %s\n", key, info.VersionID)
		out.Flush()
	}
}

// TestCrashDuringPuts kills a writing process with SIGKILL at random moments,
// many times over the same node, and checks after each kill that the index
// opens, that every visible object reads whole and correct, that every
// acknowledged write survived, and that a rebuild from the sites alone
// surfaces no partial object.
func TestCrashDuringPuts(t *testing.T) {
	if os.Getenv("EMBASSY_CRASH_CHILD") != "" {
		t.Skip("in the child")
	}
	runs := 12
	if testing.Short() {
		runs = 3
	}
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := map[manifest.ID]string{}
	for run := 1; run <= runs; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), "EMBASSY_CRASH_CHILD="+root, fmt.Sprintf("EMBASSY_CRASH_RUN=%d", run))
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the child to get going, then kill it at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("run %d: child wrote nothing: %s", run, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		n := 0
		for _, l := range append([]string{first}, drain(lines)...) {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == "acked" {
				id, err := manifest.ParseID(f[2])
				if err != nil {
					t.Fatalf("bad ack line %q", l)
				}
				acked[id] = f[1]
				n++
			}
		}
		cn := crashEngine(t, root, "index.db")
		when := fmt.Sprintf("run %d (%d acks)", run, n)
		checkOnLogOnce(t, cn.e, checkCrashState(t, cn.e, acked, when), acked, when)
		closeCrash(t, cn)
	}
	// Finally rebuild from the sites alone into a fresh index: no partial
	// object may surface, and every acknowledged write must be there.
	e := crashEngine(t, root, "rebuilt.db").e
	st, err := New(e, nil).RebuildIndex(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Puts killed while writing an inline object's manifest copies leave
	// fewer than k copies: the rebuild must leave those out.
	t.Logf("rebuild: %d versions, %d partial versions left out", st.Versions, len(st.Unreadable))
	// The rebuild may take up a version whose put was killed after its
	// manifest copies and before its commit: not on the log, so only the
	// acknowledged ones are checked there.
	checkCrashState(t, e, acked, "rebuilt index")
	checkOnLogOnce(t, e, nil, acked, "rebuilt index")
}

func drain(c chan string) []string {
	var out []string
	for l := range c {
		out = append(out, l)
	}
	return out
}

// checkCrashState checks the state after a crash and returns the versions
// the index holds.
func checkCrashState(t *testing.T, e *vault.Engine, acked map[manifest.ID]string, when string) map[manifest.ID]bool {
	t.Helper()
	ctx := t.Context()
	vp, err := e.Versions(ctx, "registry", index.VersionOptions{})
	if err != nil {
		t.Fatalf("%s: index broken: %v", when, err)
	}
	seen := map[manifest.ID]bool{}
	for {
		for _, v := range vp.Versions {
			seen[v.ID] = true
			if v.DeleteMarker {
				continue
			}
			r, err := e.Get(ctx, "registry", v.Key, vault.GetOptions{VersionID: v.ID, Length: -1})
			if err != nil {
				t.Fatalf("%s: visible version %s of %s unreadable: %v", when, v.ID, v.Key, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("%s: reading %s: %v", when, v.Key, err)
			}
			seed, _ := strconv.ParseUint(r.Info().Meta["seed"], 10, 64)
			if !bytes.Equal(got, seeded(seed)) {
				t.Fatalf("%s: %s version %s holds wrong bytes", when, v.Key, v.ID)
			}
		}
		if !vp.Truncated {
			break
		}
		vp, err = e.Versions(ctx, "registry", index.VersionOptions{KeyMarker: vp.NextKeyMarker, VersionMarker: vp.NextVersionMarker})
		if err != nil {
			t.Fatal(err)
		}
	}
	for id, key := range acked {
		if !seen[id] {
			_, err := e.Stat(ctx, "registry", key, id)
			t.Fatalf("%s: acknowledged version %s of %s lost: %v", when, id, key, errors.Join(err))
		}
	}
	return seen
}

// checkOnLogOnce checks that every version of ids and every acknowledged
// one is on the audit log exactly once: a put's entry is committed with
// its index write, and the log takes what a crash left in the index
// (before or after its journal took it) once.
func checkOnLogOnce(t *testing.T, e *vault.Engine, ids map[manifest.ID]bool, acked map[manifest.ID]string, when string) {
	t.Helper()
	commits := map[manifest.ID]int{}
	err := e.AuditLog().Events(t.Context(), 0, func(_ uint64, ev audit.Event) error {
		if (ev.Kind == vault.KindPut || ev.Kind == vault.KindDeleteMarker) && ev.Outcome == "" {
			commits[ev.Version]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: reading the audit log: %v", when, err)
	}
	for id := range ids {
		if commits[id] != 1 {
			t.Fatalf("%s: version %s in the index is %d times on the audit log, want once", when, id, commits[id])
		}
	}
	for id := range acked {
		if commits[id] != 1 {
			t.Fatalf("%s: acknowledged version %s is %d times on the audit log, want once", when, id, commits[id])
		}
	}
}

// TestDrainCrashChild drains a site until killed.
func TestDrainCrashChild(t *testing.T) {
	root := os.Getenv("EMBASSY_DRAIN_CHILD")
	if root == "" {
		t.Skip("child process of TestDrainConvergesAfterCrashes")
	}
	e := crashEngine(t, root, "index.db").e
	e.SetDraining([]string{"fin-2"})
	fmt.Println("draining")
	for {
		if _, err := New(e, nil).Scrub(context.Background(), ScrubOptions{Repair: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDrainConvergesAfterCrashes kills a draining process at random moments
// and checks after each kill that every object reads, then that a rerun
// empties the site.
func TestDrainConvergesAfterCrashes(t *testing.T) {
	if os.Getenv("EMBASSY_DRAIN_CHILD") != "" {
		t.Skip("in the child")
	}
	root := t.TempDir()
	if d := os.Getenv("EMBASSY_DRAIN_ROOT"); d != "" {
		root = d // kept for a post-mortem
	}
	first := crashEngine(t, root, "index.db")
	want := map[string][]byte{}
	for i := range 40 {
		key := fmt.Sprintf("o/%d", i)
		want[key] = seeded(uint64(i))
		if _, err := first.e.Put(context.Background(), "registry", key, bytes.NewReader(want[key]), vault.PutOptions{Size: int64(len(want[key]))}); err != nil {
			t.Fatal(err)
		}
	}
	closeCrash(t, first)
	// The kill delays are random; a failure names its seed, and
	// EMBASSY_DRAIN_SEED=N repeats that run's delays.
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("EMBASSY_DRAIN_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("EMBASSY_DRAIN_SEED=%q: %v", v, err)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	runs := 6
	if testing.Short() {
		runs = 2
	}
	var delays []time.Duration
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kill delays %v, seeded with %d: EMBASSY_DRAIN_SEED=%d repeats them", delays, seed, seed)
		}
	})
	check := func(e *vault.Engine, when string) {
		for key, w := range want {
			r, err := e.Get(context.Background(), "registry", key, vault.GetOptions{Length: -1})
			if err != nil {
				t.Fatalf("%s: %s unreadable: %v", when, key, err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, w) {
				t.Fatalf("%s: %s differs", when, key)
			}
		}
	}
	for run := range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDrainCrashChild$")
		cmd.Env = append(os.Environ(), "EMBASSY_DRAIN_CHILD="+root)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(out).ReadString('\n') // "draining"
		d := time.Duration(rng.IntN(60)) * time.Millisecond
		delays = append(delays, d)
		time.Sleep(d)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cn := crashEngine(t, root, "index.db")
		check(cn.e, fmt.Sprintf("after kill %d", run))
		closeCrash(t, cn)
	}
	e := crashEngine(t, root, "index.db").e
	e.SetDraining([]string{"fin-2"})
	// Moves cut short by the kills left records of what they were writing;
	// with the grace period over, collection removes what no revision uses.
	rep, err := New(e, nil).Scrub(context.Background(), ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil || len(rep.Unrepairable) > 0 || len(rep.Errors) > 0 || rep.Lost > 0 {
		t.Fatalf("final drain: %+v, %v", rep, err)
	}
	if c := rep.Collection; c == nil || !c.Ran || len(c.Errors) > 0 || len(c.SkippedSites) > 0 {
		t.Fatalf("final drain: collection %+v", c)
	}
	var left []string
	s, _ := e.Site("fin-2")
	for _, prefix := range []string{manifest.ShardPrefix, manifest.ManifestPrefix} {
		s.Store.List(context.Background(), prefix, func(i site.Info) error { left = append(left, i.Name); return nil })
	}
	if len(left) != 0 {
		t.Fatalf("%d blobs left on the drained site after a rerun: %v", len(left), left)
	}
	check(e, "after the drain finished")
}
