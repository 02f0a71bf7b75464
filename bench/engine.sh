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
#   WORKERS=32 bench/engine.sh       # small puts by 32 writers (16 by default)
#   SLICE=2000 bench/engine.sh       # small puts and their reference interleaved in slices of 2000 (1000)
#   AUDIT_ROUNDS=0 bench/engine.sh   # skip the audit log's cost (BenchmarkAuditCost)
#   AUDIT_ONLY=1 bench/engine.sh     # only the audit log's cost
#
# Every disk reference is measured through the dir driver itself, so it does
# the same I/O as the engine for that case (bench/README.md defines each):
#   put     six shard blobs of SIZE/4 written with O_DIRECT + fdatasync + rename + directory fsync;
#           limit = the lesser of that and the CPU work (seal + Reed-Solomon + checksums on every core)
#   get     the four data shard blobs read cold (evicted from the page cache)
#   small   six blobs per object of the engine's manifest-copy size through the driver's
#           small-file path (page cache, fdatasync, rename, group-committed directory fsync),
#           interleaved with the engine's puts in slices of SLICE objects (ABBA), for the
#           first 10,000 objects: the median over the pairs of slices
#   repair  the survivors' shard blobs, mirrored onto fresh sites object by object as the engine
#           writes them (same age: a cache below the guest holds as much of one as of the other),
#           read once, evicted from the page cache, through the driver in the engine's block reads,
#           eight blobs a site at once, as the repair reads the survivors; writes: blobs like the
#           lost shards, eight at once a site on two fresh sites, as the repair writes them.
#           Recovery is judged against a first read through the page cache of a second mirror (the repair
#           reads with O_DIRECT and leaves the survivors out of the page cache)
#   audit   the same small puts on a fresh engine without the audit log, in the
#           same round (AUDIT_ROUNDS rounds of AUDIT_OBJECTS puts, 9 of 2000 by
#           default, alternating which engine goes first): "audit log/no log",
#           the median of the rounds' with/without ratios (issue 12: ≥ 0.90)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${SIZE:-1073741824}"
OBJECTS="${OBJECTS:-100000}"
ROUNDS="${ROUNDS:-3}"
AUDIT_ROUNDS="${AUDIT_ROUNDS:-9}"
AUDIT_OBJECTS="${AUDIT_OBJECTS:-2000}"
if ! [[ "$AUDIT_ROUNDS" =~ ^[0-9]+$ && "$AUDIT_OBJECTS" =~ ^[1-9][0-9]*$ ]]; then
	echo "bench/engine.sh: AUDIT_ROUNDS=$AUDIT_ROUNDS AUDIT_OBJECTS=$AUDIT_OBJECTS: want whole numbers (AUDIT_ROUNDS=0 skips)" >&2
	exit 2
fi
WORKERS="${WORKERS:-16}"
if ! [[ "$WORKERS" =~ ^[1-9][0-9]*$ ]]; then
	echo "bench/engine.sh: WORKERS=$WORKERS: want a whole number of writers, at least 1" >&2
	exit 2
fi
SLICE="${SLICE:-1000}"
if ! [[ "$SLICE" =~ ^[1-9][0-9]*$ ]]; then
	echo "bench/engine.sh: SLICE=$SLICE: want a whole number of objects a slice, at least 1" >&2
	exit 2
fi
dirarg=()
if [ -n "${DIR:-}" ]; then dirarg=(-embassy.dir="$DIR"); fi

if [ -z "${AUDIT_ONLY:-}" ]; then
	go test -run '^$' -bench 'Throughput|SmallObjects' -benchtime 1x -timeout 4h ./vault/ -args \
		-embassy.size="$SIZE" -embassy.objects="$OBJECTS" -embassy.rounds="$ROUNDS" -embassy.workers="$WORKERS" -embassy.slice="$SLICE" "${dirarg[@]}" |
		grep -E '^(round|object|put/limit|small put/raw|[0-9]+ objects|Benchmark)'
fi

# What the audit log costs small puts (issue 12: at most 10 %): the same
# AUDIT_OBJECTS puts of 4 KiB by 16 writers on a fresh engine with its log
# and one without, AUDIT_ROUNDS times, alternating which goes first; the
# ratio is with/without within a round.
if [ "$AUDIT_ROUNDS" -gt 0 ]; then
	go test -run '^$' -bench 'AuditCost' -benchtime 1x -timeout 4h ./vault/ -args \
		-embassy.objects="$AUDIT_OBJECTS" -embassy.audit-rounds="$AUDIT_ROUNDS" "${dirarg[@]}" |
		grep -E '^(round [0-9]+: audit cost|audit log/no log|Benchmark)'
fi
[ -n "${AUDIT_ONLY:-}" ] && exit 0

# Repair and recovery after losing a jurisdiction (REPAIR_SIZE bytes, 4 GiB by
# default), against the raw cold read of blobs like the survivors' (above).
REPAIR_SIZE="${REPAIR_SIZE:-4294967296}"
go test -run '^$' -bench 'Repair' -benchtime 1x -timeout 4h ./housekeeping/ -args -embassy.repair-size="$REPAIR_SIZE" -embassy.rounds="$ROUNDS" "${dirarg[@]}" |
	grep -E '^(round|repair|recovery|[0-9]+ MiB in|Benchmark)'
