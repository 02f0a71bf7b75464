package boltindex

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/internal/lockfile"
)

// leftoverCase puts something under the name of the compaction's
// temporary copy of the index at path (tmp); removable says whether it
// can only be a copy an interrupted compaction left.
type leftoverCase struct {
	name      string
	make      func(t *testing.T, path, tmp string)
	removable bool
	why       string // what the report says when it is kept
}

func leftoverCases() []leftoverCase {
	return []leftoverCase{
		{"hand-edited", func(t *testing.T, _, tmp string) {
			writeTest(t, tmp, []byte("an operator's notes, not an index"))
		}, true, ""},
		{"truncated copy", func(t *testing.T, path, tmp string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeTest(t, tmp, b[:len(b)/3])
		}, true, ""},
		{"empty", func(t *testing.T, _, tmp string) { writeTest(t, tmp, nil) }, true, ""},
		{"symlink to the index", func(t *testing.T, path, tmp string) {
			if err := os.Symlink(path, tmp); err != nil {
				t.Fatal(err)
			}
		}, false, "not a regular file of its own"},
		{"hard link to the index", func(t *testing.T, path, tmp string) {
			if err := os.Link(path, tmp); err != nil {
				t.Fatal(err)
			}
		}, false, "not a regular file of its own"},
		{"hard link to a backup", func(t *testing.T, path, tmp string) {
			backup := filepath.Join(filepath.Dir(path), "backup.db")
			b, _ := os.ReadFile(path)
			writeTest(t, backup, b)
			if err := os.Link(backup, tmp); err != nil {
				t.Fatal(err)
			}
		}, false, "not a regular file of its own"},
		{"directory", func(t *testing.T, _, tmp string) {
			if err := os.Mkdir(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false, "not a regular file of its own"},
		{"open and locked", func(t *testing.T, path, tmp string) {
			// An index some other process opened under that name (here:
			// another open file in this one, which flock treats alike).
			b, _ := os.ReadFile(path)
			writeTest(t, tmp, b)
			f, err := os.Open(tmp)
			if err != nil {
				t.Fatal(err)
			}
			if err := lockfile.TryLock(f); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			// (The holder is named from /proc/locks when it can be read
			// there; a busy machine's lock churn can hide the line.)
		}, false, "is in use by "},
	}
}

func writeTest(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenLeftover: Open removes what can only be a copy an interrupted
// compaction left (a plain file of its own, whatever it holds: a partial
// copy, a truncated or hand-edited one), and says so through Leftover;
// anything else under that name (a link to the index or to a backup, a
// directory, a file some process holds locked) is left as it was and
// reported. The index opens and holds what it held either way.
func TestOpenLeftover(t *testing.T) {
	for _, tc := range leftoverCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newCompactFixture(t)
			tmp := CompactTemp(f.path)
			tc.make(t, f.path, tmp)
			before, _ := os.Lstat(tmp)
			ix, err := Open(f.path)
			if err != nil {
				t.Fatal(err)
			}
			removed, kept := ix.Leftover()
			ix.Close()
			after, err := os.Lstat(tmp)
			if tc.removable {
				if removed != tmp || kept != nil || !errors.Is(err, os.ErrNotExist) {
					t.Errorf("removed %q, kept %v, the file now: %v; want it removed", removed, kept, err)
				}
			} else {
				if removed != "" || kept == nil || !strings.Contains(kept.Error(), tc.why) || !strings.Contains(kept.Error(), tmp) {
					t.Errorf("removed %q, kept %v; want it kept, saying %q", removed, kept, tc.why)
				}
				if err != nil || !os.SameFile(before, after) {
					t.Errorf("the file under that name changed: %v", err)
				}
			}
			f.check(t)
		})
	}
}

// TestCompactLeftoverNotOurs: Compact, like Open, leaves what cannot be
// shown to be its own leftover, and stops naming it; the index as it was.
func TestCompactLeftoverNotOurs(t *testing.T) {
	for _, tc := range leftoverCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newCompactFixture(t)
			tmp := CompactTemp(f.path)
			tc.make(t, f.path, tmp)
			index, _ := os.ReadFile(f.path)
			st, err := Compact(f.path)
			if tc.removable {
				if err != nil || !st.Leftover {
					t.Fatalf("Compact: %+v, %v; want the leftover removed", st, err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "move it away") {
					t.Fatalf("Compact: %v; want it to stop, saying %q", err, tc.why)
				}
				if after, _ := os.ReadFile(f.path); !bytes.Equal(index, after) {
					t.Error("the index changed")
				}
				if _, err := os.Lstat(tmp); err != nil {
					t.Errorf("the file under that name: %v", err)
				}
			}
			f.check(t)
		})
	}
}

// TestOpenNoIndexButCopy: with no index and a file under the name of a
// compaction's copy (which a compaction never leaves: its rename is one
// step), Open makes no new index beside what may be the only copy, and
// says what to do; nor does it open an index under that name.
func TestOpenNoIndexButCopy(t *testing.T) {
	f := newCompactFixture(t)
	tmp := CompactTemp(f.path)
	if err := os.Rename(f.path, tmp); err != nil {
		t.Fatal(err)
	}
	_, err := Open(f.path)
	if err == nil || !strings.Contains(err.Error(), "there is no index, but "+tmp+" is there") {
		t.Fatalf("Open: %v", err)
	}
	if _, err := os.Lstat(f.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open made an index: %v", err)
	}
	if _, err := Open(tmp); err == nil || !strings.Contains(err.Error(), "name the index otherwise") {
		t.Errorf("Open of %s: %v", tmp, err)
	}
	if _, err := Compact(tmp); err == nil || !strings.Contains(err.Error(), "name the index otherwise") {
		t.Errorf("Compact of %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
	f.check(t)
}

// TestCompactNoSpace: with less room on the index's filesystem than the
// pages the index uses, Compact refuses before it writes anything, naming
// what is short (bytes free, where, and what the copy needs); the index is
// as it was and no copy is made. With exactly that much room it compacts,
// into a file no larger than the estimate and bbolt's 1 MiB growth step.
func TestCompactNoSpace(t *testing.T) {
	f := newCompactFixture(t)
	before, _ := os.ReadFile(f.path)
	tmp := CompactTemp(f.path)
	var free uint64
	statfs = func(path string, st *unix.Statfs_t) error {
		if path != filepath.Dir(tmp) {
			return fmt.Errorf("statfs of %s, want %s", path, filepath.Dir(tmp))
		}
		if _, err := os.Lstat(tmp); err == nil {
			return fmt.Errorf("statfs asked after %s was made", tmp)
		}
		*st = unix.Statfs_t{Bsize: 4096, Bavail: free / 4096}
		return nil
	}
	t.Cleanup(func() { statfs = unix.Statfs })
	_, err := Compact(f.path)
	re := regexp.MustCompile(`^compact index ` + regexp.QuoteMeta(f.path) + `: not enough free space for the copy ` + regexp.QuoteMeta(tmp) +
		`: 0 bytes free in ` + regexp.QuoteMeta(filepath.Dir(tmp)) + `, and the copy needs about ([0-9]+) \(the pages the index uses\); free ([0-9]+) bytes there, or compact another time; the index is unchanged$`)
	m := re.FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("Compact on a full disk: %v", err)
	}
	if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
		t.Error("the index changed")
	}
	if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a copy was made: %v", err)
	}
	need, _ := strconv.ParseUint(m[1], 10, 64)
	if need == 0 || need > uint64(len(before)) {
		t.Fatalf("the copy needs %d bytes, of an index of %d", need, len(before))
	}
	// A page short: still refused.
	free = (need - 1) &^ 4095
	if _, err := Compact(f.path); err == nil || !strings.Contains(err.Error(), "not enough free space") {
		t.Fatalf("Compact with %d of %d bytes free: %v", free, need, err)
	}
	if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
		t.Error("the index changed")
	}
	free = (need + 4095) &^ 4095
	st, err := Compact(f.path)
	if err != nil {
		t.Fatalf("Compact with %d bytes free, %d needed: %v", free, need, err)
	}
	if uint64(st.After) > need+1<<20 {
		t.Errorf("the copy took %d bytes; the estimate was %d", st.After, need)
	}
	f.check(t)
}
