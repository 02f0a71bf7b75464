package s3site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/embassy-dev/embassy/site"
)

// unavailableCodes are S3 error codes that mean the provider refuses
// service to this site as configured: the credential, the region or the
// provider itself is the problem, not the request.
var unavailableCodes = map[string]bool{
	"AccessDenied":                 true,
	"AccountProblem":               true,
	"AllAccessDisabled":            true,
	"AuthorizationHeaderMalformed": true,
	"ExpiredToken":                 true,
	"InvalidAccessKeyId":           true,
	"InvalidToken":                 true,
	"PermanentRedirect":            true,
	"TemporaryRedirect":            true,
	"RequestTimeTooSkewed":         true,
	"SignatureDoesNotMatch":        true,
	"SlowDown":                     true,
	"RequestTimeout":               true,
	"ServiceUnavailable":           true,
	"InternalError":                true,
	"XMinioServerNotInitialized":   true,
}

// fail wraps err from operation what (e.g. "get a/b") with the site and
// the sentinel the caller acts on: site.ErrNotFound for a missing blob,
// site.ErrUnavailable for a provider that cannot be reached or refuses
// service (a missing bucket included).
func (s *Site) fail(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about the site.
		return fmt.Errorf("s3 site %s: %s: %w", s.where, what, err)
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		detail := fmt.Sprintf("HTTP %d", er.StatusCode)
		if er.RequestID != "" {
			detail += ", request " + er.RequestID
		}
		switch {
		case er.Code == "NoSuchKey" || er.Code == "NoSuchVersion":
			return fmt.Errorf("s3 site %s: %s: %w", s.where, what, site.ErrNotFound)
		case er.StatusCode == http.StatusInsufficientStorage || fullCodes[er.Code]:
			return fmt.Errorf("s3 site %s: %s: %s: %w (%s): %w", s.where, what, er.Code, er, detail, site.ErrFull)
		case er.Code == "NoSuchBucket":
			return fmt.Errorf("s3 site %s: %s: bucket %s does not exist (%s): %w", s.where, what, s.cfg.Bucket, detail, site.ErrUnavailable)
		case er.StatusCode >= 500 || er.StatusCode == http.StatusMovedPermanently || unavailableCodes[er.Code]:
			return fmt.Errorf("s3 site %s: %s: %s: %w (%s): %w", s.where, what, er.Code, er, detail, site.ErrUnavailable)
		}
		return fmt.Errorf("s3 site %s: %s: %s: %w (%s)", s.where, what, er.Code, er, detail)
	}
	if isNetwork(err) {
		return fmt.Errorf("s3 site %s: %s: %w: %w", s.where, what, err, site.ErrUnavailable)
	}
	return fmt.Errorf("s3 site %s: %s: %w", s.where, what, err)
}

// fullCodes are the error codes with which S3 providers say they have no
// space left for a write (MinIO's XMinioStorageFull comes with 507).
var fullCodes = map[string]bool{"XMinioStorageFull": true, "XEmbassyStorageFull": true, "QuotaExceeded": true}

// isNetwork reports whether err is a failure to reach the provider or a
// connection lost mid-request.
func isNetwork(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// errPutReturned is what an uploader still reading a put's body after Put
// has returned gets (net/http may go on reading a request body after the
// response; golang.org/issue/7569).
var errPutReturned = errors.New("s3 site: put already returned")

// putBody is a put's body as minio-go reads it. With want >= 0 it yields
// exactly want bytes of r and fails if r yields another count: it checks
// for surplus bytes before it hands over the last ones, so a provider
// never receives a complete body from a reader that would have yielded
// more; the request is cut short and stores nothing. It records the first
// error it returned, and once Put has returned (finish) it no longer
// touches r.
type putBody struct {
	r    io.Reader
	want int64 // -1: unknown
	n    int64 // yielded so far; touched by one reader at a time

	mu   sync.Mutex
	err  error
	done bool
}

func (b *putBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	err, done := b.err, b.done
	b.mu.Unlock()
	if done {
		return 0, errPutReturned
	}
	if err != nil {
		return 0, err
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *putBody) read(p []byte) (int, error) {
	if b.want < 0 {
		return b.r.Read(p)
	}
	left := b.want - b.n
	if left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case err != nil && err != io.EOF:
		return 0, err
	case b.n == b.want:
		if err == nil {
			if err := b.atEnd(); err != nil {
				return 0, err
			}
		}
		return n, io.EOF
	case err == io.EOF:
		return 0, fmt.Errorf("reader yielded %d bytes, %d declared", b.n, b.want)
	}
	return n, nil
}

// atEnd checks that r has no bytes left.
func (b *putBody) atEnd() error {
	var one [1]byte
	for range 100 {
		n, err := b.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("reader yielded more than the %d bytes declared", b.want)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// finish marks the put as returned and returns the first error the body
// returned, if any.
func (b *putBody) finish() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	return b.err
}
