//go:build !embassy_bench_nolog

package node

// benchNoAuditLog is false in every ordinary build: a node's engine always
// appends to the node's audit log, and nothing in node.yaml, on the command
// line or in the environment can turn that off (issue 12, DESIGN.md
// invariant 8). Only a binary built for a benchmark with
// -tags embassy_bench_nolog (benchaudit_nolog.go; bench/s3.sh's AUDIT_COST
// mode builds one beside the ordinary binary) gives a development node's
// engine no log, to measure what the log costs a PUT.
// TestDevNodeEngineHasTheAuditLog fails if an ordinary build loses it.
const benchNoAuditLog = false
