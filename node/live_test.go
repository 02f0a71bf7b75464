package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// s3Do sends a signed S3 request to a serving node.
func s3Do(ctx context.Context, addr, ak, sk, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestWritersThroughEveryChange: S3 clients write, one-stripe and streamed
// objects, through a serving node while every kind of configuration change
// is made on it, each through the method its admin endpoint calls: sites
// added, a provider drained (a job) and its sites removed, a vault's policy
// raised, a principal added, a credential added (config edit), the label
// policies changed (config edit: the engine is replaced), an object
// relabelled. Every write is acknowledged or answered 503 SlowDown, never
// anything else; every one acknowledged reads back as written; none is on
// a drained site; a scrub finds every version keeping the vault's policy;
// and the new credential works at once.
func TestWritersThroughEveryChange(t *testing.T) {
	addr, cred, n := serveDev(t, httpguard.Limits{})
	ctx := n.As(t.Context(), "admin")
	if err := n.AddVault(VaultConfig{Name: "live", Erasure: "2+1", Survive: "jurisdictions=1", StripeSize: "64KiB"}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, body []byte) (int, []byte, error) {
		return s3Do(t.Context(), addr, cred.AccessKey, cred.SecretKey, "PUT", "/live/"+key, body)
	}
	var mu sync.Mutex
	acked := map[string][]byte{}
	var failures []string
	var wrote, slowdowns atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d/%d", w, i)
				size := 300
				if i%2 == 1 {
					size = 200<<10 + i
				}
				body := bytes.Repeat([]byte(key+"|"), size/len(key+"|")+1)[:size]
				st, b, err := put(key, body)
				switch {
				case err != nil || (st != 200 && st != 503):
					mu.Lock()
					failures = append(failures, fmt.Sprintf("put %s: %d %v %s", key, st, err, b))
					mu.Unlock()
					return
				case st == 503:
					if !strings.Contains(string(b), "SlowDown") && !strings.Contains(string(b), "ServiceUnavailable") {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("put %s: 503 %s", key, b))
						mu.Unlock()
						return
					}
					slowdowns.Add(1)
				default:
					wrote.Add(1)
					mu.Lock()
					acked[key] = body
					mu.Unlock()
				}
			}
		})
	}
	more := func(what string) {
		t.Helper()
		want := wrote.Load() + 6
		deadline := time.Now().Add(time.Minute)
		for wrote.Load() < want {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for writes %s (%v)", what, failures)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	editConfig := func(edit func(c *Config)) {
		t.Helper()
		c := *n.conf()
		edit(&c)
		body, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if res, err := n.ProposeConfig(ctx, body); err != nil || !res.Applied {
			t.Fatalf("config edit: %v %+v", err, res)
		}
	}
	more("at the start")
	sitesDir := t.TempDir()
	for _, s := range []SiteConfig{
		{Descriptor: site.Descriptor{ID: "swe-1", Jurisdiction: "SWE", Provider: "gov-dc", Control: "SWE", Accredited: "NATO SECRET"}, Driver: "dir", Path: sitesDir + "/swe-1"},
		{Descriptor: site.Descriptor{ID: "nor-1", Jurisdiction: "NOR", Provider: "gov-dc", Control: "NOR", Accredited: "NATO SECRET"}, Driver: "dir", Path: sitesDir + "/nor-1"},
		{Descriptor: site.Descriptor{ID: "den-1", Jurisdiction: "DEN", Provider: "gov-dc", Control: "DEN", Accredited: "NATO SECRET"}, Driver: "dir", Path: sitesDir + "/den-1"},
	} {
		if err := n.AddSite(s); err != nil {
			t.Fatal(err)
		}
	}
	more("after the sites were added")
	cloudco, err := n.SelectSites("provider=cloudco")
	if err != nil {
		t.Fatal(err)
	}
	j, err := n.StartDrain(ctx, cloudco, "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	more("during the drain")
	if j, err = n.WaitJob(t.Context(), j.ID); err != nil || j.State != JobDone {
		t.Fatalf("drain: %v %+v", err, j)
	}
	more("after the drain")
	for _, id := range cloudco {
		if err := n.RemoveSite(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	more("after the sites were removed")
	if _, err := n.ChangePolicy(ctx, "live", PolicyChange{Erasure: new("2+2")}); err != nil {
		t.Fatal(err)
	}
	more("after the policy was raised")
	if err := n.AddPrincipal(ctx, access.Principal{Name: "dora", Nation: "EST"}); err != nil {
		t.Fatal(err)
	}
	editConfig(func(c *Config) {
		c.S3.Credentials = append(slices.Clone(c.S3.Credentials), CredentialConfig{Principal: "dora", AccessKey: "AKDORA", SecretKey: "dora-secret-key"})
	})
	more("after a credential was added")
	editConfig(func(c *Config) {
		c.Policies = append(slices.Clone(c.Policies), label.Policy{ID: "EST", Levels: []string{"AVALIK", "ASUTUSESISENE", "KONFIDENTSIAALNE"}})
	})
	more("after the label policies changed (a new engine)")
	if _, err := n.Engine.SetLabel(ctx, "live", "w0/0", [16]byte{}, "NATO RESTRICTED"); err != nil {
		t.Fatal(err)
	}
	more("after a relabel")
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d writes acknowledged, %d answered 503 SlowDown", wrote.Load(), slowdowns.Load())

	// The credential added is in force.
	if st, b, err := s3Do(t.Context(), addr, "AKDORA", "dora-secret-key", "PUT", "/live/by-dora", []byte("dora")); err != nil || st != 200 {
		t.Errorf("a write with the credential added: %d %v %s", st, err, b)
	}
	sys := vault.AsSystem(t.Context())
	mu.Lock()
	defer mu.Unlock()
	for key, body := range acked {
		st, b, err := s3Do(t.Context(), addr, cred.AccessKey, cred.SecretKey, "GET", "/live/"+key, nil)
		if err != nil || st != 200 || !bytes.Equal(b, body) {
			t.Errorf("get %s: %d %v (%d bytes, want %d)", key, st, err, len(b), len(body))
		}
		locs, err := n.Engine.Locate(sys, "live", key, [16]byte{})
		if err != nil {
			t.Errorf("locate %s: %v", key, err)
		}
		for _, l := range locs {
			if slices.Contains(cloudco, l.Site) {
				t.Errorf("%s has a shard on drained site %s", key, l.Site)
			}
		}
	}
	rep, err := n.Keeper().Scrub(t.Context(), housekeeping.ScrubOptions{})
	if err != nil || rep.AtRisk != 0 || rep.Versions < len(acked) || len(rep.Errors) > 0 {
		t.Errorf("scrub after the changes: %v %+v", err, rep)
	}
}

// TestDescriptorPublishedWhileConfigChanges: publishing the node
// descriptor (which the peer listener does when it first makes the peer
// keys) reads the configuration in force while a change replaces it. Under
// -race this failed when the descriptor read the Config field directly
// (CI, TestHostedSiteConformance); without -race it checks that every
// published descriptor names the node.
func TestDescriptorPublishedWhileConfigChanges(t *testing.T) {
	n := newAllyNode(t, "EST").Node
	const rounds = 20
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rounds {
			changeConfig(t, n, func(c *Config) { c.S3.Region = fmt.Sprintf("region-%d", i) })
		}
	})
	for range rounds {
		if missed := n.PublishDescriptor(t.Context()); len(missed) > 0 {
			t.Fatalf("descriptor not written to %v", missed)
		}
	}
	wg.Wait()
	d, err := n.descriptorFiles()
	if err != nil {
		t.Fatal(err)
	}
	if d.NodeID != n.conf().Node.ID || !bytes.Contains(d.Config, []byte("region-19")) {
		t.Fatalf("descriptor after the changes: node %q, config %s", d.NodeID, d.Config)
	}
}
