package boltindex

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/indextest"
	"github.com/embassy-dev/embassy/manifest"
)

// openTemp opens an index in a fresh temporary directory, closed when the
// test ends.
func openTemp(t testing.TB) *Index {
	t.Helper()
	ix, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) index.Index {
		return openTemp(t)
	})
}

func TestConcurrentPutsGroupCommit(t *testing.T) {
	ix := openTemp(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			v := index.Version{Vault: "v-1", Key: string(rune('a' + i%26)), ID: manifest.ID{byte(i), byte(i >> 8), 1}, Created: int64(i)}
			if err := ix.Put(t.Context(), v); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s, _ := ix.Stats(t.Context())
	if s.Versions != 200 || s.Keys != 26 {
		t.Fatalf("Stats = %+v, want 200 versions of 26 keys", s)
	}
	// The committer counted every write, in fewer transactions than
	// writes (Open's own transaction runs before it starts), and the
	// time each took.
	c := ix.CommitStats()
	if c.Writes != 200 {
		t.Errorf("CommitStats: %d writes, want 200", c.Writes)
	}
	if c.Batches == 0 || c.Batches > c.Writes {
		t.Errorf("CommitStats: %d transactions for %d writes", c.Batches, c.Writes)
	}
	if c.Wait <= 0 || c.Busy <= 0 {
		t.Errorf("CommitStats: wait %v, busy %v, want both above zero", c.Wait, c.Busy)
	}
}

// A write refused in a shared transaction is counted once, and its batch
// as many times as it ran (together, then each alone).
func TestCommitStatsCountRefusals(t *testing.T) {
	ix := openTemp(t)
	refused := errors.New("refused")
	if err := ix.update(func(*bolt.Tx) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("update = %v, want the refusal", err)
	}
	c := ix.CommitStats()
	if c.Writes != 1 || c.Batches != 2 {
		t.Errorf("CommitStats = %+v, want 1 write in 2 transactions (the batch, then the write alone)", c)
	}
}

func TestInterruptedRebuildDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, _ := Open(path)
	ix.SetRebuilding(true)
	ix.Close()
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.CheckComplete(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("CheckComplete = %v, want ErrIncomplete", err)
	}
	ix.SetRebuilding(false)
	if err := ix.CheckComplete(); err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, _ := Open(path)
	defer ix.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("second open of a locked index succeeded")
	}
}

// A second opener is told which process holds the index, not asked whether
// a node is running.
func TestOpenHeldNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	_, err = Open(path)
	if err == nil {
		t.Fatal("a second Open of a held index succeeded")
	}
	if want := fmt.Sprintf("in use by process %d (", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "is a node running") {
		t.Errorf("error %q guesses at a node", err)
	}
}
