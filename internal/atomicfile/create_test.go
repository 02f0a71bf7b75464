package atomicfile

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// entries lists what dir holds: name and contents.
func entries(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func openRoot(t *testing.T) (string, *os.Root) {
	t.Helper()
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r
}

func TestCreateIn(t *testing.T) {
	for _, name := range []string{"marker", "sub/marker"} {
		t.Run(name, func(t *testing.T) {
			dir, r := openRoot(t)
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := CreateIn(r, name, []byte("data"), 0o640); err != nil {
				t.Fatal(err)
			}
			if got, want := entries(t, dir), map[string]string{name: "data"}; !maps.Equal(got, want) {
				t.Fatalf("directory holds %v, want %v", got, want)
			}
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
		})
	}
}

// TestCreateInExists: a file there already is kept as it was, the error
// names it and wraps fs.ErrExist, and nothing is left beside it.
func TestCreateInExists(t *testing.T) {
	dir, r := openRoot(t)
	path := filepath.Join(dir, "marker")
	if err := os.WriteFile(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := CreateIn(r, "marker", []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("CreateIn over an existing file: %v, want fs.ErrExist naming %s", err, path)
	}
	if got, want := entries(t, dir), map[string]string{"marker": "first"}; !maps.Equal(got, want) {
		t.Fatalf("directory holds %v, want %v", got, want)
	}
}

// TestCreateInOutsideTheRoot: a name that leaves the root is refused and
// nothing is made, in the root or beside it.
func TestCreateInOutsideTheRoot(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "root")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"../escaped", "/abs", "missing/marker"} {
		if err := CreateIn(r, name, []byte("data"), 0o600); err == nil {
			t.Errorf("CreateIn(%q) succeeded", name)
		}
	}
	if got := entries(t, parent); len(got) != 0 {
		t.Fatalf("left behind: %v", got)
	}
}

// hook replaces CreateIn's steps for a test.
func hook(t *testing.T, sf func(*os.File) error, l func(*os.Root, string, string) error, sd func(*os.File) error) {
	t.Helper()
	oldSF, oldL, oldSD := syncFile, link, syncDir
	t.Cleanup(func() { syncFile, link, syncDir = oldSF, oldL, oldSD })
	syncFile, link, syncDir = sf, l, sd
}

// TestCreateInOrder: the data is written and synced before the link
// makes the file visible under its name; the directory is synced after
// the link (and after the temporary file is gone), so that the name
// survives a crash.
func TestCreateInOrder(t *testing.T) {
	dir, r := openRoot(t)
	var steps []string
	tmpOnly := func(step string) {
		got := entries(t, dir)
		if len(got) != 1 {
			t.Errorf("at %s, directory holds %v, want only the temporary file", step, got)
		}
		for name, data := range got {
			if name == "marker" || data != "data" {
				t.Errorf("at %s, directory holds %q: %q, want the temporary file holding all the data", step, name, data)
			}
		}
	}
	hook(t,
		func(f *os.File) error {
			tmpOnly("the file's sync")
			steps = append(steps, "sync file")
			return f.Sync()
		},
		func(r *os.Root, oldname, newname string) error {
			tmpOnly("the link")
			steps = append(steps, "link")
			return r.Link(oldname, newname)
		},
		func(d *os.File) error {
			if got, want := entries(t, dir), map[string]string{"marker": "data"}; !maps.Equal(got, want) {
				t.Errorf("at the directory's sync, directory holds %v, want %v", got, want)
			}
			steps = append(steps, "sync dir")
			return d.Sync()
		})
	if err := CreateIn(r, "marker", []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if want := []string{"sync file", "link", "sync dir"}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
}

// TestCreateInFails: whichever step fails, the error says so, names the
// file and wraps the cause; the temporary file is gone; the file itself
// is there only when the failure came after the link, as the error says.
func TestCreateInFails(t *testing.T) {
	eio := syscall.EIO
	sync := (*os.File).Sync
	for _, c := range []struct {
		name   string
		sf, sd func(*os.File) error
		l      func(*os.Root, string, string) error
		left   map[string]string
	}{
		{"file sync", func(*os.File) error { return eio }, sync, (*os.Root).Link, map[string]string{}},
		{"link", sync, sync, func(*os.Root, string, string) error { return &os.LinkError{Op: "link", Err: eio} }, map[string]string{}},
		{"directory sync", sync, func(*os.File) error { return eio }, (*os.Root).Link, map[string]string{"marker": "data"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, r := openRoot(t)
			hook(t, c.sf, c.l, c.sd)
			err := CreateIn(r, "marker", []byte("data"), 0o600)
			if !errors.Is(err, eio) || !strings.Contains(err.Error(), filepath.Join(dir, "marker")) {
				t.Fatalf("CreateIn: %v, want EIO naming the file", err)
			}
			if said := strings.Contains(err.Error(), "may not survive a crash"); said != (len(c.left) > 0) {
				t.Errorf("error %q: says the file is written: %v, want %v", err, said, len(c.left) > 0)
			}
			if got := entries(t, dir); !maps.Equal(got, c.left) {
				t.Fatalf("directory holds %v, want %v", got, c.left)
			}
		})
	}
}

// TestIsTemp: IsTemp knows the temporary files CreateIn makes (the name
// seen at the link, for files directly in the root and below it), and
// nothing else, however close.
func TestIsTemp(t *testing.T) {
	var seen []string
	hook(t, (*os.File).Sync, func(r *os.Root, oldname, newname string) error {
		seen = append(seen, oldname)
		return r.Link(oldname, newname)
	}, (*os.File).Sync)
	dir, r := openRoot(t)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".embassy-hosting", "sub/marker"} {
		if err := CreateIn(r, name, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || filepath.Dir(seen[1]) != "sub" {
		t.Fatalf("temporary files seen: %q", seen)
	}
	if tmp := filepath.Base(seen[0]); !IsTemp(".embassy-hosting", tmp) {
		t.Errorf("IsTemp(%q) is false for CreateIn's own temporary file", tmp)
	}
	if tmp := filepath.Base(seen[1]); !IsTemp("marker", tmp) {
		t.Errorf("IsTemp(%q) is false for CreateIn's own temporary file", tmp)
	}
	for _, entry := range []string{
		"..embassy-hosting.tmp0123456789abcde",   // 15 digits
		"..embassy-hosting.tmp0123456789abcdef0", // 17
		"..embassy-hosting.tmp0123456789ABCDEF",  // upper case
		"..embassy-hosting.tmp0123456789abcdeg",
		"..embassy-hosting.tmp",
		".embassy-hosting.tmp0123456789abcdef", // one dot
		"..embassy-hostingXtmp0123456789abcdef",
		"..embassy-hosting.tmp0123456789abcdef/x",
		".marker.tmp0123456789abcdef", // another file's
		".embassy-hosting",
		"x..embassy-hosting.tmp0123456789abcdef",
	} {
		if IsTemp(".embassy-hosting", entry) {
			t.Errorf("IsTemp(%q) is true", entry)
		}
	}
	if !IsTemp(".embassy-hosting", "..embassy-hosting.tmp0123456789abcdef") {
		t.Error("IsTemp is false for a name of the exact form")
	}
}
