#!/usr/bin/env bash
# S3 benchmark: embassy against MinIO, in one run, on this machine, with the
# same client (bench/s3bench, built on minio-go). Prints embassy/MinIO ratios
# beside the goals, and the servers' CPU-seconds per GB moved.
#
#   bench/s3.sh                      # full run (1 GiB per large case)
#   RUNS=3 bench/s3.sh               # three runs: median ratio and range of each case
#   QUICK=1 bench/s3.sh              # smoke test, a minute or two
#   BENCH_DIR=/mnt/fast bench/s3.sh  # put both servers' data there
#   PROFILE=/tmp/prof bench/s3.sh    # and embassy's CPU/alloc profiles of every phase of the first run
#   PERF=/tmp/perf bench/s3.sh       # and both servers' CPU per GB by cost (Linux perf), side by side
#   AUDIT_COST=1 bench/s3.sh         # what the audit log costs PUTs: embassy with it against a
#                                    # benchmark build without it (no MinIO), RUNS=5 rounds
#
# Both servers get six directories on the same filesystem and code new
# objects 4+2: embassy with `serve --dev`, MinIO with six drives and
# MINIO_STORAGE_CLASS_STANDARD=EC:2. MinIO is built from its Go module the
# first time (several minutes) and cached in $BENCH_CACHE.
#
# Environment:
#   QUICK=1             smaller cases
#   RUNS=N              run every case N times (default 1); the summary gives each case's
#                       median ratio and the range of the per-run ratios
#   PROFILE=DIR         capture embassy's CPU and allocation profiles of every phase of the
#                       first run into DIR (through /_embassy/v1/debug/pprof/), with a
#                       top-40 text summary of each (see bench/README.md)
#   PERF=DIR            sample both servers' threads (user and kernel stacks) with Linux perf in
#                       every phase of the first run into DIR, and print, phase by phase, their
#                       CPU-seconds per GB side by side by what they went to (MD5, SHA-256,
#                       ciphers, copies, the kernel's network and disk work, the Go runtime)
#                       with `s3bench perfsum` (needs perf: Debian's linux-perf; bench/README.md)
#   CASES=...           SIZE:CONCURRENCY:COUNT[,...] instead of the defaults
#   BENCH_DIR=DIR       where the servers' data go (default: a new temp dir)
#   BENCH_CACHE=DIR     where the MinIO binary is kept (default ~/.cache/embassy-bench)
#   MINIO_VERSION=V     module version of github.com/minio/minio (default: pinned below; "latest" works)
#   DISK=none           leave out the counters of the data's disk that every phase records
#                       (bytes read and written, busy time, reads in flight, KiB and ms a read)
#   PROBE=1             run `s3bench probe` beside the cases (fixed CPU, memory, page-fault and
#                       page-cache work timed every 500 ms by its thread's CPU time) and print
#                       its medians for every large phase after the summary (bench/README.md,
#                       "The calibration probe")
#   S3BENCH_FLAGS=...   extra flags for `s3bench run`, e.g. -unsigned-payload, -part-size 16MiB, -drop-caches
#   EMBASSY_REF=REF     build embassy from a git ref (e.g. HEAD) instead of the working tree
#   KEEP=1              keep the data and logs afterwards
#   EMBASSY_GOMAXPROCS=N  run the embassy server (only) with GOMAXPROCS=N instead of the
#                       runtime's default (the number of cores); see docs/design.md, "Small
#                       puts and the Go scheduler"
#   AUDIT_COST=1        instead of MinIO, measure embassy against a build of the same source
#                       with -tags embassy_bench_nolog, whose `serve --dev` gives the engine no
#                       audit log (an ordinary build cannot turn the log off): PUTs only, cases
#                       4KiB:16:2000 1MiB:16:256 (QUICK=1: 4KiB:16:400 1MiB:16:64), RUNS rounds
#                       (default 5), alternating which server goes first; prints every round's
#                       with/without ratio, their median and range, against issue 12's goal
#                       (the log costs at most 10 %: ratio ≥ 0.90)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# The MinIO build that `go install github.com/minio/minio@latest` gave on
# 2026-11-25. Pinned so that ratios from different days compare.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
BENCH_CACHE="${BENCH_CACHE:-${HOME:-/tmp}/.cache/embassy-bench}"

audit_cost="${AUDIT_COST:-}"
if [ -n "$audit_cost" ]; then
	# Small PUTs are what issue 12 bounds; 1 MiB shows the cost on larger ones.
	if [ -n "${CASES:-}" ]; then
		cases="$CASES"
	elif [ -n "${QUICK:-}" ]; then
		cases="4KiB:16:400 1MiB:16:64"
	else
		cases="4KiB:16:2000 1MiB:16:256"
	fi
	RUNS="${RUNS:-5}"
elif [ -n "${CASES:-}" ]; then
	cases="$CASES"
elif [ -n "${QUICK:-}" ]; then
	cases="64MiB:1:2 64MiB:4:4 1MiB:16:64 4KiB:16:400"
else
	# 1 GiB per 64 MiB case, 1 GiB of 1 MiB objects, 4000 small objects.
	cases="64MiB:1:16 64MiB:4:16 1MiB:16:1024 4KiB:16:4000"
fi
cases="${cases//,/ }"
RUNS="${RUNS:-1}"
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
	echo "bench/s3.sh: RUNS=$RUNS: want a whole number of runs, 1 or more" >&2
	exit 2
fi
if [ -n "${PROFILE:-}" ]; then
	mkdir -p "$PROFILE"
	PROFILE=$(cd "$PROFILE" && pwd)
fi
if [ -n "${PERF:-}" ]; then
	if ! command -v perf >/dev/null 2>&1; then
		echo "bench/s3.sh: PERF=$PERF needs perf (Debian: apt-get install linux-perf)" >&2
		exit 2
	fi
	mkdir -p "$PERF"
	PERF=$(cd "$PERF" && pwd)
fi

log() { printf '== %s\n' "$*" >&2; }

# --- MinIO binary, built once -------------------------------------------
minio_dir="$BENCH_CACHE/minio/$MINIO_VERSION"
minio="$minio_dir/minio"
if [ -z "$audit_cost" ] && [ ! -x "$minio" ]; then
	mkdir -p "$minio_dir"
	log "building MinIO $MINIO_VERSION from its Go module into $minio_dir (several minutes, once)"
	if ! (cd / && GOBIN="$minio_dir" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"); then
		log "go install github.com/minio/minio@$MINIO_VERSION failed; trying @latest"
		(cd / && GOBIN="$minio_dir" GOFLAGS=-mod=mod go install github.com/minio/minio@latest)
	fi
fi

# --- work area, binaries, teardown --------------------------------------
if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	work=$(mktemp -d "$BENCH_DIR/embassy-s3bench.XXXXXX")
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/embassy-s3bench.XXXXXX")
fi
pids=()
cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${KEEP:-}" ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/bin"
src=$repo
if [ -n "${EMBASSY_REF:-}" ]; then
	src="$work/src"
	mkdir -p "$src"
	git archive "$EMBASSY_REF" | tar -x -C "$src"
	log "building embassy at $EMBASSY_REF ($(git rev-parse --short "$EMBASSY_REF")) and s3bench"
else
	log "building embassy (working tree) and s3bench"
fi
(cd "$src" && go build -o "$work/bin/embassy" ./cmd/embassy)
if [ -n "$audit_cost" ]; then
	# The same source built for the benchmark only: its `serve --dev` gives
	# the engine no audit log (node/benchaudit_nolog.go).
	(cd "$src" && go build -tags embassy_bench_nolog -o "$work/bin/embassy-nolog" ./cmd/embassy)
fi
go build -o "$work/bin/s3bench" ./bench/s3bench
s3bench="$work/bin/s3bench"
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

access_key="s3bench$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
secret_key="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"

# --- servers: embassy, and the one it is compared with ("other") --------
embassy_port=$("$s3bench" freeport)
embassy_env=()
if [ -n "${EMBASSY_GOMAXPROCS:-}" ]; then
	embassy_env=(GOMAXPROCS="$EMBASSY_GOMAXPROCS")
	log "embassy runs with GOMAXPROCS=$EMBASSY_GOMAXPROCS"
fi
env "${embassy_env[@]}" EMBASSY_ACCESS_KEY="$access_key" EMBASSY_SECRET_KEY="$secret_key" \
	"$work/bin/embassy" serve --dev --data "$work/embassy" --address "127.0.0.1:$embassy_port" >"$work/embassy.log" 2>&1 &
embassy_pid=$!
pids+=("$embassy_pid")

if [ -n "$audit_cost" ]; then
	# The reference: the same node without the audit log, on its own data.
	other=embassy-nolog
	other_port=$("$s3bench" freeport)
	EMBASSY_ACCESS_KEY="$access_key" EMBASSY_SECRET_KEY="$secret_key" \
		"$work/bin/embassy-nolog" serve --dev --data "$work/embassy-nolog" --address "127.0.0.1:$other_port" >"$work/embassy-nolog.log" 2>&1 &
	other_pid=$!
	pids+=("$other_pid")
else
	other=minio
	other_port=$("$s3bench" freeport)
	mkdir -p "$work/minio"
	MINIO_ROOT_USER="$access_key" MINIO_ROOT_PASSWORD="$secret_key" \
		MINIO_CI_CD=1 MINIO_STORAGE_CLASS_STANDARD=EC:2 MINIO_BROWSER=off MINIO_UPDATE=off \
		"$minio" server --quiet --address "127.0.0.1:$other_port" "$work/minio/drive{1...6}" \
		>"$work/minio.log" 2>&1 &
	other_pid=$!
	pids+=("$other_pid")
fi

ready() { # name port pid
	if ! "$s3bench" ready -endpoint "127.0.0.1:$2" -access-key "$access_key" -secret-key "$secret_key" -pid "$3"; then
		log "$1 did not come up; its log:"
		cat "$work/$1.log" >&2
		exit 1
	fi
}
ready embassy "$embassy_port" "$embassy_pid"
ready "$other" "$other_port" "$other_pid"
if [ -n "$audit_cost" ]; then
	# Each binary must be what it claims: only the benchmark build says,
	# when it opens the node, that its engine has no audit log.
	if grep -q embassy_bench_nolog "$work/embassy.log"; then
		log "the ordinary embassy build runs without its audit log; its log:"
		cat "$work/embassy.log" >&2
		exit 1
	fi
	if ! grep -q embassy_bench_nolog "$work/embassy-nolog.log"; then
		log "the embassy_bench_nolog build did not turn the engine's audit log off (built from a commit without node/benchaudit_nolog.go?); its log:"
		cat "$work/embassy-nolog.log" >&2
		exit 1
	fi
	log "embassy with its audit log (pid $embassy_pid) on 127.0.0.1:$embassy_port, without it (embassy_bench_nolog build, pid $other_pid) on 127.0.0.1:$other_port"
else
	log "embassy (pid $embassy_pid) on 127.0.0.1:$embassy_port, MinIO $MINIO_VERSION (pid $other_pid) on 127.0.0.1:$other_port"
fi
log "data under $work ($(df -h --output=source,fstype "$work" | tail -1 | tr -s ' '))"
# The counters of the data's disk per phase (the whole device's: other
# processes' reads and writes count too).
disk_flags=(-disk-of "$work")
if [ "${DISK:-}" = none ]; then
	disk_flags=()
fi

probe_pid=
if [ -n "${PROBE:-}" ] && [ -z "$audit_cost" ]; then
	"$s3bench" probe -out "$work/probe.jsonl" -dir "$work" &
	probe_pid=$!
	pids+=("$probe_pid")
	log "calibration probe (pid $probe_pid) beside the cases"
fi

# --- cases, interleaved so that drift hits both servers alike ------------
bench() { # name port pid case [extra flags...]
	local name=$1 port=$2 pid=$3 c=$4
	shift 4
	"$s3bench" run -endpoint "127.0.0.1:$port" -access-key "$access_key" -secret-key "$secret_key" \
		-bucket s3bench -server "$name" -pid "$pid" -clk-tck "$clk_tck" -case "$c" \
		-out "$work/$name.jsonl" "${disk_flags[@]}" ${S3BENCH_FLAGS:-} "$@"
}
for run in $(seq 1 "$RUNS"); do
	[ "$RUNS" -gt 1 ] && log "run $run of $RUNS"
	prof=()
	if [ -n "${PROFILE:-}" ] && [ "$run" -eq 1 ]; then
		prof=(-pprof "$PROFILE")
	fi
	# Both servers are embassy in AUDIT_COST mode: both may be profiled,
	# and neither gets objects back (the log's cost is on the put).
	ref=()
	if [ -n "$audit_cost" ]; then
		ref=(-put-only "${prof[@]}")
		prof=(-put-only "${prof[@]}")
	fi
	# perf samples any process: both servers, in the first run.
	if [ -n "${PERF:-}" ] && [ "$run" -eq 1 ]; then
		prof+=(-perf "$PERF")
		ref+=(-perf "$PERF")
	fi
	n=$((run - 1))
	for c in $cases; do
		sync
		if [ $((n % 2)) -eq 0 ]; then
			bench embassy "$embassy_port" "$embassy_pid" "$c" "${prof[@]}"
			sync
			bench "$other" "$other_port" "$other_pid" "$c" "${ref[@]}"
		else
			bench "$other" "$other_port" "$other_pid" "$c" "${ref[@]}"
			sync
			bench embassy "$embassy_port" "$embassy_pid" "$c" "${prof[@]}"
		fi
		n=$((n + 1))
	done
done

if [ -n "$probe_pid" ]; then
	kill -TERM "$probe_pid" 2>/dev/null || true
	wait "$probe_pid" 2>/dev/null || true
fi

if [ -n "${PROFILE:-}" ]; then
	# One CPU profile per phase from its one-second pieces, and a text
	# summary of each: where the CPU went (flat and cumulative) and what
	# the phase allocated.
	for d in "$PROFILE"/embassy-*/; do
		d=${d%/}
		go tool pprof -proto "$d"/cpu-*.pb.gz >"$d/cpu.pb.gz" 2>/dev/null
		go tool pprof -top -nodecount=40 "$d/cpu.pb.gz" >"$d/cpu-top.txt" 2>&1
		go tool pprof -top -cum -nodecount=40 "$d/cpu.pb.gz" >"$d/cpu-cum.txt" 2>&1
		go tool pprof -top -nodecount=40 -sample_index=alloc_space -base "$d/allocs-before.pb.gz" "$d/allocs-after.pb.gz" >"$d/alloc-top.txt" 2>&1
	done
	log "profiles of the first run's embassy phases under $PROFILE (cpu.pb.gz, cpu-top.txt, cpu-cum.txt, alloc-top.txt per phase)"
fi

echo
if [ -n "$audit_cost" ]; then
	"$s3bench" compare -audit-cost "$work/embassy.jsonl" "$work/embassy-nolog.jsonl"
else
	"$s3bench" compare "$work/embassy.jsonl" "$work/minio.jsonl"
	if [ -n "$probe_pid" ]; then
		echo
		echo "calibration probe, medians over each large phase (bench/README.md, \"The calibration probe\"):"
		"$s3bench" probesum -probe "$work/probe.jsonl" -large "$work/embassy.jsonl" "$work/minio.jsonl"
	fi
fi
if [ -n "${PERF:-}" ]; then
	echo
	echo "where each server's CPU went in the first run (perf; bench/README.md, \"Where the CPU goes: perf\"):"
	"$s3bench" perfsum "$PERF"
fi
