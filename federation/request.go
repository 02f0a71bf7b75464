package federation

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/custody"
)

// Every request under /peer/v1/ is a POST with a JSON body, signed by the
// calling node's identity (a hybrid signature) over:
//
//	embassy peer request v1
//	<method>
//	<path>
//	<calling node id>
//	<called node id>
//	<Unix time, seconds>
//	<nonce: 32 hex digits>
//	<hex SHA-256 of the body>
//
// carried in the headers Embassy-Peer-From, Embassy-Peer-Time,
// Embassy-Peer-Nonce and Embassy-Peer-Signature. The called node accepts it
// only from the node whose TLS client certificate it pinned, within
// MaxSkew of its own clock, and once: a nonce seen within the window is a
// replay. The version is the path's: a node answers /peer/v1/ and refuses
// any other version with 404 and a message naming the versions it speaks.

// PathPrefix is the prefix of the peer protocol's current version.
const PathPrefix = "/peer/v1/"

// MaxSkew is how far a request's time may be from the called node's clock.
const MaxSkew = 2 * time.Minute

// MaxBody bounds a peer request's body.
const MaxBody = 64 << 10

// Header names.
const (
	HeaderFrom      = "Embassy-Peer-From"
	HeaderTime      = "Embassy-Peer-Time"
	HeaderNonce     = "Embassy-Peer-Nonce"
	HeaderSignature = "Embassy-Peer-Signature"
)

// ErrRequest: a peer request's authentication failed.
var ErrRequest = errors.New("peer request refused")

// ErrReplay: a peer request was seen before.
var ErrReplay = fmt.Errorf("%w: replayed (its nonce was seen already)", ErrRequest)

// RequestMessage is what a peer request's signature covers.
func RequestMessage(method, path, from, to string, unix int64, nonce string, body []byte) []byte {
	h := sha256.Sum256(body)
	return fmt.Appendf(nil, "embassy peer request v1\n%s\n%s\n%s\n%s\n%d\n%s\n%s\n", method, path, from, to, unix, nonce, hex.EncodeToString(h[:]))
}

// SignRequest sets r's authentication headers: from calls to at now.
func SignRequest(r *http.Request, body []byte, from, to string, now time.Time, sign func([]byte) ([]byte, error)) error {
	var nb [16]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	sig, err := sign(RequestMessage(r.Method, r.URL.Path, from, to, now.Unix(), nonce, body))
	if err != nil {
		return err
	}
	r.Header.Set(HeaderFrom, from)
	r.Header.Set(HeaderTime, strconv.FormatInt(now.Unix(), 10))
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// RequestAuth is a peer request's authentication, as parsed.
type RequestAuth struct {
	From  string
	Time  time.Time
	Nonce string
	Sig   []byte
}

// ParseRequestAuth reads the authentication headers.
func ParseRequestAuth(h http.Header) (RequestAuth, error) {
	from, ts, nonce, sig := h.Get(HeaderFrom), h.Get(HeaderTime), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if from == "" || ts == "" || nonce == "" || sig == "" {
		return RequestAuth{}, fmt.Errorf("%w: unsigned (want headers %s, %s, %s, %s)", ErrRequest, HeaderFrom, HeaderTime, HeaderNonce, HeaderSignature)
	}
	if !validNodeID(from) {
		return RequestAuth{}, fmt.Errorf("%w: %s is not a node id", ErrRequest, HeaderFrom)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 || unix > 1<<40 {
		return RequestAuth{}, fmt.Errorf("%w: %s is not Unix seconds", ErrRequest, HeaderTime)
	}
	if len(nonce) != 32 || strings.Trim(nonce, "0123456789abcdef") != "" {
		return RequestAuth{}, fmt.Errorf("%w: %s is not 32 hex digits", ErrRequest, HeaderNonce)
	}
	s, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(s) != custody.HybridSignatureSize {
		return RequestAuth{}, fmt.Errorf("%w: %s is not a base64 hybrid signature", ErrRequest, HeaderSignature)
	}
	return RequestAuth{From: from, Time: time.Unix(unix, 0), Nonce: nonce, Sig: s}, nil
}

// Verify checks the signature by the caller's identity, the clock skew and
// the nonce (recorded in replay once everything else holds).
func (a RequestAuth) Verify(method, path, self string, caller custody.PublicIdentity, body []byte, now time.Time, replay *ReplayCache) error {
	if d := now.Sub(a.Time); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: its time is %s from this node's clock (at most %s allowed; check both clocks)", ErrRequest, d.Round(time.Second), MaxSkew)
	}
	if err := caller.Verify(RequestMessage(method, path, a.From, self, a.Time.Unix(), a.Nonce, body), a.Sig); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrRequest, err)
	}
	return replay.Check(a.From+"/"+a.Nonce, a.Time, now)
}

// ReplayCache remembers nonces within the skew window.
type ReplayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // nonce -> when it may be forgotten
	Max  int                  // entries at most (default 1<<20): beyond, requests are refused
}

// Check records nonce, seen in a request of time t, refusing one already
// recorded.
func (c *ReplayCache) Check(nonce string, t, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if until, ok := c.seen[nonce]; ok && now.Before(until) {
		return ErrReplay
	}
	max := c.Max
	if max <= 0 {
		max = 1 << 20
	}
	if len(c.seen) >= max {
		for k, until := range c.seen {
			if !now.Before(until) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= max {
			return fmt.Errorf("%w: too many requests within %s", ErrRequest, MaxSkew)
		}
	}
	// A request of time t is accepted until t+MaxSkew: remember it until
	// then (and a little beyond, for clocks moving backwards).
	c.seen[nonce] = t.Add(2 * MaxSkew)
	return nil
}

// DecodeStrict decodes one JSON object of at most MaxBody bytes into v,
// refusing unknown fields and trailing data.
func DecodeStrict(b []byte, v any) error {
	if len(b) > MaxBody {
		return fmt.Errorf("body larger than %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if dec.More() {
		return errors.New("body: trailing data after the JSON object")
	}
	return nil
}
