package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		bad  bool
	}{
		{name: "bytes", in: "4096", want: 4096},
		{name: "B suffix", in: "12B", want: 12},
		{name: "KiB", in: "4KiB", want: 4 << 10},
		{name: "MiB", in: "64MiB", want: 64 << 20},
		{name: "GiB", in: "1GiB", want: 1 << 30},
		{name: "zero", in: "0", want: 0},
		{name: "empty", in: "", bad: true},
		{name: "suffix only", in: "MiB", bad: true},
		{name: "decimal unit", in: "4MB", bad: true},
		{name: "negative", in: "-1KiB", bad: true},
		{name: "fraction", in: "1.5MiB", bad: true},
		{name: "overflow", in: "9999999999GiB", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("parseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		name string
		in   int64
		want string
	}{
		{name: "MiB", in: 64 << 20, want: "64MiB"},
		{name: "KiB", in: 4 << 10, want: "4KiB"},
		{name: "GiB", in: 2 << 30, want: "2GiB"},
		{name: "not a whole KiB", in: 1000, want: "1000B"},
		{name: "KiB but not MiB", in: 1536 << 10, want: "1536KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatSize(tt.in); got != tt.want {
				t.Fatalf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
			}
			if back, err := parseSize(tt.want); err != nil || back != tt.in {
				t.Fatalf("parseSize(formatSize(%d)) = %d, %v", tt.in, back, err)
			}
		})
	}
}

func TestParseCases(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []caseSpec
		bad  string // substring of the error
	}{
		{name: "one", in: "64MiB:1:16", want: []caseSpec{{64 << 20, 1, 16}}},
		{name: "several with spaces", in: "64MiB:4:16, 4KiB:16:4000", want: []caseSpec{{64 << 20, 4, 16}, {4 << 10, 16, 4000}}},
		{name: "empty", in: " ", bad: "no case"},
		{name: "two fields", in: "64MiB:1", bad: "want SIZE:CONCURRENCY:COUNT"},
		{name: "zero size", in: "0:1:1", bad: "size must be"},
		{name: "too large", in: "6GiB:1:1", bad: "size must be"},
		{name: "zero concurrency", in: "4KiB:0:1", bad: "concurrency"},
		{name: "count not a number", in: "4KiB:1:many", bad: "count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCases(tt.in)
			if tt.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("parseCases(%q) error = %v, want one containing %q", tt.in, err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCases(%q): %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("parseCases(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("parseCases(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	// proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime ...
	tests := []struct {
		name string
		in   string
		want uint64
		bad  bool
	}{
		{name: "plain", in: "42 (minio) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 30 0 1000", want: 325},
		{name: "command with spaces and parentheses", in: "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 11 22 5 5 20 0 1 0 1", want: 33},
		{name: "children not counted", in: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 1 2 1000 1000 20", want: 3},
		{name: "no parenthesis", in: "1 x S 0 1 1 0 -1 0 0 0 0 0 1 2", bad: true},
		{name: "truncated", in: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 1", bad: true},
		{name: "utime not a number", in: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 u 2 0 0", bad: true},
		{name: "stime negative", in: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 1 -2 0 0", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if tt.bad {
				if err == nil {
					t.Fatalf("parseProcStat(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseProcStat(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseProcStatSelf(t *testing.T) {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if _, err := parseProcStat(raw); err != nil {
		t.Fatalf("parseProcStat(/proc/self/stat): %v", err)
	}
}

func TestVerify(t *testing.T) {
	want := []byte("0123456789abcdef")
	tests := []struct {
		name string
		body []byte
		bad  string
	}{
		{name: "same", body: want},
		{name: "short", body: want[:10], bad: "10 bytes, 16 were put"},
		{name: "long", body: append(append([]byte{}, want...), 'x'), bad: "longer"},
		{name: "one byte differs", body: []byte("0123456789abcdeF"), bad: "differs"},
		{name: "empty", body: nil, bad: "0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A one-byte reader checks that verify copes with short reads.
			err := verify(iotest.OneByteReader(bytes.NewReader(tt.body)), want, make([]byte, 4))
			if tt.bad == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Fatalf("verify error = %v, want one containing %q", err, tt.bad)
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		err := verify(iotest.ErrReader(io.ErrUnexpectedEOF), want, make([]byte, 4))
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("verify error = %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
}

func TestPayload(t *testing.T) {
	p := newPayload(4096, 1)
	q := newPayload(4096, 1)
	r := newPayload(4096, 2)
	if !bytes.Equal(p.object(3, 4096), q.object(3, 4096)) {
		t.Fatal("the same seed gave different bytes")
	}
	if bytes.Equal(p.object(3, 4096), r.object(3, 4096)) {
		t.Fatal("different seeds gave the same bytes")
	}
	seen := map[string]int{}
	for i := range 300 {
		o := string(p.object(i, 4096))
		if len(o) != 4096 {
			t.Fatalf("object %d has %d bytes, want 4096", i, len(o))
		}
		if j, ok := seen[o]; ok {
			t.Fatalf("objects %d and %d have the same bytes", j, i)
		}
		seen[o] = i
	}
	// The largest object fits at the last offset of the window.
	_ = newPayload(64<<20, 1).object(payloadWindow-1, 64<<20)
}

func TestPhase(t *testing.T) {
	b := &bench{server: "test", pid: os.Getpid(), clkTck: 100, maxTime: 1 << 62}
	s := caseSpec{Size: 1 << 20, Concurrency: 3, Count: 10}
	var calls [10]int
	r, err := b.phase(t.Context(), "put", s, s.Count, func(_ context.Context, w, i int) error {
		if w < 0 || w >= s.Concurrency {
			t.Errorf("worker %d out of range", w)
		}
		calls[i]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range calls {
		if n != 1 {
			t.Errorf("index %d done %d times, want once", i, n)
		}
	}
	if r.Count != 10 || r.Bytes != 10<<20 || r.Truncated {
		t.Errorf("record = %+v, want 10 ops, 10 MiB, not truncated", r)
	}
	if r.CPUSeconds == nil || r.CPUPerGB == nil || *r.CPUSeconds < 0 {
		t.Errorf("record has no CPU time for pid %d: %+v", b.pid, r)
	}

	t.Run("first error stops the phase", func(t *testing.T) {
		_, err := b.phase(t.Context(), "get", s, s.Count, func(_ context.Context, _, i int) error {
			if i == 4 {
				return io.ErrUnexpectedEOF
			}
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "test get") || !strings.Contains(err.Error(), io.ErrUnexpectedEOF.Error()) {
			t.Fatalf("phase error = %v, want one naming the server, op and cause", err)
		}
	})
}

func records(t *testing.T, rs ...record) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, r := range rs {
		if err := json.NewEncoder(&buf).Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func ptr(f float64) *float64 { return &f }

// compareLines runs compare and returns a function finding the nth line
// that starts with a prefix, with runs of spaces collapsed.
func compareLines(t *testing.T, a, b []record) func(prefix string, nth int) string {
	t.Helper()
	var out bytes.Buffer
	if err := compare(&out, a, b); err != nil {
		t.Fatal(err)
	}
	return lineFinder(t, out.String())
}

// lineFinder returns a function finding the nth line of out that starts
// with a prefix, with runs of spaces collapsed.
func lineFinder(t *testing.T, out string) func(prefix string, nth int) string {
	lines := strings.Split(out, "\n")
	return func(prefix string, nth int) string {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				if nth == 0 {
					return strings.Join(strings.Fields(l), " ")
				}
				nth--
			}
		}
		t.Fatalf("no line %q (#%d) in\n%s", prefix, nth, out)
		return ""
	}
}

func TestCompare(t *testing.T) {
	a := []record{
		{Server: "embassy", Op: "put", Size: 64 << 20, Concurrency: 1, Count: 16, Bytes: 16 << 26, MBPerS: 300, CPUSeconds: ptr(0.9), CPUPerGB: ptr(0.8)},
		{Server: "embassy", Op: "get", Size: 64 << 20, Concurrency: 1, Count: 16, Bytes: 16 << 26, MBPerS: 100, CPUPerGB: ptr(0.5)},
		{Server: "embassy", Op: "put", Size: 4 << 10, Concurrency: 16, Count: 100, OpsPerS: 500, CPUPerGB: ptr(90)},
		{Server: "embassy", Op: "get", Size: 4 << 10, Concurrency: 16, Count: 100, OpsPerS: 100},
		{Server: "embassy", Op: "put", Size: 1 << 20, Concurrency: 16, Count: 10, OpsPerS: 10},
	}
	b := []record{
		{Server: "minio", Op: "put", Size: 64 << 20, Concurrency: 1, Bytes: 16 << 26, MBPerS: 200, CPUSeconds: ptr(1.8), CPUPerGB: ptr(1.6)},
		{Server: "minio", Op: "get", Size: 64 << 20, Concurrency: 1, MBPerS: 200, CPUPerGB: ptr(2)},
		{Server: "minio", Op: "put", Size: 4 << 10, Concurrency: 16, OpsPerS: 250, CPUPerGB: ptr(45)},
		{Server: "minio", Op: "get", Size: 4 << 10, Concurrency: 16, OpsPerS: 400},
	}
	find := compareLines(t, a, b)
	tests := []struct {
		name, prefix string
		nth          int
		want         string
	}{
		{name: "the goals", prefix: "Goals", want: "Goals (issue 15): every case ≥ 1.20x minio (1.50x beyond it); every PUT at ≤ 1.00x minio's CPU-seconds per GB."},
		{name: "large put beats", prefix: "PUT 64MiB c1", want: "PUT 64MiB c1 MB/s 300.0 200.0 1.50x - 1 ≥ 1.20x met"},
		{name: "large get misses", prefix: "GET 64MiB c1", want: "GET 64MiB c1 MB/s 100.0 200.0 0.50x - 1 ≥ 1.20x MISSED"},
		{name: "small put in ops", prefix: "PUT 4KiB c16", want: "PUT 4KiB c16 ops/s 500.0 250.0 2.00x - 1 ≥ 1.20x met"},
		{name: "small get judged too", prefix: "GET 4KiB c16", want: "GET 4KiB c16 ops/s 100.0 400.0 0.25x - 1 ≥ 1.20x MISSED"},
		{name: "missing counterpart", prefix: "PUT 1MiB c16", want: "PUT 1MiB c16 ops/s 10.0 - - - 0 ≥ 1.20x no minio result"},
		{name: "cpu of a put judged against minio", prefix: "PUT 64MiB c1", nth: 1, want: "PUT 64MiB c1 0.80 1.60 0.50x - ≤ 1.00x met"},
		{name: "cpu of a small put judged too", prefix: "PUT 4KiB c16", nth: 1, want: "PUT 4KiB c16 90.00 45.00 2.00x - ≤ 1.00x MISSED"},
		{name: "cpu of a get not judged", prefix: "GET 64MiB c1", nth: 1, want: "GET 64MiB c1 0.50 2.00 0.25x -"},
		{name: "cpu absent", prefix: "PUT 1MiB c16", nth: 1, want: "PUT 1MiB c16 - - - - ≤ 1.00x"},
		{name: "written summary", prefix: "CPU-s per GB written", want: "CPU-s per GB written (large puts, all runs): embassy 0.84, minio 1.68, ratio 0.50x (goal ≤ 1.00x)"},
		{name: "goal count", prefix: "goals met", want: "goals met: 3 of 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := find(tt.prefix, tt.nth); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestCompareRuns: with three runs, a case is judged by the median of its
// per-run ratios (not the ratio of medians), and the range is printed.
func TestCompareRuns(t *testing.T) {
	put := func(server string, ops, cpu float64) record {
		return record{Server: server, Op: "put", Size: 4 << 10, Concurrency: 16, OpsPerS: ops, CPUPerGB: ptr(cpu)}
	}
	get := func(server string, ops float64) record {
		return record{Server: server, Op: "get", Size: 4 << 10, Concurrency: 16, OpsPerS: ops}
	}
	// Per-run put ratios 1.0, 2.0, 1.25 (median 1.25); get ratios 1.5,
	// 0.5, 1.1 (median 1.1, a miss though two of three beat 1.0 and one
	// beats the goal); CPU ratios 0.5, 1.5, 0.9 (median 0.9).
	a := []record{put("embassy", 100, 1), get("embassy", 150), put("embassy", 400, 3), get("embassy", 50), put("embassy", 250, 0.9), get("embassy", 110)}
	b := []record{put("minio", 100, 2), get("minio", 100), put("minio", 200, 2), get("minio", 100), put("minio", 200, 1), get("minio", 100)}
	find := compareLines(t, a, b)
	tests := []struct {
		name, prefix string
		nth          int
		want         string
	}{
		{name: "runs are said", prefix: "3 runs", want: "3 runs: values and ratios are medians; range is the lowest and highest per-run ratio."},
		{name: "put: median ratio", prefix: "PUT 4KiB c16", want: "PUT 4KiB c16 ops/s 250.0 200.0 1.25x 1.00–2.00x 3 ≥ 1.20x met"},
		{name: "get: median ratio misses", prefix: "GET 4KiB c16", want: "GET 4KiB c16 ops/s 110.0 100.0 1.10x 0.50–1.50x 3 ≥ 1.20x MISSED"},
		{name: "cpu: median ratio", prefix: "PUT 4KiB c16", nth: 1, want: "PUT 4KiB c16 1.00 2.00 0.90x 0.50–1.50x ≤ 1.00x met"},
		{name: "goal count", prefix: "goals met", want: "goals met: 2 of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := find(tt.prefix, tt.nth); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}

	t.Run("a run missing on one side", func(t *testing.T) {
		// The third run of minio's put is missing: two ratios remain.
		find := compareLines(t, a, []record{b[0], b[1], b[2], b[3], b[5]})
		if got, want := find("PUT 4KiB c16", 0), "PUT 4KiB c16 ops/s 250.0 150.0 1.50x 1.00–2.00x 2 ≥ 1.20x met"; got != want {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	})
}

// TestCompareAudit: embassy with its audit log against the benchmark build
// without it (bench/s3.sh AUDIT_COST=1): every round's ratio is printed,
// PUTs are judged by the median ratio against issue 12's 0.90, GETs are
// shown only.
func TestCompareAudit(t *testing.T) {
	put := func(server string, size int64, ops, cpu float64) record {
		return record{Server: server, Op: "put", Size: size, Concurrency: 16, OpsPerS: ops, CPUPerGB: ptr(cpu)}
	}
	// 4 KiB: rounds 0.95, 0.80, 1.00 (median 0.95: met); 1 MiB: 0.85,
	// 0.88, 0.99 (median 0.88: missed, though one round beat the goal).
	a := []record{put("embassy", 4<<10, 95, 10), put("embassy", 1<<20, 85, 1), put("embassy", 4<<10, 80, 12), put("embassy", 1<<20, 88, 1), put("embassy", 4<<10, 100, 11), put("embassy", 1<<20, 99, 1),
		{Server: "embassy", Op: "get", Size: 4 << 10, Concurrency: 16, OpsPerS: 50}}
	b := []record{put("embassy-nolog", 4<<10, 100, 8), put("embassy-nolog", 1<<20, 100, 1), put("embassy-nolog", 4<<10, 100, 8), put("embassy-nolog", 1<<20, 100, 1), put("embassy-nolog", 4<<10, 100, 8), put("embassy-nolog", 1<<20, 100, 1),
		{Server: "embassy-nolog", Op: "get", Size: 4 << 10, Concurrency: 16, OpsPerS: 100}}
	var out bytes.Buffer
	if err := compareAudit(&out, a, b); err != nil {
		t.Fatal(err)
	}
	find := lineFinder(t, out.String())
	tests := []struct {
		name, prefix string
		nth          int
		want         string
	}{
		{name: "the goal", prefix: "Goal", want: "Goal (issue 12): the audit log costs PUTs at most 10 %: embassy (with its log) ≥ 0.90x embassy-nolog (no log) on every PUT case."},
		{name: "rounds are said", prefix: "3 rounds", want: "3 rounds, alternating which server goes first: values are medians; ratio is the median of the per-round ratios, range their lowest and highest."},
		{name: "small put met", prefix: "PUT 4KiB c16", want: "PUT 4KiB c16 ops/s 95.0 100.0 0.95x 0.80–1.00x 3 0.95 0.80 1.00 ≥ 0.90x met"},
		{name: "medium put missed", prefix: "PUT 1MiB c16", want: "PUT 1MiB c16 ops/s 88.0 100.0 0.88x 0.85–0.99x 3 0.85 0.88 0.99 ≥ 0.90x MISSED"},
		{name: "get shown, not judged", prefix: "GET 4KiB c16", want: "GET 4KiB c16 ops/s 50.0 100.0 0.50x - 1 0.50 -"},
		{name: "cpu shown", prefix: "PUT 4KiB c16", nth: 1, want: "PUT 4KiB c16 11.00 8.00 1.38x 1.25–1.50x"},
		{name: "goal count", prefix: "goals met", want: "goals met: 1 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := find(tt.prefix, tt.nth); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want spread
	}{
		{name: "none", in: nil, want: spread{}},
		{name: "one", in: []float64{2}, want: spread{N: 1, Med: 2, Min: 2, Max: 2}},
		{name: "three unsorted", in: []float64{3, 1, 2}, want: spread{N: 3, Med: 2, Min: 1, Max: 3}},
		{name: "outlier does not move the median", in: []float64{1.1, 9, 1.0}, want: spread{N: 3, Med: 1.1, Min: 1.0, Max: 9}},
		{name: "even: mean of the middle two", in: []float64{4, 1, 3, 2}, want: spread{N: 4, Med: 2.5, Min: 1, Max: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := summarize(tt.in); got != tt.want {
				t.Fatalf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Fatalf("summarize reordered its input: %v", tt.in)
			}
		})
	}
}

func TestParseRecords(t *testing.T) {
	good := records(t, record{Server: "embassy", Op: "put", Size: 1}, record{Server: "embassy", Op: "get", Size: 1})
	tests := []struct {
		name string
		in   []byte
		n    int
		bad  string
	}{
		{name: "two", in: good, n: 2},
		{name: "blank lines", in: append([]byte("\n\n"), good...), n: 2},
		{name: "empty", in: nil, bad: "no records"},
		{name: "not json", in: []byte("{\n"), bad: "line 1"},
		{name: "unknown op", in: []byte(`{"server":"x","op":"head"}`), bad: `op "head"`},
		{name: "no server", in: []byte(`{"op":"put"}`), bad: "no server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRecords(tt.in)
			if tt.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("parseRecords error = %v, want one containing %q", err, tt.bad)
				}
				return
			}
			if err != nil || len(got) != tt.n {
				t.Fatalf("parseRecords = %d records, %v; want %d", len(got), err, tt.n)
			}
		})
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("42 (minio) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 30 0 1000"))
	f.Add([]byte("7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 11 22 5 5"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Must not panic; a success must come from two parsed numbers.
		if v, err := parseProcStat(raw); err == nil && !bytes.ContainsRune(raw, ')') {
			t.Fatalf("parseProcStat(%q) = %d without a command name", raw, v)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4KiB", "64MiB", "1GiB", "12B", "0", "-1", "9999999999GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d, negative", s, n)
		}
		if n > 0 {
			if back, err := parseSize(formatSize(n)); err != nil || back != n {
				t.Fatalf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
			}
		}
	})
}

func FuzzParseCases(f *testing.F) {
	f.Add("64MiB:1:16,4KiB:16:4000")
	f.Add("1:1:1")
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := parseCases(s)
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.Size < 1 || c.Size > 5<<30 || c.Concurrency < 1 || c.Concurrency > 1024 || c.Count < 1 {
				t.Fatalf("parseCases(%q) accepted %+v", s, c)
			}
		}
	})
}

func FuzzParseRecords(f *testing.F) {
	f.Add([]byte(`{"server":"embassy","op":"put","size":4096,"concurrency":16,"count":10,"cpu_s_per_gb":1.5}`))
	f.Add([]byte("\n{}\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rs, err := parseRecords(raw)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Server == "" || (r.Op != "put" && r.Op != "get") {
				t.Fatalf("parseRecords accepted %+v", r)
			}
		}
		// Whatever parses must compare without error or panic.
		if err := compare(io.Discard, rs, rs); err != nil {
			t.Fatal(err)
		}
		if err := compareAudit(io.Discard, rs, rs); err != nil {
			t.Fatal(err)
		}
	})
}
