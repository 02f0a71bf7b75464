package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /_embassy/metrics with the token and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, f *adminFixture, tok string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"/_embassy/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	r := f.send(t, req)
	if r.status != 200 {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, r.body)
	}
	return fams
}

// sum adds the values of a family's samples whose labels include want.
func sum(f *dto.MetricFamily, want map[string]string) float64 {
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// TestMetricsMoveWithTraffic: a scrape parses with the Prometheus text
// parser, has the families the operator guide lists, and they move when S3
// traffic flows and jobs run.
func TestMetricsMoveWithTraffic(t *testing.T) {
	f := newOpFixture(t)
	tok := "a-metrics-token-0123456789"
	if err := os.WriteFile(filepath.Join(f.cn.dir, "metrics.token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := *f.cn.n.Config
	c.Metrics.TokenFile = "metrics.token"
	if err := f.cn.n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	before := scrape(t, f, tok)
	for _, name := range []string{"embassy_sealed", "embassy_objects_at_risk", "embassy_repaired_bytes_total", "embassy_corrupt_blocks_total",
		"embassy_jobs", "embassy_site_draining", "embassy_site_free_bytes", "embassy_site_size_bytes", "go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if before[name] == nil {
			t.Errorf("no %s in the metrics", name)
		}
	}
	if v := sum(before["embassy_site_free_bytes"], map[string]string{"site": "est-1"}); v <= 0 {
		t.Errorf("free space of the directory site est-1: %v", v)
	}
	put := func(key string, body []byte) int {
		req, _ := http.NewRequest("PUT", f.srv.URL+"/registry/"+key, bytes.NewReader(body))
		sha := sha256.Sum256(body)
		h := hex.EncodeToString(sha[:])
		req.Header.Set("X-Amz-Content-Sha256", h)
		v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKCLERK", SecretAccessKey: "secret-of-clerk"}, req, h, "s3", "us-east-1", time.Now())
		return f.send(t, req).status
	}
	for i := range 5 {
		if st := put("k"+string(rune('a'+i)), bytes.Repeat([]byte("x"), 10000)); st != 200 {
			t.Fatalf("put: %d", st)
		}
	}
	// The index counts the puts' commits: five more writes at least, each
	// of which waited, in transactions that took time.
	mid := scrape(t, f, tok)
	if w0, w1 := sum(before["embassy_index_writes_total"], nil), sum(mid["embassy_index_writes_total"], nil); w1 < w0+5 {
		t.Errorf("embassy_index_writes_total went from %v to %v over five puts", w0, w1)
	}
	for _, name := range []string{"embassy_index_write_wait_seconds_total", "embassy_index_transactions_total", "embassy_index_transaction_seconds_total"} {
		if v0, v1 := sum(before[name], nil), sum(mid[name], nil); v1 <= v0 {
			t.Errorf("%s went from %v to %v over five puts", name, v0, v1)
		}
	}
	if txns, writes := sum(mid["embassy_index_transactions_total"], nil), sum(mid["embassy_index_writes_total"], nil); txns > writes {
		t.Errorf("%v index transactions for %v writes", txns, writes)
	}
	get, _ := http.NewRequest("GET", f.srv.URL+"/registry/ka", nil)
	sha := sha256.Sum256(nil)
	get.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sha[:]))
	v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKCLERK", SecretAccessKey: "secret-of-clerk"}, get, hex.EncodeToString(sha[:]), "s3", "us-east-1", time.Now())
	if r := f.send(t, get); r.status != 200 || len(r.body) != 10000 {
		t.Fatalf("get: %d", r.status)
	}
	f.waitJob(t, decodeJob(t, f.op(t, "POST", "/_embassy/v1/scrub", "ops", ScrubRequest{})).ID)
	// A job running shows its progress.
	started := make(chan struct{})
	running, err := f.cn.n.StartJob("drain", nil, "ops", func(ctx context.Context, progress func(done, total int64)) (any, error) {
		progress(3, 7)
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	after := scrape(t, f, tok)
	if d, tot := sum(after["embassy_job_progress_versions"], map[string]string{"job_id": running.ID}), sum(after["embassy_job_total_versions"], map[string]string{"job_id": running.ID}); d != 3 || tot != 7 {
		t.Errorf("running job's progress: %v of %v, want 3 of 7", d, tot)
	}
	f.cn.n.CancelJob(running.ID, "ops")
	var dash []byte
	// Every metric the Grafana dashboard in docs/ plots is one the node
	// exports.
	dash, err = os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var board struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &board); err != nil || len(board.Panels) == 0 {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	names := regexp.MustCompile(`\b(embassy|go|process)_[a-z0-9_]+`)
	for _, p := range board.Panels {
		for _, tg := range p.Targets {
			for _, name := range names.FindAllString(tg.Expr, -1) {
				if after[strings.TrimSuffix(name, "_bucket")] == nil {
					t.Errorf("dashboard panel %q plots %s, which the node does not export", p.Title, name)
				}
			}
		}
	}
	if r := f.op(t, "GET", "/_embassy/v1/debug/pprof/heap?debug=1", "ops", nil); r.status != 200 || !strings.Contains(r.body, "heap profile") {
		t.Errorf("pprof heap as an operator: %d %.200s", r.status, r.body)
	}
	for _, m := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"embassy_s3_requests_total", map[string]string{"operation": "PutObject", "status": "200"}, 5},
		{"embassy_s3_request_duration_seconds", map[string]string{"operation": "PutObject"}, 5},
		{"embassy_s3_received_bytes_total", nil, 50000},
		{"embassy_s3_sent_bytes_total", nil, 10000},
		{"embassy_site_operations_total", map[string]string{"operation": "put"}, 5 * 6},
		{"embassy_site_operation_duration_seconds", map[string]string{"site": "est-1", "operation": "put"}, 5},
		{"embassy_jobs", map[string]string{"kind": "scrub", "state": "done"}, 1},
		{"embassy_admin_requests_total", map[string]string{"endpoint": "POST /_embassy/v1/scrub", "status": "202"}, 1},
	} {
		got, was := sum(after[m.name], m.labels), sum(before[m.name], m.labels)
		if got-was < m.min || (m.min == 0 && after[m.name] == nil) {
			t.Errorf("%s%v: %v before, %v after; want it up by %v", m.name, m.labels, was, got, m.min)
		}
	}
}
