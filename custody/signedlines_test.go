package custody

import (
	"strings"
	"testing"
)

// ParseSignedLines names what is wrong with a record, and what the
// signature covers is exactly the bytes before the signature line.
func TestParseSignedLines(t *testing.T) {
	keys := []string{"node", "signature"}
	const header = "test record v1\n"
	f, body, err := ParseSignedLines([]byte(header+"node est\nsignature c2ln\n"), header, keys, 1024)
	if err != nil || f["node"] != "est" || f["signature"] != "c2ln" || string(body) != header+"node est\n" {
		t.Fatalf("good record: %v %q %v", f, body, err)
	}
	for _, c := range []struct{ name, in, want string }{
		{"too long", header + strings.Repeat("x", 2000), "larger than 1024 bytes"},
		{"wrong header", "other record v1\nnode est\nsignature c2ln\n", `does not start with "test record v1"`},
		{"missing line", header + "node est\n", `line "signature" missing or unterminated`},
		{"unterminated", header + "node est\nsignature c2ln", `line "signature" missing or unterminated`},
		{"out of order", header + "signature c2ln\nnode est\n", `want line "node", found "signature c2ln"`},
		{"empty value", header + "node \nsignature c2ln\n", `want line "node"`},
		{"trailing", header + "node est\nsignature c2ln\nmore\n", "trailing data after the signature"},
	} {
		if _, _, err := ParseSignedLines([]byte(c.in), header, keys, 1024); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
