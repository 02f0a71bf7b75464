// Package s3site is the site driver for a bucket at any S3-compatible
// provider (AWS, MinIO, Ceph RGW, versitygw, another embassy node, ...),
// through github.com/minio/minio-go.
//
// Blob n is the object Prefix/n of the configured bucket. S3 itself gives
// the contract of site.Site: a PUT is atomic (readers see the old object or
// the whole new one) and durable when the provider answers 200. A put whose
// reader fails, or yields a byte count other than the size it declared,
// never completes: the single PUT is cut short before its last byte, or the
// multipart upload is aborted, so the provider stores nothing.
//
// Memory is bounded: a put of known size up to [PartSize] streams; a
// larger one, or one of unknown size, buffers one part at a time; with
// object lock every put buffers up to one part to compute its Content-MD5,
// which S3 requires with a retention. Note that net/http may still be
// reading a put's body when the provider has already answered: Put stops
// passing reads to the caller's reader once it returns, but one read may
// be in flight at that moment.
//
// Errors: a missing blob wraps site.ErrNotFound. A provider that cannot be
// reached, answers with a server error, refuses the credential, or has
// lost the bucket wraps site.ErrUnavailable: a vanished bucket must never
// look like an empty one.
//
// With [Config.ObjectLock] set every blob is written with an object-lock
// retention, and Delete removes every version of a blob, oldest first,
// stopping with an error wrapping [ErrRetained] at the first version still
// retained (so the newest version stays readable, never an older one).
package s3site

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/site"
)

// PartSize is the part size of multipart uploads, used for puts of unknown
// size (buffered one part at a time) and puts larger than one part.
const PartSize = 16 << 20

// attempts is how many times minio-go tries an idempotent request whose
// body it can replay (GET, HEAD, DELETE, LIST) after a transient failure
// (network error, 5xx, SlowDown) before the error reaches the caller.
// Longer retry policies belong in a wrapper around the site.
const attempts = 3

// ErrRetained means a blob could not be deleted because the provider holds
// it under an object-lock retention (or legal hold) that has not expired.
// The caller should leave the blob where it is: it will be deletable after
// its retention date, which the error message gives.
var ErrRetained = site.ErrRetained

// Site is a bucket (or a prefix inside one) at an S3-compatible provider.
type Site struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	tr     *closingTransport
	prefix string // "" or "p/"
	where  string // endpoint/bucket[/prefix], for errors
}

var _ site.Site = (*Site)(nil)

// New returns a site for cfg. It makes no request unless cfg.CreateBucket
// is set, so a node opens even when the provider is down.
func New(ctx context.Context, cfg Config) (*Site, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3 site %s: transport: %w", cfg.Endpoint, err)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3 site: ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 site: ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	ct := &closingTransport{tr: tr}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, string(cfg.SecretKey), ""),
		Secure:     cfg.Secure,
		Transport:  ct,
		Region:     cfg.Region,
		MaxRetries: attempts,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 site %s: %w", cfg.Endpoint, err)
	}
	s := &Site{cfg: cfg, client: c, core: minio.Core{Client: c}, tr: ct, prefix: cfg.keyPrefix()}
	s.where = cfg.Endpoint + "/" + cfg.Bucket
	if s.prefix != "" {
		s.where += "/" + s.prefix[:len(s.prefix)-1]
	}
	if cfg.CreateBucket {
		if err := s.EnsureBucket(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// EnsureBucket creates the bucket if it is missing, and checks that an
// existing one has object lock enabled when the site needs it. Call it only
// when a site is created: a bucket that vanishes later must be reported, not
// silently recreated empty.
func (s *Site) EnsureBucket(ctx context.Context) error {
	b := s.cfg.Bucket
	ok, err := s.client.BucketExists(ctx, b)
	if err != nil {
		return s.fail(ctx, "check bucket "+b, err)
	}
	if !ok {
		err := s.client.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: s.cfg.Region, ObjectLocking: s.cfg.ObjectLock != nil})
		if err == nil {
			return nil
		}
		if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" {
			return s.fail(ctx, "create bucket "+b, err)
		}
	}
	if s.cfg.ObjectLock == nil {
		return nil
	}
	enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, b)
	if err != nil && minio.ToErrorResponse(err).Code != "ObjectLockConfigurationNotFoundError" {
		return s.fail(ctx, "object lock configuration of bucket "+b, err)
	}
	if enabled != "Enabled" {
		return fmt.Errorf("s3 site %s: bucket %s exists without object lock, which object_lock needs: create a bucket with object lock enabled", s.where, b)
	}
	return nil
}

// Close closes the client's idle connections to the provider, now and
// whenever the last call in flight ends from now on (transport.go): a
// call still running hands its connection back afterwards, and it is
// closed then. The driver still works after Close, for a call made on it
// late; it closes its connections again when that call ends.
func (s *Site) Close() error {
	s.tr.close()
	return nil
}

// String names the site: endpoint/bucket[/prefix].
func (s *Site) String() string { return "s3 site " + s.where }

func (s *Site) key(name string) (string, error) {
	if err := site.CheckName(name); err != nil {
		return "", err
	}
	return s.prefix + name, nil
}

// Put implements site.Site.
func (s *Site) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{
		PartSize:    PartSize,
		ContentType: "application/octet-stream",
	}
	if l := s.cfg.ObjectLock; l != nil {
		opts.Mode = minio.RetentionMode(l.Mode)
		opts.RetainUntilDate = time.Now().AddDate(0, 0, l.Days).UTC()
		// S3 requires an integrity header on every put that sets a
		// retention. minio-go buffers at most one part to compute it.
		opts.SendContentMd5 = true
	}
	body := &putBody{r: r, want: size}
	if size == 0 {
		// minio-go never reads an empty body: check it here.
		if err := body.atEnd(); err != nil {
			return fmt.Errorf("s3 site %s: put %s: %w", s.where, name, err)
		}
	}
	_, err = s.client.PutObject(ctx, s.cfg.Bucket, key, body, size, opts)
	if berr := body.finish(); berr != nil {
		// The reader's own failure is the cause, whatever minio-go or
		// net/http made of it. (Were err nil, the provider would have
		// completed a put whose body failed: report it failed all the
		// same.)
		return fmt.Errorf("s3 site %s: put %s: %w", s.where, name, berr)
	}
	if err != nil {
		return s.fail(ctx, "put "+name, err)
	}
	return nil
}

// Get implements site.Site.
func (s *Site) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("s3 site %s: get %s: negative offset %d", s.where, name, off)
	}
	if length == 0 {
		if _, err := s.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(off, off+length-1)
	case off > 0:
		err = opts.SetRange(off, 0) // bytes=off-
	}
	if err != nil {
		return nil, fmt.Errorf("s3 site %s: get %s: %w", s.where, name, err)
	}
	rc, _, h, err := s.core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			// The blob exists and the range starts at or past its end.
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, s.fail(ctx, "get "+name, err)
	}
	// The provider's answer is outside input: at an offset, it must say it
	// starts there (one that ignores the range sends the blob from its
	// start, which the caller would take for the bytes at off); and no
	// more than length bytes are passed on, whatever it sends.
	if off > 0 {
		if start, ok := rangeStart(h.Get("Content-Range")); !ok || start != off {
			rc.Close()
			return nil, fmt.Errorf("s3 site %s: get %s: asked for bytes from %d, the provider answered the range %q: %w", s.where, name, off, h.Get("Content-Range"), site.ErrUnavailable)
		}
	}
	var r io.Reader = rc
	if length > 0 {
		r = io.LimitReader(rc, length)
	}
	return &body{r: r, rc: rc, s: s, ctx: ctx, name: name}, nil
}

// rangeStart returns the first byte of a Content-Range header
// ("bytes 100-199/1000").
func rangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok || first == "" || strings.Trim(first, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}

// body reports a connection lost mid-read as site.ErrUnavailable.
type body struct {
	r    io.Reader // rc, limited to the length asked for
	rc   io.ReadCloser
	s    *Site
	ctx  context.Context
	name string
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.fail(b.ctx, "get "+b.name+": read", err)
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

// Stat implements site.Site.
func (s *Site) Stat(ctx context.Context, name string) (site.Info, error) {
	key, err := s.key(name)
	if err != nil {
		return site.Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		err = s.fail(ctx, "stat "+name, err)
		if errors.Is(err, site.ErrNotFound) {
			// A HEAD response has no body: minio-go reports any 404 as
			// NoSuchKey, a missing bucket included. Tell them apart.
			if ok, berr := s.client.BucketExists(ctx, s.cfg.Bucket); berr != nil {
				return site.Info{}, s.fail(ctx, "stat "+name, berr)
			} else if !ok {
				return site.Info{}, s.fail(ctx, "stat "+name, minio.ErrorResponse{Code: "NoSuchBucket", StatusCode: http.StatusNotFound, Message: "The specified bucket does not exist"})
			}
		}
		return site.Info{}, err
	}
	return site.Info{Name: name, Size: oi.Size, Modified: oi.LastModified}, nil
}

// Delete implements site.Site. With object lock it removes every version
// of the blob, oldest first, and fails with ErrRetained at the first one
// still retained.
func (s *Site) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if s.cfg.ObjectLock == nil {
		err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{})
		if err != nil {
			if err = s.fail(ctx, "delete "+name, err); errors.Is(err, site.ErrNotFound) {
				return nil
			}
			return err
		}
		return nil
	}
	// Delete from the oldest version so that a failure part-way leaves the
	// newest current: an older version must never resurface. S3 lists a
	// key's versions newest first; the current one goes last regardless.
	var versions []minio.ObjectInfo
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for oi := range s.client.ListObjectsIter(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if oi.Err != nil {
			return s.fail(ctx, "delete "+name+": list versions", oi.Err)
		}
		if oi.Key == key {
			versions = append(versions, oi)
		}
	}
	slices.Reverse(versions)
	if i := slices.IndexFunc(versions, func(v minio.ObjectInfo) bool { return v.IsLatest }); i >= 0 {
		latest := versions[i]
		versions = append(slices.Delete(versions, i, i+1), latest)
	}
	for _, v := range versions {
		err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err == nil {
			continue
		}
		if r := s.retention(ctx, key, v.VersionID, err); r != "" {
			return fmt.Errorf("s3 site %s: delete %s: version %s %s: %w", s.where, name, v.VersionID, r, ErrRetained)
		}
		if err = s.fail(ctx, "delete "+name+" version "+v.VersionID, err); !errors.Is(err, site.ErrNotFound) {
			return err
		}
	}
	return nil
}

// retention describes the lock that made the provider refuse (with
// refusal) to delete a version: "is retained in COMPLIANCE mode until
// ...", or "" if no lock holds it. It reads the x-amz-object-lock-*
// headers of a HEAD of the version, then asks GetObjectRetention and
// GetObjectLegalHold, and at last takes the provider's word for it.
// Providers differ: versitygw 1.8 sends no lock headers for a non-current
// version and names the retention document's root element wrongly.
func (s *Site) retention(ctx context.Context, key, versionID string, refusal error) string {
	var r []string
	now := time.Now()
	if oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: versionID}); err == nil {
		h := oi.Metadata
		if mode := h.Get("X-Amz-Object-Lock-Mode"); mode != "" {
			if until, err := time.Parse(time.RFC3339, h.Get("X-Amz-Object-Lock-Retain-Until-Date")); err == nil && until.After(now) {
				r = append(r, fmt.Sprintf("is retained in %s mode until %s", mode, until.UTC().Format(time.RFC3339)))
			}
		}
		if strings.EqualFold(h.Get("X-Amz-Object-Lock-Legal-Hold"), "ON") {
			r = append(r, "is under legal hold")
		}
	}
	if len(r) == 0 {
		if mode, until, err := s.client.GetObjectRetention(ctx, s.cfg.Bucket, key, versionID); err == nil && mode != nil && until != nil && until.After(now) {
			r = append(r, fmt.Sprintf("is retained in %s mode until %s", *mode, until.UTC().Format(time.RFC3339)))
		}
		if hold, err := s.client.GetObjectLegalHold(ctx, s.cfg.Bucket, key, minio.GetObjectLegalHoldOptions{VersionID: versionID}); err == nil && hold != nil && *hold == minio.LegalHoldEnabled {
			r = append(r, "is under legal hold")
		}
	}
	if len(r) == 0 {
		if er := minio.ToErrorResponse(refusal); er.Code == "AccessDenied" && strings.Contains(strings.ToLower(er.Message), "object lock") {
			r = append(r, fmt.Sprintf("is protected by object lock (%s)", strings.TrimSuffix(er.Message, ".")))
		}
	}
	return strings.Join(r, " and ")
}

// List implements site.Site.
func (s *Site) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for oi := range s.client.ListObjectsIter(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return s.fail(ctx, fmt.Sprintf("list %q", prefix), oi.Err)
		}
		name, ok := s.blobName(oi.Key)
		if !ok {
			continue // not a blob of this site: a folder marker or a foreign key
		}
		if err := fn(site.Info{Name: name, Size: oi.Size, Modified: oi.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// blobName returns the blob name of key, or false if key is not the key of
// one of the site's blobs.
func (s *Site) blobName(key string) (string, bool) {
	if len(key) <= len(s.prefix) || key[:len(s.prefix)] != s.prefix {
		return "", false
	}
	name := key[len(s.prefix):]
	if site.CheckName(name) != nil {
		return "", false
	}
	return name, true
}
