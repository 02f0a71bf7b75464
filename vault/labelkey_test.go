package vault

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
)

// A key may hold any UTF-8 but NUL. Its label binding names the object with
// the key's unprintable characters percent-encoded, so a labelled object
// with such a key is stored and verifies on read; printable keys are named
// as they always were.
func TestLabelledKeyWithControlCharacters(t *testing.T) {
	var id manifest.ID
	for _, tc := range []struct{ key, want string }{
		{"2026/report.pdf", "embassy:intel/2026/report.pdf?versionId="},
		{"with space%20and%", "embassy:intel/with space%20and%?versionId="},
		{"a\nb\x1b[2K\r", "embassy:intel/a%0Ab%1B[2K%0D?versionId="},
		{"bidi\u202e", "embassy:intel/bidi%E2%80%AE?versionId="},
	} {
		if got := objectURI("intel", tc.key, id); got != tc.want+id.String() {
			t.Errorf("objectURI(%q) = %q, want %q", tc.key, got, tc.want+id.String())
		}
	}
	ln := newLabelNode(t)
	ctx := WithPrincipal(t.Context(), officer)
	key := "evil\nrow\x1b[31m\r"
	if _, err := ln.e.Put(ctx, "intel", key, bytes.NewReader([]byte("minutes")), PutOptions{Size: 7, Label: secretLabel}); err != nil {
		t.Fatalf("labelled put of %q: %v", key, err)
	}
	r, err := ln.e.Get(ctx, "intel", key, GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "minutes" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if !strings.HasPrefix(r.Info().Label, "NATO SECRET") {
		t.Errorf("label %q", r.Info().Label)
	}
}
