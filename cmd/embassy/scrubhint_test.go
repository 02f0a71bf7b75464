package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/housekeeping"
)

// TestScrubFailureHint: a repairing scrub that lists versions as lost
// while collection refused an index older than the sites hints at the
// stale index (the lost versions may be ones deleted since the index was
// current), decided by the collection's reason, whatever its wording; any
// other lost versions hint at missing sites.
func TestScrubFailureHint(t *testing.T) {
	const stale, sites = "the index is older than the sites (restored from a backup?)", "bring back unreachable or unmounted sites"
	for _, tc := range []struct {
		name   string
		c      *housekeeping.Collection
		repair bool
		want   string
	}{
		{"index behind the sites", &housekeeping.Collection{Refused: "the index is older than the sites (vault registry: generation 3 in the index, 5 on site s1); run 'embassy index rebuild' first", Reason: housekeeping.RefusedIndexBehind}, true, stale},
		{"reworded", &housekeeping.Collection{Refused: "index behind the sites", Reason: housekeeping.RefusedIndexBehind}, true, stale},
		{"rebuilt without every site", &housekeeping.Collection{Refused: "the index was rebuilt while 1 site(s) could not be listed (s3); rebuild it again once every site answers; run 'embassy index rebuild' first", Reason: housekeeping.RefusedIndexStale}, true, sites},
		{"collection ran", &housekeeping.Collection{Ran: true}, true, sites},
		{"no repair", nil, false, sites},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := scrubFailure(housekeeping.ScrubReport{Lost: 1, Collection: tc.c}, tc.repair)
			he, ok := errors.AsType[*hintError](err)
			if !ok {
				t.Fatalf("scrubFailure = %v, want an error with a hint", err)
			}
			if !strings.HasPrefix(he.hint, tc.want) {
				t.Errorf("hint %q, want it to start %q", he.hint, tc.want)
			}
		})
	}
}
