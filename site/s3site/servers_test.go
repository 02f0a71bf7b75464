package s3site_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site/s3site"
)

// The credential every test server accepts.
const (
	testAccess = "EMBASSYSITETEST"
	testSecret = "s3site-test-secret-0123456789"
)

// versitygwBin is the versitygw binary, or "" when none was found.
var versitygwBin string

const versitygwHint = "build it with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`; CI does"

func TestMain(m *testing.M) {
	versitygwBin = os.Getenv("EMBASSY_VERSITYGW")
	if versitygwBin == "" {
		versitygwBin, _ = exec.LookPath("versitygw")
	}
	if versitygwBin == "" && os.Getenv("CI") == "" {
		fmt.Fprintf(os.Stderr, "\n*** SKIPPING versitygw tests: %s (or set EMBASSY_VERSITYGW) ***\n\n", versitygwHint)
	}
	os.Exit(m.Run())
}

// server is an S3 server the tests run against.
type server struct {
	name     string
	endpoint string // host:port
	secure   bool
	caFile   string
}

// config returns a site configuration for a fresh bucket on srv.
func (srv *server) config(prefix string) s3site.Config {
	return s3site.Config{
		Endpoint:     srv.endpoint,
		Bucket:       freshBucket(),
		Prefix:       prefix,
		AccessKey:    testAccess,
		SecretKey:    testSecret,
		Secure:       srv.secure,
		CAFile:       srv.caFile,
		CreateBucket: true,
	}
}

var bucketSeq atomic.Int64

func freshBucket() string {
	return fmt.Sprintf("site-%d-%d", os.Getpid()%100000, bucketSeq.Add(1))
}

func newSite(t *testing.T, cfg s3site.Config) *s3site.Site {
	t.Helper()
	s, err := s3site.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3site.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// embassyServer runs embassy's own S3 front end in-process, over a fresh
// development node (six directory sites, 4+2 erasure).
func embassyServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	if _, err := node.InitDev(dir, node.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), dir, slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	hs := httptest.NewServer(n.Handler(s3.Credential{AccessKey: testAccess, SecretKey: testSecret, Principal: "admin"}))
	t.Cleanup(hs.Close)
	return &server{name: "embassy", endpoint: strings.TrimPrefix(hs.URL, "http://")}
}

// embassyTLSServer is embassyServer over TLS with a certificate from a
// private CA, whose PEM file it returns in caFile.
func embassyTLSServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	if _, err := node.InitDev(dir, node.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	hs := httptest.NewUnstartedServer(n.Handler(s3.Credential{AccessKey: testAccess, SecretKey: testSecret, Principal: "admin"}))
	// A client that does not trust the CA is tested on purpose.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &server{name: "embassy-tls", endpoint: strings.TrimPrefix(hs.URL, "https://"), secure: true, caFile: ca}
}

// testLog sends the server's error log to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("embassy server: %s", bytes.TrimSpace(p))
	return len(p), nil
}

// versitygw is a versitygw process serving a directory.
type versitygw struct {
	t        *testing.T
	root     string // buckets
	versions string // --versioning-dir
	addr     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *lockedBuffer
}

// versitygwServer starts versitygw (posix backend, versioning enabled so
// that object lock works) on a free port and stops it at cleanup. It
// skips the test, loudly, if no binary was found, and fails it in CI.
func versitygwServer(t *testing.T) (*server, *versitygw) {
	t.Helper()
	if versitygwBin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("versitygw not found on PATH nor in $EMBASSY_VERSITYGW: %s", versitygwHint)
		}
		t.Skipf("SKIPPING versitygw tests: %s", versitygwHint)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	v := &versitygw{t: t, root: t.TempDir(), versions: t.TempDir(), addr: addr}
	v.start()
	t.Cleanup(v.stop)
	return &server{name: "versitygw", endpoint: addr}, v
}

// start runs versitygw and returns once it accepts connections.
func (v *versitygw) start() {
	v.t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd != nil {
		v.t.Fatal("versitygw already running")
	}
	cmd := exec.Command(versitygwBin, "--access", testAccess, "--secret", testSecret, "--port", v.addr, "--quiet",
		"posix", "--versioning-dir", v.versions, v.root)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		v.t.Fatalf("start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	v.cmd, v.done, v.out = cmd, done, out
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", v.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			v.cmd = nil
			v.t.Fatalf("versitygw exited before listening on %s: %v\n%s", v.addr, cmd.ProcessState, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			v.cmd = nil
			v.t.Fatalf("versitygw did not listen on %s within 30s:\n%s", v.addr, out)
		}
	}
}

// stop kills the process (SIGKILL: a crash, not a shutdown) and waits for
// it to exit, which closes its port.
func (v *versitygw) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil {
		return
	}
	v.cmd.Process.Kill()
	<-v.done
	v.cmd = nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
