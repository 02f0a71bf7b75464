package s3site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// exactReader yields exactly want bytes of r and fails if r yields another
// count. It checks for surplus bytes before it hands over the last ones,
// so that a provider never receives a complete body from a reader that
// would have yielded more: the request is cut short and stores nothing.
// err records the first error it returned.
type exactReader struct {
	r    io.Reader
	want int64
	n    int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	left := e.want - e.n
	if left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := e.r.Read(p)
	e.n += int64(n)
	switch {
	case err != nil && err != io.EOF:
		e.err = err
		return 0, err
	case e.n == e.want:
		if err == nil {
			if err := e.atEnd(); err != nil {
				return 0, err
			}
		}
		return n, io.EOF
	case err == io.EOF:
		e.err = fmt.Errorf("reader yielded %d bytes, %d declared", e.n, e.want)
		return 0, e.err
	}
	return n, nil
}

// atEnd checks that r has no bytes left.
func (e *exactReader) atEnd() error {
	var b [1]byte
	for range 100 {
		n, err := e.r.Read(b[:])
		if n > 0 {
			e.err = fmt.Errorf("reader yielded more than the %d bytes declared", e.want)
			return e.err
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			e.err = err
			return err
		}
	}
	e.err = io.ErrNoProgress
	return e.err
}

// recordingReader records the first error r returned other than io.EOF.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}
