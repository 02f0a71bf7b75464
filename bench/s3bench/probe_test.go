package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeOneRound: a probe whose context is already done runs exactly one
// round, with every piece timed, and removes its files.
func TestProbeOneRound(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	c := probeConfig{Interval: 1, CPUIters: 1000, MemBytes: 1 << 16, FaultBytes: 1 << 16, Pcache: 1 << 16,
		Cold: 1 << 16, Fresh: 1 << 16, FreshTotal: 1 << 17, SysCalls: 10, Dir: dir}
	if err := runProbe(ctx, c, &out); err != nil {
		t.Fatal(err)
	}
	samples, err := parseProbe(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1 {
		t.Fatalf("%d rounds, want 1", len(samples))
	}
	s := samples[0]
	for name, v := range map[string]int64{"cpu": s.CPUNs, "mem": s.MemNs, "fault": s.FaultNs, "pcache": s.PcacheNs, "cold": s.ColdNs, "fresh": s.FreshNs, "sys": s.SysNs} {
		if v <= 0 {
			t.Errorf("%s piece: %d ns of CPU", name, v)
		}
	}
	if s.FreshBytes != 1<<16 || s.ColdBytes != 1<<16 {
		t.Errorf("fresh %d, cold %d bytes, want 65536 each", s.FreshBytes, s.ColdBytes)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestProbeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-mem", "1KiB"},
		{"-fresh", "12x"},
		{"-interval", "0s"},
		{"extra"},
	} {
		var out, errw bytes.Buffer
		if err := probeCmd(context.Background(), args, &out, &errw); err == nil {
			t.Errorf("probe %q: no error", args)
		}
	}
}

func TestProbeRates(t *testing.T) {
	s := probeSample{CPUNs: 4e6, CPUWallNs: 8e6, CPUIters: 2e6, MemNs: 1e7, MemBytes: 1e8, FaultNs: 4096e3, FaultBytes: 4096 * 1024,
		PcacheNs: 1e6, PcacheBytes: 1e7, ColdNs: 2e6, ColdBytes: 4e6, SysNs: 1e6, SysCalls: 1000}
	r := s.rates()
	want := probeRates{CPUNsPerMIter: 2e6, MemGBps: 10, FaultUsPerPage: 4, PcacheGBps: 10, ColdGBps: 2, SysNsPerCall: 1000, CPUWallOverCPU: 2,
		TotalCPUSeconds: (4e6 + 1e7 + 4096e3 + 1e6 + 2e6 + 1e6) / 1e9}
	if r != want {
		t.Errorf("rates %+v, want %+v", r, want)
	}
}

// TestProbeSum: each phase gets the medians of the rounds that started
// inside it, and none of the others.
func TestProbeSum(t *testing.T) {
	round := func(ms int64, coldNs int64) probeSample {
		return probeSample{UnixMs: ms, CPUNs: 1e6, CPUIters: 1e6, MemNs: 1e6, MemBytes: 1e6, SysNs: 1, SysCalls: 1,
			ColdNs: coldNs, ColdBytes: 1e9}
	}
	samples := []probeSample{round(500, 1e9), round(1000, 1e9), round(1500, 4e9), round(2000, 2e9), round(2999, 1e9), round(3000, 1e8)}
	p := probeWindow(samples, 1000, 3000) // 1 GB in 1, 4, 2 and 1 s: 1, 0.25, 0.5, 1 GB/s
	if p.Rounds != 4 || p.Rates.ColdGBps != 0.75 {
		t.Errorf("window: %d rounds, cold %.3f GB/s; want 4 rounds, 0.75 (the median of 1, 0.25, 0.5, 1)", p.Rounds, p.Rates.ColdGBps)
	}
	if p.Rates.FreshGBps != 0 {
		t.Errorf("fresh %.3f GB/s from rounds without the piece, want 0", p.Rates.FreshGBps)
	}
	if q := probeWindow(samples, 4000, 5000); q.Rounds != 0 {
		t.Errorf("an empty window got %d rounds", q.Rounds)
	}

	dir := t.TempDir()
	var pl bytes.Buffer
	enc := json.NewEncoder(&pl)
	for _, s := range samples {
		enc.Encode(s)
	}
	probePath := filepath.Join(dir, "probe.jsonl")
	recPath := filepath.Join(dir, "embassy.jsonl")
	os.WriteFile(probePath, pl.Bytes(), 0o644)
	os.WriteFile(recPath, []byte(`{"server":"embassy","op":"get","size":67108864,"concurrency":4,"count":16,"bytes":1073741824,"seconds":2,"mb_per_s":537,"start_unix_ms":1000}
{"server":"embassy","op":"get","size":4096,"concurrency":16,"count":10,"bytes":40960,"seconds":1,"mb_per_s":1,"start_unix_ms":3000}
`), 0o644)
	var out bytes.Buffer
	if err := probeSumCmd([]string{"-probe", probePath, "-large", recPath}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "embassy get 64MiB c4") || !strings.Contains(lines[1], "0.75") {
		t.Errorf("probesum -large printed:\n%s\nwant a header and the 64 MiB phase with cold 0.75 GB/s", out.String())
	}
	if err := probeSumCmd([]string{"-probe", recPath, recPath}, &out); err == nil {
		t.Error("a records file taken for the probe's: no error")
	}
}
