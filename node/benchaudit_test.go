//go:build !embassy_bench_nolog

package node

import (
	"bytes"
	"testing"

	"github.com/embassy-dev/embassy/vault"
)

// An ordinary build gives a development node's engine the node's audit
// log: a put through it is on the log. Only a benchmark binary (-tags
// embassy_bench_nolog, bench/s3.sh AUDIT_COST=1) gives it none
// (benchaudit.go); this fails if an ordinary build ever does.
func TestDevNodeEngineHasTheAuditLog(t *testing.T) {
	n := devRegistry(t)
	if n.Engine.AuditLog() == nil {
		t.Fatal("the development node's engine has no audit log")
	}
	ctx := n.As(t.Context(), "admin")
	info, err := n.Engine.Put(ctx, "registry", "minutes", bytes.NewReader([]byte("minutes")), vault.PutOptions{Size: 7})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := n.AuditLogEvents(t.Context(), AuditQuery{Kind: vault.KindPut, Vault: "registry"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Key == "minutes" && e.Version == info.VersionID {
			return
		}
	}
	t.Fatalf("the put of registry/minutes version %s is not on the audit log; its object.put events: %+v", info.VersionID, evs)
}
