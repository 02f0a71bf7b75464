package node

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
)

// hostingPair is LUX hosting EST with a quota, both serving their peer
// listeners.
type hostingPair struct {
	est, lux *allyNode
	root     string // EST's store on LUX
	quota    int64
}

func newHostingPair(t *testing.T, quota string) *hostingPair {
	t.Helper()
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	hostDir := mkHostingDir(t)
	changeConfig(t, lux.Node, func(c *Config) {
		c.Alliance.Hosting = &HostingConfig{Path: hostDir, Jurisdiction: "BEL", Provider: "lux-gov-dc", Control: "LUX"}
	})
	trust(t, est, lux)
	trust(t, lux, est)
	if _, err := lux.Host(lux.As(t.Context(), "admin"), HostRequest{Peer: "EST", Quota: quota}); err != nil {
		t.Fatal(err)
	}
	q, _ := ParseBytes(quota)
	return &hostingPair{est: est, lux: lux, root: filepath.Join(hostDir, est.Config.Node.ID), quota: q}
}

// site is EST's driver of its site on LUX.
func (h *hostingPair) site() *hostedSite {
	return h.est.hostedSiteOf(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Peer: h.lux.Config.Node.ID})
}

// accounts returns what LUX counts of EST's store: committed bytes and
// blobs, and bytes reserved for puts in flight.
func (h *hostingPair) accounts(t *testing.T) [3]int64 {
	t.Helper()
	gs, err := h.lux.guestStoreOf(t.Context(), h.est.Config.Node.ID)
	if err != nil {
		t.Fatal(err)
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return [3]int64{gs.bytes, gs.blobs, gs.reserved}
}

// craftedPut sends a hosted/put from EST to LUX as an attacker with EST's
// identity would: a valid signature over a header declaring declared
// bytes, and a body framed by its own Content-Length (-1: chunked).
func (h *hostingPair) craftedPut(t *testing.T, name string, declared, contentLength int64, body []byte) (int, federation.PeerError) {
	t.Helper()
	p, ok := h.est.peer(h.lux.Config.Node.ID)
	if !ok {
		t.Fatal("EST does not trust LUX")
	}
	c, err := h.est.peerClient(p)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := federation.EncodeHostedPut(federation.HostedPut{Name: name, Size: declared})
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := federation.ParseHostedPut(hdr)
	if err != nil {
		t.Fatal(err)
	}
	// A reader of unknown length: the client sends exactly what it yields.
	var r io.Reader = struct{ io.Reader }{bytes.NewReader(body)}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+p.Card.Endpoint+federation.PathPrefix+federation.EndpointHostedPut, r)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	if contentLength < 0 {
		req.TransferEncoding = []string{"chunked"}
	}
	req.Header.Set(federation.HeaderHostedPut, hdr)
	if err := federation.SignRequest(req, signed, h.est.Config.Node.ID, h.lux.Config.Node.ID, h.est.now(), h.est.Keys().SignHybrid); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("hosted/put: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var pe federation.PeerError
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(b, &pe); err != nil {
			t.Fatalf("refusal %d is not a peer error: %s", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, pe
}

// TestHostedPutBodySize: an allied guest with a valid identity sends
// hosted/put requests whose body is not what their signed header
// declares: longer (its Content-Length says so, or chunked), shorter,
// declared empty but not, or past the quota. Each is refused with an
// error naming what was wrong; nothing of it is stored or left half
// written, a blob it would replace is untouched, and the guest's quota
// is not charged (nothing stays reserved, the counts are the store's).
func TestHostedPutBodySize(t *testing.T) {
	h := newHostingPair(t, "64KiB")
	existing := bytes.Repeat([]byte("E"), 1000)
	if err := h.site().Put(t.Context(), "s/aa/existing", bytes.NewReader(existing), int64(len(existing))); err != nil {
		t.Fatal(err)
	}
	free := h.quota - int64(len(existing))
	for _, tc := range []struct {
		name          string
		blob          string
		declared      int64 // in the signed Embassy-Hosted-Put header
		contentLength int64 // -1: chunked
		body          []byte
		status        int
		code          string
		says          string
	}{
		{"longer, its Content-Length says so", "s/aa/long1", 4, 5, []byte("abcde"), 400, federation.CodeSize,
			"the body's Content-Length is 5 bytes, but the Embassy-Hosted-Put header declares a blob of 4: refused, nothing of it was read or stored"},
		{"longer, chunked", "s/aa/long2", 4, -1, []byte("abcde"), 400, federation.CodeSize,
			"the body goes on past the 4 bytes the Embassy-Hosted-Put header declares: refused, nothing of it was stored"},
		{"much longer, chunked, past the quota", "s/aa/long3", 4, -1, make([]byte, h.quota+1), 400, federation.CodeSize,
			"the body goes on past the 4 bytes"},
		{"longer, large declared", "s/aa/long4", 1 << 15, -1, make([]byte, 1<<15+1), 400, federation.CodeSize,
			"the body goes on past the 32768 bytes"},
		{"declared empty, a byte sent", "s/aa/long5", 0, -1, []byte("x"), 400, federation.CodeSize,
			"the body goes on past the 0 bytes"},
		{"a replacement longer than declared", "s/aa/existing", 4, -1, []byte("abcde"), 400, federation.CodeSize,
			"the body goes on past the 4 bytes"},
		{"shorter, its Content-Length says so", "s/aa/short1", 4, 3, []byte("abc"), 400, federation.CodeSize,
			"the body's Content-Length is 3 bytes, but the Embassy-Hosted-Put header declares a blob of 4"},
		{"shorter, chunked", "s/aa/short2", 4, -1, []byte("abc"), 400, federation.CodeSize,
			"the body ended after 3 of the 4 bytes the Embassy-Hosted-Put header declares: refused, nothing of it was stored"},
		{"declared past the quota", "s/aa/quota1", free + 1, -1, []byte("abc"), 507, federation.CodeQuota,
			"over the hosting quota: EST's node " + h.est.Config.Node.ID + " may keep 64 KiB on this node; it holds 1000 B, 0 B more are being written, and this blob needs 64537 B more: refused"},
		{"undeclared, past the quota", "s/aa/quota2", -1, -1, make([]byte, free+1), 507, federation.CodeQuota,
			"over the hosting quota"},
		{"undeclared, its Content-Length past the quota", "s/aa/quota3", -1, free + 1, make([]byte, free+1), 507, federation.CodeQuota,
			"over the hosting quota"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, accounts := storeFiles(t, h.root), h.accounts(t)
			status, pe := h.craftedPut(t, tc.blob, tc.declared, tc.contentLength, tc.body)
			if status != tc.status || pe.Code != tc.code || !strings.Contains(pe.Error, tc.says) {
				t.Errorf("answer %d %q %q, want %d %q saying %q", status, pe.Code, pe.Error, tc.status, tc.code, tc.says)
			}
			after := storeFiles(t, h.root)
			if len(after) != len(files) {
				t.Errorf("the store holds %d files, held %d", len(after), len(files))
			}
			for name, b := range files {
				if !bytes.Equal(after[name], b) {
					t.Errorf("%s changed: %d bytes, was %d", name, len(after[name]), len(b))
				}
			}
			if got := h.accounts(t); got != accounts {
				t.Errorf("LUX's accounts of EST's store (bytes, blobs, reserved): %v, were %v", got, accounts)
			}
		})
	}
	// The accounts are still the store's own, and the store answers.
	u, err := h.site().Usage(t.Context())
	if err != nil || u.Bytes != int64(len(existing)) || u.Blobs != 1 || u.Quota != h.quota {
		t.Errorf("usage after the refusals: %+v %v", u, err)
	}
	// The same request with an honest body is stored and counted: the
	// refusals above are the body's, not the harness's.
	if status, pe := h.craftedPut(t, "s/aa/exact", 5, -1, []byte("abcde")); status != 200 {
		t.Fatalf("an honest chunked put: %d %+v", status, pe)
	}
	if status, pe := h.craftedPut(t, "s/aa/exact2", 5, 5, []byte("abcde")); status != 200 {
		t.Fatalf("an honest put: %d %+v", status, pe)
	}
	if got := h.accounts(t); got != [3]int64{int64(len(existing)) + 10, 3, 0} {
		t.Errorf("accounts after two honest puts: %v", got)
	}
	if b := storeFiles(t, h.root)["s/aa/exact"]; string(b) != "abcde" {
		t.Errorf("the honest blob: %q", b)
	}
}

// TestHostedSitePutHoldsItsSize: the guest's driver never lets a reader
// that is not of its declared size reach the host whole. A reader longer
// than declared used to be cut to the declared size by the transport,
// after the host had stored the declared bytes (and one declared empty
// was sent as an empty body, whatever it held): now the put fails with
// the reason before the last bytes go, and the host keeps nothing of it.
func TestHostedSitePutHoldsItsSize(t *testing.T) {
	h := newHostingPair(t, "4MiB")
	s := h.site()
	// The host learns that a put failed when its connection drops, after
	// the guest's put returned: the test waits for the host to be done.
	done := make(chan string, 16)
	hook := func(guest, name string) {
		if guest == h.est.Config.Node.ID {
			done <- name
		}
	}
	testHookHostedPutDone.Store(&hook)
	t.Cleanup(func() { testHookHostedPutDone.Store(nil) })
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
		says string
	}{
		{"longer, in memory", bytes.NewReader([]byte("abcde")), 4, "it yielded more than the 4 bytes declared"},
		{"longer, a byte at a time", iotest.OneByteReader(strings.NewReader("abcde")), 4, "it yielded more than the 4 bytes declared"},
		{"longer, large", bytes.NewReader(make([]byte, 1<<20+1)), 1 << 20, "it yielded more than the 1048576 bytes declared"},
		{"declared empty", strings.NewReader("x"), 0, "it yielded more than the 0 bytes declared"},
		{"shorter", strings.NewReader("abc"), 4, "it ended after 3 of the 4 bytes declared"},
		{"shorter, large", bytes.NewReader(make([]byte, 1<<20-1)), 1 << 20, "it ended after 1048575 of the 1048576 bytes declared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "s/ab/" + strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			err := s.Put(t.Context(), name, tc.r, tc.size)
			if !errors.Is(err, errPutSize) || !strings.Contains(err.Error(), tc.says) || errors.Is(err, site.ErrUnavailable) {
				t.Fatalf("put of a reader not of its declared %d bytes: %v", tc.size, err)
			}
			if tc.size > 0 {
				// (a put declared empty never reaches the host)
				select {
				case got := <-done:
					if got != name {
						t.Fatalf("the host was done with %s, not %s", got, name)
					}
				case <-time.After(time.Minute):
					t.Fatal("the host's put of it did not end within a minute")
				}
			}
			if got := h.accounts(t); got != [3]int64{} {
				t.Fatalf("LUX's accounts of EST's store (bytes, blobs, reserved): %v", got)
			}
			if _, err := s.Stat(t.Context(), name); !errors.Is(err, site.ErrNotFound) {
				t.Fatalf("the host keeps something of it: %v", err)
			}
			if files := storeFiles(t, h.root); len(files) != 0 {
				t.Fatalf("the host's store holds %d files", len(files))
			}
		})
	}
	// Readers of their declared size go through, whatever their shape.
	for size, r := range map[int64]io.Reader{0: strings.NewReader(""), 4: iotest.OneByteReader(strings.NewReader("abcd")), 1 << 20: bytes.NewReader(make([]byte, 1<<20))} {
		name := "s/ac/exact-" + strconv.FormatInt(size, 10)
		if err := s.Put(t.Context(), name, r, size); err != nil {
			t.Fatalf("put of %d bytes: %v", size, err)
		}
		if i, err := s.Stat(t.Context(), name); err != nil || i.Size != size {
			t.Fatalf("stat after a put of %d bytes: %+v %v", size, i, err)
		}
	}
}

// FuzzQuotaReader: whatever body a guest sends and whatever size it
// declares, the host's reader yields exactly the body when it is of the
// declared size (or, undeclared, within the quota), and otherwise fails
// with the body's or the quota's error, never reading more than one byte
// past a declared size, and reserving no more than it read.
func FuzzQuotaReader(f *testing.F) {
	f.Add(int64(4), []byte("abcd"), uint8(3), int64(100))
	f.Add(int64(4), []byte("abcde"), uint8(1), int64(100))
	f.Add(int64(4), []byte("abc"), uint8(0), int64(100))
	f.Add(int64(-1), []byte("abcdef"), uint8(2), int64(5))
	f.Add(int64(0), []byte("x"), uint8(7), int64(0))
	f.Fuzz(func(t *testing.T, size int64, body []byte, chunk uint8, quota int64) {
		if size < -1 || quota < 0 {
			return
		}
		gs := &guestStore{node: "g", names: map[string]int{}}
		src := &countingReader{r: iotest.HalfReader(bytes.NewReader(body))}
		q := &quotaReader{r: src, gs: gs, size: size, quota: quota, nation: "EST"}
		got, err := io.ReadAll(io.LimitReader(readChunks{q, int(chunk) + 1}, int64(len(body))+2))
		switch {
		case size >= 0 && int64(len(body)) == size:
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("declared %d, sent %d: read %d, %v", size, len(body), len(got), err)
			}
		case size >= 0:
			if !errors.As(err, new(bodySizeError)) || int64(len(got)) > size {
				t.Fatalf("declared %d, sent %d: read %d, %v", size, len(body), len(got), err)
			}
			if src.n > size+1 {
				t.Fatalf("declared %d: read %d bytes of the body", size, src.n)
			}
		case int64(len(body)) <= quota:
			if err != nil || !bytes.Equal(got, body) || gs.reserved != int64(len(body)) {
				t.Fatalf("undeclared, %d within %d: read %d, reserved %d, %v", len(body), quota, len(got), gs.reserved, err)
			}
		default:
			if !errors.Is(err, errQuota) || gs.reserved > quota {
				t.Fatalf("undeclared, %d past %d: read %d, reserved %d, %v", len(body), quota, len(got), gs.reserved, err)
			}
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

// readChunks reads at most n bytes at a time.
type readChunks struct {
	r io.Reader
	n int
}

func (c readChunks) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestHostedPutBytesPastContentLength: the attacker's bytes past the
// Content-Length on the wire (HTTP/1.1, raw TLS with EST's identity) are
// not the body: the host stores exactly the declared and framed bytes,
// counts them, and takes what follows for the connection's next request,
// which it refuses as malformed, storing nothing of it.
func TestHostedPutBytesPastContentLength(t *testing.T) {
	h := newHostingPair(t, "64KiB")
	p, _ := h.est.peer(h.lux.Config.Node.ID)
	c, err := h.est.peerClient(p)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", p.Card.Endpoint, c.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hdr, _ := federation.EncodeHostedPut(federation.HostedPut{Name: "s/aa/framed", Size: 4})
	signed, _, _ := federation.ParseHostedPut(hdr)
	req, _ := http.NewRequest(http.MethodPost, "https://"+p.Card.Endpoint+federation.PathPrefix+federation.EndpointHostedPut, strings.NewReader("abcd"))
	req.Header.Set(federation.HeaderHostedPut, hdr)
	if err := federation.SignRequest(req, signed, h.est.Config.Node.ID, h.lux.Config.Node.ID, h.est.now(), h.est.Keys().SignHybrid); err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(wire.Bytes(), []byte("\r\n\r\nabcd")) || !bytes.Contains(wire.Bytes(), []byte("Content-Length: 4\r\n")) {
		t.Fatalf("the request on the wire:\n%s", wire.Bytes())
	}
	wire.WriteString("efgh\r\n\r\n") // past the Content-Length
	if _, err := conn.Write(wire.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the framed put: %d", resp.StatusCode)
	}
	next, err := http.ReadResponse(br, nil)
	if err != nil || next.StatusCode != http.StatusBadRequest {
		t.Fatalf("what followed the body, as a request: %v %v", next, err)
	}
	files := storeFiles(t, h.root)
	if len(files) != 1 || string(files["s/aa/framed"]) != "abcd" {
		t.Fatalf("the store holds %q", files)
	}
	if got := h.accounts(t); got != [3]int64{4, 1, 0} {
		t.Fatalf("LUX's accounts of EST's store (bytes, blobs, reserved): %v", got)
	}
}
