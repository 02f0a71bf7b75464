package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// rcloneCLI returns rclone (bin) set up, through the environment alone,
// with a remote "emb:" for s.
func rcloneCLI(t *testing.T, bin string, s *server) *client {
	t.Helper()
	env := append(cleanEnv(),
		"RCLONE_CONFIG_EMB_TYPE=s3",
		"RCLONE_CONFIG_EMB_PROVIDER=Other",
		"RCLONE_CONFIG_EMB_ACCESS_KEY_ID="+s.accessKey,
		"RCLONE_CONFIG_EMB_SECRET_ACCESS_KEY="+s.secretKey,
		"RCLONE_CONFIG_EMB_ENDPOINT="+s.endpoint,
		"RCLONE_CONFIG_EMB_REGION=us-east-1",
		"RCLONE_CONFIG_EMB_FORCE_PATH_STYLE=true",
		// Files over 16 MiB go up in parts (5 MiB each by default).
		"RCLONE_CONFIG_EMB_UPLOAD_CUTOFF=16M",
	)
	return &client{t: t, bin: bin, env: env}
}

// rcloneTree has what trips up S3 servers: a multipart-sized file, an
// empty file, non-ASCII names, spaces and URL-special characters.
var rcloneTree = append([]treeFile{
	{"big/archive.bin", 21<<20 + 333},
	{"empty.txt", 0},
	{"docs/annual report 2026.txt", 4096},
	{"ünïcödé/файл — данные.txt", 777},
	{"日本語/データ.bin", 1234},
	{"odd/a+b=c&d%20e;f.txt", 55},
	{"odd/ spaces around .txt", 66},
}, prefixTree("nested/", nestedTree(12))...)

func prefixTree(prefix string, files []treeFile) []treeFile {
	for i := range files {
		files[i].path = prefix + files[i].path
	}
	return files
}

func TestRclone(t *testing.T) {
	t.Parallel()
	bin := need(t, "rclone")
	s := startServer(t)
	c := rcloneCLI(t, bin, s)
	// An empty configuration file: the user's is not read.
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rclone := func(args ...string) (stdout, stderr string) {
		t.Helper()
		args = append([]string{"--config", conf}, args...)
		out, errOut, err := c.try(args...)
		if err != nil {
			t.Fatalf("rclone %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	// check runs rclone check, which compares sizes and MD5s of both sides.
	check := func(src, remote string) {
		t.Helper()
		_, stderr := rclone("check", src, remote)
		if !strings.Contains(stderr, ": 0 differences found") {
			t.Fatalf("rclone check %s %s does not report 0 differences:\n%s", src, remote, stderr)
		}
		if strings.Contains(stderr, "could not be checked") {
			t.Fatalf("rclone check %s %s could not compare every hash:\n%s", src, remote, stderr)
		}
	}
	const bucket = "e2e-rclone"
	remote := "emb:" + bucket + "/tree"

	rclone("mkdir", "emb:"+bucket)
	if out, _ := rclone("lsd", "emb:"); !strings.Contains(out, bucket) {
		t.Fatalf("rclone lsd emb: does not list %s:\n%s", bucket, out)
	}

	src := filepath.Join(t.TempDir(), "tree")
	makeTree(t, src, rcloneTree)
	dst := filepath.Join(t.TempDir(), "tree")

	t.Run("sync up, check, sync down", func(t *testing.T) {
		rclone("sync", src, remote)
		check(src, remote)
		if etag := statETag(t, s, bucket, "tree/big/archive.bin"); !strings.HasSuffix(etag, "-5") {
			t.Errorf("big/archive.bin has ETag %s, want a multipart ETag of 5 parts (…-5): was it uploaded in parts?", etag)
		}
		out, _ := rclone("lsf", "-R", "--files-only", remote)
		if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != len(rcloneTree) {
			t.Errorf("rclone lsf lists %d files, want %d:\n%s", n, len(rcloneTree), out)
		}
		rclone("sync", remote, dst)
		sameTree(t, src, dst)
	})

	t.Run("server-side copy and ranged reads", func(t *testing.T) {
		big := filepath.Join(src, filepath.FromSlash(rcloneTree[0].path))
		rclone("copyto", remote+"/big/archive.bin", "emb:"+bucket+"/copies/archive.bin")
		if _, stderr := rclone("check", "--one-way", big, "emb:"+bucket+"/copies/"); !strings.Contains(stderr, ": 1 matching files") {
			t.Fatalf("rclone check of the server-side copy does not report it matching:\n%s", stderr)
		}
		want, err := os.ReadFile(big)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct {
			name          string
			offset, count int
		}{
			{"head", 0, 100},
			{"across parts", 5<<20 - 50, 100},
			{"tail", len(want) - 10, 10},
		} {
			out, _ := rclone("cat", "--offset", strconv.Itoa(r.offset), "--count", strconv.Itoa(r.count), remote+"/big/archive.bin")
			if out != string(want[r.offset:r.offset+r.count]) {
				t.Errorf("rclone cat %s (offset %d, count %d): got %d bytes that differ from the file", r.name, r.offset, r.count, len(out))
			}
		}
	})

	t.Run("delete, change and add, then sync again", func(t *testing.T) {
		gone := filepath.Join(src, filepath.FromSlash(rcloneTree[2].path))
		if err := os.Remove(gone); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(src, filepath.FromSlash(rcloneTree[3].path)), 99, 2048)
		writeFile(t, filepath.Join(src, "new", "later.bin"), 98, 100)
		rclone("sync", src, remote)
		check(src, remote)
		out, _ := rclone("lsf", "-R", "--files-only", remote)
		if strings.Contains(out, "annual report 2026.txt") {
			t.Errorf("the deleted file is still listed after sync:\n%s", out)
		}
		if !strings.Contains(out, "new/later.bin") {
			t.Errorf("the added file is not listed after sync:\n%s", out)
		}
		rclone("sync", remote, dst)
		sameTree(t, src, dst)
	})
}

// statETag returns an object's ETag, asked for with minio-go so that it
// does not depend on the client under test.
func statETag(t *testing.T, s *server, bucket, key string) string {
	t.Helper()
	mc, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(s.accessKey, s.secretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := mc.StatObject(t.Context(), bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("stat %s/%s: %v", bucket, key, err)
	}
	return info.ETag
}
