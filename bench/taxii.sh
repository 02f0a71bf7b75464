#!/usr/bin/env bash
# TAXII 2.1 against the S3 API of the same node (taxii/bench_test.go):
# add N STIX objects in envelopes of 1,000, page through them, a filtered
# query — each as a ratio to the same work through S3 in the same run.
#   bench/taxii.sh                 # N=10000
#   N=2000 COUNT=3 bench/taxii.sh  # quicker, three runs
set -euo pipefail
cd "$(dirname "$0")/.."
TAXII_BENCH_N="${N:-10000}" go test ./taxii/ -run '^$' -bench 'TAXIIvsS3' -benchtime 1x -count "${COUNT:-1}" -timeout 2h
