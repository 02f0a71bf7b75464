package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/vault"
)

// serveDev serves a development node on 127.0.0.1 with limits, and returns
// its address and credential.
func serveDev(t *testing.T, limits httpguard.Limits) (string, s3.Credential, *Node) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := InitDev(dir, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.AddVault(VaultConfig{Name: "bulk", Erasure: "4+2"}); err != nil {
		t.Fatal(err)
	}
	cred := s3.Credential{AccessKey: "AKSLOWTEST", SecretKey: "slow-test-secret", Principal: "admin"}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, ServeOptions{Address: "127.0.0.1:0", Credentials: []s3.Credential{cred}, Limits: limits,
			Ready: func(addr string, _ bool) { ready <- addr }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case addr := <-ready:
		return addr, cred, n
	case err := <-done:
		t.Fatal(err)
	}
	return "", cred, nil
}

// trickle opens a connection, sends head, then one byte of body every
// interval, and reports when the server ends the connection (the response
// it sent first, if any).
func trickle(addr, head string, interval time.Duration) (<-chan string, func()) {
	out := make(chan string, 1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		out <- "dial: " + err.Error()
		return out, func() {}
	}
	stop := make(chan struct{})
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		b, _ := io.ReadAll(conn) // until the server closes
		first, _, _ := strings.Cut(string(b), "\r\n")
		out <- "closed: " + first
	}()
	return out, func() { close(stop); conn.Close() }
}

// TestSlowClientsAreCut: connections that trickle a body are dropped —
// unauthenticated ones to the unseal endpoint at once, an authenticated S3
// PUT once it falls below the minimum rate — while a large upload at
// normal speed, under the same limits, completes.
func TestSlowClientsAreCut(t *testing.T) {
	limits := httpguard.Limits{Grace: time.Second, MinRate: 64 << 10, Slack: 2 * time.Second}
	addr, cred, n := serveDev(t, limits)

	// 1. Unauthenticated: 100 connections posting a "share", a byte
	// every 200 ms (the whole body would take over half an hour).
	var conns []<-chan string
	var stops []func()
	for range 100 {
		c, stop := trickle(addr, "POST /_embassy/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{", 200*time.Millisecond)
		conns, stops = append(conns, c), append(stops, stop)
	}
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	deadline := time.After(30 * time.Second)
	for i, c := range conns {
		select {
		case got := <-c:
			if !strings.HasPrefix(got, "closed: HTTP/1.1 401") && got != "closed: " {
				t.Errorf("connection %d: %s", i, got)
			}
		case <-deadline:
			t.Fatalf("connection %d to /_embassy/unseal still open after 30 s", i)
		}
	}

	// 2. Authenticated, but trickling: a signed PUT (its payload
	// unsigned, so the body is not hashed) sending a byte every 100 ms.
	req, _ := http.NewRequest("PUT", "http://"+addr+"/bulk/trickled", nil)
	req.ContentLength = 1 << 20
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred.AccessKey, SecretAccessKey: cred.SecretKey}, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	var head strings.Builder
	fmt.Fprintf(&head, "PUT /bulk/trickled HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", addr, req.ContentLength)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("\r\n")
	start := time.Now()
	c, stop := trickle(addr, head.String(), 100*time.Millisecond)
	defer stop()
	select {
	case got := <-c:
		t.Logf("the trickled PUT ended after %v: %s", time.Since(start).Round(100*time.Millisecond), got)
	case <-time.After(30 * time.Second):
		t.Fatal("a PUT trickling a byte every 100 ms is still open after 30 s")
	}
	if _, err := n.Engine.Stat(vault.AsSystem(t.Context()), "bulk", "trickled", [16]byte{}); err == nil {
		t.Fatal("the trickled object was stored")
	}

	// 3. A large upload at normal speed, under the same limits.
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	big, _ := http.NewRequest("PUT", "http://"+addr+"/bulk/large", io.LimitReader(zeros{}, size))
	big.ContentLength = size
	big.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred.AccessKey, SecretAccessKey: cred.SecretKey}, big, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(big)
	if err != nil {
		t.Fatalf("large PUT: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("large PUT: %d %s", resp.StatusCode, b)
	}
	info, err := n.Engine.Stat(vault.AsSystem(t.Context()), "bulk", "large", [16]byte{})
	if err != nil || info.Size != size {
		t.Fatalf("the large object: %+v, %v", info, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestUnauthenticatedCap: requests that have not authenticated are capped;
// the one past the cap is answered 503 at once, and authenticated ones are
// not counted.
func TestUnauthenticatedCap(t *testing.T) {
	release := make(chan struct{})
	var entered, authed sync.WaitGroup
	h := httpguard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth" {
			httpguard.Authenticated(r.Context())
			authed.Done()
		} else {
			entered.Done()
		}
		<-release
	}), httpguard.Limits{MaxUnauthenticated: 3})
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	get := func(path string) <-chan int {
		c := make(chan int, 1)
		go func() {
			resp, err := http.Get("http://" + ln.Addr().String() + path)
			if err != nil {
				c <- 0
				return
			}
			resp.Body.Close()
			c <- resp.StatusCode
		}()
		return c
	}
	// Authenticated requests hold no slot.
	var auth []<-chan int
	authed.Add(5)
	for range 5 {
		auth = append(auth, get("/auth"))
	}
	authed.Wait()
	entered.Add(3)
	var held []<-chan int
	for range 3 {
		held = append(held, get("/anon"))
	}
	entered.Wait()
	if code := <-get("/anon"); code != http.StatusServiceUnavailable {
		t.Fatalf("the request past the cap: %d, want 503", code)
	}
	close(release)
	for _, c := range append(held, auth...) {
		if code := <-c; code != 200 {
			t.Errorf("a request within the cap: %d", code)
		}
	}
}
