package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/s3/sigv4"
)

func TestParseHeapInuse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		err      string
	}{
		{"memstats", "heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 5\n# HeapInuse = 7340032\n# HeapReleased = 1\n", 7340032, ""},
		{"no memstats", "heap profile: 1: 2 [3: 4] @ heap/1048576\n", 0, "no \"# HeapInuse = \" line"},
		{"not a number", "# HeapInuse = lots\n", 0, `HeapInuse "lots"`},
		{"negative", "# HeapInuse = -1\n", 0, `HeapInuse "-1"`},
		{"binary profile", "\x1f\x8b\x08\x00", 0, "no \"# HeapInuse = \" line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHeapInuse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseHeapInuse = %d, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseHeapInuse = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tembassy\nVmPeak:\t 2000000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n"
	for _, tc := range []struct {
		name, in, field string
		want            int64
		err             string
	}{
		{"hwm", status, "VmHWM", 51200 << 10, ""},
		{"rss", status, "VmRSS", 40000 << 10, ""},
		{"missing", status, "VmSwap", 0, "no VmSwap line"},
		{"not kB", "VmHWM:\t51200 MB\n", "VmHWM", 0, "not a size in kB"},
		{"not a number", "VmHWM:\tlots kB\n", "VmHWM", 0, "not a size in kB"},
		{"prefix of another field", "VmHWMx:\t1 kB\n", "VmHWM", 0, "no VmHWM line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusKB([]byte(tc.in), tc.field)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseStatusKB = %d, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStatusKB = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestPeakRSSOfSelf resets and reads this process's own VmHWM, as the
// benchmark does the server's.
func TestPeakRSSOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		t.Skipf("no /proc/self/clear_refs: %v", err)
	}
	if err := resetPeakRSS(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	n, err := peakRSS(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("peakRSS = %d, %v; want a positive size", n, err)
	}
}

func TestParsePhases(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"list,rebuild,scrub,drill", []string{"list", "rebuild", "scrub", "drill"}, ""},
		{"drill, list", []string{"list", "drill"}, ""}, // run in their own order
		{"put,scrub", []string{"scrub"}, ""},
		{"", nil, ""},
		{"list,collect", nil, `unknown phase "collect"`},
		{"scrub,scrub", nil, `phase "scrub" given twice`},
	} {
		got, err := parsePhases(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parsePhases(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parsePhases(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestJobChecks holds the phases run as jobs to their reports: a count
// other than the objects put, or anything at risk or lost, fails.
func TestJobChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		check  func([]byte) (int, error)
		report string
		err    string
	}{
		{"rebuild ok", checkRebuild(200), `{"sites":6,"site_errors":[],"versions":200,"corrupt":0,"unrestored":0}`, ""},
		{"rebuild short", checkRebuild(200), `{"sites":6,"site_errors":[],"versions":199}`, "199 versions indexed from 6 sites, 200 were put"},
		{"rebuild site error", checkRebuild(200), `{"sites":5,"site_errors":["est-1: gone"],"versions":200}`, "est-1: gone"},
		{"rebuild unrestored", checkRebuild(200), `{"sites":6,"versions":200,"unrestored":3}`, "3 versions not restored"},
		{"scrub ok", checkScrub(200), `{"versions":200,"at_risk":0,"lost":0,"errors":[]}`, ""},
		{"scrub at risk", checkScrub(200), `{"versions":200,"at_risk":2}`, "2 versions at risk"},
		{"scrub short", checkScrub(200), `{"versions":150}`, "150 versions scrubbed, 200 were put"},
		{"drill ok", checkDrill(200), `{"lost_sites":["est-1","est-2"],"objects":200,"read":200,"rpo_objects":0}`, ""},
		{"drill loses", checkDrill(200), `{"lost_sites":["est-1","est-2"],"objects":200,"read":200,"rpo_objects":4}`, "loses 4 objects"},
		{"drill lost nothing", checkDrill(200), `{"lost_sites":[],"objects":200,"read":200}`, "no site lost"},
		{"drill sampled", checkDrill(200), `{"lost_sites":["est-1"],"objects":200,"read":20}`, "20 of 200 objects read"},
		{"not json", checkScrub(200), `nope`, "scrub report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.check([]byte(tc.report))
			if tc.err == "" && err != nil {
				t.Fatalf("check: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("check = %v, want an error with %q", err, tc.err)
			}
		})
	}
}

// fakeJobs is an admin API with one job kind, scrub, that checks every
// request's signature with embassy's verifier: the job runs for two
// follow-ups, then ends in state with result.
func fakeJobs(t *testing.T, key oneKey, state, result string) *httptest.Server {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := sigv4.Verify(r, key, time.Now(), sigv4.Options{Region: "us-east-1"}); err != nil {
			http.Error(w, "access denied: "+err.Error(), http.StatusForbidden)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/_embassy/v1/scrub":
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"id":"j-1","kind":"scrub","state":"queued"}`))
		case r.Method == http.MethodGet && r.URL.Path == "/_embassy/v1/jobs/j-1":
			if r.URL.Query().Get("wait") == "" {
				http.Error(w, "follow with wait", http.StatusBadRequest)
				return
			}
			if polls.Add(1) < 3 {
				w.Write([]byte(`{"id":"j-1","kind":"scrub","state":"running"}`))
				return
			}
			fmt.Fprintf(w, `{"id":"j-1","kind":"scrub","state":%q,"error":"it broke","result":%s}`, state, result)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestJob(t *testing.T) {
	key := oneKey{"AKOPS", "secret-of-the-operator"}
	for _, tc := range []struct {
		name, state, result string
		key                 oneKey
		want                int
		err                 string
	}{
		{"done", "done", `{"versions":200}`, key, 200, ""},
		{"done short", "done", `{"versions":10}`, key, 10, "10 versions scrubbed, 200 were put"},
		{"failed", "failed", `{"versions":3}`, key, 0, "job j-1 (scrub) failed: it broke"},
		{"interrupted", "interrupted", `null`, key, 0, "job j-1 (scrub) interrupted"},
		{"wrong secret", "done", `{"versions":200}`, oneKey{key.ak, "another"}, 0, "403 Forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeJobs(t, key, tc.state, tc.result)
			s := &scaler{admin: &adminClient{endpoint: strings.TrimPrefix(srv.URL, "http://"), accessKey: tc.key.ak,
				secretKey: tc.key.sk, region: "us-east-1", client: srv.Client()}}
			n, _, err := s.job(t.Context(), "scrub", "{}", checkScrub(200))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("job = %d, %v; want an error with %q", n, err, tc.err)
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("job = %d, %v; want %d", n, err, tc.want)
			}
		})
	}
}

// TestS3ScaleScript runs bench/s3scale.sh end to end at a tiny size: it
// builds embassy, starts `serve --dev` on 127.0.0.1, puts 200 objects
// through S3, lists them, rebuilds the index, scrubs and drills through the
// admin API, and each phase must report its 200 objects, the server's peak
// RSS and its heap. So the script and what it drives do not rot.
func TestS3ScaleScript(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPING bench/s3scale.sh in -short mode (it builds and runs embassy)")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bash is needed to run bench/s3scale.sh: %v", err)
		}
		t.Skipf("SKIPPING bench/s3scale.sh: no bash: %v", err)
	}
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bench/s3scale.sh needs /proc/PID/clear_refs: %v", err)
		}
		t.Skipf("SKIPPING bench/s3scale.sh: no /proc/self/clear_refs: %v", err)
	}
	script, err := filepath.Abs(filepath.Join("..", "s3scale.sh"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out := filepath.Join(work, "scale.jsonl")
	cmd := exec.CommandContext(t.Context(), bash, script)
	profs := filepath.Join(work, "heap")
	cmd.Env = append(os.Environ(), "OBJECTS=200", "CONCURRENCY=8", "DIR="+work, "OUT="+out, "KEEP=", "HEAP_PROFILES="+profs)
	// Stopped by the test's deadline, the script stops its server itself.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench/s3scale.sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("bench/s3scale.sh:\n%s", stdout.String())

	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var r scaleRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		phases = append(phases, r.Phase)
		if r.Count != 200 || r.Seconds <= 0 || r.PerS <= 0 {
			t.Errorf("%s: %d %s in %.3fs, want 200 in some time", r.Phase, r.Count, r.Unit, r.Seconds)
		}
		if r.BaseHeap <= 0 {
			t.Errorf("%s: no heap before the phase", r.Phase)
		}
		if r.PeakRSS < 1<<20 || r.PeakHeap < 1<<20 || r.HeapSamples < 2 {
			t.Errorf("%s: peak RSS %d, peak heap %d from %d samples: want both measured, from at least two samples", r.Phase, r.PeakRSS, r.PeakHeap, r.HeapSamples)
		}
		if r.IndexBytes <= 0 {
			t.Errorf("%s: no index size", r.Phase)
		}
		if r.Phase != "put" && r.Phase != "list" && len(r.Report) == 0 {
			t.Errorf("%s: no job report", r.Phase)
		}
	}
	if want := scalePhases; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	for _, line := range []string{"| index rebuild (admin job) |", "| drill (admin job) |", "bytes after the puts"} {
		if !strings.Contains(stdout.String(), line) {
			t.Errorf("no %q in the script's output", line)
		}
	}
	for _, p := range append(slices.Clone(scalePhases), "end") {
		name := filepath.Join(profs, p+".pb.gz")
		if p != "end" {
			name = filepath.Join(profs, p+"-before.pb.gz")
		}
		if raw, err := os.ReadFile(name); err != nil || !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
			t.Errorf("heap profile %s: %v, want a gzipped profile", name, err)
		}
	}
	// Without KEEP the node's directory is gone.
	if left, _ := filepath.Glob(filepath.Join(work, "embassy-s3scale.*")); len(left) != 0 {
		t.Errorf("the script left %v behind", left)
	}
}

func FuzzParseHeapInuse(f *testing.F) {
	f.Add([]byte("# runtime.MemStats\n# HeapInuse = 7340032\n"))
	f.Add([]byte("# HeapInuse = \n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if n, err := parseHeapInuse(raw); err == nil && (n < 0 || !bytes.Contains(raw, []byte("# HeapInuse = "))) {
			t.Fatalf("parseHeapInuse(%q) = %d", raw, n)
		}
	})
}

func FuzzParseStatusKB(f *testing.F) {
	f.Add([]byte("VmHWM:\t   51200 kB\n"))
	f.Add([]byte("VmHWM: 1 kB"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if n, err := parseStatusKB(raw, "VmHWM"); err == nil && (n < 0 || n%1024 != 0) {
			t.Fatalf("parseStatusKB(%q) = %d", raw, n)
		}
	})
}
