//go:build embassy_bench_nolog

package node

import (
	"bytes"
	"testing"

	"github.com/embassy-dev/embassy/vault"
)

// The benchmark build (-tags embassy_bench_nolog) gives a development
// node's engine no audit log: its puts are not on the log, which is what
// bench/s3.sh's AUDIT_COST mode compares against.
//
//	go test -tags embassy_bench_nolog -run BenchBuild ./node/
func TestBenchBuildDevNodeEngineHasNoAuditLog(t *testing.T) {
	n := devRegistry(t)
	if n.Engine.AuditLog() != nil {
		t.Fatal("the benchmark build's development node engine has an audit log")
	}
	ctx := n.As(t.Context(), "admin")
	if _, err := n.Engine.Put(ctx, "registry", "minutes", bytes.NewReader([]byte("minutes")), vault.PutOptions{Size: 7}); err != nil {
		t.Fatal(err)
	}
	evs, err := n.AuditLogEvents(t.Context(), AuditQuery{Kind: vault.KindPut})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("object.put events on the log of a node whose engine has none: %+v", evs)
	}
}
