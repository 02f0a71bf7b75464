#!/usr/bin/env bash
# A million small objects through the engine (six dir sites, 4+2), then a
# listing, an index rebuild from the sites, a scrub, a garbage collection and
# a drill losing a jurisdiction. Each phase reports its rate, its time and
# the peak Go heap in use and resident set while it ran; rebuild, scrub,
# collection and drill must keep the heap under 256 MiB (DESIGN.md invariant
# 9), and the benchmark fails if one does not.
#
#   bench/million.sh                   # 1 000 000 objects of 4 KiB (hours on a small VM)
#   OBJECTS=100000 bench/million.sh    # quicker
#   DIR=/mnt/fast bench/million.sh     # the sites on another filesystem
#   PHASES=rebuild bench/million.sh    # only the puts and the phases named
#                                      # (of list,rebuild,scrub,collect,drill)
#   REUSE=/tmp/m bench/million.sh      # keep the puts' sites and index in /tmp/m/OBJECTS
#                                      # and take them from there next time (no puts)
#   EMBASSY_MILLION_HEAPPROF=/tmp/p bench/million.sh
#                                      # heap profiles of each phase: at its end and at
#                                      # its largest live heap (sampled every 2s)
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS="${OBJECTS:-1000000}"
SIZE="${SIZE:-4096}"
args=(-embassy.million="$OBJECTS" -embassy.million-size="$SIZE")
if [ -n "${DIR:-}" ]; then args+=(-embassy.dir="$DIR"); fi
if [ -n "${PHASES:-}" ]; then args+=(-embassy.million-phases="$PHASES"); fi
if [ -n "${REUSE:-}" ]; then args+=(-embassy.million-reuse="$REUSE"); fi
go test -run '^$' -bench 'Million' -benchtime 1x -timeout 24h ./housekeeping/ -args "${args[@]}" |
	grep -E '^(put|list|rebuild|scrub|collect|drill|index:|Benchmark|--- FAIL|    )'
