package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/node"
)

// embassyBin is the binary built by TestMain.
var embassyBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "embassy-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go env GOMOD: %v\n", err)
		return 1
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: go env GOMOD: not inside a module (got %q)\n", mod)
		return 1
	}
	embassyBin = filepath.Join(tmp, "embassy")
	build := exec.Command("go", "build", "-o", embassyBin, "./cmd/embassy")
	build.Dir = filepath.Dir(mod)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/embassy: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// server is a running `embassy serve --dev`.
type server struct {
	endpoint  string // http://127.0.0.1:PORT
	addr      string // 127.0.0.1:PORT
	host      string // 127.0.0.1
	port      string
	accessKey string
	secretKey string
	dataDir   string
	logPath   string
	pid       int // the embassy serve process
}

// startServer starts a development node with debug logging on a free
// loopback port and stops it when the test ends. If the test failed, the
// tail of the server's log is printed.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with setup run on the node directory
// before the node serves (embassy commands that need it stopped).
func startServerWith(t *testing.T, setup func(dataDir string)) *server {
	t.Helper()
	s := &server{
		dataDir:   filepath.Join(t.TempDir(), "node"),
		logPath:   filepath.Join(t.TempDir(), "server.log"),
		accessKey: "E2E" + strings.ToUpper(randomHex(t, 8)),
		secretKey: randomHex(t, 20),
	}
	// The node is created here rather than by serve --dev so that it can
	// log every request (log.level debug); serve --dev then finds it.
	if _, err := node.InitDev(s.dataDir, node.DevOptions{}); err != nil {
		t.Fatalf("create dev node: %v", err)
	}
	c, err := node.LoadConfig(s.dataDir)
	if err != nil {
		t.Fatalf("load dev node config: %v", err)
	}
	c.Log.Level = "debug"
	if err := node.SaveConfig(s.dataDir, c); err != nil {
		t.Fatalf("save dev node config: %v", err)
	}
	if setup != nil {
		setup(s.dataDir)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	s.addr = ln.Addr().String()
	ln.Close()
	s.host, s.port, _ = net.SplitHostPort(s.addr)
	s.endpoint = "http://" + s.addr

	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(embassyBin, "serve", "--dev", "--data", s.dataDir, "--address", s.addr, "--access-key", s.accessKey)
	// The secret from the environment: a flag would show it to ps.
	cmd.Env = append(cleanEnv(), "EMBASSY_SECRET_KEY="+s.secretKey)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start embassy serve: %v", err)
	}
	logf.Close()
	s.pid = cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("embassy serve did not exit cleanly on SIGTERM: %v", waitErr)
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Errorf("embassy serve did not stop within 30s of SIGTERM; killed")
			}
		}
		if t.Failed() {
			t.Logf("server log (%s), last lines:\n%s", s.addr, s.logTail(t, 150))
		}
	})

	// Ready when the port accepts connections and the server has said it
	// serves there (so that another process that took the port meanwhile
	// is not mistaken for it).
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			conn.Close()
			if s.announced() {
				return s
			}
			err = errors.New("the port accepts connections but the server has not announced it")
		}
		if time.Now().After(deadline) {
			t.Fatalf("embassy serve did not accept connections on %s within 30s: %v", s.addr, err)
		}
		select {
		case <-exited:
			stopped = true
			t.Fatalf("embassy serve exited before accepting connections: %v", waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// announced reports whether the server has printed that it serves S3 at
// its address.
func (s *server) announced() bool {
	b, err := os.ReadFile(s.logPath)
	return err == nil && bytes.Contains(b, []byte("serving S3 at "+s.endpoint+"\n"))
}

// logTail returns the last n lines of the server's log, with the secret
// key redacted.
func (s *server) logTail(t *testing.T, n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	b = bytes.ReplaceAll(b, []byte(s.secretKey), []byte("REDACTED"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// need returns the path of the client program name. A missing client
// fails the test under CI and skips it, loudly, elsewhere.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		what := name
		if pkg, ok := debianPackage[name]; ok && pkg != name {
			what = pkg + " (" + name + ")"
		}
		missing(t, what)
	}
	return p
}

// debianPackage names the Debian package of each client program.
var debianPackage = map[string]string{"aws": "awscli", "rclone": "rclone", "restic": "restic"}

// missing fails (under CI) or skips the test because a client is not
// installed.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI must run every end-to-end test: .ci/run installs it with apt-get", what)
	}
	t.Skipf("SKIPPING: %s not installed; CI installs it via .ci/run", what)
}

// cleanEnv is the environment without settings of the user's own that the
// clients would pick up (AWS_*, RCLONE_*, RESTIC_*, proxies).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "RCLONE_"), strings.HasPrefix(k, "RESTIC_"),
			strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "all_proxy"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// client runs one external program with a fixed environment.
type client struct {
	t   *testing.T
	bin string
	env []string
	dir string // working directory; empty for the current one
	// stdin, if set, is the standard input of the next run; it is
	// consumed by it.
	stdin io.Reader
}

// run runs the client and returns its standard output; it fails the test,
// showing both outputs, if the client fails.
func (c *client) run(args ...string) string {
	c.t.Helper()
	out, stderr, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(c.bin), strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// try runs the client and returns its outputs and error.
func (c *client) try(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	cmd.Stdin, c.stdin = c.stdin, nil
	var o, e bytes.Buffer
	cmd.Stdout = &o
	cmd.Stderr = &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// pseudoRandom returns a reader of n deterministic pseudo-random bytes
// (incompressible, fast, reproducible from seed).
func pseudoRandom(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(mrand.NewChaCha8(s), n)
}

// writeFile writes n pseudo-random bytes to path, creating directories.
func writeFile(t *testing.T, path string, seed uint64, n int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, pseudoRandom(seed, n)); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// treeFile is one file of a test tree: its path (slash-separated,
// relative) and size.
type treeFile struct {
	path string
	size int64
}

// makeTree writes files under root, each with distinct pseudo-random
// content.
func makeTree(t *testing.T, root string, files []treeFile) {
	t.Helper()
	for i, f := range files {
		writeFile(t, filepath.Join(root, filepath.FromSlash(f.path)), uint64(i)+1000, f.size)
	}
}

// nestedTree is n small files spread over nested directories.
func nestedTree(n int) []treeFile {
	var files []treeFile
	for i := range n {
		dir := fmt.Sprintf("d%d/sub%d", i%4, i%3)
		if i%5 == 0 {
			dir = fmt.Sprintf("d%d", i%4)
		}
		files = append(files, treeFile{path: fmt.Sprintf("%s/file-%02d.bin", dir, i), size: int64(1 + i*613)})
	}
	return files
}

// sha256File returns the hex SHA-256 of a file.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// treeDigest maps every regular file under root (slash-separated relative
// path) to its SHA-256.
func treeDigest(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		m[filepath.ToSlash(rel)] = sha256File(t, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return m
}

// sameTree fails the test unless the regular files under got are exactly
// those under want, byte for byte.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := treeDigest(t, want), treeDigest(t, got)
	if len(w) == 0 {
		t.Fatalf("tree %s is empty: nothing to compare", want)
	}
	var problems []string
	for _, p := range sortedKeys(w) {
		switch h, ok := g[p]; {
		case !ok:
			problems = append(problems, "missing: "+p)
		case h != w[p]:
			problems = append(problems, "content differs: "+p)
		}
	}
	for _, p := range sortedKeys(g) {
		if _, ok := w[p]; !ok {
			problems = append(problems, "unexpected: "+p)
		}
	}
	if len(problems) > 0 {
		t.Fatalf("tree %s differs from %s (%d files wanted, %d found):\n%s", got, want, len(w), len(g), strings.Join(problems, "\n"))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestHelpers checks the comparison helpers the other tests rely on, so
// that a broken helper cannot make every end-to-end test pass vacuously.
func TestHelpers(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	files := nestedTree(7)
	makeTree(t, a, files)
	makeTree(t, b, files)
	if d := treeDigest(t, a); len(d) != len(files) {
		t.Fatalf("treeDigest found %d files, want %d", len(d), len(files))
	}
	tests := []struct {
		name   string
		mutate func(dir string) error
	}{
		{"content changed", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, filepath.FromSlash(files[3].path)), []byte("changed"), 0o644)
		}},
		{"file missing", func(dir string) error { return os.Remove(filepath.Join(dir, filepath.FromSlash(files[0].path))) }},
		{"extra file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "extra"), nil, 0o644) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := t.TempDir()
			makeTree(t, c, files)
			if err := tc.mutate(c); err != nil {
				t.Fatal(err)
			}
			if digestsEqual(treeDigest(t, a), treeDigest(t, c)) {
				t.Fatalf("trees compare equal after %s", tc.name)
			}
		})
	}
	if !digestsEqual(treeDigest(t, a), treeDigest(t, b)) {
		t.Fatal("identical trees compare different")
	}
	var r1, r2 bytes.Buffer
	io.Copy(&r1, pseudoRandom(1, 1000))
	io.Copy(&r2, pseudoRandom(2, 1000))
	if bytes.Equal(r1.Bytes(), r2.Bytes()) {
		t.Fatal("pseudoRandom gives the same bytes for different seeds")
	}
}

func digestsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
