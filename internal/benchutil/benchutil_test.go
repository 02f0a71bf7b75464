package benchutil

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/site/dir"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Spread
		text string
	}{
		{name: "none", in: nil, want: Spread{}, text: "0.00"},
		{name: "one", in: []float64{0.9}, want: Spread{N: 1, Med: 0.9, Min: 0.9, Max: 0.9}, text: "0.90"},
		{name: "three unsorted", in: []float64{1.2, 0.8, 1.0}, want: Spread{N: 3, Med: 1.0, Min: 0.8, Max: 1.2}, text: "1.00 (0.80–1.20 over 3 rounds)"},
		{name: "an outlier does not move the median", in: []float64{0.95, 2.9, 0.9}, want: Spread{N: 3, Med: 0.95, Min: 0.9, Max: 2.9}, text: "0.95 (0.90–2.90 over 3 rounds)"},
		{name: "even: mean of the middle two", in: []float64{4, 1, 3, 2}, want: Spread{N: 4, Med: 2.5, Min: 1, Max: 4}, text: "2.50 (1.00–4.00 over 4 rounds)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Summarize(tt.in)
			if got != tt.want {
				t.Fatalf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.text {
				t.Fatalf("String() = %q, want %q", got.String(), tt.text)
			}
			if !slices.Equal(in, tt.in) {
				t.Fatalf("Summarize reordered its input: %v", tt.in)
			}
		})
	}
}

// TestReferences: the disk references do the work they claim, through the
// dir driver, and leave nothing behind.
func TestReferences(t *testing.T) {
	root := t.TempDir()
	w, r := LargeRefs(t, root, 8<<20, 4, 2)
	if w <= 0 || r <= 0 {
		t.Fatalf("LargeRefs = %v, %v", w, r)
	}
	ops := SmallWrites(t, root, 20, 1700, 6, 4)
	if ops <= 0 {
		t.Fatalf("SmallWrites = %v", ops)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("references left %v behind", ents)
	}

	// MeanBlob counts files and their mean size, not directories.
	d := filepath.Join(root, "blobs")
	os.MkdirAll(filepath.Join(d, "m", "ab"), 0o700)
	os.WriteFile(filepath.Join(d, "m", "ab", "x"), []byte(strings.Repeat("a", 100)), 0o600)
	os.WriteFile(filepath.Join(d, "m", "y"), []byte(strings.Repeat("a", 300)), 0o600)
	if n, mean := MeanBlob(d); n != 2 || mean != 200 {
		t.Fatalf("MeanBlob = %d files, %v mean; want 2, 200", n, mean)
	}

	// ColdRead reads the shard blobs through the driver, and only them.
	sd := filepath.Join(root, "site")
	s, err := dir.New(sd)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"s/ab/" + strings.Repeat("ab", 16) + ".0", "s/cd/" + strings.Repeat("cd", 16) + ".1", "m/ab/" + strings.Repeat("ab", 16)} {
		if err := s.Put(t.Context(), name, bytes.NewReader(make([]byte, 1000*(i+1))), int64(1000*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	for _, perSite := range []int{1, 3} {
		if got, read := ColdRead(t, []string{sd}, perSite); got <= 0 || read != 3000 {
			t.Fatalf("ColdRead with %d readers = %v B/s, %d bytes read; want the 3000 of the shard blobs", perSite, got, read)
		}
	}
}
