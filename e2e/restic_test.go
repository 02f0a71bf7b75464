package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// resticCLI returns restic (bin) set up for a repository in bucket on s,
// with its cache in a temporary directory.
func resticCLI(t *testing.T, bin string, s *server, bucket string) *client {
	t.Helper()
	env := append(cleanEnv(),
		"RESTIC_PASSWORD=e2e correct horse battery staple",
		"RESTIC_REPOSITORY=s3:"+s.endpoint+"/"+bucket,
		"RESTIC_CACHE_DIR="+t.TempDir(),
		"AWS_ACCESS_KEY_ID="+s.accessKey,
		"AWS_SECRET_ACCESS_KEY="+s.secretKey,
		"AWS_DEFAULT_REGION=us-east-1",
	)
	return &client{t: t, bin: bin, env: env}
}

func TestRestic(t *testing.T) {
	t.Parallel()
	bin := need(t, "restic")
	s := startServer(t)
	c := resticCLI(t, bin, s, "e2e-restic")
	restic := func(args ...string) string {
		t.Helper()
		return c.run(args...)
	}
	snapshots := func() []string {
		t.Helper()
		var snaps []struct{ ID string }
		decodeJSON(t, restic("snapshots", "--json"), &snaps)
		var ids []string
		for _, s := range snaps {
			ids = append(ids, s.ID)
		}
		return ids
	}

	src := filepath.Join(t.TempDir(), "data")
	files := append([]treeFile{
		{"archive/random.bin", 10 << 20},
		{"archive/small.bin", 100},
		{"empty", 0},
	}, prefixTree("registry/", nestedTree(30))...)
	makeTree(t, src, files)
	// Compressible text too: restic compresses it before upload.
	text := strings.Repeat("population registry record; ", 40000)
	if err := os.WriteFile(filepath.Join(src, "registry", "records.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	restic("init")
	// Back up "." from inside the tree so that restore puts the files
	// directly under the target.
	backup := func() {
		t.Helper()
		b := *c
		b.dir = src
		b.run("backup", "--host", "e2e", ".")
	}
	backup()
	if ids := snapshots(); len(ids) != 1 {
		t.Fatalf("after one backup, restic lists %d snapshots, want 1: %v", len(ids), ids)
	}
	if out := restic("check", "--read-data"); !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check --read-data does not report success:\n%s", out)
	}
	first := filepath.Join(t.TempDir(), "restore1")
	restic("restore", "latest", "--target", first)
	sameTree(t, src, first)

	// Change a file and back up again; keep only the newest snapshot.
	writeFile(t, filepath.Join(src, filepath.FromSlash(files[1].path)), 4242, 5000)
	if err := os.Remove(filepath.Join(src, filepath.FromSlash(files[5].path))); err != nil {
		t.Fatal(err)
	}
	backup()
	if ids := snapshots(); len(ids) != 2 {
		t.Fatalf("after two backups, restic lists %d snapshots, want 2: %v", len(ids), ids)
	}
	restic("forget", "--keep-last", "1", "--prune")
	if ids := snapshots(); len(ids) != 1 {
		t.Fatalf("after forget --keep-last 1, restic lists %d snapshots, want 1: %v", len(ids), ids)
	}
	if out := restic("check", "--read-data"); !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check --read-data after prune does not report success:\n%s", out)
	}
	second := filepath.Join(t.TempDir(), "restore2")
	restic("restore", "latest", "--target", second)
	sameTree(t, src, second)
}
