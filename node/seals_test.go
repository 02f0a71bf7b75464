package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// newKeyUseNode is newNode with key_use set and a vault "registry".
func newKeyUseNode(t *testing.T, ku KeyUseConfig, log *slog.Logger) *Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, InitOptions{Nation: "EST", Configure: func(c *Config) { c.KeyUse = ku }}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if log == nil {
		log = NewLogger(LogConfig{Level: "error"}, io.Discard)
	}
	n, err := Open(t.Context(), dir, log)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for _, s := range validConfig().Sites {
		s.Path = filepath.Join(dir, "..", "sites", s.ID)
		if err := n.AddSite(s); err != nil {
			t.Fatalf("AddSite %s: %v", s.ID, err)
		}
	}
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	return n
}

func reopenNode(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func putObjects(t *testing.T, n *Node, prefix string, count int) error {
	t.Helper()
	for i := range count {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := n.Engine.Put(vault.AsSystem(t.Context()), "registry", k, strings.NewReader(k), vault.PutOptions{Size: int64(len(k))}); err != nil {
			return err
		}
	}
	return nil
}

// keyCounts returns the node's count of the manifest key in force and of
// registry's key of generation gen.
func keyCounts(t *testing.T, n *Node, gen int) (manifestKey, vaultKey uint64) {
	t.Helper()
	mid := n.Keys().ManifestKeyID()
	for _, s := range n.SealStates() {
		switch {
		case s.Vault == "" && s.KeyID == fmt.Sprintf("%x", mid):
			manifestKey = s.Seals
		case strings.HasPrefix(s.Vault, "registry") && s.Generation == gen && s.Key().ID == vaultKeyID(t, n, gen):
			vaultKey = s.Seals
		}
	}
	return manifestKey, vaultKey
}

func vaultKeyID(t *testing.T, n *Node, gen int) [8]byte {
	t.Helper()
	v, err := n.Engine.Vault("registry")
	if err != nil {
		t.Fatal(err)
	}
	name := v.Name
	if v.Incarnation != "" {
		name += "/" + v.Incarnation
	}
	id, err := n.Keys().VaultKeyID(name, gen)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestEncryptionCountsNeverGoDown: the counts survive a restart, a node
// directory whose counts were restored from an older backup (the sites'
// copy holds the newer), and with the sites' copies gone too they are no
// lower than the backup's: the bound the docs give.
func TestEncryptionCountsNeverGoDown(t *testing.T) {
	n := newKeyUseNode(t, KeyUseConfig{Block: 4}, nil)
	dir := n.Dir
	if err := putObjects(t, n, "a", 5); err != nil {
		t.Fatal(err)
	}
	m1, v1 := keyCounts(t, n, 1)
	if m1 < 5 || v1 < 5 {
		t.Fatalf("after 5 puts: manifest key %d, vault key %d encryptions; want at least 5 each", m1, v1)
	}
	backup, err := os.ReadFile(filepath.Join(dir, SealsFile))
	if err != nil {
		t.Fatalf("no %s after 5 puts: %v", SealsFile, err)
	}
	if err := putObjects(t, n, "b", 10); err != nil {
		t.Fatal(err)
	}
	m2, v2 := keyCounts(t, n, 1)
	n.Close()

	n = reopenNode(t, dir)
	if m, v := keyCounts(t, n, 1); m < m2 || v < v2 {
		t.Errorf("after a restart: manifest key %d (was %d), vault key %d (was %d): lower", m, m2, v, v2)
	}
	n.Close()

	// The node directory's counts put back from the backup: the sites
	// hold the newer.
	if err := os.WriteFile(filepath.Join(dir, SealsFile), backup, 0o600); err != nil {
		t.Fatal(err)
	}
	n = reopenNode(t, dir)
	if m, v := keyCounts(t, n, 1); m < m2 || v < v2 {
		t.Errorf("with %s from an older backup: manifest key %d (was %d), vault key %d (was %d): the sites' copy was not taken", SealsFile, m, m2, v, v2)
	}
	n.Close()

	// The sites' copies lost as well: the backup is the bound.
	for _, s := range validConfig().Sites {
		os.Remove(filepath.Join(dir, "..", "sites", s.ID, filepath.FromSlash(evidence.SealsBlob)))
	}
	if err := os.WriteFile(filepath.Join(dir, SealsFile), backup, 0o600); err != nil {
		t.Fatal(err)
	}
	n = reopenNode(t, dir)
	if m, v := keyCounts(t, n, 1); m < m1 || v < v1 {
		t.Errorf("with only an older backup: manifest key %d, vault key %d; want at least the backup's %d and %d", m, v, m1, v1)
	}
}

// TestEncryptionCountsDirectoryLost: a node directory's counts deleted
// (a machine recovered from the sites) come back from the sites.
func TestEncryptionCountsDirectoryLost(t *testing.T) {
	n := newKeyUseNode(t, KeyUseConfig{Block: 4}, nil)
	dir := n.Dir
	if err := putObjects(t, n, "a", 6); err != nil {
		t.Fatal(err)
	}
	m, v := keyCounts(t, n, 1)
	n.Close()
	if err := os.Remove(filepath.Join(dir, SealsFile)); err != nil {
		t.Fatal(err)
	}
	n = reopenNode(t, dir)
	if m2, v2 := keyCounts(t, n, 1); m2 < m || v2 < v {
		t.Errorf("without %s: manifest key %d (was %d), vault key %d (was %d)", SealsFile, m2, m, v2, v)
	}
}

type capturedLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *capturedLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *capturedLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.Key + "=" + a.Value.String()); return true })
	h.msgs = append(h.msgs, b.String())
	return nil
}
func (h *capturedLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *capturedLog) WithGroup(string) slog.Handler      { return h }

func (h *capturedLog) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := 0
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			c++
		}
	}
	return c
}

// TestEncryptionLimit: a key warns at its thresholds, refuses at its
// limit with an error naming it and the rotation, and a rotation's new
// key starts a count of its own.
func TestEncryptionLimit(t *testing.T) {
	logs := &capturedLog{}
	const limit = 40
	n := newKeyUseNode(t, KeyUseConfig{Limit: limit, Warn: []uint64{10, 20}, Block: 4}, slog.New(logs))
	t.Cleanup(func() { n.Close() })
	if err := putObjects(t, n, "a", 5); err != nil {
		t.Fatal(err)
	}
	// Heavy use, short of the limit's real size: the manifest key seals
	// until it refuses.
	var err error
	for i := 0; err == nil && i <= limit; i++ {
		_, _, err = n.Keys().SealManifest([]byte("test"), []byte("x"))
	}
	if !errors.Is(err, custody.ErrSealLimit) {
		t.Fatalf("%d seals under a limit of %d: %v, want ErrSealLimit", limit+1, limit, err)
	}
	err = putObjects(t, n, "refused", 1)
	if !errors.Is(err, custody.ErrSealLimit) || !strings.Contains(err.Error(), "embassy key rotate-root") || !strings.Contains(err.Error(), fmt.Sprintf("%x", n.Keys().ManifestKeyID())) {
		t.Fatalf("a put with the manifest key at its limit: %v, want ErrSealLimit naming the key and 'embassy key rotate-root'", err)
	}
	if got := logs.count("rotate_with=embassy key rotate-root"); got != 2 {
		t.Errorf("%d warnings logged for the manifest key, want one at each of its 2 thresholds: %q", got, logs.msgs)
	}
	// A root rotation gives a new manifest key, counted from zero.
	old := n.Keys().ManifestKeyID()
	if m, _ := keyCounts(t, n, 1); m != limit {
		t.Fatalf("the manifest key shows %d encryptions at the limit %d", m, limit)
	}
	if _, _, err := n.rotateRoot(vault.AsSystem(t.Context())); err != nil {
		t.Fatalf("root rotation at the limit: %v", err)
	}
	if n.Keys().ManifestKeyID() == old {
		t.Fatal("the root rotation kept the manifest key")
	}
	if err := putObjects(t, n, "after-root", 1); err != nil {
		t.Fatalf("a put after the root rotation: %v", err)
	}
	m, _ := keyCounts(t, n, 1)
	if m == 0 || m >= limit {
		t.Errorf("the new manifest key shows %d encryptions after a rotation of a few versions and one put", m)
	}
	// A vault key rotation: generation 2 is a new key.
	_, before := keyCounts(t, n, 1)
	if _, err := n.rotateVaultKey(vault.AsSystem(t.Context()), "registry"); err != nil {
		t.Fatalf("vault key rotation: %v", err)
	}
	if _, v := keyCounts(t, n, 2); v == 0 || v > before+1 {
		t.Errorf("generation 2 of the vault key shows %d encryptions after re-wrapping the %d of generation 1", v, before)
	}
}

// TestEncryptionCountsShown: the metrics and the status show each key's
// count.
func TestEncryptionCountsShown(t *testing.T) {
	n := newKeyUseNode(t, KeyUseConfig{}, nil)
	t.Cleanup(func() { n.Close() })
	if err := putObjects(t, n, "a", 3); err != nil {
		t.Fatal(err)
	}
	fams, err := n.metricsFor().reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.Metric {
			switch f.GetName() {
			case "embassy_key_encryption_limit":
				found["limit"] = m.GetGauge().GetValue()
			case "embassy_key_encryptions":
				for _, l := range m.Label {
					if l.GetName() == "vault" {
						found["vault="+l.GetValue()] += m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	if found["limit"] != custody.DefaultSealLimit || found["vault="] < 3 {
		t.Errorf("metrics: %v; want the limit 2^32 and at least 3 encryptions of the manifest key", found)
	}
	st := n.Status()
	var manifestKey, vaultKey bool
	for _, k := range st.Keys {
		manifestKey = manifestKey || (k.Vault == "" && k.Seals >= 3 && k.Limit == custody.DefaultSealLimit && k.Fraction > 0)
		vaultKey = vaultKey || (strings.HasPrefix(k.Vault, "registry") && k.Generation == 1 && k.Seals >= 3)
	}
	if !manifestKey || !vaultKey {
		t.Errorf("status keys %+v: want the manifest key and registry's generation 1 with their counts", st.Keys)
	}
}

func TestKeyUseConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		ku   KeyUseConfig
		want string
	}{
		"default":           {KeyUseConfig{}, ""},
		"lower limit":       {KeyUseConfig{Limit: 1 << 20, Warn: []uint64{1 << 18}}, ""},
		"above NIST":        {KeyUseConfig{Limit: 1<<32 + 1}, "key_use.limit"},
		"warn at the limit": {KeyUseConfig{Limit: 100, Warn: []uint64{100}}, "key_use.warn"},
		"warn zero":         {KeyUseConfig{Warn: []uint64{0}}, "key_use.warn"},
	} {
		err := tc.ku.validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestEncryptionLimitAcrossRestart: a node whose manifest key is at its
// limit still opens (what it would seal at start is refused and logged),
// serves reads, and rotates its root offline, as the refusal tells the
// operator to.
func TestEncryptionLimitAcrossRestart(t *testing.T) {
	const limit = 40
	n := newKeyUseNode(t, KeyUseConfig{Limit: limit, Block: 4}, nil)
	dir := n.Dir
	if err := putObjects(t, n, "a", 3); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; err == nil && i <= limit; i++ {
		_, _, err = n.Keys().SealManifest([]byte("test"), []byte("x"))
	}
	if !errors.Is(err, custody.ErrSealLimit) {
		t.Fatalf("the manifest key did not reach its limit: %v", err)
	}
	n.Close()
	n = reopenNode(t, dir)
	if m, _ := keyCounts(t, n, 1); m < limit {
		t.Fatalf("reopened at the limit, the manifest key shows %d encryptions", m)
	}
	r, err := n.Engine.Get(vault.AsSystem(t.Context()), "registry", "a-0", vault.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("a read with the manifest key at its limit: %v", err)
	}
	r.Close()
	if err := putObjects(t, n, "refused", 1); !errors.Is(err, custody.ErrSealLimit) {
		t.Fatalf("a put with the manifest key at its limit after a restart: %v", err)
	}
	if _, _, err := n.rotateRoot(vault.AsSystem(t.Context())); err != nil {
		t.Fatalf("root rotation after a restart at the limit: %v", err)
	}
	if err := putObjects(t, n, "after", 1); err != nil {
		t.Fatalf("a put after the rotation: %v", err)
	}
}

// TestEncryptionCountsSitesAwayAtOpen: a node directory restored from a
// backup and opened while no site answers (its disks not mounted yet)
// must not write its backup's lower counts over the sites' higher ones
// once they are back: the sites' copy is the only one left that bounds
// what was sealed since the backup.
func TestEncryptionCountsSitesAwayAtOpen(t *testing.T) {
	n := newKeyUseNode(t, KeyUseConfig{Block: 4}, nil)
	dir := n.Dir
	if err := putObjects(t, n, "a", 3); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(filepath.Join(dir, SealsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := putObjects(t, n, "b", 20); err != nil {
		t.Fatal(err)
	}
	m2, v2 := keyCounts(t, n, 1)
	n.Close()

	if err := os.WriteFile(filepath.Join(dir, SealsFile), backup, 0o600); err != nil {
		t.Fatal(err)
	}
	sites := filepath.Join(dir, "..", "sites")
	if err := os.Rename(sites, sites+".away"); err != nil {
		t.Fatal(err)
	}
	n = reopenNode(t, dir)
	if err := os.Rename(sites+".away", sites); err != nil {
		t.Fatal(err)
	}
	// The sites back (checked now, as the node would on its own within a
	// minute): the node seals past a block or two and closes.
	for _, s := range n.Engine.Sites() {
		if err := s.Store.(*site.Guarded).Check(t.Context()); err != nil {
			t.Fatalf("site %s back: %v", s.ID, err)
		}
	}
	for range 10 {
		if _, _, err := n.Keys().SealManifest([]byte("test"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	n.Close()

	// The node directory's counts lost once more (or restored again): the
	// sites' copies must still hold at least what was sealed.
	if err := os.Remove(filepath.Join(dir, SealsFile)); err != nil {
		t.Fatal(err)
	}
	n = reopenNode(t, dir)
	if m, v := keyCounts(t, n, 1); m < m2 || v < v2 {
		t.Errorf("after a restored %s was opened with every site away: manifest key %d (was at least %d), vault key %d (was at least %d): the sites' higher counts were overwritten", SealsFile, m, m2, v, v2)
	}
}

// TestEncryptionCountsReadAfterAFailedUnseal: an unseal whose start fails
// reading seals.json (here a directory in its place; on a real node an
// I/O error) and a second unseal once it is readable again take its
// counts: the counter, made at the first, must not take the file for read.
func TestEncryptionCountsReadAfterAFailedUnseal(t *testing.T) {
	cn := newCustodyNode(t)
	if err := putObjects(t, cn.n, "a", 8); err != nil {
		t.Fatal(err)
	}
	m, v := keyCounts(t, cn.n, 1)
	cn.n.Close()
	// Only the node directory's copy counts: the sites' are gone.
	for _, s := range validConfig().Sites {
		os.Remove(filepath.Join(cn.dir, "..", "sites", s.ID, filepath.FromSlash(evidence.SealsBlob)))
	}
	file := filepath.Join(cn.dir, SealsFile)
	if err := os.Rename(file, file+".kept"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	cn.n = cn.open(t)
	cn.n.Unseal(cn.share(t, "alice"))
	if _, err := cn.n.Unseal(cn.share(t, "bob")); err == nil {
		t.Fatalf("the node unsealed with a directory at %s", SealsFile)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".kept", file); err != nil {
		t.Fatal(err)
	}
	cn.unseal(t, "alice", "bob")
	if m2, v2 := keyCounts(t, cn.n, 1); m2 < m || v2 < v {
		t.Errorf("unsealed after a failed unseal: manifest key %d (was %d), vault key %d (was %d): %s was not read", m2, m, v2, v, SealsFile)
	}
}
