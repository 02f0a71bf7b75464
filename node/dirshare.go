package node

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Two things pointing at one directory (docs/operator-guide.md, "One
// directory, one user"). The node's directory, each of its directory
// sites and its hosting directory must each be a directory of its own:
// not the same directory as another, not inside another, not holding
// another. Paths are compared by what they name, a directory's device and
// inode, not by their text: a symbolic link, a bind mount or a second
// mount of one filesystem is one directory under two names, and two
// "sites" on one directory would be one disk counted twice by the
// survivability proof.

// dirID is a directory's identity: its device and inode.
type dirID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) (dirID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return dirID{}, false
	}
	return dirID{uint64(st.Dev), st.Ino}, true
}

// lineage returns the identities of the directory p and of each of its
// ancestors, p's first, walking up p with its symbolic links resolved.
// When p does not exist (yet), the list starts with its nearest existing
// ancestor and exists is false.
func lineage(p string) (ids []dirID, exists bool) {
	exists = true
	for cur := resolvePath(p); ; {
		if fi, err := os.Stat(cur); err == nil {
			if id, ok := idOf(fi); ok {
				ids = append(ids, id)
			}
		} else if len(ids) == 0 {
			exists = false
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return ids, exists && len(ids) > 0
		}
		cur = parent
	}
}

// How two directories share storage (overlap).
const (
	sharesNothing = ""
	sharesSame    = "is the same directory as"
	sharesInside  = "lies inside"
	sharesHolds   = "contains"
)

// overlap says how directory a shares storage with directory b: not at
// all (""), or a phrase to put between their names: a is the same
// directory as b, lies inside it, or contains it. A directory that does
// not exist yet can only lie inside another.
func overlap(a, b string) string {
	la, aok := lineage(a)
	lb, bok := lineage(b)
	if len(la) == 0 || len(lb) == 0 {
		return sharesNothing
	}
	switch {
	case aok && bok && la[0] == lb[0]:
		return sharesSame
	case bok && slices.Contains(above(la, aok), lb[0]):
		return sharesInside
	case aok && slices.Contains(above(lb, bok), la[0]):
		return sharesHolds
	}
	// A bind mount of a subdirectory is reached by a path that does not
	// go through the directory above it: where each lies within its
	// filesystem tells.
	if !aok || !bok {
		return sharesNothing
	}
	fa, fb := fsPathOf(a, la[0]), fsPathOf(b, lb[0])
	switch {
	case fa == "" || fb == "":
	case within(fa, fb):
		return sharesInside
	case within(fb, fa):
		return sharesHolds
	}
	return sharesNothing
}

// fsPathOf returns where the directory p, whose identity is id, lies
// within its filesystem: the root of the mount that holds it, from
// /proc/self/mountinfo (for a bind mount, the directory mounted), joined
// with p's path below the mount point, prefixed with the filesystem's
// device; "" when that cannot be told.
func fsPathOf(p string, id dirID) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	p = resolvePath(p)
	var best, root, mdev string
	for line := range strings.SplitSeq(string(b), "\n") {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		// The last of the mounts on one point is the one seen.
		if within(p, mp) && len(mp) >= len(best) {
			best, root, mdev = mp, unescapeMount(f[3]), f[2]
		}
	}
	if best == "" || mdev != fmt.Sprintf("%d:%d", unix.Major(id.dev), unix.Minor(id.dev)) {
		return ""
	}
	rel, err := filepath.Rel(best, p)
	if err != nil {
		return ""
	}
	return mdev + ":" + filepath.Join(root, rel)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// above is the part of a lineage strictly above its directory.
func above(l []dirID, exists bool) []dirID {
	if exists {
		return l[1:]
	}
	return l
}
