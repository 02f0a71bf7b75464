#!/usr/bin/env bash
# Engine benchmarks, each reported as a ratio against a reference measured in
# the same round on the same machine (absolute numbers drift on shared hosts),
# ROUNDS times (3 by default) on fresh sites, as the median ratio and the
# range of the rounds.
#
#   bench/engine.sh                  # 1 GiB throughput, 100 000 small objects, 4 GiB repair
#   SIZE=268435456 OBJECTS=10000 REPAIR_SIZE=1073741824 bench/engine.sh   # quicker
#   ROUNDS=1 bench/engine.sh         # one round
#   DIR=/mnt/fast bench/engine.sh    # put the sites on another filesystem
#
# Every disk reference is measured through the dir driver itself, so it does
# the same I/O as the engine for that case (bench/README.md defines each):
#   put     six shard blobs of SIZE/4 written with O_DIRECT + fdatasync + rename + directory fsync;
#           limit = the lesser of that and the CPU work (seal + Reed-Solomon + checksums on every core)
#   get     the four data shard blobs read cold (evicted from the page cache)
#   small   six blobs per object of the engine's manifest-copy size through the driver's
#           small-file path (page cache, fdatasync, rename, group-committed directory fsync)
#   repair  the survivors' shard blobs read cold through the driver (one reader a site and eight, the
#           faster); writes as for put
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${SIZE:-1073741824}"
OBJECTS="${OBJECTS:-100000}"
ROUNDS="${ROUNDS:-3}"
args=(-embassy.size="$SIZE" -embassy.objects="$OBJECTS" -embassy.rounds="$ROUNDS")
if [ -n "${DIR:-}" ]; then args+=(-embassy.dir="$DIR"); fi
go test -run '^$' -bench 'Throughput|SmallObjects' -benchtime 1x -timeout 4h ./vault/ -args "${args[@]}" |
	grep -E '^(round|object|put/limit|small put/raw|[0-9]+ objects|Benchmark)'

# Repair and recovery after losing a jurisdiction (REPAIR_SIZE bytes, 4 GiB by
# default), against the raw cold read throughput of the surviving sites.
REPAIR_SIZE="${REPAIR_SIZE:-4294967296}"
go test -run '^$' -bench 'Repair' -benchtime 1x -timeout 4h ./housekeeping/ -args -embassy.repair-size="$REPAIR_SIZE" -embassy.rounds="$ROUNDS" ${DIR:+-embassy.dir="$DIR"} |
	grep -E '^(round|repair|recovery|[0-9]+ MiB in|Benchmark)'
