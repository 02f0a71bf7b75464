package dir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Symbolic links. A site's directory holds only what the node wrote:
// directories and regular files. A symbolic link in it was put there by
// someone else, and following one would let them point a read at any file
// on the machine, or a write or a delete through a linked directory at any
// directory. So every path below the root is resolved without following a
// symbolic link anywhere, and beneath the root only: openat2 with
// RESOLVE_NO_SYMLINKS and RESOLVE_BENEATH, the parent directory opened that
// way and the last component handled with *at calls that do not follow it
// (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, unlinkat, renameat). A link met is
// ErrSymlink. On a kernel without openat2 (before Linux 5.6) each
// component is checked with fstatat instead.

// ErrSymlink: a path of the site runs through a symbolic link, which the
// site refuses to follow. Someone other than the node changed the site's
// directory: find out who.
var ErrSymlink = errors.New("symbolic link in the site's directory, not followed")

// openAt opens rel beneath dfd, the open directory root, with flags,
// following no symbolic link.
func openAt(dfd int, root, rel string, flags int, mode uint32) (*os.File, error) {
	fd, err := openat2(dfd, rel, flags, mode)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: symlinkErr(err)}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

// openat2 opens rel beneath dfd without following links.
func openat2(dfd int, rel string, flags int, mode uint32) (int, error) {
	fd, err := unix.Openat2(dfd, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: uint64(mode),
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH})
	if err != unix.ENOSYS && err != unix.EPERM {
		return fd, err
	}
	// No openat2: walk the components, refusing links.
	cur, err := unix.Dup(dfd)
	if err != nil {
		return -1, err
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			unix.Close(cur)
			return -1, fmt.Errorf("path %q: component %q", rel, p)
		}
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		var m uint32
		if i == len(parts)-1 {
			f, m = flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode
		}
		next, err := unix.Openat(cur, p, f, m)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// symlinkErr turns the errors a refused link gives into ErrSymlink.
func symlinkErr(err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%w (%v)", ErrSymlink, err)
	}
	return err
}

// parentBeneath opens the directory holding rel, following no link, and
// returns it with rel's last component.
func parentBeneath(root, rel string) (int, string, error) {
	dir, base := filepath.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: root, Err: err}
	}
	if dir == "" {
		return dfd, base, nil
	}
	defer unix.Close(dfd)
	pfd, err := openat2(dfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: filepath.Join(root, dir), Err: symlinkErr(err)}
	}
	return pfd, base, nil
}

// lstatBeneath is Lstat of rel, following no link on the way; a link as
// the last component is ErrSymlink.
func lstatBeneath(root, rel string) (os.FileInfo, error) {
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dfd)
	return lstatAt(dfd, root, rel)
}

// lstatAt is Lstat of rel beneath dfd, the open directory root, following
// no link on the way; a link as the last component is ErrSymlink (opened
// with O_PATH and O_NOFOLLOW, a trailing link is opened itself, not
// refused, and fstat then says it is one).
func lstatAt(dfd int, root, rel string) (os.FileInfo, error) {
	f, err := openat2(dfd, rel, unix.O_PATH, 0)
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: filepath.Join(root, rel), Err: symlinkErr(err)}
	}
	file := os.NewFile(uintptr(f), filepath.Join(root, rel))
	defer file.Close()
	fi, err := file.Stat()
	if err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "stat", Path: filepath.Join(root, rel), Err: ErrSymlink}
	}
	return fi, err
}

// removeAt unlinks rel beneath dfd, the open directory root, without
// following a link on the way (a link as the last component is removed
// itself, never what it points to).
func removeAt(dfd int, root, rel string) error {
	pfd, base, err := parentAt(dfd, root, rel)
	if err != nil {
		return err
	}
	if pfd != dfd {
		defer unix.Close(pfd)
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return &os.PathError{Op: "remove", Path: filepath.Join(root, rel), Err: err}
	}
	return nil
}

// parentAt opens the directory holding rel beneath dfd, following no link,
// and returns it with rel's last component; for a name directly in the
// root it returns dfd itself.
func parentAt(dfd int, root, rel string) (int, string, error) {
	dir, base := filepath.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return dfd, base, nil
	}
	pfd, err := openat2(dfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: filepath.Join(root, dir), Err: symlinkErr(err)}
	}
	return pfd, base, nil
}

// mkdirBeneath makes directory rel, following no link on the way.
func mkdirBeneath(root, rel string, mode uint32) error {
	pfd, base, err := parentBeneath(root, rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, mode); err != nil {
		return &os.PathError{Op: "mkdir", Path: filepath.Join(root, rel), Err: err}
	}
	return nil
}
