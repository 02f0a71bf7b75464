#!/usr/bin/env bash
# Engine benchmarks, each reported as a ratio against a reference measured in
# the same run on the same machine (absolute numbers drift on shared hosts).
#
#   bench/engine.sh                  # 1 GiB throughput and 100 000 small objects
#   SIZE=268435456 OBJECTS=10000 bench/engine.sh   # quicker
#   DIR=/mnt/fast bench/engine.sh    # put the sites on another filesystem
#
# Throughput: put and get of one object to six dir sites with 4+2, against the
# lesser of the CPU work (seal + Reed-Solomon + checksums on every core) and
# the disk's sequential write/read throughput divided by (k+m)/k.
# Small objects: put ops/s against raw durable six-file writes, list keys/s,
# index bytes per object.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${SIZE:-1073741824}"
OBJECTS="${OBJECTS:-100000}"
args=(-embassy.size="$SIZE" -embassy.objects="$OBJECTS")
if [ -n "${DIR:-}" ]; then args+=(-embassy.dir="$DIR"); fi
go test -run '^$' -bench 'Throughput|SmallObjects' -benchtime 1x -timeout 2h ./vault/ -args "${args[@]}" |
	grep -E '^(object|put/limit|[0-9]+ objects|Benchmark)'

# Repair and recovery after losing a jurisdiction (REPAIR_SIZE bytes, 4 GiB by
# default), against the raw read throughput of the surviving sites.
REPAIR_SIZE="${REPAIR_SIZE:-4294967296}"
go test -run '^$' -bench 'Repair' -benchtime 1x -timeout 2h ./housekeeping/ -args -embassy.repair-size="$REPAIR_SIZE" ${DIR:+-embassy.dir="$DIR"} |
	grep -E '^(repair|recovery|[0-9]+ MiB in|Benchmark)'
