package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// devServe starts 'embassy serve --dev' on 127.0.0.1:0 and returns its URL
// and the admin principal's credential, set in the environment as the
// operator credential --node uses.
func devServe(t *testing.T) (dir, url, ak, sk string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "node")
	s := startServe(t, "--dev", "--dir", dir, "--address", "127.0.0.1:0")
	m := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("no credential in the banner:\n%s", s.out)
	}
	t.Setenv("EMBASSY_NODE", "")
	t.Setenv("EMBASSY_ACCESS_KEY", m[1])
	t.Setenv("EMBASSY_SECRET_KEY", m[2])
	return dir, "http://" + s.addr, m[1], m[2]
}

// s3client is a minimal signed S3 client for traffic during operations.
type s3client struct {
	url, ak, sk string
}

func (c s3client) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: c.ak, SecretAccessKey: c.sk}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
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

// countBlobs counts shard and manifest files in a directory site.
func countBlobs(t *testing.T, root string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"s", "m"} {
		filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return nil
		})
	}
	return n
}

// TestRemoteDrainUnderTraffic: 'embassy --node' adds a site and drains a
// whole provider from a running node while S3 clients keep writing and
// reading; every acknowledged write stays readable, and no shard is left
// on, or written to, the drained sites.
func TestRemoteDrainUnderTraffic(t *testing.T) {
	dir, url, ak, sk := devServe(t)
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, append([]string{"--node", url}, args...)...)
		if err != nil {
			t.Fatalf("embassy --node %v: %v\n%s%s", args, err, out, errOut)
		}
		return out
	}
	cli("vault", "create", "registry", "--survive", "jurisdictions=1")
	c := s3client{url, ak, sk}
	ctx := t.Context()
	body := func(k string) []byte { return bytes.Repeat([]byte(k+"|"), 3000) }
	var mu sync.Mutex
	var acked []string
	var writes, reads, slowdowns atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d/%d", w, i)
				st, b, err := c.do(ctx, "PUT", "/registry/"+k, body(k))
				switch {
				case err != nil:
					fail("put %s: %v", k, err)
					return
				case st == 503:
					slowdowns.Add(1)
					continue
				case st != 200:
					fail("put %s: %d %s", k, st, b)
					return
				}
				writes.Add(1)
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			var k string
			if len(acked) > 0 {
				k = acked[i%len(acked)]
			}
			mu.Unlock()
			if k == "" {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			st, b, err := c.do(ctx, "GET", "/registry/"+k, nil)
			if err != nil || st != 200 || !bytes.Equal(b, body(k)) {
				fail("get %s during the drain: %d %v (%d bytes)", k, st, err, len(b))
				return
			}
			reads.Add(1)
		}
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the first writes", func() bool { return writes.Load() >= 20 })
	cli("site", "add", "swe-1", "--path", filepath.Join(t.TempDir(), "swe-1"), "--jurisdiction", "SWE", "--provider", "gov-dc")
	before := writes.Load()
	out := cli("site", "drain", "--provider", "cloudco")
	for _, id := range []string{"est-2", "lux-2", "fin-2"} {
		if !strings.Contains(out, "site "+id+": empty") {
			t.Errorf("drain output does not say %s is empty:\n%s", id, out)
		}
	}
	// Traffic went on during the drain, and after it.
	waitFor("writes after the drain", func() bool { return writes.Load() >= before+20 })
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d writes, %d reads, %d answered 503 SlowDown", writes.Load(), reads.Load(), slowdowns.Load())
	// No blob on the drained sites: writes during and after the drain
	// avoided them.
	for _, id := range []string{"est-2", "lux-2", "fin-2"} {
		if n := countBlobs(t, filepath.Join(dir, "sites", id)); n != 0 {
			t.Errorf("site %s holds %d blobs after the drain", id, n)
		}
	}
	// Every acknowledged write reads back.
	mu.Lock()
	keys := append([]string(nil), acked...)
	mu.Unlock()
	for _, k := range keys {
		if st, b, err := c.do(ctx, "GET", "/registry/"+k, nil); err != nil || st != 200 || !bytes.Equal(b, body(k)) {
			t.Errorf("get %s after the drain: %d %v", k, st, err)
		}
	}
	// A scrub through the node finds everything in order.
	out = cli("scrub")
	if !strings.Contains(out, "corrupt 0, missing 0, misplaced 0") || !strings.Contains(out, "lost 0") {
		t.Errorf("scrub after the drain:\n%s", out)
	}
	// A finished job's rate cannot change; an unknown job is named.
	if _, errOut, err := runCLI(t, "--node", url, "job", "rate", "j-000000000000", "10MiB"); err == nil || !strings.Contains(errOut, "no such job") {
		t.Errorf("job rate of no job: %v %s", err, errOut)
	}
	// The jobs are listed.
	var jobs []struct {
		Kind, State string
	}
	if err := json.Unmarshal([]byte(cli("job", "ls", "--json")), &jobs); err != nil || len(jobs) != 2 || jobs[0].Kind != "scrub" || jobs[1].Kind != "drain" || jobs[1].State != "done" {
		t.Errorf("job ls: %v %+v", err, jobs)
	}
	// The drained sites go, without a restart.
	for _, id := range []string{"est-2", "lux-2", "fin-2"} {
		cli("site", "rm", id)
	}
	if st, _, err := c.do(ctx, "PUT", "/registry/after-rm", body("after-rm")); err != nil || st != 200 {
		t.Errorf("a write after the sites were removed: %d %v", st, err)
	}
}

// TestRemoteRefusals: with --node, commands that cannot work remotely say
// so and touch nothing; an operator command without a credential, or with
// one whose principal lacks the role, is refused.
func TestRemoteRefusals(t *testing.T) {
	_, url, _, _ := devServe(t)
	for _, args := range [][]string{
		{"init", "--nation", "EST"}, {"recover", "--share", "x"}, {"demo"}, {"custodian", "keygen", "x"}, {"serve"},
		{"put", "registry/k", "/dev/null"}, {"config", "restore"}, {"identity"},
	} {
		_, errOut, err := runCLI(t, append([]string{"--node", url}, args...)...)
		if err == nil || !strings.Contains(errOut, "does not work against a running node") {
			t.Errorf("embassy --node %v: %v\n%s", args, err, errOut)
		}
	}
	// Jobs need a node.
	if _, errOut, err := runCLI(t, "job", "ls"); err == nil || !strings.Contains(errOut, "--node") {
		t.Errorf("job ls without --node: %v %s", err, errOut)
	}
	// A writer's credential is refused.
	t.Setenv("EMBASSY_ACCESS_KEY", "nobody")
	t.Setenv("EMBASSY_SECRET_KEY", "wrong")
	if _, errOut, err := runCLI(t, "--node", url, "vault", "create", "x"); err == nil || !strings.Contains(errOut, "node:") {
		t.Errorf("an unknown credential: %v %s", err, errOut)
	}
	t.Setenv("EMBASSY_ACCESS_KEY", "")
	t.Setenv("EMBASSY_SECRET_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	if _, errOut, err := runCLI(t, "--node", url, "scrub"); err == nil || !strings.Contains(errOut, "operator's S3 credential") {
		t.Errorf("no credential: %v %s", err, errOut)
	}
}

// TestOfflineAndOnlineAgree: the listing commands give the same JSON from
// the node directory and from the running node.
func TestOfflineAndOnlineAgree(t *testing.T) {
	dir, url, _, _ := devServe(t)
	if _, errOut, err := runCLI(t, "--node", url, "vault", "create", "registry", "--survive", "jurisdictions=1"); err != nil {
		t.Fatal(err, errOut)
	}
	for _, args := range [][]string{{"vault", "ls"}, {"principal", "ls"}, {"site", "ls"}} {
		off, errOff, err1 := runCLI(t, append([]string{"--dir", dir, "--json"}, args...)...)
		on, errOn, err2 := runCLI(t, append([]string{"--node", url, "--json"}, args...)...)
		if err1 != nil || err2 != nil {
			t.Fatalf("%v: %v %v\n%s%s", args, err1, err2, errOff, errOn)
		}
		if off != on {
			t.Errorf("%v: offline and online differ:\n--- offline\n%s--- online\n%s", args, off, on)
		}
	}
	if os.Getenv("EMBASSY_NODE") != "" {
		t.Error("EMBASSY_NODE leaked")
	}
}

// TestJobOutcomesInAuditLog: 'audit log --kind job.end' shows how the jobs
// a running node ran ended; the log is the node's, so it shows them after
// the node stopped too. (Through --node the log is for auditors only: an
// admin's credential is refused.)
func TestJobOutcomesInAuditLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	s := startServe(t, "--dev", "--dir", dir, "--address", "127.0.0.1:0")
	m := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("no credential in the banner:\n%s", s.out)
	}
	t.Setenv("EMBASSY_NODE", "")
	t.Setenv("EMBASSY_ACCESS_KEY", m[1])
	t.Setenv("EMBASSY_SECRET_KEY", m[2])
	url := "http://" + s.addr
	if _, errOut, err := runCLI(t, "--node", url, "scrub"); err != nil {
		t.Fatal(err, errOut)
	}
	if _, errOut, err := runCLI(t, "--node", url, "audit", "log", "--kind", "job.end"); err == nil || !strings.Contains(errOut, "access denied") {
		t.Errorf("the audit log through --node as an admin, not an auditor: %v %s", err, errOut)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "--dir", dir, "--json", "audit", "log", "--kind", "job.end")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var evs []struct {
		Kind   string            `json:"kind"`
		Actor  string            `json:"actor"`
		Detail map[string]string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(evs) != 1 || evs[0].Kind != "job.end" || evs[0].Detail["job_kind"] != "scrub" || evs[0].Detail["state"] != "done" || evs[0].Actor != "admin" {
		t.Errorf("audit log --kind job.end: %+v", evs)
	}
	out, errOut, err = runCLI(t, "--dir", dir, "audit", "log", "--kind", "job")
	if err != nil || !strings.Contains(out, "job.end by admin") || !strings.Contains(out, "state=done") {
		t.Errorf("audit log --kind job: %v\n%s%s", err, out, errOut)
	}
}

// TestDatasetThroughNode: the dataset and catalog commands work against a
// running node, with the documents the offline commands print.
func TestDatasetThroughNode(t *testing.T) {
	dir, url, _, _ := devServe(t)
	if _, errOut, err := runCLI(t, "--node", url, "vault", "create", "registry", "--survive", "jurisdictions=1"); err != nil {
		t.Fatal(err, errOut)
	}
	out, errOut, err := runCLI(t, "--node", url, "dataset", "describe", "registry/2026/", "--title", "Population register", "--keyword", "population",
		"--temporal", "2026/..", "--label", "NATO RESTRICTED//REL TO LUX")
	if err != nil || !strings.Contains(out, "dataset registry/2026/ described: Population register (NATO RESTRICTED//REL TO LUX)") {
		t.Fatalf("describe --node: %v\n%s%s", err, out, errOut)
	}
	if _, errOut, err := runCLI(t, "--node", url, "dataset", "describe", "registry/2026/", "--temporal", "2026/2025"); err == nil || !strings.Contains(errOut, "the start is after the end") {
		t.Errorf("a bad period through --node: %v %s", err, errOut)
	}
	off, _, err1 := runCLI(t, "--dir", dir, "--json", "dataset", "ls")
	on, _, err2 := runCLI(t, "--node", url, "--json", "dataset", "ls")
	if err1 != nil || err2 != nil || off != on || !strings.Contains(on, `"title": "Population register"`) {
		t.Errorf("dataset ls: offline and online differ (%v %v):\n--- offline\n%s--- online\n%s", err1, err2, off, on)
	}
	out, errOut, err = runCLI(t, "--node", url, "catalog", "population")
	if err != nil || !strings.Contains(out, "registry/2026/") {
		t.Errorf("catalog --node: %v\n%s%s", err, out, errOut)
	}
	out, _, err = runCLI(t, "--node", url, "catalog", "--json", "keyword:nothing")
	if err != nil || !strings.Contains(out, `"dcat:dataset": []`) {
		t.Errorf("catalog --node --json of nothing: %v\n%s", err, out)
	}
	if out, errOut, err := runCLI(t, "--node", url, "dataset", "rm", "registry/2026/"); err != nil || !strings.Contains(out, "description removed") {
		t.Errorf("dataset rm --node: %v\n%s%s", err, out, errOut)
	}
	if _, errOut, err := runCLI(t, "--node", url, "dataset", "rm", "registry/2026/"); err == nil || !strings.Contains(errOut, "no such dataset description") {
		t.Errorf("dataset rm --node of nothing: %v %s", err, errOut)
	}
}
