package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/node"
)

// TestDrainReportLeftovers: a drained site that still holds blobs is
// reported with the rerun and with why a rerun may not empty it at once
// (the grace period, object lock), so an operator who reruns a drain
// right after a crash is not left guessing.
func TestDrainReportLeftovers(t *testing.T) {
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out}
	rep := node.DrainReport{Sites: []string{"lux-1", "lux-2", "lux-3"}, Remaining: map[string]int{"lux-1": 3, "lux-2": 0, "lux-3": -1}}
	if err := a.printDrain(rep.Sites, rep, time.Second); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"site lux-1: 3 blobs remain: run the drain again (blobs of writes or moves cut short go once older than scrub.grace",
		"on an object-locked site, once retention ends)",
		"site lux-2: empty: it can be removed ('embassy site rm lux-2')",
		"site lux-3: does not answer: cannot tell whether it is empty",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drain report lacks %q:\n%s", want, got)
		}
	}
}
