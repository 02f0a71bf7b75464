package e2e

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// awsCLI returns the AWS CLI bin set up to talk to s, reading no
// configuration of the user's.
func awsCLI(t *testing.T, bin string, s *server) *client {
	t.Helper()
	cfg := t.TempDir()
	// awscli v1 (and boto3) presign with Signature Version 2 unless told
	// otherwise; embassy, like S3 for buckets made since 2020, takes only
	// Signature Version 4.
	conf := "[default]\ns3 =\n    signature_version = s3v4\n"
	if err := os.WriteFile(filepath.Join(cfg, "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(),
		"AWS_ACCESS_KEY_ID="+s.accessKey,
		"AWS_SECRET_ACCESS_KEY="+s.secretKey,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(cfg, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(cfg, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	)
	return &client{t: t, bin: bin, env: env}
}

// headObject is the part of `aws s3api head-object` output the tests read.
type headObject struct {
	ContentLength int64
	ETag          string
	ContentType   string
	VersionId     string
	Metadata      map[string]string
}

func TestAWSCLI(t *testing.T) {
	t.Parallel()
	bin := need(t, "aws")
	s := startServer(t)
	c := awsCLI(t, bin, s)
	aws := func(args ...string) string {
		t.Helper()
		return c.run(append([]string{"--endpoint-url", s.endpoint}, args...)...)
	}
	const bucket = "e2e-aws"
	aws("s3", "mb", "s3://"+bucket)
	if out := aws("s3", "ls"); !strings.Contains(out, bucket) {
		t.Fatalf("aws s3 ls does not list bucket %s:\n%s", bucket, out)
	}

	local := t.TempDir()
	small := filepath.Join(local, "small.txt")
	smallBody := []byte("population registry, 2026 edition\n")
	if err := os.WriteFile(small, smallBody, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(local, "big.bin")
	const bigSize = 65<<20 + 12345 // over 64 MiB: the CLI uploads it in 8 MiB parts
	writeFile(t, big, 1, bigSize)

	t.Run("small file up, head-object, down", func(t *testing.T) {
		aws("s3", "cp", "--only-show-errors", "--content-type", "text/plain",
			"--metadata", "origin=e2e,nation=EST", small, "s3://"+bucket+"/small.txt")
		var h headObject
		decodeJSON(t, aws("s3api", "head-object", "--output", "json", "--bucket", bucket, "--key", "small.txt"), &h)
		sum := md5.Sum(smallBody)
		if want := `"` + hex.EncodeToString(sum[:]) + `"`; h.ETag != want {
			t.Errorf("ETag = %s, want the MD5 of the body %s", h.ETag, want)
		}
		if h.ContentLength != int64(len(smallBody)) {
			t.Errorf("ContentLength = %d, want %d", h.ContentLength, len(smallBody))
		}
		if h.ContentType != "text/plain" {
			t.Errorf("ContentType = %q, want text/plain", h.ContentType)
		}
		if h.Metadata["origin"] != "e2e" || h.Metadata["nation"] != "EST" || len(h.Metadata) != 2 {
			// S3 stores and returns metadata names in lower case, and
			// botocore keeps the case of the header names it receives.
			t.Errorf("Metadata = %v, want map[nation:EST origin:e2e] (x-amz-meta-* names in lower case, as S3 returns them)", h.Metadata)
		}
		if h.VersionId == "" {
			t.Errorf("head-object has no VersionId; vaults are always versioned")
		}
		down := filepath.Join(t.TempDir(), "small.txt")
		aws("s3", "cp", "--only-show-errors", "s3://"+bucket+"/small.txt", down)
		if got, want := sha256File(t, down), sha256File(t, small); got != want {
			t.Fatalf("downloaded small.txt sha256 %s, uploaded %s", got, want)
		}
	})

	t.Run("multipart file up and down", func(t *testing.T) {
		aws("s3", "cp", "--only-show-errors", big, "s3://"+bucket+"/big/big.bin")
		var h headObject
		decodeJSON(t, aws("s3api", "head-object", "--output", "json", "--bucket", bucket, "--key", "big/big.bin"), &h)
		if h.ContentLength != bigSize {
			t.Errorf("ContentLength = %d, want %d", h.ContentLength, bigSize)
		}
		if want := multipartETag(t, big, 8<<20); h.ETag != want {
			t.Errorf("ETag = %s, want the multipart ETag of 8 MiB parts %s", h.ETag, want)
		}
		down := filepath.Join(t.TempDir(), "big.bin")
		aws("s3", "cp", "--only-show-errors", "s3://"+bucket+"/big/big.bin", down)
		if got, want := sha256File(t, down), sha256File(t, big); got != want {
			t.Fatalf("downloaded big.bin sha256 %s, uploaded %s", got, want)
		}
	})

	t.Run("server-side copy in parts", func(t *testing.T) {
		// Over the 8 MiB threshold the CLI copies with UploadPartCopy
		// and x-amz-copy-source-range.
		aws("s3", "cp", "--only-show-errors", "s3://"+bucket+"/big/big.bin", "s3://"+bucket+"/copies/big.bin")
		down := filepath.Join(t.TempDir(), "copy.bin")
		aws("s3", "cp", "--only-show-errors", "s3://"+bucket+"/copies/big.bin", down)
		if got, want := sha256File(t, down), sha256File(t, big); got != want {
			t.Fatalf("server-side copy of big.bin has sha256 %s, original %s", got, want)
		}
	})

	t.Run("stream from stdin", func(t *testing.T) {
		// Of unknown size: the CLI reads it in parts as it comes.
		const n = 20<<20 + 7
		c.stdin = pseudoRandom(7, n)
		aws("s3", "cp", "--only-show-errors", "-", "s3://"+bucket+"/stdin.bin")
		down := filepath.Join(t.TempDir(), "stdin.bin")
		aws("s3", "cp", "--only-show-errors", "s3://"+bucket+"/stdin.bin", down)
		want := filepath.Join(t.TempDir(), "want.bin")
		writeFile(t, want, 7, n)
		if got, want := sha256File(t, down), sha256File(t, want); got != want {
			t.Fatalf("object streamed from stdin has sha256 %s, want %s", got, want)
		}
	})

	src := filepath.Join(t.TempDir(), "tree")
	files := nestedTree(50)
	makeTree(t, src, files)

	t.Run("sync up and down", func(t *testing.T) {
		aws("s3", "sync", "--only-show-errors", src, "s3://"+bucket+"/tree/")
		dst := filepath.Join(t.TempDir(), "tree")
		aws("s3", "sync", "--only-show-errors", "s3://"+bucket+"/tree/", dst)
		sameTree(t, src, dst)
		// Unchanged sizes and times: a second sync has nothing to do.
		if out := aws("s3", "sync", "--dryrun", src, "s3://"+bucket+"/tree/"); strings.TrimSpace(out) != "" {
			t.Errorf("a second sync of an unchanged tree would still copy:\n%s", out)
		}
	})

	t.Run("ls recursive", func(t *testing.T) {
		out := aws("s3", "ls", "--recursive", "s3://"+bucket+"/tree/")
		got := map[string]int64{}
		for line := range strings.Lines(out) {
			// 2026-01-02 15:04:05       1234 tree/d0/file-00.bin
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("unexpected ls line %q", line)
			}
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("ls line %q: size: %v", line, err)
			}
			got[f[3]] = n
		}
		if len(got) != len(files) {
			t.Errorf("ls --recursive listed %d objects, want %d:\n%s", len(got), len(files), out)
		}
		for _, f := range files {
			if n, ok := got["tree/"+f.path]; !ok || n != f.size {
				t.Errorf("ls --recursive: tree/%s listed %v with size %d, want size %d", f.path, ok, n, f.size)
			}
		}
	})

	t.Run("presign", func(t *testing.T) {
		f := files[17]
		want, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f.path)))
		if err != nil {
			t.Fatal(err)
		}
		u := strings.TrimSpace(aws("s3", "presign", "--expires-in", "300", "s3://"+bucket+"/tree/"+f.path))
		status, body := httpGet(t, u)
		if status != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("GET presigned %s: status %d, %d bytes (equal: %v); want 200 and the %d bytes uploaded\n%s",
				u, status, len(body), bytes.Equal(body, want), len(want), truncate(body))
		}
		// The same URL with its signature changed must be refused.
		i := strings.Index(u, "X-Amz-Signature=")
		if i < 0 {
			t.Fatalf("presigned URL has no X-Amz-Signature: %s", u)
		}
		i += len("X-Amz-Signature=")
		flip := byte('0')
		if u[i] == '0' {
			flip = '1'
		}
		bad := u[:i] + string(flip) + u[i+1:]
		if status, body := httpGet(t, bad); status != http.StatusForbidden {
			t.Fatalf("GET with a tampered signature: status %d, want 403\n%s", status, truncate(body))
		}
	})

	t.Run("rm leaves a delete marker", func(t *testing.T) {
		aws("s3", "rm", "--only-show-errors", "s3://"+bucket+"/small.txt")
		out, stderr, err := c.try("--endpoint-url", s.endpoint, "s3api", "head-object", "--bucket", bucket, "--key", "small.txt")
		if err == nil || !strings.Contains(stderr, "404") {
			t.Errorf("head-object after rm: err %v, want a 404\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		var v struct {
			Versions []struct {
				Key       string
				VersionId string
				IsLatest  bool
				Size      int64
			}
			DeleteMarkers []struct {
				Key       string
				VersionId string
				IsLatest  bool
			}
		}
		decodeJSON(t, aws("s3api", "list-object-versions", "--output", "json", "--bucket", bucket, "--prefix", "small.txt"), &v)
		if len(v.DeleteMarkers) != 1 || v.DeleteMarkers[0].Key != "small.txt" || !v.DeleteMarkers[0].IsLatest || v.DeleteMarkers[0].VersionId == "" {
			t.Fatalf("DeleteMarkers = %+v, want one for small.txt, latest, with a version id", v.DeleteMarkers)
		}
		if len(v.Versions) != 1 || v.Versions[0].Key != "small.txt" || v.Versions[0].IsLatest || v.Versions[0].Size != int64(len(smallBody)) {
			t.Fatalf("Versions = %+v, want the one earlier version of small.txt (%d bytes), not latest", v.Versions, len(smallBody))
		}
		// The earlier version is still readable by its id.
		old := filepath.Join(t.TempDir(), "old.txt")
		aws("s3api", "get-object", "--bucket", bucket, "--key", "small.txt", "--version-id", v.Versions[0].VersionId, old)
		if got, err := os.ReadFile(old); err != nil || !bytes.Equal(got, smallBody) {
			t.Fatalf("get-object of the earlier version: %q, %v; want %q", got, err, smallBody)
		}
	})

	t.Run("rb --force", func(t *testing.T) {
		// The bucket holds objects, a noncurrent version under a delete
		// marker (small.txt), a second version of an object, and now an
		// upload in progress. rb --force deletes every object (delete
		// markers, in an always-versioned vault) and then the bucket,
		// which goes with its history and the upload, as on AWS.
		aws("s3", "cp", "--only-show-errors", small, "s3://"+bucket+"/tree/"+files[0].path)
		var up struct{ UploadId string }
		decodeJSON(t, aws("s3api", "create-multipart-upload", "--output", "json", "--bucket", bucket, "--key", "open/upload.bin"), &up)
		aws("s3api", "upload-part", "--bucket", bucket, "--key", "open/upload.bin", "--upload-id", up.UploadId, "--part-number", "1", "--body", small)
		aws("s3", "rb", "--force", "s3://"+bucket)
		if out, stderr, err := c.try("--endpoint-url", s.endpoint, "s3api", "head-bucket", "--bucket", bucket); err == nil || !strings.Contains(stderr, "404") {
			t.Fatalf("head-bucket after rb --force: err %v, want a 404\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		// A new bucket of the same name starts empty.
		aws("s3", "mb", "s3://"+bucket)
		var v struct {
			Versions      []struct{ Key string }
			DeleteMarkers []struct{ Key string }
		}
		if out := aws("s3api", "list-object-versions", "--output", "json", "--bucket", bucket); strings.TrimSpace(out) != "" {
			decodeJSON(t, out, &v)
		}
		var u struct{ Uploads []struct{ Key string } }
		if out := aws("s3api", "list-multipart-uploads", "--output", "json", "--bucket", bucket); strings.TrimSpace(out) != "" {
			decodeJSON(t, out, &u)
		}
		if len(v.Versions)+len(v.DeleteMarkers)+len(u.Uploads) != 0 {
			t.Fatalf("the re-created bucket holds %d versions, %d markers and %d uploads of the old one", len(v.Versions), len(v.DeleteMarkers), len(u.Uploads))
		}
	})
}

// multipartETag is the ETag S3 gives an object uploaded in parts of
// partSize: the MD5 of the parts' MD5s, a dash and the number of parts.
func multipartETag(t *testing.T, path string, partSize int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sums []byte
	parts := 0
	for {
		h := md5.New()
		n, err := io.CopyN(h, f, partSize)
		if n > 0 {
			sums = h.Sum(sums)
			parts++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sum := md5.Sum(sums)
	return fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sum[:]), parts)
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode JSON output: %v\n%s", err, s)
	}
}

func httpGet(t *testing.T, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, b
}

// truncate shortens a body for an error message.
func truncate(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "…"
	}
	return string(b)
}
