package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestResticWhileOperating is the live node's end-to-end test: restic
// backs up a generated data set through the S3 API, again and again with
// new files each time, while on the same running node the operator,
// through 'embassy --node' (the real CLI against the admin API), adds two
// sites, drains a whole provider (at a rate it then lifts while the drain
// runs) and removes its sites, raises the vault's policy and adds a
// principal. Afterwards restic check --read-data passes, a restore is
// byte-identical, every object reads back through S3, a scrub through the
// node is clean, no blob is left on the drained sites — and embassy serve
// was never restarted.
func TestResticWhileOperating(t *testing.T) {
	t.Parallel()
	bin := need(t, "restic")
	s := startServer(t)
	const bucket = "e2e-live"
	rc := resticCLI(t, bin, s, bucket)
	embassy := &client{t: t, bin: embassyBin, env: append(cleanEnv(),
		"EMBASSY_NODE="+s.endpoint, "EMBASSY_ACCESS_KEY="+s.accessKey, "EMBASSY_SECRET_KEY="+s.secretKey)}
	op := func(args ...string) string {
		t.Helper()
		return embassy.run(args...)
	}

	// The vault restic writes into, with a policy the sites left after
	// the drain can keep (the dev node's default, 4+2 over three
	// jurisdictions, could not do without the provider drained).
	op("vault", "create", bucket, "--erasure", "2+1", "--survive", "jurisdictions=1")

	src := filepath.Join(t.TempDir(), "data")
	makeTree(t, src, append([]treeFile{{"archive/random.bin", 2 << 20}, {"archive/small.bin", 100}, {"empty", 0}},
		prefixTree("registry/", nestedTree(24))...))
	if err := os.WriteFile(filepath.Join(src, "registry", "records.txt"), []byte(strings.Repeat("population registry record; ", 20000)), 0o644); err != nil {
		t.Fatal(err)
	}
	rc.run("init")

	// The backups: each round adds a new file, so that every backup
	// uploads new packs, and runs restic backup. They go on until told to
	// stop; a backup that fails fails the test.
	var rounds atomic.Int64
	var backupErr error
	var errOnce sync.Once
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			writeFile(t, filepath.Join(src, "rounds", fmt.Sprintf("round-%03d.bin", i)), uint64(5000+i), 96<<10)
			b := *rc
			b.dir = src
			if out, stderr, err := b.try("backup", "--host", "e2e", "."); err != nil {
				errOnce.Do(func() { backupErr = fmt.Errorf("backup round %d: %v\n%s%s", i, err, out, stderr) })
				return
			}
			rounds.Add(1)
		}
	}()
	// waitRounds waits until n more backups have completed after the call.
	waitRounds := func(n int64) {
		t.Helper()
		want := rounds.Load() + n
		deadline := time.Now().Add(2 * time.Minute)
		for rounds.Load() < want {
			select {
			case <-done:
				t.Fatalf("the backups stopped: %v", backupErr)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for backup round %d (at %d)", want, rounds.Load())
			}
		}
	}
	waitRounds(1)

	// The operator, while the backups go on.
	sitesDir := t.TempDir()
	op("site", "add", "swe-1", "--driver", "dir", "--path", filepath.Join(sitesDir, "swe-1"), "--jurisdiction", "SWE", "--provider", "gov-dc")
	op("site", "add", "nor-1", "--driver", "dir", "--path", filepath.Join(sitesDir, "nor-1"), "--jurisdiction", "NOR", "--provider", "gov-dc")
	var started struct {
		ID        string `json:"id"`
		RateLimit int64  `json:"rate_limit"`
	}
	decodeJSON(t, op("site", "drain", "--provider", "cloudco", "--rate", "256KiB", "--detach", "--json"), &started)
	if started.ID == "" || started.RateLimit != 256<<10 {
		t.Fatalf("drain job: %+v", started)
	}
	// The rate goes while the drain runs (or has just ended: then the
	// node says so).
	if out, stderr, err := embassy.try("job", "rate", started.ID, "0"); err != nil && !strings.Contains(stderr, "already ended") {
		t.Fatalf("job rate %s 0: %v\n%s%s", started.ID, err, out, stderr)
	}
	var drain struct {
		State  string `json:"state"`
		Result struct {
			Sites     []string       `json:"sites"`
			Remaining map[string]int `json:"remaining_blobs"`
			Passes    int            `json:"passes"`
		} `json:"result"`
	}
	decodeJSON(t, op("job", "show", started.ID, "--follow", "--json"), &drain)
	if drain.State != "done" || len(drain.Result.Sites) != 3 {
		t.Fatalf("drain job ended %q: %+v", drain.State, drain.Result)
	}
	for id, n := range drain.Result.Remaining {
		if n != 0 {
			t.Errorf("the drain left %d blobs on %s", n, id)
		}
	}
	waitRounds(1)
	for _, id := range []string{"est-2", "lux-2", "fin-2"} {
		op("site", "rm", id)
	}
	op("vault", "set-policy", bucket, "--erasure", "2+2")
	op("principal", "add", "auditor-1", "--nation", "EST", "--role", "auditor")
	// A whole backup after the last change, then stop.
	waitRounds(1)
	close(stop)
	<-done
	if backupErr != nil {
		t.Fatal(backupErr)
	}
	t.Logf("%d backups while operating", rounds.Load())

	// The operator's changes are in force.
	var sites []struct {
		ID string `json:"id"`
	}
	decodeJSON(t, op("site", "ls", "--json"), &sites)
	var ids []string
	for _, s := range sites {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	if got := strings.Join(ids, ","); got != "est-1,fin-1,lux-1,nor-1,swe-1" {
		t.Errorf("sites after the changes: %s", got)
	}
	var vaults []struct {
		Name    string `json:"name"`
		Erasure string `json:"erasure"`
	}
	decodeJSON(t, op("vault", "ls", "--json"), &vaults)
	for _, v := range vaults {
		if v.Name == bucket && v.Erasure != "2+2" {
			t.Errorf("vault %s: erasure %s, want 2+2", bucket, v.Erasure)
		}
	}
	if !strings.Contains(op("principal", "ls"), "auditor-1") {
		t.Error("the principal added is not listed")
	}

	// Every object reads back through S3, byte for byte what its ETag
	// (an MD5 for single-part uploads) or length says.
	c := s3Client{endpoint: s.endpoint, ak: s.accessKey, sk: s.secretKey}
	keys := c.list(t, bucket)
	if len(keys) < 10 {
		t.Fatalf("the bucket lists only %d objects", len(keys))
	}
	for _, k := range keys {
		if n := c.getLen(t, bucket, k.Key); n != k.Size {
			t.Errorf("GET %s: %d bytes, listed %d", k.Key, n, k.Size)
		}
	}

	// A scrub through the node finds everything in order.
	var scrub struct {
		Versions        int      `json:"versions"`
		CorruptShards   int      `json:"corrupt_shards"`
		MissingShards   int      `json:"missing_shards"`
		MisplacedShards int      `json:"misplaced_shards"`
		MissingCopies   int      `json:"missing_manifest_copies"`
		DamagedCopies   int      `json:"damaged_manifest_copies"`
		Lost            int      `json:"lost"`
		AtRisk          int      `json:"at_risk"`
		Unrepairable    []string `json:"unrepairable"`
		Errors          []string `json:"errors"`
	}
	decodeJSON(t, op("scrub", "--json"), &scrub)
	if scrub.Versions < len(keys) || scrub.CorruptShards+scrub.MissingShards+scrub.MisplacedShards+scrub.MissingCopies+scrub.DamagedCopies+scrub.Lost+scrub.AtRisk != 0 ||
		len(scrub.Unrepairable)+len(scrub.Errors) != 0 {
		t.Errorf("scrub after the changes is not clean: %+v", scrub)
	}

	// restic finds its repository whole, and a restore is the data set.
	if out := rc.run("check", "--read-data"); !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check --read-data does not report success:\n%s", out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	rc.run("restore", "latest", "--target", restored)
	sameTree(t, src, restored)

	// Nothing is left on the drained sites.
	for _, id := range []string{"est-2", "lux-2", "fin-2"} {
		if n := blobsUnder(t, filepath.Join(s.dataDir, "sites", id)); n != 0 {
			t.Errorf("site %s holds %d shard or manifest blobs after the drain", id, n)
		}
	}
	// One serve, from start to end.
	if n := strings.Count(s.logTail(t, 1<<20), "serving S3 at "+s.endpoint); n != 1 {
		t.Errorf("the server announced itself %d times: it was restarted", n)
	}
}

// blobsUnder counts shard and manifest blobs in a directory site (none if
// it is gone).
func blobsUnder(t *testing.T, root string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"s", "m"} {
		err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
			if os.IsNotExist(err) {
				return fs.SkipAll
			}
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// s3Client is a minimal signed S3 client.
type s3Client struct {
	endpoint, ak, sk string
}

func (c s3Client) do(t *testing.T, method, path string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, nil)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(nil)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: c.ak, SecretAccessKey: c.sk}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

type listedKey struct {
	Key  string `xml:"Key"`
	Size int64  `xml:"Size"`
}

// list lists every key of a bucket (ListObjectsV2, following pages).
func (c s3Client) list(t *testing.T, bucket string) []listedKey {
	t.Helper()
	var out []listedKey
	token := ""
	for {
		q := url.Values{"list-type": {"2"}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		resp, err := c.do(t, "GET", "/"+bucket+"?"+q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("list %s: %d %s", bucket, resp.StatusCode, b)
		}
		var page struct {
			Contents []listedKey `xml:"Contents"`
			Next     string      `xml:"NextContinuationToken"`
			Trunc    bool        `xml:"IsTruncated"`
		}
		if err := xml.Unmarshal(b, &page); err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		out = append(out, page.Contents...)
		if !page.Trunc {
			return out
		}
		token = page.Next
	}
}

// getLen reads an object whole and returns its length.
func (c s3Client) getLen(t *testing.T, bucket, key string) int64 {
	t.Helper()
	resp, err := c.do(t, "GET", "/"+bucket+"/"+(&url.URL{Path: key}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || err != nil {
		t.Errorf("GET %s/%s: %d %v", bucket, key, resp.StatusCode, err)
	}
	return n
}
