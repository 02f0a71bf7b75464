package s3site_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
	"github.com/embassy-dev/embassy/site/sitetest"
)

// servers runs fn against embassy's own S3 server and versitygw, each in
// a subtest named after the server.
func servers(t *testing.T, fn func(t *testing.T, srv *server)) {
	t.Run("embassy", func(t *testing.T) { fn(t, embassyServer(t)) })
	t.Run("versitygw", func(t *testing.T) {
		srv, _ := versitygwServer(t)
		fn(t, srv)
	})
}

// raw returns a plain minio-go client for srv, to look behind the driver.
func raw(t *testing.T, srv *server) *minio.Client {
	t.Helper()
	opts := &minio.Options{Creds: credentials.NewStaticV4(testAccess, testSecret, ""), Secure: srv.secure}
	if srv.caFile != "" {
		t.Fatal("raw client over TLS not supported")
	}
	c, err := minio.New(srv.endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i/257)
	}
	return b
}

func getAll(t *testing.T, s site.Site, name string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), name, 0, -1)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", name, err)
	}
	return b
}

func listAll(t *testing.T, s site.Site) []string {
	t.Helper()
	var names []string
	if err := s.List(t.Context(), "", func(i site.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	slices.Sort(names)
	return names
}

// assertNoBlob checks that name is not visible, neither to Stat nor to
// List, and that no multipart upload of the bucket is left behind.
func assertNoBlob(t *testing.T, srv *server, cfg s3site.Config, s site.Site, name string, uploadsOK bool) {
	t.Helper()
	if _, err := s.Stat(t.Context(), name); !errors.Is(err, site.ErrNotFound) {
		t.Errorf("Stat %s after a failed put: %v, want ErrNotFound", name, err)
	}
	if names := listAll(t, s); slices.Contains(names, name) {
		t.Errorf("List shows %s after a failed put: %v", name, names)
	}
	if uploadsOK {
		return
	}
	res, err := minio.Core{Client: raw(t, srv)}.ListMultipartUploads(t.Context(), cfg.Bucket, "", "", "", "", 1000)
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	for _, u := range res.Uploads {
		t.Errorf("multipart upload of %s (id %s) left behind", u.Key, u.UploadID)
	}
}

// failingReader yields data, then fails with err.
func failingReader(data []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(data), errReader{err})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestFailedPutStoresNothing: a reader that fails part-way, on the single
// PUT and the multipart paths, leaves no blob and no multipart upload.
func TestFailedPutStoresNothing(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		cfg := srv.config("fail")
		s := newSite(t, cfg)
		boom := errors.New("client went away")
		cases := []struct {
			name string
			sent int   // bytes yielded before the failure
			size int64 // declared
		}{
			{"single put", 3000, 6000},
			{"single put, nothing yielded", 0, 6000},
			{"multipart of unknown size, first part", 3000, -1},
			{"multipart of unknown size, second part", s3site.PartSize + 3000, -1},
			{"multipart of known size", s3site.PartSize + 3000, 2 * s3site.PartSize},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := s.Put(t.Context(), "x/blob", failingReader(pattern(tc.sent), boom), tc.size)
				if !errors.Is(err, boom) {
					t.Fatalf("Put = %v, want the reader's error", err)
				}
				if !strings.Contains(err.Error(), "put x/blob") {
					t.Errorf("error %q does not name the blob", err)
				}
				assertNoBlob(t, srv, cfg, s, "x/blob", false)
			})
		}
	})
}

// TestPutSizeMismatch: a reader that yields more or fewer bytes than
// declared fails the put and stores nothing.
func TestPutSizeMismatch(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		cfg := srv.config("")
		s := newSite(t, cfg)
		cases := []struct {
			name    string
			data    int
			size    int64
			wantErr string
		}{
			{"one byte too many", 100, 99, "reader yielded more than the 99 bytes declared"},
			{"bytes for an empty blob", 1, 0, "reader yielded more than the 0 bytes declared"},
			{"one byte too few", 99, 100, "reader yielded 99 bytes, 100 declared"},
			{"nothing for a blob", 0, 100, "reader yielded 0 bytes, 100 declared"},
			{"multipart, too many", s3site.PartSize + 10, s3site.PartSize + 5, "more than the"},
			{"multipart, too few", s3site.PartSize + 5, s3site.PartSize + 10, "declared"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := s.Put(t.Context(), "m", bytes.NewReader(pattern(tc.data)), tc.size)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Put = %v, want an error containing %q", err, tc.wantErr)
				}
				assertNoBlob(t, srv, cfg, s, "m", false)
			})
		}
	})
}

// TestLargeBlobs: puts bigger than one part, of known and unknown size,
// round-trip.
func TestLargeBlobs(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		s := newSite(t, srv.config("big"))
		data := pattern(s3site.PartSize + 12345)
		for _, size := range []int64{int64(len(data)), -1} {
			if err := s.Put(t.Context(), "big", bytes.NewReader(data), size); err != nil {
				t.Fatalf("Put of size %d: %v", size, err)
			}
			if got := getAll(t, s, "big"); !bytes.Equal(got, data) {
				t.Fatalf("size %d: got %d bytes differing from the %d put", size, len(got), len(data))
			}
			rc, err := s.Get(t.Context(), "big", s3site.PartSize-10, 20)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data[s3site.PartSize-10:s3site.PartSize+10]) {
				t.Fatalf("range across the part boundary: %d bytes, %v", len(got), err)
			}
		}
	})
}

// TestPrefixIsolation: sites sharing a bucket under different prefixes
// see only their own blobs; keys that are not blob names are not listed.
func TestPrefixIsolation(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		a := srv.config("sites/a")
		b := a
		b.Prefix = "sites/b"
		sa, sb := newSite(t, a), newSite(t, b)
		if err := sa.Put(t.Context(), "x", strings.NewReader("from a"), 6); err != nil {
			t.Fatal(err)
		}
		if err := sb.Put(t.Context(), "x", strings.NewReader("from b!"), 7); err != nil {
			t.Fatal(err)
		}
		// A key beside the sites and a folder marker inside one.
		rc := raw(t, srv)
		for _, k := range []string{"sites/ax", "sites/a/dir/"} {
			if _, err := rc.PutObject(t.Context(), a.Bucket, k, strings.NewReader(""), 0, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
		}
		if got := getAll(t, sa, "x"); string(got) != "from a" {
			t.Errorf("site a reads %q", got)
		}
		if got := getAll(t, sb, "x"); string(got) != "from b!" {
			t.Errorf("site b reads %q", got)
		}
		if got := listAll(t, sa); !slices.Equal(got, []string{"x"}) {
			t.Errorf("site a lists %v, want [x]", got)
		}
		info, err := sb.Stat(t.Context(), "x")
		if err != nil || info.Size != 7 || info.Name != "x" || time.Since(info.Modified) > time.Hour {
			t.Errorf("Stat = %+v, %v", info, err)
		}
		if err := sa.Delete(t.Context(), "x"); err != nil {
			t.Fatal(err)
		}
		if got := getAll(t, sb, "x"); string(got) != "from b!" {
			t.Errorf("after deleting a's blob, site b reads %q", got)
		}
	})
}

// TestMissingBucket: a bucket that does not exist (deleted, or a site
// whose provider lost it) makes every operation fail with
// ErrUnavailable, never look like an empty site.
func TestMissingBucket(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		cfg := srv.config("p")
		cfg.CreateBucket = false
		s := newSite(t, cfg)
		checkAll(t, s, site.ErrUnavailable, "bucket "+cfg.Bucket+" does not exist")
	})
}

// TestWrongCredential: a refused credential is ErrUnavailable.
func TestWrongCredential(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		good := newSite(t, srv.config("p")) // creates the bucket
		_ = good
		cfg := srv.config("p")
		cfg.CreateBucket = false
		cfg.SecretKey = "not-the-secret-at-all"
		checkAll(t, newSite(t, cfg), site.ErrUnavailable, "")
	})
}

// TestUnreachable: nothing listening at the endpoint.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := s3site.Config{Endpoint: addr, Region: "us-east-1", Bucket: "gone", AccessKey: testAccess, SecretKey: testSecret}
	s, err := s3site.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New made a request or failed without one: %v", err)
	}
	defer s.Close()
	checkAll(t, s, site.ErrUnavailable, "connection refused")
	cfg.CreateBucket = true
	if _, err := s3site.New(t.Context(), cfg); !errors.Is(err, site.ErrUnavailable) {
		t.Errorf("New with create_bucket: %v, want ErrUnavailable", err)
	}
}

// checkAll runs every operation on s and checks each error wraps want
// and, unless empty, contains msg.
func checkAll(t *testing.T, s site.Site, want error, msg string) {
	t.Helper()
	ctx := t.Context()
	ops := []struct {
		name string
		do   func() error
	}{
		{"put", func() error { return s.Put(ctx, "a/b", strings.NewReader("abc"), 3) }},
		{"put unknown size", func() error { return s.Put(ctx, "a/b", strings.NewReader("abc"), -1) }},
		{"get", func() error {
			rc, err := s.Get(ctx, "a/b", 0, -1)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"get range", func() error {
			rc, err := s.Get(ctx, "a/b", 1, 1)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"stat", func() error { _, err := s.Stat(ctx, "a/b"); return err }},
		{"delete", func() error { return s.Delete(ctx, "a/b") }},
		{"list", func() error { return s.List(ctx, "", func(site.Info) error { return nil }) }},
	}
	for _, op := range ops {
		err := op.do()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want an error wrapping %v", op.name, err, want)
			continue
		}
		if errors.Is(err, site.ErrNotFound) && want != site.ErrNotFound {
			t.Errorf("%s: %v also wraps ErrNotFound", op.name, err)
		}
		if msg != "" && !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %q does not say %q", op.name, err, msg)
		}
	}
}

// TestTLS: a provider with a certificate from a private CA is reached
// with ca_file, and refused without it.
func TestTLS(t *testing.T) {
	srv := embassyTLSServer(t)
	// Over TLS minio-go sends UNSIGNED-PAYLOAD bodies instead of signed
	// aws-chunked ones: a cut-short body must store nothing there too.
	t.Run("conformance", func(t *testing.T) {
		sitetest.Run(t, func(t *testing.T) site.Site { return newSite(t, srv.config("tls")) })
	})
	s := newSite(t, srv.config("tls"))
	data := pattern(70_000)
	if err := s.Put(t.Context(), "t", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got := getAll(t, s, "t"); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes differing from the %d put", len(got), len(data))
	}
	cfg := srv.config("tls")
	cfg.CAFile, cfg.CreateBucket = "", false
	untrusting := newSite(t, cfg)
	_, err := untrusting.Stat(t.Context(), "t")
	if !errors.Is(err, site.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Stat without the CA: %v, want ErrUnavailable naming the certificate", err)
	}
}

// TestServerKilledMidWrite kills versitygw while a put streams from a slow
// reader: the put fails with ErrUnavailable, nothing is visible after a
// restart on the same directory, and puts and gets work again.
func TestServerKilledMidWrite(t *testing.T) {
	srv, v := versitygwServer(t)
	cfg := srv.config("crash")
	s := newSite(t, cfg)
	before := pattern(5000)
	if err := s.Put(t.Context(), "before", bytes.NewReader(before), int64(len(before))); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		size        int64
		first       int  // bytes yielded before the reader stalls
		uploadsLeft bool // a multipart upload whose abort could not reach the dead server
	}{
		// 12 MiB handed over cannot all sit in socket buffers: the server
		// is part-way through the body when it dies.
		{"single put", s3site.PartSize, 12 << 20, false},
		// The first part is uploaded, the second is being buffered.
		{"multipart", -1, s3site.PartSize + 1<<20, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &stallingReader{data: pattern(s3site.PartSize + 2<<20), first: tc.first, stalled: make(chan struct{}), resume: make(chan struct{})}
			if tc.size >= 0 {
				r.data = r.data[:tc.size]
			}
			errc := make(chan error, 1)
			go func() { errc <- s.Put(context.Background(), "torn", r, tc.size) }()
			select {
			case <-r.stalled:
			case err := <-errc:
				t.Fatalf("Put returned before the reader stalled: %v", err)
			}
			v.stop()
			close(r.resume)
			err := <-errc
			if !errors.Is(err, site.ErrUnavailable) {
				t.Fatalf("Put while the server died: %v, want ErrUnavailable", err)
			}
			t.Logf("put while the server died: %v", err)
			if _, err := s.Stat(t.Context(), "before"); !errors.Is(err, site.ErrUnavailable) {
				t.Errorf("Stat while the server is down: %v, want ErrUnavailable", err)
			}
			v.start()
			assertNoBlob(t, srv, cfg, s, "torn", tc.uploadsLeft)
			if got := getAll(t, s, "before"); !bytes.Equal(got, before) {
				t.Errorf("blob written before the crash reads back %d bytes differing", len(got))
			}
			after := pattern(300_000)
			if err := s.Put(t.Context(), "after", bytes.NewReader(after), -1); err != nil {
				t.Fatalf("Put after restart: %v", err)
			}
			if got := getAll(t, s, "after"); !bytes.Equal(got, after) {
				t.Errorf("blob written after the restart reads back %d bytes differing", len(got))
			}
			if got := listAll(t, s); !slices.Equal(got, []string{"after", "before"}) {
				t.Errorf("List after restart = %v, want [after before]", got)
			}
		})
	}
}

// stallingReader yields its first bytes, then blocks until resume is
// closed, then yields the rest.
type stallingReader struct {
	data    []byte
	first   int
	off     int
	once    sync.Once
	stalled chan struct{}
	resume  chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.off >= r.first {
		r.once.Do(func() { close(r.stalled) })
		<-r.resume
	} else if len(p) > r.first-r.off {
		p = p[:r.first-r.off]
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

// TestObjectLock: with object_lock set, blobs carry the retention and
// deleting one fails with ErrRetained, leaving the newest version
// readable. A version without retention is deleted, every version of it.
func TestObjectLock(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		for _, mode := range []string{s3site.Governance, s3site.Compliance} {
			t.Run(mode, func(t *testing.T) {
				cfg := srv.config("locked")
				cfg.ObjectLock = &s3site.ObjectLock{Mode: mode, Days: 2}
				s := newSite(t, cfg)
				ctx := t.Context()
				rc := raw(t, srv)
				if on, _, _, _, err := rc.GetObjectLockConfig(ctx, cfg.Bucket); err != nil || on != "Enabled" {
					t.Fatalf("bucket object lock = %q, %v; want Enabled", on, err)
				}
				v1, v2 := pattern(40_000), pattern(50_000)
				if err := s.Put(ctx, "m/1", bytes.NewReader(v1), int64(len(v1))); err != nil {
					t.Fatalf("Put: %v", err)
				}
				// The retention as HEAD reports it (versitygw 1.8 answers
				// GetObjectRetention with a misnamed XML root element).
				oi, err := rc.StatObject(ctx, cfg.Bucket, "locked/m/1", minio.StatObjectOptions{})
				if err != nil {
					t.Fatalf("head of the blob: %v", err)
				}
				gotMode := oi.Metadata.Get("X-Amz-Object-Lock-Mode")
				until, err := time.Parse(time.RFC3339, oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
				if gotMode != mode || err != nil || until.Sub(time.Now().Add(48*time.Hour)).Abs() > time.Hour {
					t.Fatalf("retention = %q until %v (%v), want %s for 2 days", gotMode, until, err, mode)
				}
				err = s.Delete(ctx, "m/1")
				if !errors.Is(err, s3site.ErrRetained) || !strings.Contains(err.Error(), "delete m/1") || !strings.Contains(err.Error(), "until") {
					t.Fatalf("Delete of a retained blob: %v, want ErrRetained naming the blob and the date", err)
				}
				t.Logf("delete of a retained blob: %v", err)
				if got := getAll(t, s, "m/1"); !bytes.Equal(got, v1) {
					t.Fatalf("retained blob reads %d bytes differing", len(got))
				}
				// Overwritten: the delete still fails and the newest version
				// stays current (the oldest is tried first).
				if err := s.Put(ctx, "m/1", bytes.NewReader(v2), -1); err != nil {
					t.Fatalf("overwrite: %v", err)
				}
				if err := s.Delete(ctx, "m/1"); !errors.Is(err, s3site.ErrRetained) {
					t.Fatalf("Delete of an overwritten retained blob: %v, want ErrRetained", err)
				}
				if got := getAll(t, s, "m/1"); !bytes.Equal(got, v2) {
					t.Fatalf("after a refused delete the blob reads %d bytes, want the newest %d", len(got), len(v2))
				}
				// A retained version under a newer unretained one (written
				// around the driver): the retained one is tried first, so the
				// delete fails before the newer one goes and the older one
				// never resurfaces.
				if err := s.Put(ctx, "m/2", bytes.NewReader(v1), int64(len(v1))); err != nil {
					t.Fatal(err)
				}
				if _, err := rc.PutObject(ctx, cfg.Bucket, "locked/m/2", bytes.NewReader(v2), int64(len(v2)), minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := s.Delete(ctx, "m/2"); !errors.Is(err, s3site.ErrRetained) {
					t.Fatalf("Delete of a blob with an old retained version: %v, want ErrRetained", err)
				}
				if got := getAll(t, s, "m/2"); !bytes.Equal(got, v2) {
					t.Fatalf("after a refused delete the blob reads %d bytes, want the newest %d", len(got), len(v2))
				}
				if err := s.Delete(ctx, "never/written"); err != nil {
					t.Fatalf("Delete of a missing blob: %v", err)
				}
				// Versions without retention (written around the driver):
				// Delete removes every one of them.
				for _, d := range []string{"one", "two"} {
					if _, err := rc.PutObject(ctx, cfg.Bucket, "locked/free", strings.NewReader(d), int64(len(d)), minio.PutObjectOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Delete(ctx, "free"); err != nil {
					t.Fatalf("Delete of unretained versions: %v", err)
				}
				if _, err := s.Stat(ctx, "free"); !errors.Is(err, site.ErrNotFound) {
					t.Fatalf("Stat after delete: %v", err)
				}
				for oi := range rc.ListObjectsIter(ctx, cfg.Bucket, minio.ListObjectsOptions{Prefix: "locked/free", WithVersions: true}) {
					if oi.Err != nil {
						t.Fatal(oi.Err)
					}
					t.Errorf("version %s of %s (delete marker %v) left after Delete", oi.VersionID, oi.Key, oi.IsDeleteMarker)
				}
			})
		}
		t.Run("bucket without lock", func(t *testing.T) {
			cfg := srv.config("p")
			newSite(t, cfg) // creates the bucket, without lock
			cfg.ObjectLock = &s3site.ObjectLock{Mode: s3site.Compliance, Days: 1}
			_, err := s3site.New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), "without object lock") {
				t.Fatalf("New with object_lock on a bucket without it: %v", err)
			}
		})
	})
}

// TestListPages: listings longer than one page (1000 keys) are followed
// to the end, with and without a sub-prefix.
func TestListPages(t *testing.T) {
	servers(t, func(t *testing.T, srv *server) {
		s := newSite(t, srv.config("pages"))
		const n = 1234
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("shard/%04d", i))
		}
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, name := range want {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := s.Put(t.Context(), name, strings.NewReader(name), int64(len(name))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := listAll(t, s); !slices.Equal(got, want) {
			t.Fatalf("List returned %d names, want %d", len(got), len(want))
		}
		var sub []string
		if err := s.List(t.Context(), "shard/1", func(i site.Info) error { sub = append(sub, i.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(sub)
		if !slices.Equal(sub, want[1000:]) {
			t.Fatalf("List(shard/1) returned %d names, want %d", len(sub), n-1000)
		}
	})
}
