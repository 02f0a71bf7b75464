package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The steps of CreateIn that decide what a crash leaves; its tests
// replace them to see their order and to make each fail.
var (
	syncFile = (*os.File).Sync
	link     = (*os.Root).Link
	syncDir  = (*os.File).Sync
)

// CreateIn creates the file name, a path within the root r, holding data,
// once and durably. A temporary file beside it is written and synced,
// then linked to name, which fails if name exists (wrapping
// [fs.ErrExist]: a file made meanwhile, by this process or another, is
// never replaced), then the temporary file is removed and the directory
// synced. A crash leaves no file or the whole of it, never a part (and
// perhaps the temporary file, .NAME.tmp… (see [IsTemp]), if it came after
// the temporary file was made and before it was removed). On an error the temporary file is removed, and
// name is as it was unless the error says that the file is written but
// may not survive a crash (a failure after the link).
func CreateIn(r *os.Root, name string, data []byte, perm os.FileMode) (err error) {
	path := filepath.Join(r.Name(), name)
	dir := filepath.Dir(name)
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, tempPrefix(filepath.Base(name))+hex.EncodeToString(rnd[:]))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
		if err != nil {
			r.Remove(tmp)
		}
	}()
	// The umask narrows what OpenFile makes: the file gets perm.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := syncFile(f); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := link(r, tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := r.Remove(tmp); err != nil {
		return fmt.Errorf("create %s: remove its temporary file (the file is written, but may not survive a crash): %w", path, err)
	}
	d, err := r.Open(dir)
	if err == nil {
		err = syncDir(d)
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("create %s: sync its directory (the file is written, but may not survive a crash): %w", path, err)
	}
	return nil
}

// tempPrefix is what the name of CreateIn's temporary file for a file
// named base starts with; 16 lowercase hexadecimal digits (8 random bytes)
// follow.
func tempPrefix(base string) string { return "." + base + ".tmp" }

// IsTemp reports whether entry, a name in the directory of a file named
// base, is exactly of the form CreateIn gives the temporary file of base:
// "." + base + ".tmp" and 16 lowercase hexadecimal digits. Such a file,
// found while no CreateIn of base is running, is the leftover of one that
// did not finish (a crash before it removed its temporary file).
func IsTemp(base, entry string) bool {
	rnd, ok := strings.CutPrefix(entry, tempPrefix(base))
	if !ok || len(rnd) != 16 {
		return false
	}
	for _, c := range []byte(rnd) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
