package vault

import (
	"bytes"
	"context"
	"fmt"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site/dir"
)

// peakRSS returns the process's peak resident set size in bytes.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// TestMemoryChild puts and gets one large object and prints its peak RSS.
func TestMemoryChild(t *testing.T) {
	root := os.Getenv("EMBASSY_MEMORY_CHILD")
	if root == "" {
		t.Skip("child process of TestBoundedMemory")
	}
	size, _ := strconv.ParseInt(os.Getenv("EMBASSY_MEMORY_SIZE"), 10, 64)
	rk, _ := custody.GenerateRootKey()
	keys, _ := custody.NewKeyring(rk)
	ix, err := boltindex.Open(filepath.Join(root, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	var sites []Site
	for _, d := range topology {
		ds, _ := dir.New(filepath.Join(root, d.ID))
		sites = append(sites, Site{Descriptor: d, Store: ds})
	}
	e, err := New(Config{Keys: keys, Index: ix, Sites: sites, Vaults: []Vault{{Name: "big", Owner: "EST",
		Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srcHash := blake3.New()
	src := &benchutil.Gen{Left: size, State: 1, Hash: srcHash}
	info, err := e.Put(ctx, "big", "object", io.MultiReader(src), PutOptions{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Get(ctx, "big", "object", GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := blake3.New()
	n, err := io.Copy(h, r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), srcHash.Sum(nil)) || !bytes.Equal(info.Digest, srcHash.Sum(nil)) {
		t.Fatalf("read back %d bytes with another digest", n)
	}
	peak, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("peak-rss %d\n", peak)
}

// TestBoundedMemory is invariant 9: putting and getting a 2 GiB object
// keeps the process's peak RSS under 256 MiB.
func TestBoundedMemory(t *testing.T) {
	if os.Getenv("EMBASSY_MEMORY_CHILD") != "" {
		t.Skip("in the child")
	}
	if raceEnabled {
		t.Skip("memory is not measured under the race detector")
	}
	size := int64(2 << 30)
	if testing.Short() {
		size = 256 << 20
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryChild$")
	cmd.Env = append(os.Environ(), "EMBASSY_MEMORY_CHILD="+t.TempDir(), fmt.Sprintf("EMBASSY_MEMORY_SIZE=%d", size))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var peak int64
	for l := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "peak-rss "); ok {
			peak, _ = strconv.ParseInt(rest, 10, 64)
		}
	}
	if peak == 0 {
		t.Fatalf("child printed no peak RSS:\n%s", out)
	}
	t.Logf("put and get of %d MiB: peak RSS %d MiB", size>>20, peak>>20)
	if peak > 256<<20 {
		t.Fatalf("peak RSS %d MiB exceeds 256 MiB for a %d MiB object", peak>>20, size>>20)
	}
}
