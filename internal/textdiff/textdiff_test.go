package textdiff

import (
	"strings"
	"testing"
)

func TestUnified(t *testing.T) {
	a := "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n"
	b := "one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\n"
	got := Unified("a", "b", a, b, 1, nil)
	want := `--- a
+++ b
@@ -2,3 +2,3 @@
 two
-three
+THREE
 four
@@ -10,1 +10,2 @@
 ten
+eleven
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if Unified("a", "b", a, a, 1, nil) != "" {
		t.Fatal("equal texts differ")
	}
	// Redaction applies to every line shown.
	r := Unified("a", "b", "secret_key: x\n", "secret_key: y\n", 1, func(s string) string {
		if strings.HasPrefix(s, "secret_key:") {
			return "secret_key: <redacted>"
		}
		return s
	})
	if strings.Contains(r, "x") || strings.Contains(r, ": y") {
		t.Fatalf("secret shown:\n%s", r)
	}
	// From and to nothing.
	if got := Unified("a", "b", "", "x\n", 1, nil); got != "--- a\n+++ b\n@@ -1,0 +1,1 @@\n+x\n" {
		t.Fatalf("insertion into nothing:\n%q", got)
	}
	if got := Unified("a", "b", "x\ny\n", "", 1, nil); got != "--- a\n+++ b\n@@ -1,2 +1,0 @@\n-x\n-y\n" {
		t.Fatalf("deletion of everything:\n%q", got)
	}
}

// FuzzUnified: applying the printed edit script to a gives b.
func FuzzUnified(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		la, lb := lines(a), lines(b)
		if len(la) > 200 || len(lb) > 200 {
			return
		}
		var got []string
		for _, o := range diff(la, lb) {
			switch o.kind {
			case ' ':
				if la[o.a] != lb[o.b] {
					t.Fatal("a kept line differs")
				}
				got = append(got, la[o.a])
			case '+':
				got = append(got, lb[o.b])
			}
		}
		if strings.Join(got, "\n") != strings.Join(lb, "\n") {
			t.Fatalf("script does not give b")
		}
		Unified("a", "b", a, b, 2, nil)
	})
}
