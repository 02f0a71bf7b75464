package taxii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one collection of another TAXII 2.1 server: it gets
// objects page by page and adds envelopes, retrying what a server or the
// network may refuse for a moment (429, 502, 503, 504, a dropped
// connection) with exponential backoff.
type Client struct {
	// URL is the collection's URL, ending with '/':
	// https://HOST/taxii2/ROOT/collections/ID/.
	URL            string
	User, Password string
	HTTP           *http.Client
	// Attempts bounds the tries of one request (default 5); Backoff is
	// the first wait between them (default 500ms), doubled each time, at
	// most MaxBackoff (default 30s) or what Retry-After asks.
	Attempts            int
	Backoff, MaxBackoff time.Duration
	// MaxResponse bounds the body of one response (default 64 MiB).
	MaxResponse int64
}

// RemoteError is an error answered by the remote server.
type RemoteError struct {
	Status      int
	Title       string
	Description string
}

func (e *RemoteError) Error() string {
	s := fmt.Sprintf("TAXII server answered %d", e.Status)
	if e.Title != "" {
		s += " " + e.Title
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Page is one page of Get Objects from a remote collection.
type Page struct {
	Envelope
	// AddedFirst and AddedLast are the X-TAXII-Date-Added-First/Last
	// headers (zero if the server sent none).
	AddedFirst, AddedLast time.Time
}

func (c *Client) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return 5
}

func (c *Client) backoff(i int, retryAfter string) time.Duration {
	if s, err := strconv.Atoi(retryAfter); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 5*time.Minute)
	}
	b, mx := c.Backoff, c.MaxBackoff
	if b <= 0 {
		b = 500 * time.Millisecond
	}
	if mx <= 0 {
		mx = 30 * time.Second
	}
	for range i {
		b *= 2
		if b >= mx {
			return mx
		}
	}
	return b
}

// apiRoot returns the URL of the collection's API root.
func (c *Client) apiRoot() (string, error) {
	u := strings.TrimSuffix(c.URL, "/")
	i := strings.LastIndex(u, "/collections/")
	if i < 0 {
		return "", fmt.Errorf("%q is not a TAXII collection URL (…/collections/ID/)", c.URL)
	}
	return u[:i+1], nil
}

// do sends one request, retrying transient failures, and decodes a 2xx
// JSON answer into out.
func (c *Client) do(ctx context.Context, method, rawURL string, body []byte, out any) (http.Header, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	limit := c.MaxResponse
	if limit <= 0 {
		limit = 64 << 20
	}
	var last error
	for i := range c.attempts() {
		if i > 0 {
			wait := c.backoff(i-1, "")
			if re, ok := errors.AsType[*retryable](last); ok {
				wait = c.backoff(i-1, re.retryAfter)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", MediaTAXII)
		if body != nil {
			req.Header.Set("Content-Type", MediaTAXII)
		}
		if c.User != "" {
			req.SetBasicAuth(c.User, c.Password)
		}
		res, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = &retryable{err: err}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
		res.Body.Close()
		if err != nil {
			last = &retryable{err: err}
			continue
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("%s %s: the answer is larger than %d bytes", method, rawURL, limit)
		}
		if res.StatusCode/100 != 2 {
			re := &RemoteError{Status: res.StatusCode}
			var m struct {
				Title       string `json:"title"`
				Description string `json:"description"`
			}
			if json.Unmarshal(b, &m) == nil {
				re.Title, re.Description = m.Title, m.Description
			}
			switch res.StatusCode {
			case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				last = &retryable{err: re, retryAfter: res.Header.Get("Retry-After")}
				continue
			}
			return res.Header, re
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return nil, fmt.Errorf("%s %s: the answer is not TAXII JSON: %v", method, rawURL, err)
			}
		}
		return res.Header, nil
	}
	if re, ok := errors.AsType[*retryable](last); ok {
		last = re.err
	}
	return nil, fmt.Errorf("%s %s: %d attempts: %w", method, rawURL, c.attempts(), last)
}

// retryable is a failure worth another try.
type retryable struct {
	err        error
	retryAfter string
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// GetObjects gets one page of objects added after addedAfter (if not
// zero), continuing a listing with next (if not empty).
func (c *Client) GetObjects(ctx context.Context, addedAfter time.Time, next string, limit int) (Page, error) {
	q := url.Values{}
	if !addedAfter.IsZero() {
		q.Set("added_after", FormatTime(addedAfter))
	}
	if next != "" {
		q.Set("next", next)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	u := c.URL + "objects/"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var p Page
	var raw json.RawMessage
	h, err := c.do(ctx, http.MethodGet, u, nil, &raw)
	if err != nil {
		return p, err
	}
	env, err := ParseEnvelope(raw, maxEnvelopeObjects)
	if err != nil {
		return p, fmt.Errorf("GET %s: %w", u, err)
	}
	p.Envelope = *env
	if t, err := ParseTimestamp(h.Get("X-TAXII-Date-Added-First")); err == nil {
		p.AddedFirst = t
	}
	if t, err := ParseTimestamp(h.Get("X-TAXII-Date-Added-Last")); err == nil {
		p.AddedLast = t
	}
	return p, nil
}

// AddObjects posts an envelope and waits, polling the status resource,
// until the server has finished with it (or wait runs out: the status is
// then returned as it was last seen, pending).
func (c *Client) AddObjects(ctx context.Context, objects []json.RawMessage, wait time.Duration) (*Status, error) {
	body, err := json.Marshal(Envelope{Objects: objects})
	if err != nil {
		return nil, err
	}
	var st Status
	if _, err := c.do(ctx, http.MethodPost, c.URL+"objects/", body, &st); err != nil {
		return nil, err
	}
	root, err := c.apiRoot()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	poll := 200 * time.Millisecond
	for st.Status != "complete" && time.Now().Before(deadline) {
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return &st, ctx.Err()
		case <-t.C:
		}
		poll = min(poll*2, 5*time.Second)
		if _, err := c.do(ctx, http.MethodGet, root+"status/"+url.PathEscape(st.ID)+"/", nil, &st); err != nil {
			return &st, err
		}
	}
	return &st, nil
}
