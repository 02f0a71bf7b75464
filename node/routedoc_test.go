package node

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/s3"
)

var update = flag.Bool("update", false, "rewrite generated documentation")

// generatedSection replaces, or checks, the text between a BEGIN and END
// marker of docs/operator-guide.md.
func generatedSection(t *testing.T, doc, name, want string) string {
	t.Helper()
	begin, end := "<!-- BEGIN "+name, "<!-- END "+name+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/operator-guide.md has no %s section (%s … -->, %s)", name, begin, end)
	}
	k := i + strings.Index(doc[i:], "-->\n") + len("-->\n")
	if got := doc[k:j]; got != want {
		if !*update {
			t.Errorf("docs/operator-guide.md's %s is out of date; run go test ./node -run TestRouteTableDoc -update\n--- doc\n%s--- generated\n%s", name, got, want)
		}
	}
	return doc[:k] + want + doc[j:]
}

// TestRouteTableDoc keeps the operator guide's tables of operations and
// the roles they need generated from the route tables.
func TestRouteTableDoc(t *testing.T) {
	const path = "../docs/operator-guide.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := generatedSection(t, string(b), "S3 ROUTE TABLE", s3.RouteTable())
	doc = generatedSection(t, doc, "ADMIN ROUTE TABLE", AdminRouteTable())
	if *update {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
