package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
)

// The peer link: a listener of its own (alliance.listen) speaking mutual
// TLS 1.3, where both ends present a self-signed certificate of their
// peer TLS key and check the other's against the pin on its card. A node
// whose key no trusted card pins is refused during the handshake, before
// any request is read. Inside, every request is signed by the calling
// node's identity (package federation), so a request is bound to the node
// that made it, to its target, its time and a nonce used once.

// ErrUnknownPeer: the other end's TLS key is pinned by no trusted card.
var ErrUnknownPeer = errors.New("unknown node: no trusted peer card pins its TLS key")

// ErrCertificateRefused: the peer refused this node's TLS certificate: it
// has no card of this node (peer add), or one pinning another TLS key.
var ErrCertificateRefused = errors.New("the peer refused this node's certificate")

// refusedCertificate names what a failed call to peer id most likely
// was. With TLS 1.3 the client's handshake ends before the server has
// checked the client's certificate: a server that refuses it sends an
// alert (read as "remote error: tls: bad certificate") and closes, and a
// request written after the close breaks (EPIPE, ECONNRESET, EOF) without
// the alert ever being read. Either, on a connection whose handshake this
// very call made and that brought no answer, is the refusal. Any other
// failure is returned as it is.
func refusedCertificate(err error, id string, shook, answered bool) error {
	const why = "it does not trust this node: it has no card of this node ('embassy peer card' here, 'embassy peer add' there), or one pinning another TLS key"
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && strings.Contains(oe.Err.Error(), "certificate") {
		return fmt.Errorf("%w (TLS alert: %v): %s: %w", ErrCertificateRefused, oe.Err, why, err)
	}
	if shook && !answered && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return fmt.Errorf("%w: node %s closed the connection right after the TLS handshake, before any answer: %s: %w", ErrCertificateRefused, id, why, err)
	}
	return err
}

func spkiPin(raw [][]byte) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("no certificate presented")
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "", fmt.Errorf("certificate: %w", err)
	}
	return custody.SPKIPin(c.RawSubjectPublicKeyInfo), nil
}

// peerServerTLS is the peer listener's TLS configuration.
func (n *Node) peerServerTLS() (*tls.Config, error) {
	k, err := n.peerKeys()
	if err != nil {
		return nil, err
	}
	cert, err := k.TLSCertificate(n.conf().Node.ID, time.Now())
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pin, err := spkiPin(raw)
			if err != nil {
				return err
			}
			if _, ok := n.peerByPin(pin); !ok {
				if _, ok := n.recoveryOwner(context.Background(), pin); ok {
					return nil // an owner rebuilding itself from its replica here (recover/ endpoints only)
				}
				n.Log.Warn("peer listener: a node no card pins was refused at the handshake", "pin", pin)
				return fmt.Errorf("%w (%s)", ErrUnknownPeer, pin)
			}
			return nil
		},
	}, nil
}

// peerClient returns the client that reaches peer p, presenting this
// node's certificate and accepting only the key p's card pins.
func (n *Node) peerClient(p Peer) (*http.Client, error) {
	key := p.Card.NodeID + "/" + p.Card.TLSPin
	n.ally.mu.Lock()
	c := n.ally.clients[key]
	n.ally.mu.Unlock()
	if c != nil {
		return c, nil
	}
	k, err := n.peerKeys()
	if err != nil {
		return nil, err
	}
	cert, err := k.TLSCertificate(n.conf().Node.ID, time.Now())
	if err != nil {
		return nil, err
	}
	want := p.Card.TLSPin
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The server's certificate is self-signed: it is checked against
		// the card's pin below, not against a CA.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pin, err := spkiPin(raw)
			if err != nil {
				return err
			}
			if pin != want {
				return fmt.Errorf("%w: node %s at %s presented TLS key %s, its card pins %s", ErrUnknownPeer, p.Card.NodeID, p.Card.Endpoint, pin, want)
			}
			return nil
		},
	}
	c = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute, TLSHandshakeTimeout: 10 * time.Second}}
	n.ally.mu.Lock()
	if n.ally.clients == nil {
		n.ally.clients = map[string]*http.Client{}
	}
	n.ally.clients[key] = c
	n.ally.mu.Unlock()
	return c, nil
}

// peerDo sends req to peer id with c; a refusal of this node's
// certificate is named as such (refusedCertificate), which whether this
// call made a TLS handshake and got an answer tells from a broken
// connection.
func peerDo(c *http.Client, req *http.Request, id string) (*http.Response, error) {
	var shook, answered atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		TLSHandshakeDone:     func(_ tls.ConnectionState, err error) { shook.Store(err == nil) },
		GotFirstResponseByte: func() { answered.Store(true) },
	}))
	resp, err := c.Do(req)
	if err != nil {
		return nil, refusedCertificate(err, id, shook.Load(), answered.Load())
	}
	return resp, nil
}

// PeerError is a peer's refusal.
type PeerError struct {
	Peer   string
	Status int
	Code   string
	Msg    string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("peer %s: %s (%d %s)", e.Peer, e.Msg, e.Status, e.Code)
}

// peerText is a peer's text (a refusal that is not the protocol's JSON: a
// proxy's error page, or anything a peer cares to send; or the JSON's
// error) made fit for the node's errors and logs: its first maxPeerText
// bytes, trimmed, on one line, with what is not printable UTF-8 replaced,
// or only its size when it is not text, so that a peer cannot put a 64 KiB
// body, a forged log line or terminal escapes into them.
func peerText(b []byte) string {
	s := strings.TrimSpace(string(b))
	cut := len(s) > maxPeerText
	if cut {
		s = s[:maxPeerText]
	}
	bad := 0
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' ' // one line in a log
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			bad++
			return '\uFFFD'
		}
		return r
	}, s)
	switch {
	case bad > len(s)/8:
		return fmt.Sprintf("an answer of %d bytes, not text", len(b))
	case cut:
		return s + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return s
}

// maxPeerText bounds what peerText keeps of a refusal.
const maxPeerText = 200

// peerRefusal is what a peer's refusal (its answer's body b, read up to a
// limit) says: the protocol's error and code when b is its JSON, or b
// itself, each held to what peerText keeps. A peer's JSON is outside input
// as much as any body: its error can carry 64 KiB, newlines (a forged line
// in a log) or terminal escapes (\u001b), and its code as much. A code
// that is not a plain token is dropped (the refusal then counts as any
// other failure, not as the blob missing).
func peerRefusal(b []byte) (msg, code string) {
	var pe federation.PeerError
	err := json.Unmarshal(b, &pe)
	if len(pe.Code) > maxPeerCode || strings.Trim(pe.Code, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
		pe.Code = ""
	}
	if err != nil || pe.Error == "" {
		return peerText(b), pe.Code
	}
	return peerText([]byte(pe.Error)), pe.Code
}

// maxPeerCode bounds a peer's error code (the protocol's are words like
// not_found).
const maxPeerCode = 64

// callPeerRaw sends a signed request to peer id's endpoint and returns the
// answer's body, which the caller closes; a refusal is a *PeerError.
func (n *Node) callPeerRaw(ctx context.Context, id, endpoint string, in any) (io.ReadCloser, error) {
	p, ok := n.peer(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNoSuchPeer, id)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	c, err := n.peerClient(p)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p.Card.Endpoint+federation.PathPrefix+endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := federation.SignRequest(req, body, n.conf().Node.ID, id, n.now(), n.Keys().SignHybrid); err != nil {
		return nil, err
	}
	resp, err := peerDo(c, req, id)
	if err != nil {
		return nil, fmt.Errorf("peer %s at %s: %w", id, p.Card.Endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		msg, code := peerRefusal(b)
		return nil, &PeerError{Peer: id, Status: resp.StatusCode, Code: code, Msg: msg}
	}
	return resp.Body, nil
}

// CallPeer sends a signed request to peer id's endpoint (under /peer/v1/)
// and decodes its JSON answer into out (parse, if set, decodes instead).
func (n *Node) CallPeer(ctx context.Context, id, endpoint string, in, out any) error {
	rc, err := n.callPeerRaw(ctx, id, endpoint, in)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, federation.MaxAnswer+1))
	if err != nil {
		return fmt.Errorf("peer %s: %w", id, err)
	}
	if len(b) > federation.MaxAnswer {
		return fmt.Errorf("peer %s: answer larger than %d bytes", id, federation.MaxAnswer)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("peer %s: answer: %w", id, err)
	}
	return nil
}

// ServePeers serves the peer protocol on ln, with TLS, until ctx is done.
func (n *Node) ServePeers(ctx context.Context, ln net.Listener) error {
	cfg, err := n.peerServerTLS()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: n.PeerHandler(), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(n.Log.Handler(), slog.LevelWarn)}
	// Once ctx is done, ServePeers returns when the requests under way
	// ended (a witness keeps what it cosigned in the node directory), or
	// after 5 s.
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err = srv.Serve(tls.NewListener(ln, cfg))
	if errors.Is(err, http.ErrServerClosed) {
		<-shut
		return nil
	}
	return err
}
