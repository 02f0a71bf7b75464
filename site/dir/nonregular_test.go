package dir

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/sitetest"
)

// TestNotRegularFiles: a FIFO, a socket, a character device or a directory
// at a blob's name is not a blob. Every read of it (Get whole, a range, a
// cold range read with O_DIRECT) and Stat fail at once with ErrNotRegular,
// naming the path and the type; Put and Delete refuse to replace or remove
// it; List does not list it; it is left where it is. Before, Get of a FIFO
// blocked in open(2) until a writer came (Unblocked fails it), Stat gave
// its size (0), Put and Delete replaced or removed it, and List listed it
// as a blob of size 0.
func TestNotRegularFiles(t *testing.T) {
	const name = "s/ab/abcdef"
	for _, c := range []struct {
		kind string
		make func(t *testing.T, path string)
		// dir: a directory cannot be replaced or removed anyway, and
		// Stat has always called it missing.
		dir bool
	}{
		{"FIFO (named pipe)", func(t *testing.T, path string) { sitetest.MakeFIFO(t, path) }, false},
		{"socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Skipf("a socket at %s: %v", path, err) // a path too long for sun_path
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}, false},
		{"character device", func(t *testing.T, path string) {
			if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
				t.Skipf("mknod: %v", err) // not root
			}
		}, false},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(strings.Fields(c.kind)[0], func(t *testing.T) {
			root := t.TempDir()
			s, err := New(root)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(root, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			c.make(t, path)
			fifos := []string{path}
			want := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.kind) {
					t.Errorf("%s: %v, want ErrNotRegular naming %s and %q", what, err, path, c.kind)
				}
			}
			for _, g := range []struct {
				what        string
				cold        bool
				off, length int64
			}{{"get whole", false, 0, -1}, {"get range", false, 10, 100}, {"get cold range", true, 0, 4 << 20}} {
				err := sitetest.Unblocked(t, g.what, fifos, func() error {
					ctx := t.Context()
					if g.cold {
						ctx = site.WithColdRead(ctx)
					}
					rc, err := s.Get(ctx, name, g.off, g.length)
					if err == nil {
						io.Copy(io.Discard, rc)
						rc.Close()
					}
					return err
				})
				want(g.what, err)
			}
			if !c.dir {
				want("stat", sitetest.Unblocked(t, "stat", fifos, func() error {
					_, err := s.Stat(t.Context(), name)
					return err
				}))
				err = s.Put(t.Context(), name, bytes.NewReader([]byte("shard")), 5)
				want("put", err)
				want("delete", s.Delete(t.Context(), name))
				// Not listed: it is no blob (before, listed at size 0).
				for _, prefix := range []string{"", "s/", "s/ab/", name} {
					if err := s.List(t.Context(), prefix, func(i site.Info) error {
						t.Errorf("list %q: the %s listed as blob %s of %d bytes", prefix, c.kind, i.Name, i.Size)
						return nil
					}); err != nil {
						t.Errorf("list %q: %v", prefix, err)
					}
				}
			}
			var st unix.Stat_t
			if err := unix.Lstat(path, &st); err != nil {
				t.Fatalf("the %s at %s is gone: %v", c.kind, path, err)
			}
			if got := fileType(st.Mode); got != c.kind {
				t.Fatalf("%s is now a %s, was a %s", path, got, c.kind)
			}
			// Nothing of a refused put is left behind.
			if ents, _ := os.ReadDir(filepath.Join(root, tmpDir)); len(ents) != 0 {
				t.Fatalf("%d files left in %s", len(ents), tmpDir)
			}
		})
	}
}
