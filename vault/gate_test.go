package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// epochIndex records, for every version committed, the last configuration
// change that had returned before its index write began.
type epochIndex struct {
	index.Index
	epoch *atomic.Int64
	mu    sync.Mutex
	at    map[manifest.ID]committed
}

type committed struct {
	epoch    int64
	envelope []byte
}

func (x *epochIndex) note(v index.Version, e int64) {
	x.mu.Lock()
	x.at[v.ID] = committed{e, v.Envelope}
	x.mu.Unlock()
}

func (x *epochIndex) Put(ctx context.Context, v index.Version) error {
	e := x.epoch.Load()
	err := x.Index.Put(ctx, v)
	if err == nil {
		x.note(v, e)
	}
	return err
}

func (x *epochIndex) PutIf(ctx context.Context, v index.Version, p index.Precondition) error {
	e := x.epoch.Load()
	err := x.Index.PutIf(ctx, v, p)
	if err == nil {
		x.note(v, e)
	}
	return err
}

// slowReader streams its data in small pieces with a pause between them,
// so that a streamed write is in flight long enough to straddle a
// configuration change. It is not an io.Seeker: a refused write cannot be
// retried by the engine and must come back to the caller.
type slowReader struct {
	r io.Reader
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return s.r.Read(p[:min(len(p), 1024)])
}

// liveConfig is one configuration the test puts in force.
type liveConfig struct {
	name     string
	sites    []Site
	draining []string
	policy   placement.Policy
}

// TestWritesThroughConfigurationChanges: writers run while sites are
// added, a whole provider is drained and then removed, and a vault's
// policy is raised. Every version the index holds conforms to the
// configuration in force when it was committed: none was committed after
// a change with a placement that change broke (a site drained or removed,
// the old code, a broken survival constraint). Writes that straddle a
// change are refused with ErrReconfigured (503 SlowDown) or, for one-stripe
// objects, placed again; and no blob of a write refused is left on a
// drained site.
func TestWritesThroughConfigurationChanges(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	var epoch atomic.Int64
	ix := &epochIndex{Index: n.ix, epoch: &epoch, at: map[manifest.ID]committed{}}

	extra := map[string]Site{}
	for _, d := range []site.Descriptor{
		{ID: "swe-1", Jurisdiction: "SWE", Provider: "gov-dc", Control: "SWE"},
		{ID: "nor-1", Jurisdiction: "NOR", Provider: "gov-dc", Control: "NOR"},
	} {
		ds, err := dir.New(filepath.Join(n.root, "sites", d.ID))
		if err != nil {
			t.Fatal(err)
		}
		extra[d.ID] = Site{Descriptor: d, Store: ds}
	}
	cloudco := []string{"est-2", "lux-2", "fin-2"}
	base := placement.Policy{K: 2, M: 1, Survive: placement.Loss{Jurisdictions: 1}, Home: "EST"}
	raised := placement.Policy{K: 3, M: 2, Survive: placement.Loss{Jurisdictions: 2}, Home: "EST"}
	withExtra := append(slices.Clone(n.sites), extra["swe-1"], extra["nor-1"])
	var govOnly []Site
	for _, s := range withExtra {
		if !slices.Contains(cloudco, s.ID) {
			govOnly = append(govOnly, s)
		}
	}
	configs := []liveConfig{
		{name: "start", sites: n.sites, policy: base},
		{name: "two sites added", sites: withExtra, policy: base},
		{name: "cloudco draining", sites: withExtra, draining: cloudco, policy: base},
		{name: "policy raised", sites: withExtra, draining: cloudco, policy: raised},
		{name: "cloudco removed", sites: govOnly, policy: raised},
	}
	vaultOf := func(p placement.Policy) []Vault {
		return []Vault{{Name: "live", Owner: "EST", StripeSize: testStripe, Policy: p}}
	}
	e, err := New(Config{NodeID: "test", Keys: n.keys, Index: ix, Sites: configs[0].sites, Audit: n.audit, Vaults: vaultOf(base)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })

	var wrote, refused, slow atomic.Int64
	var ackMu sync.Mutex
	acked := map[string][]byte{}
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d/%d", w, i)
				data := content(key, 100)
				var r io.Reader = bytes.NewReader(data)
				if i%2 == 1 {
					data = content(key, 6*testStripe+17)
					r = slowReader{bytes.NewReader(data)}
				}
				_, err := e.Put(ctx, "live", key, r, PutOptions{Size: int64(len(data))})
				switch {
				case err == nil:
					wrote.Add(1)
					ackMu.Lock()
					acked[key] = data
					ackMu.Unlock()
				case errors.Is(err, ErrReconfigured):
					refused.Add(1)
					if i%2 == 1 {
						slow.Add(1)
					}
				default:
					failMu.Lock()
					failures = append(failures, fmt.Sprintf("put %s: %v", key, err))
					failMu.Unlock()
					return
				}
			}
		})
	}
	waitWrites := func(atLeast int64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for wrote.Load() < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %d writes (%d so far)", atLeast, wrote.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for c := 1; c < len(configs); c++ {
		waitWrites(wrote.Load() + 8)
		cfg := configs[c]
		if !slices.Equal(cfg.draining, configs[c-1].draining) && len(cfg.draining) > 0 {
			e.SetDraining(cfg.draining)
		} else if err := e.Reconfigure(cfg.sites, vaultOf(cfg.policy)); err != nil {
			t.Fatalf("%s: %v", cfg.name, err)
		}
		epoch.Store(int64(c))
	}
	waitWrites(wrote.Load() + 8)
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d writes acknowledged, %d refused (%d of them streamed)", wrote.Load(), refused.Load(), slow.Load())

	// Every committed version conforms to the configuration of the last
	// change that had returned before it was committed.
	descs := map[string]site.Descriptor{}
	for _, s := range withExtra {
		descs[s.ID] = s.Descriptor
	}
	ix.mu.Lock()
	at := maps.Clone(ix.at)
	ix.mu.Unlock()
	onCloudco := map[string]bool{} // blobs of versions committed before the drain
	readBack := 0
	for _, c := range at {
		cfg := configs[c.epoch]
		m, err := manifest.Open(c.envelope, e.k())
		if err != nil {
			t.Fatal(err)
		}
		configured := map[string]bool{}
		for _, s := range cfg.sites {
			configured[s.ID] = true
		}
		var why []string
		if m.K != cfg.policy.K || m.M != cfg.policy.M {
			why = append(why, fmt.Sprintf("coded %d+%d, policy %d+%d", m.K, m.M, cfg.policy.K, cfg.policy.M))
		}
		for _, p := range m.Parts {
			var ds []site.Descriptor
			for i, sid := range p.Sites {
				if !configured[sid] {
					why = append(why, "on removed site "+sid)
				}
				if slices.Contains(cfg.draining, sid) {
					why = append(why, "on draining site "+sid)
				}
				ds = append(ds, descs[sid])
				if slices.Contains(cloudco, sid) && !p.Inline {
					onCloudco[sid+"/"+manifest.ShardBlobName(p.Blob, i)] = true
				}
			}
			p := cfg.policy
			p.K, p.M = m.K, m.M
			for _, x := range placement.Check(p, ds) {
				why = append(why, x.String())
			}
		}
		for _, sid := range manifestSites(m) {
			if slices.Contains(cloudco, sid) {
				onCloudco[sid+"/"+manifest.BlobName(m.Version)] = true
			}
		}
		if len(why) > 0 {
			t.Errorf("%s/%s committed after %q: %s", m.Vault, m.Key, cfg.name, strings.Join(why, "; "))
		}
		// What was committed after the drain is off the sites removed
		// since, and reads back as written (a write placed again after a
		// change is the data sent, not what the first attempt left in
		// its buffers).
		if c.epoch >= 2 {
			r, err := e.Get(ctx, "live", m.Key, GetOptions{VersionID: m.Version, Length: -1})
			if err != nil {
				t.Errorf("get %s: %v", m.Key, err)
				continue
			}
			got, err := io.ReadAll(r)
			r.Close()
			ackMu.Lock()
			want, ok := acked[m.Key]
			ackMu.Unlock()
			if err != nil || !ok || !bytes.Equal(got, want) {
				t.Errorf("get %s: %d bytes, %v; it differs from what was written (%d bytes, acknowledged %v)", m.Key, len(got), err, len(want), ok)
			}
			readBack++
		}
	}
	if len(at) == 0 || readBack == 0 {
		t.Fatalf("%d versions committed, %d read back", len(at), readBack)
	}
	// On the drained sites there is nothing but what versions committed
	// before the drain left: every refused write took its blobs away.
	for _, sid := range cloudco {
		s := n.faults[sid]
		for _, prefix := range []string{manifest.ShardPrefix, manifest.ManifestPrefix} {
			err := s.List(ctx, prefix, func(i site.Info) error {
				if !onCloudco[sid+"/"+i.Name] {
					t.Errorf("site %s holds %s, which no version committed before the drain owns", sid, i.Name)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}
