package main

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       *progress
		n       int64
		elapsed time.Duration
		want    []string
	}{
		{"bytes with ETA", &progress{label: "drain", total: 100 << 20}, 25 << 20, 10 * time.Second,
			[]string{"drain [=======", "25.0 MiB / 100.0 MiB", "2.5 MiB/s", "ETA 30s"}},
		{"versions with ETA", &progress{label: "scrub", total: 1000, count: true}, 250, 5 * time.Second,
			[]string{"250 / 1000", "50 versions/s", "ETA 15s"}},
		{"done", &progress{label: "scrub", total: 10, count: true}, 10, time.Second,
			[]string{"10 / 10", "ETA 0s"}},
		{"no rate yet", &progress{label: "scrub", total: 10, count: true}, 0, time.Second,
			[]string{"0 / 10", "ETA --"}},
		{"unknown total", &progress{label: "get"}, 3 << 20, time.Second,
			[]string{"get 3.0 MiB", "3.0 MiB/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.line(tc.n, tc.elapsed)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("line = %q, want it to contain %q", got, w)
				}
			}
			if tc.p.total <= 0 && strings.Contains(got, "ETA") {
				t.Errorf("line = %q shows an ETA with no total", got)
			}
		})
	}
}
