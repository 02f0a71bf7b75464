package node

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkUnsealChecks measures what verifying the node files costs when
// a node opens: the checks alone (authenticators, identity, and the
// descriptor read from each of six dir sites) against a whole Open of the
// same node (which also opens the index and the sites, and writes the
// descriptor to every site), in the same run. It reports the ratio
// checks/open.
func BenchmarkUnsealChecks(b *testing.B) {
	dir := b.TempDir() + "/node"
	if _, err := Init(dir, InitOptions{Nation: "EST"}); err != nil {
		b.Fatal(err)
	}
	log := NewLogger(LogConfig{Level: "error"}, io.Discard)
	n, err := Open(context.Background(), dir, log)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range validConfig().Sites {
		s.Path = b.TempDir()
		if err := n.AddSite(s); err != nil {
			b.Fatal(err)
		}
	}
	n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"})
	keys := n.Keys()
	n.Close()
	var open, checks time.Duration
	for b.Loop() {
		start := time.Now()
		m, err := Open(context.Background(), dir, log)
		if err != nil {
			b.Fatal(err)
		}
		open += time.Since(start)
		m.Close()
		m.setKeys(keys)
		m.raw = map[string]*nodeFile{}
		for _, name := range []string{ConfigFile, CustodyFile} {
			f, _ := readNodeFile(dir, name)
			m.raw[name] = f
		}
		start = time.Now()
		if err := m.verifyNodeFiles(context.Background()); err != nil {
			b.Fatal(err)
		}
		checks += time.Since(start)
	}
	b.ReportMetric(float64(open.Microseconds())/float64(b.N), "open-µs/op")
	b.ReportMetric(float64(checks.Microseconds())/float64(b.N), "checks-µs/op")
	b.ReportMetric(float64(checks)/float64(open), "checks/open")
}
