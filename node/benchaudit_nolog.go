//go:build embassy_bench_nolog

package node

// benchNoAuditLog: this binary was built for bench/s3.sh's AUDIT_COST mode
// (-tags embassy_bench_nolog) and gives a development node's engine no
// audit log, so that the same S3 workload can be measured with the log and
// without it in one run. Never ship such a binary: it records nothing the
// engine changes. Ordinary builds take benchaudit.go.
const benchNoAuditLog = true
