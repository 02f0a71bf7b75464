package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// debianPython is Debian's Python, the one that sees python3-boto3; the
// python3 first on PATH may be another.
const debianPython = "/usr/bin/python3"

// boto3Script exercises boto3 against the endpoint in its environment. It
// exits non-zero listing every mismatch it saw (or with a traceback if a
// call fails) and prints "ok" when every step passed.
const boto3Script = `
import hashlib, io, os, sys, urllib.request
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["E2E_ENDPOINT"],
    aws_access_key_id=os.environ["E2E_ACCESS_KEY"],
    aws_secret_access_key=os.environ["E2E_SECRET_KEY"],
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
bucket = "e2e-boto3"

failures = []

def check(cond, what):
    if not cond:
        failures.append(what)

s3.create_bucket(Bucket=bucket)
check(bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]], "list_buckets does not list " + bucket)

body = "Tallinn → Luxembourg: data embassy\n".encode()
put = s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=body, ContentType="text/plain", Metadata={"origin": "boto3"})
check(put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), "put_object ETag %s is not the MD5 of the body" % put["ETag"])
got = s3.get_object(Bucket=bucket, Key="dir/a.txt")
check(got["Body"].read() == body, "get_object body differs")
check(got["ContentType"] == "text/plain", "ContentType %r" % got["ContentType"])
check(got["Metadata"] == {"origin": "boto3"}, "get_object Metadata %r, want {'origin': 'boto3'} (S3 returns metadata names in lower case)" % got["Metadata"])

rng = s3.get_object(Bucket=bucket, Key="dir/a.txt", Range="bytes=0-6")
check(rng["Body"].read() == body[:7], "ranged get_object differs")
check(rng["ResponseMetadata"]["HTTPStatusCode"] == 206, "ranged get_object status %d" % rng["ResponseMetadata"]["HTTPStatusCode"])

for k in ["dir/b.txt", "dir/sub/c.txt", "top.txt"]:
    s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
check(keys == ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "top.txt"], "list_objects_v2 keys %r" % keys)
lst = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
check([o["Key"] for o in lst["Contents"]] == ["dir/a.txt", "dir/b.txt"], "delimited listing keys %r" % lst["Contents"])
check([p["Prefix"] for p in lst["CommonPrefixes"]] == ["dir/sub/"], "delimited listing prefixes %r" % lst.get("CommonPrefixes"))
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1}))
check(sum(len(p.get("Contents", [])) for p in pages) == 4, "paginated listing saw %d keys" % sum(len(p.get("Contents", [])) for p in pages))

big = os.urandom(12 * 1024 * 1024 + 17)
mp = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
s3.upload_fileobj(io.BytesIO(big), bucket, "big.bin", Config=mp)
check(s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].endswith('-3"'), "big.bin was not stored as 3 parts")
out = io.BytesIO()
s3.download_fileobj(bucket, "big.bin", out, Config=mp)
check(hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(big).digest(), "multipart download differs")

url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a.txt"}, ExpiresIn=300)
check(urllib.request.urlopen(url).read() == body, "presigned GET differs")

s3.delete_object(Bucket=bucket, Key="top.txt")
v = s3.list_object_versions(Bucket=bucket, Prefix="top.txt")
check(len(v.get("DeleteMarkers", [])) == 1 and v["DeleteMarkers"][0]["IsLatest"], "no delete marker for top.txt: %r" % v)
if failures:
    sys.exit("boto3 saw differences from S3:\n" + "\n".join(failures))
print("ok")
`

func TestBoto3(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(debianPython); err != nil {
		missing(t, debianPython+" (Debian's python3)")
	}
	if out, err := exec.Command(debianPython, "-c", "import boto3").CombinedOutput(); err != nil {
		t.Logf("%s -c 'import boto3': %v\n%s", debianPython, err, out)
		missing(t, "python3-boto3 (boto3 for "+debianPython+")")
	}
	s := startServer(t)
	c := &client{t: t, bin: debianPython, env: append(cleanEnv(),
		"E2E_ENDPOINT="+s.endpoint,
		"E2E_ACCESS_KEY="+s.accessKey,
		"E2E_SECRET_KEY="+s.secretKey,
	)}
	out, stderr, err := c.try("-c", boto3Script)
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("boto3 script: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
}
