package node

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/vault"
)

// A development node's sites are accredited to NATO COSMIC TOP SECRET (as
// docs/operator-guide.md says): a labelled put is placed as on any node.
func TestDevNodeHoldsLabelledData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	if _, err := InitDev(dir, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(t.Context(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	ctx := n.As(t.Context(), "anyone")
	for _, l := range []string{"NATO SECRET", "NATO COSMIC TOP SECRET//REL TO EST, LUX"} {
		if _, err := n.Engine.Put(ctx, "registry", "minutes", bytes.NewReader([]byte("minutes")), vault.PutOptions{Size: 7, Label: l}); err != nil {
			t.Fatalf("put labelled %q on a dev node: %v", l, err)
		}
		r, err := n.Engine.Get(ctx, "registry", "minutes", vault.GetOptions{Length: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != "minutes" {
			t.Errorf("read back %q", b)
		}
	}
}
