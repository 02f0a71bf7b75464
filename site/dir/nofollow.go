package dir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/site"
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
	if err := keepForeign(pfd, filepath.Join(root, rel), base); err != nil {
		return err
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

// Files that are not regular. A blob is a regular file; anything else at a
// blob's name (a FIFO, a socket, a device, a directory) was put there by
// someone other than the node. Opening a FIFO for reading blocks in
// open(2) until a writer comes, out of any context's reach, so a blob is
// opened with O_NONBLOCK and its type checked (fstat) before anything is
// read: such a file is ErrNotRegular, reported with its path and type, and
// left where it is (never read, never removed).

// ErrNotRegular: a blob's name in the site's directory holds a file that is
// not a regular file (a FIFO, a socket, a device, a directory), which the
// node never writes. Someone other than the node changed the site's
// directory: find out who, and remove it by hand; the node reads the blob
// from its other copies or shards meanwhile. It wraps site.ErrNotBlob.
var ErrNotRegular = fmt.Errorf("not a regular file: %w", site.ErrNotBlob)

// notRegular is op's error for a file of mode (st_mode) at path.
func notRegular(op, path string, mode uint32) error {
	return &os.PathError{Op: op, Path: path, Err: fmt.Errorf("a %s, %w", fileType(mode), ErrNotRegular)}
}

// keepForeign refuses (ErrNotRegular) to replace or remove base in the
// open directory pfd (path, for the error) when it is a FIFO, a socket or
// a device: a put's rename would replace it and a delete unlink it, and it
// is not the node's to remove (a symbolic link is removed itself, as
// ErrSymlink says; a directory cannot be). One fstatat, on paths that
// fsync a directory anyway.
func keepForeign(pfd int, path, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // missing, or the rename or unlink says why
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFLNK, unix.S_IFDIR:
		return nil
	}
	return notRegular("replace or remove", path, st.Mode)
}

// fileType names the type in a st_mode, for a person.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "FIFO (named pipe)"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFREG:
		return "regular file"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// openBlob opens rel beneath dfd, the open directory root, for reading,
// following no symbolic link and without blocking on what is not a regular
// file (ErrNotRegular). direct asks for O_DIRECT; it reports whether the
// blob has it. The open takes O_NONBLOCK, which the fstat that checks the
// type makes safe. A read through the page cache keeps it (a read of a
// regular file ignores it; see blob), so the open, the fstat and the
// reads are all the calls such a read makes; for O_DIRECT one F_SETFL
// sets it and clears O_NONBLOCK (the flags it opened with are known, so
// no F_GETFL is needed).
func openBlob(dfd int, root, rel string, direct bool) (*blob, bool, error) {
	fd, err := openat2(dfd, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		var st unix.Stat_t
		if err == unix.ENXIO && unix.Fstatat(dfd, rel, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			// A socket (or a device without a driver) cannot be opened.
			return nil, false, notRegular("open", filepath.Join(root, rel), st.Mode)
		}
		return nil, false, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: symlinkErr(err)}
	}
	var st unix.Stat_t
	for {
		if err = unix.Fstat(fd, &st); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, false, &os.PathError{Op: "stat", Path: filepath.Join(root, rel), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, false, notRegular("open", filepath.Join(root, rel), st.Mode)
	}
	if direct {
		if _, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_DIRECT); err != nil {
			// The filesystem refuses O_DIRECT: read through the page cache.
			direct = false
		}
	}
	return newBlob(fd, root, rel, &st), direct, nil
}
