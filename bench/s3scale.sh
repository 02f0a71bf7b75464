#!/usr/bin/env bash
# Many small objects through the S3 front end: the shorter run through S3 of
# issue 15's million-object benchmark (bench/million.sh is the engine's).
# Builds embassy and bench/s3bench, starts `embassy serve --dev` (six dir
# sites in three jurisdictions, 4+2, on 127.0.0.1), then, through the real
# interfaces:
#   put     OBJECTS objects of SIZE with CONCURRENCY S3 clients (PutObject);
#   list    every key through ListObjectsV2, pages of 1,000;
#   rebuild the index from the sites (POST /_embassy/v1/index/rebuild, a job),
#           then every key listed again through S3;
#   scrub   every version (POST /_embassy/v1/scrub, a job);
#   drill   the loss of a jurisdiction (POST /_embassy/v1/drill, a job).
# For each phase: its rate, its time, the server's peak RSS (VmHWM, reset at
# the phase's start), its peak Go heap (HeapInuse, sampled each second
# through /_embassy/v1/debug/pprof/heap) and its CPU time. It fails if a
# phase fails, if a count is not OBJECTS, or if the scrub or the drill finds
# anything at risk or lost.
#
#   bench/s3scale.sh                        # 100 000 objects of 4 KiB, 32 clients
#   OBJECTS=20000 bench/s3scale.sh          # quicker
#   DIR=/mnt/fast bench/s3scale.sh          # the node (and its sites) under DIR
#   PHASES=list,scrub bench/s3scale.sh      # only the puts and the phases named
#   OUT=scale.jsonl bench/s3scale.sh        # also one JSON line per phase
#
# Environment:
#   OBJECTS=N         objects to put (default 100000)
#   SIZE=S            size of each (default 4KiB)
#   CONCURRENCY=C     S3 clients putting at once (default 32)
#   PHASES=...        phases after the puts, of list,rebuild,scrub,drill (default all)
#   LOSE=SELECTOR     what the drill loses (default jurisdiction=EST)
#   DIR=DIR           where the node's directory goes (default: a new temp dir)
#   OUT=FILE          append the phases as JSON lines to FILE
#   HEAP_PROFILES=DIR the server's heap profile before every phase (after two collections) in DIR
#   KEEP=1            keep the node's directory and log afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
OBJECTS="${OBJECTS:-100000}"
SIZE="${SIZE:-4KiB}"
CONCURRENCY="${CONCURRENCY:-32}"
PHASES="${PHASES:-list,rebuild,scrub,drill}"
LOSE="${LOSE:-jurisdiction=EST}"

log() { printf '== %s\n' "$*" >&2; }

if [ -n "${DIR:-}" ]; then
	mkdir -p "$DIR"
	work=$(mktemp -d "$DIR/embassy-s3scale.XXXXXX")
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/embassy-s3scale.XXXXXX")
fi
pid=
cleanup() {
	local rc=$?
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$work/embassy.log" ]; then
		log "the server's log, last lines:"
		tail -n 20 "$work/embassy.log" >&2
	fi
	if [ -n "${KEEP:-}" ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building embassy (working tree, $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')) and s3bench"
mkdir -p "$work/bin"
go build -o "$work/bin/embassy" ./cmd/embassy
go build -o "$work/bin/s3bench" ./bench/s3bench
s3bench="$work/bin/s3bench"

access_key="s3scale$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
secret_key="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
port=$("$s3bench" freeport)
# serve --dev's principal admin holds the operator role the admin API needs.
EMBASSY_ACCESS_KEY="$access_key" EMBASSY_SECRET_KEY="$secret_key" \
	"$work/bin/embassy" serve --dev --data "$work/node" --address "127.0.0.1:$port" >"$work/embassy.log" 2>&1 &
pid=$!
if ! "$s3bench" ready -endpoint "127.0.0.1:$port" -access-key "$access_key" -secret-key "$secret_key" -pid "$pid"; then
	log "embassy did not come up"
	exit 1
fi
log "embassy (pid $pid) on 127.0.0.1:$port, data under $work ($(df -h --output=source,fstype "$work" | tail -1 | tr -s ' '))"
log "$OBJECTS objects of $SIZE, $CONCURRENCY clients; then $PHASES; load average $(cut -d' ' -f1-3 /proc/loadavg)"

out=()
if [ -n "${OUT:-}" ]; then out=(-out "$OUT"); fi
if [ -n "${HEAP_PROFILES:-}" ]; then out+=(-heap-profiles "$HEAP_PROFILES"); fi
"$s3bench" scale -endpoint "127.0.0.1:$port" -access-key "$access_key" -secret-key "$secret_key" \
	-pid "$pid" -clk-tck "$(getconf CLK_TCK 2>/dev/null || echo 100)" \
	-objects "$OBJECTS" -size "$SIZE" -concurrency "$CONCURRENCY" -phases "$PHASES" -lose "$LOSE" \
	-index "$work/node/index.db" "${out[@]}"
log "load average $(cut -d' ' -f1-3 /proc/loadavg)"
