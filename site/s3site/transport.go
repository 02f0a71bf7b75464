package s3site

import (
	"io"
	"net/http"
	"sync"
)

// Connections after Close. A driver's HTTP transport keeps the connections
// its calls hand back idle, to the provider, until its idle timeout (a
// minute), in a process that goes on. Close closes the idle ones, and Go's
// transport then closes a connection that becomes idle later, until the
// next call starts: a call still running when the driver is closed (a read
// of a blob, a copy of the audit log on a driver a configuration change
// replaced) hands its connection back afterwards, and if another call was
// made on the driver after Close meanwhile, that connection and the other
// call's stayed open for the idle timeout. So the driver counts its calls
// in flight (from the request to the end of the response's body: read to
// its end, or closed) and, once closed, closes the idle connections again
// whenever the last one ends.

// closingTransport is an http.RoundTripper over tr that closes tr's idle
// connections when the last call in flight ends after close.
type closingTransport struct {
	tr       *http.Transport
	mu       sync.Mutex
	inflight int
	closed   bool
}

func (c *closingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	resp, err := c.tr.RoundTrip(req)
	if err != nil || resp.Body == nil {
		c.end()
		return resp, err
	}
	resp.Body = &endingBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

// end ends a call in flight.
func (c *closingTransport) end() {
	c.mu.Lock()
	c.inflight--
	last := c.closed && c.inflight == 0
	c.mu.Unlock()
	if last {
		c.tr.CloseIdleConnections()
	}
}

// close closes the idle connections, now and whenever the last call in
// flight ends from now on. Calls made after it still work.
func (c *closingTransport) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.tr.CloseIdleConnections()
}

// endingBody is a response body that ends its call in flight when it is
// read to its end or closed, whichever comes first.
type endingBody struct {
	io.ReadCloser
	c    *closingTransport
	once sync.Once
}

func (b *endingBody) end() { b.once.Do(b.c.end) }

func (b *endingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *endingBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}
