package node

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
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
	return sharesNothing
}

// above is the part of a lineage strictly above its directory.
func above(l []dirID, exists bool) []dirID {
	if exists {
		return l[1:]
	}
	return l
}
