#!/usr/bin/env bash
# A copy of ../shared/interop/run-s3-tests.sh, the runner embassy's figures (and MinIO's beside them)
# were measured with, changed only to take the suite from $S3TESTS_DIR. interop/s3tests_test.go runs it.
# The ceph/s3-tests conformance suite (snapshot in ./s3-tests, commit 8f0ae7b4 of 2026-05-07) against any S3 endpoint.
# Needs Debian packages: python3-boto3 python3-pytest python3-munch python3-gevent python3-isodate python3-lxml
#   python3-httplib2 python3-tz python3-yaml python3-requests   (PyPI is not reachable; these are enough).
# Usage: run-s3-tests.sh HOST PORT ACCESS SECRET [ALT_ACCESS ALT_SECRET]
#   SUBSET=core (default) runs the core object API (buckets, objects, listing, ranges, conditionals, copy, multipart,
#   versioning, object lock); SUBSET=all runs every test not marked fails_on_aws; K='expr' adds a pytest -k filter.
#   The tests create buckets named embassy-<random>-N and delete them afterwards.
# Prints the pytest summary, then "s3-tests: P passed, F failed" last; details in $OUT (default a new temp dir)/out.txt.
set -u
host=$1 port=$2 ak=$3 sk=$4 ak2=${5:-$3} sk2=${6:-$4}
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/s3tests.XXXXXX")}; mkdir -p "$out"
cat > "$out/s3tests.conf" <<CONF
[DEFAULT]
host = $host
port = $port
is_secure = False
ssl_verify = False
[fixtures]
bucket prefix = embassy-{random}-
iam name prefix = s3-tests-
iam path prefix = /s3-tests/
[s3 main]
display_name = main
user_id = main
email = main@example.org
api_name = default
access_key = $ak
secret_key = $sk
[s3 alt]
display_name = alt
user_id = alt
email = alt@example.org
access_key = $ak2
secret_key = $sk2
[s3 tenant]
display_name = tenant
user_id = tenant
email = tenant@example.org
access_key = $ak2
secret_key = $sk2
tenant = testx
[iam]
email = s3@example.com
user_id = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
access_key = $ak
secret_key = $sk
display_name = iam
[iam root]
access_key = $ak
secret_key = $sk
user_id = RGW11111111111111111
email = account1@ceph.com
[iam alt root]
access_key = $ak2
secret_key = $sk2
user_id = RGW22222222222222222
email = account2@ceph.com
CONF
include='bucket_list or bucket_listv2 or bucket_create or bucket_delete or list_buckets or object_write or object_read or put_object or get_object or head or delete_object or delete_objects or ranged_request or multipart or object_copy or copy_object or versioning or object_lock or atomic or object_set or object_raw or bucket_head or delete_marker'
exclude='acl or policy or encryption or sse or lifecycle or logging or cors or website or post_object or tagging or iam or sts or anonymous or public or torrent or storage_class or select or append or ownership or cloud or restore or auth_aws2 or presigned_post or fails_on_rgw'
if [ "${SUBSET:-core}" = all ]; then k="not fails_on_rgw"; else k="($include) and not ($exclude)"; fi
[ -n "${K:-}" ] && k="($k) and ($K)"
cd "${S3TESTS_DIR:-$here/s3-tests}"
S3TEST_CONF="$out/s3tests.conf" timeout "${TIMEOUT:-1800}" /usr/bin/python3 -m pytest -q -p no:cacheprovider -o cache_dir="$out/.cache" \
  -m 'not fails_on_aws and not fails_on_s3 and not auth_aws2' -k "$k" s3tests/functional/test_s3.py > "$out/out.txt" 2>&1
summary=$(tail -1 "$out/out.txt"); echo "$summary"
passed=$(grep -o '[0-9]* passed' <<<"$summary" | grep -o '[0-9]*'); failed=$(grep -o '[0-9]* failed' <<<"$summary" | grep -o '[0-9]*')
errors=$(grep -o '[0-9]* error' <<<"$summary" | grep -o '[0-9]*')
echo "details: $out/out.txt"
echo "s3-tests: ${passed:-0} passed, $(( ${failed:-0} + ${errors:-0} )) failed"
