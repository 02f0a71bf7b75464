package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/vault"
)

// allyNode is a node of nation with a peer listener on loopback, S3 on an
// httptest server, and principals of that nation: "officer" (NATO SECRET),
// "clerk" (NATO RESTRICTED) and "intern" (no clearance).
type allyNode struct {
	*Node
	s3    string // S3 endpoint host:port
	stop  context.CancelFunc
	conns *connCounter // the connections its peer listener accepted
}

func newAllyNode(t *testing.T, nation string) *allyNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), strings.ToLower(nation))
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := newConnCounter()
	ln := countedListener{raw, conns}
	if _, err := Init(dir, InitOptions{Nation: nation, Configure: func(c *Config) {
		c.Principals = append(c.Principals,
			access.Principal{Name: "officer", Nation: nation, Clearances: map[string]string{"NATO": "SECRET"}},
			access.Principal{Name: "clerk", Nation: nation, Clearances: map[string]string{"NATO": "RESTRICTED"}},
			access.Principal{Name: "intern", Nation: nation},
		)
		for _, p := range []string{"officer", "clerk", "intern"} {
			c.S3.Credentials = append(c.S3.Credentials, CredentialConfig{Principal: p, AccessKey: "AK" + strings.ToUpper(p), SecretKey: "secret-of-" + p})
		}
		c.TwoPerson.ShareLevel = "NATO SECRET"
		c.Alliance.Listen = ln.Addr().String()
	}}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for _, s := range validConfig().Sites {
		s.Path = filepath.Join(dir, "..", strings.ToLower(nation)+"-sites", s.ID)
		s.Accredited = "NATO SECRET"
		if err := n.AddSite(s); err != nil {
			t.Fatal(err)
		}
	}
	if nation == "EST" {
		if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.ServePeers(ctx, ln); err != nil {
			t.Errorf("%s peer listener: %v", nation, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	h, err := n.S3Handler()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &allyNode{Node: n, s3: strings.TrimPrefix(hs.URL, "http://"), stop: cancel, conns: conns}
}

// connCounter keeps which of the connections a listener accepted are
// still open, numbered in the order accepted.
type connCounter struct {
	mu       sync.Mutex
	accepted int
	open     map[int]bool
	changed  chan struct{} // closed and replaced at each close
}

func newConnCounter() *connCounter {
	return &connCounter{open: map[int]bool{}, changed: make(chan struct{})}
}

// seen returns how many connections were accepted so far.
func (c *connCounter) seen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted
}

// openSince returns the connections accepted after the first after that
// are still open, and a channel closed at the next close.
func (c *connCounter) openSince(after int) (int, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for seq := range c.open {
		if seq > after {
			n++
		}
	}
	return n, c.changed
}

// waitClosedSince waits until every connection accepted after the first
// after is closed; it fails the test if some is still open after bound
// (a connection left idle stays open to the server's idle timeout, two
// minutes).
func (c *connCounter) waitClosedSince(t *testing.T, after int, bound time.Duration) {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		n, changed := c.openSince(after)
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("%d connections accepted since are still open after %v", n, bound)
		}
	}
}

type countedListener struct {
	net.Listener
	c *connCounter
}

func (l countedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.c.accepted++
	l.c.open[l.c.accepted] = true
	return &countedConn{Conn: conn, c: l.c, seq: l.c.accepted}, nil
}

type countedConn struct {
	net.Conn
	c    *connCounter
	seq  int
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.c.mu.Lock()
		delete(c.c.open, c.seq)
		close(c.c.changed)
		c.c.changed = make(chan struct{})
		c.c.mu.Unlock()
	})
	return c.Conn.Close()
}

func (a *allyNode) client(t *testing.T, principal string) *minio.Client {
	t.Helper()
	c, err := minio.New(a.s3, &minio.Options{Creds: credentials.NewStaticV4("AK"+strings.ToUpper(principal), "secret-of-"+principal, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (a *allyNode) card(t *testing.T) ([]byte, string) {
	t.Helper()
	b, err := a.PeerCard()
	if err != nil {
		t.Fatal(err)
	}
	c, err := federation.ParseCard(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, c.Fingerprint
}

func trust(t *testing.T, a, b *allyNode) {
	t.Helper()
	card, fp := b.card(t)
	if _, err := a.AddPeer(a.As(t.Context(), "admin"), card, fp); err != nil {
		t.Fatal(err)
	}
}

func auditKinds(t *testing.T, n *Node) map[string]int {
	t.Helper()
	out := map[string]int{}
	if err := n.Audit().Events(t.Context(), 0, func(_ uint64, e audit.Event) error {
		out[e.Kind]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func listKeys(t *testing.T, c *minio.Client, bucket string) ([]string, error) {
	t.Helper()
	var keys []string
	for o := range c.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return keys, o.Err
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

// TestAlliance: EST shares registry/2026/ with LUX at level read; LUX's
// principals read it through LUX's own S3 endpoint, and everything the
// issue says must be refused is.
func TestAlliance(t *testing.T) {
	est, lux, fin := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	ctx := context.Background()

	// Know each other: EST and LUX trust each other; FIN trusts EST, which
	// never added FIN's card.
	trust(t, est, lux)
	trust(t, lux, est)
	trust(t, fin, est)

	big := make([]byte, 3<<20+12345) // several stripes, one part
	rand.Read(big)
	objects := []struct {
		key, label string
		body       []byte
	}{
		{"2026/census.bin", "NATO SECRET//REL TO EST, LUX", big},
		{"2026/note.txt", "NATO RESTRICTED//REL TO EST, LUX", []byte("small and inline")},
		{"2026/national.txt", "NATO SECRET//REL TO EST", []byte("for Estonians only")},
		{"2025/old.txt", "NATO RESTRICTED//REL TO EST, LUX", []byte("outside the grant")},
	}
	for _, o := range objects {
		if _, err := est.Engine.Put(est.As(ctx, "officer"), "registry", o.key, bytes.NewReader(o.body), vault.PutOptions{Size: int64(len(o.body)), Label: o.label}); err != nil {
			t.Fatalf("put %s: %v", o.key, err)
		}
	}

	// A grant above two_person.share_level needs custodians this node
	// does not have.
	if _, err := est.Grant(est.As(ctx, "admin"), GrantRequest{Scope: "registry/2026/", To: "LUX", Level: "read", Ceiling: "COSMIC TOP SECRET", Expires: "180d"}); !errors.Is(err, ErrNoCustodians) {
		t.Fatalf("grant above share_level: %v, want ErrNoCustodians", err)
	}
	g, err := est.Grant(est.As(ctx, "admin"), GrantRequest{Scope: "registry/2026/", To: "LUX", Level: "read", Ceiling: "NATO SECRET", Expires: "180d"})
	if err != nil {
		t.Fatal(err)
	}
	if g.State != "active" || g.Grantee != lux.Config.Node.ID {
		t.Fatalf("grant: %+v", g)
	}

	officer := lux.client(t, "officer")
	// Everything LUX's node receives from EST's over the peer link.
	estPeer, _ := lux.peer(est.Config.Node.ID)
	link, err := lux.peerClient(estPeer)
	if err != nil {
		t.Fatal(err)
	}
	wire := &recordingTransport{base: link.Transport}
	link.Transport = wire
	t.Run("read as an ally", func(t *testing.T) {
		buckets, err := officer.ListBuckets(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(buckets, func(b minio.BucketInfo) bool { return b.Name == "est--registry" }) {
			t.Fatalf("LUX's buckets %v lack est--registry", buckets)
		}
		keys, err := listKeys(t, officer, "est--registry")
		if err != nil {
			t.Fatal(err)
		}
		// Not national.txt (not released to LUX), not 2025/ (outside).
		if want := []string{"2026/census.bin", "2026/note.txt"}; !slices.Equal(keys, want) {
			t.Fatalf("listing %v, want %v", keys, want)
		}
		for _, o := range objects[:2] {
			obj, err := officer.GetObject(t.Context(), "est--registry", o.key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			if err != nil {
				t.Fatalf("read %s: %v", o.key, err)
			}
			if !bytes.Equal(got, o.body) {
				t.Fatalf("%s: %d bytes read differ from the %d written", o.key, len(got), len(o.body))
			}
		}
		var opts minio.GetObjectOptions
		opts.SetRange(1<<20-7, 2<<20+9)
		obj, err := officer.GetObject(t.Context(), "est--registry", "2026/census.bin", opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, big[1<<20-7:2<<20+10]) {
			t.Fatalf("ranged read: %d bytes, err %v", len(got), err)
		}
		st, err := officer.StatObject(t.Context(), "est--registry", "2026/note.txt", minio.StatObjectOptions{})
		if err != nil || st.Size != int64(len(objects[1].body)) {
			t.Fatalf("HEAD: %+v %v", st, err)
		}
		// EST sent ciphertext only: no stretch of either object's
		// plaintext crossed the peer link.
		got = wire.received()
		if len(got) < len(big) {
			t.Fatalf("only %d bytes crossed the peer link for a %d-byte object", len(got), len(big))
		}
		for _, off := range []int{0, 1 << 20, 2<<20 + 77, len(big) - 40} {
			if bytes.Contains(got, big[off:off+32]) {
				t.Errorf("plaintext of census.bin at offset %d crossed the peer link", off)
			}
		}
		if bytes.Contains(got, objects[1].body) {
			t.Error("note.txt's plaintext crossed the peer link")
		}
	})

	t.Run("refused", func(t *testing.T) {
		denied := func(what string, err error) {
			t.Helper()
			if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" {
				t.Errorf("%s: %v (%s), want AccessDenied", what, err, code)
			}
		}
		// Not released to LUX, and outside the grant.
		for _, k := range []string{"2026/national.txt", "2025/old.txt"} {
			_, err := officer.StatObject(t.Context(), "est--registry", k, minio.StatObjectOptions{})
			if err == nil {
				t.Errorf("%s: read as LUX", k)
			}
		}
		// Without clearance.
		_, err := lux.client(t, "clerk").StatObject(t.Context(), "est--registry", "2026/census.bin", minio.StatObjectOptions{})
		denied("clerk (NATO RESTRICTED) reads NATO SECRET", err)
		_, err = lux.client(t, "intern").StatObject(t.Context(), "est--registry", "2026/note.txt", minio.StatObjectOptions{})
		denied("intern (no clearance)", err)
		if keys, _ := listKeys(t, lux.client(t, "clerk"), "est--registry"); !slices.Equal(keys, []string{"2026/note.txt"}) {
			t.Errorf("clerk lists %v, want only note.txt", keys)
		}
		// Read-only.
		_, err = officer.PutObject(t.Context(), "est--registry", "2026/new", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
		denied("PUT into est--registry", err)
		denied("DELETE in est--registry", officer.RemoveObject(t.Context(), "est--registry", "2026/note.txt", minio.RemoveObjectOptions{}))
		if err := lux.AddVault(VaultConfig{Name: "est--registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("vault create est--registry: %v", err)
		}
		// FIN has no grant, and EST does not trust it: refused at TLS.
		if buckets, err := fin.client(t, "officer").ListBuckets(t.Context()); err != nil || len(buckets) != 0 {
			t.Errorf("FIN sees %v (%v)", buckets, err)
		}
		var resp federation.GrantsResponse
		// With TLS 1.3 the client's handshake ends before EST has checked
		// its certificate: the refusal reaches FIN as EST's alert, or,
		// when EST has closed the connection before FIN's request is
		// written, as a broken connection. Either way FIN says what it
		// is (TestPeerRefusedCertificate).
		err = fin.CallPeer(t.Context(), est.Config.Node.ID, federation.EndpointGrants, struct{}{}, &resp)
		if !errors.Is(err, ErrCertificateRefused) || !strings.Contains(err.Error(), "the peer refused this node's certificate") {
			t.Errorf("FIN calls EST: %v, want a TLS refusal", err)
		}
	})

	t.Run("cards", func(t *testing.T) {
		card, fp := fin.card(t)
		forged := bytes.Replace(card, []byte("nation FIN"), []byte("nation LUX"), 1)
		if _, err := est.AddPeer(est.As(ctx, "admin"), forged, fp); !errors.Is(err, federation.ErrCard) {
			t.Errorf("forged card: %v, want ErrCard", err)
		}
		_, luxFP := lux.card(t)
		if _, err := est.AddPeer(est.As(ctx, "admin"), card, luxFP); !errors.Is(err, ErrFingerprint) {
			t.Errorf("unconfirmed fingerprint: %v, want ErrFingerprint", err)
		}
		// A node whose card was never added (or whose fingerprint was not
		// confirmed) is refused during the handshake, before any request.
		key := ed25519.NewKeyFromSeed(make([]byte, 32))
		tmpl := &x509.Certificate{SerialNumber: big1(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		conn, err := tls.Dial("tcp", est.Config.Alliance.Listen, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
		if err == nil {
			// TLS 1.3: the client learns of the refusal on its first read.
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("unknown node's handshake: %v, want bad certificate", err)
		}
	})

	t.Run("replay", func(t *testing.T) {
		p, _ := lux.peer(est.Config.Node.ID)
		c, err := lux.peerClient(p)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{}`)
		req, _ := http.NewRequest(http.MethodPost, "https://"+p.Card.Endpoint+federation.PathPrefix+federation.EndpointGrants, bytes.NewReader(body))
		if err := federation.SignRequest(req, body, lux.Config.Node.ID, est.Config.Node.ID, time.Now(), lux.Keys().SignHybrid); err != nil {
			t.Fatal(err)
		}
		send := func() (int, string) {
			r := req.Clone(t.Context())
			r.Body = io.NopCloser(bytes.NewReader(body))
			resp, err := c.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, msg := send(); code != http.StatusOK {
			t.Fatalf("first: %d %s", code, msg)
		}
		if code, msg := send(); code != http.StatusUnauthorized || !strings.Contains(msg, "replayed") {
			t.Errorf("replayed: %d %s, want 401 replayed", code, msg)
		}
		// A request for another version of the protocol is refused.
		req2, _ := http.NewRequest(http.MethodPost, "https://"+p.Card.Endpoint+"/peer/v2/grants", bytes.NewReader(body))
		federation.SignRequest(req2, body, lux.Config.Node.ID, est.Config.Node.ID, time.Now(), lux.Keys().SignHybrid)
		resp, err := c.Do(req2)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/peer/v2/: %d, want 404", resp.StatusCode)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		if err := est.RevokeGrant(est.As(ctx, "admin"), g.ID); err != nil {
			t.Fatal(err)
		}
		_, err := listKeys(t, officer, "est--registry")
		if code := minio.ToErrorResponse(err).Code; code != "NoSuchBucket" {
			t.Errorf("after revocation: %v (%s), want NoSuchBucket", err, code)
		}
		// Asked directly, the owner refuses the grant.
		err = lux.CallPeer(t.Context(), est.Config.Node.ID, federation.EndpointList, federation.ListRequest{Grant: g.ID,
			Principal: federation.Principal{Name: "officer", Nation: "LUX", Clearances: map[string]string{"NATO": "SECRET"}}}, nil)
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Code != "grant_ended" {
			t.Errorf("list under a revoked grant: %v, want grant_ended", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		g2, err := est.Grant(est.As(ctx, "admin"), GrantRequest{Scope: "registry/2026/", To: "LUX", Level: "read", Ceiling: "NATO SECRET", Expires: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := officer.StatObject(t.Context(), "est--registry", "2026/note.txt", minio.StatObjectOptions{}); err != nil {
			t.Fatalf("under the new grant: %v", err)
		}
		// An hour and a minute later on both nodes' clocks.
		later := func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
		for _, n := range []*allyNode{est, lux} {
			n.ally.mu.Lock()
			n.ally.clock = later
			n.ally.mu.Unlock()
		}
		_, err = listKeys(t, officer, "est--registry")
		if code := minio.ToErrorResponse(err).Code; code != "NoSuchBucket" {
			t.Errorf("after expiry: %v (%s), want NoSuchBucket", err, code)
		}
		err = lux.CallPeer(t.Context(), est.Config.Node.ID, federation.EndpointList, federation.ListRequest{Grant: g2.ID,
			Principal: federation.Principal{Name: "officer", Nation: "LUX", Clearances: map[string]string{"NATO": "SECRET"}}}, nil)
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Code != "grant_ended" {
			t.Errorf("list under an expired grant: %v, want grant_ended", err)
		}
		if gs := est.Grants(); len(gs) != 2 || gs[0].State != "revoked" || gs[1].State != "expired" {
			t.Errorf("grants: %+v", gs)
		}
	})

	t.Run("audit", func(t *testing.T) {
		ek, lk := auditKinds(t, est.Node), auditKinds(t, lux.Node)
		for _, k := range []string{KindPeerAdd, KindShareGrant, KindShareRead, KindShareRevoke} {
			if ek[k] == 0 {
				t.Errorf("EST's log has no %s (%v)", k, ek)
			}
		}
		for _, k := range []string{KindPeerAdd, KindShareReceived, KindShareRead, KindShareEnded} {
			if lk[k] == 0 {
				t.Errorf("LUX's log has no %s (%v)", k, lk)
			}
		}
	})
}

// recordingTransport keeps every response body that passes through it.
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	rt.mu.Lock()
	rt.buf.Write(b)
	rt.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, err
}

func (rt *recordingTransport) received() []byte {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return bytes.Clone(rt.buf.Bytes())
}

var serialMu sync.Mutex

func big1() *big.Int {
	serialMu.Lock()
	defer serialMu.Unlock()
	return big.NewInt(1)
}
