// Command s3bench drives an S3 endpoint with a fixed workload and reports
// throughput, operation rates and the server's CPU time per gigabyte moved.
// bench/s3.sh uses it to measure embassy and MinIO with the same client
// (github.com/minio/minio-go/v7) in one run and print embassy/MinIO ratios.
//
// Its subcommands:
//
//	s3bench run -endpoint 127.0.0.1:9000 -access-key AK -secret-key SK \
//	    -bucket bench -server embassy -pid 1234 -case 64MiB:1:16 -out embassy.jsonl
//	s3bench compare embassy.jsonl minio.jsonl
//	s3bench scale -endpoint 127.0.0.1:9000 -access-key AK -secret-key SK -pid 1234 -objects 100000
//
// run puts COUNT objects of SIZE bytes at concurrency CONC, then gets every
// one of them back and checks its bytes, and appends one JSON line per phase
// to -out. Object contents are deterministic pseudo-random bytes generated in
// memory before any timing starts. With -pid, the server's user+system CPU
// time is read from /proc/PID/stat before and after each phase.
//
// compare reads two such files and prints, per case, both values, their
// ratio and the goal the first server is held to (issue 15's against
// MinIO; with -audit-cost, issue 12's: embassy with its audit log against
// a benchmark build without it, bench/s3.sh AUDIT_COST=1).
//
// scale (bench/s3scale.sh) puts many small objects into an embassy node
// through S3, then lists them, rebuilds the index, scrubs and drills the
// loss of a jurisdiction through the admin API, and reports each phase's
// rate, time, the server's peak RSS and its peak Go heap.
//
// perfsum reads the perf samples `run -perf DIR` took of each server in
// each phase and prints, phase by phase, the servers' CPU-seconds per GB
// side by side by what they went to (hashes, ciphers, copies, the
// kernel's network and disk work, the Go runtime), and each server's
// costliest functions.
//
// Two helpers for scripts: ready waits until an endpoint answers a signed
// request, and freeport prints a free TCP port on 127.0.0.1.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "s3bench: error: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage:
  s3bench run -endpoint HOST:PORT -access-key AK -secret-key SK -bucket B -server NAME [-pid PID] -case SIZE:CONC:COUNT[,...] [-out FILE]
  s3bench compare [-audit-cost] A.jsonl B.jsonl
  s3bench scale -endpoint HOST:PORT -access-key AK -secret-key SK [-pid PID] [-objects N] [-size 4KiB] [-concurrency 32] [-phases list,rebuild,scrub,drill] [-out FILE]
  s3bench ready -endpoint HOST:PORT -access-key AK -secret-key SK [-pid PID] [-timeout 2m]
  s3bench freeport
  s3bench probe [-interval 500ms] [-cpu-iters N] [-mem 64MiB] [-fault 16MiB] [-pcache 16MiB] [-sys-calls N] [-cold 8MiB] [-fresh 4MiB] [-fresh-total 2GiB] [-dir DIR] [-out FILE] [-duration D]
  s3bench probesum -probe PROBE.jsonl [-large] A.jsonl [B.jsonl ...]
  s3bench perfsum [-top N] DIR`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("no subcommand\n%s", usage)
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "compare":
		return compareCmd(args[1:], stdout)
	case "scale":
		return scaleCmd(ctx, args[1:], stdout, stderr)
	case "ready":
		return readyCmd(ctx, args[1:], stderr)
	case "freeport":
		return freeportCmd(args[1:], stdout)
	case "probe":
		return probeCmd(ctx, args[1:], stdout, stderr)
	case "probesum":
		return probeSumCmd(args[1:], stdout)
	case "perfsum":
		return perfSumCmd(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], usage)
}
