package node

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigurationDocExample keeps docs/configuration.md true: its
// complete example of node.yaml parses and validates, and says what the
// page says it does.
func TestConfigurationDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		body, _, ok := strings.Cut(block, "```")
		if ok && strings.Contains(body, "\nnode:\n") {
			example = body
			break
		}
	}
	if example == "" {
		t.Fatal("docs/configuration.md has no complete node.yaml example (a yaml block with node:)")
	}
	c, err := ParseConfig([]byte(example))
	if err != nil {
		t.Fatalf("the example in docs/configuration.md does not parse: %v", err)
	}
	jurisdictions := map[string]int{}
	providers := map[string]bool{}
	for _, s := range c.Sites {
		jurisdictions[s.Jurisdiction]++
		providers[s.Provider] = true
	}
	if len(c.Sites) != 6 || len(jurisdictions) != 3 || len(providers) != 2 {
		t.Errorf("the example has %d sites in %d jurisdictions on %d providers, the page says six in three on two", len(c.Sites), len(jurisdictions), len(providers))
	}

	// A node with exactly this configuration (its sites moved to a
	// temporary directory) opens: every vault's policy can be kept.
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, InitOptions{Nation: "EST"}); err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(example, "/srv/embassy/", filepath.Join(t.TempDir(), "sites")+"/")
	if err := WriteConfig(dir, []byte(moved)); err != nil {
		t.Fatal(err)
	}
	n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatalf("a node configured as the example does not open: %v", err)
	}
	defer n.Close()
	for _, v := range c.Vaults {
		if _, err := n.Engine.Vault(v.Name); err != nil {
			t.Errorf("vault %s: %v", v.Name, err)
		}
	}
}
