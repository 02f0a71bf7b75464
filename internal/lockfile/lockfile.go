// Package lockfile holds advisory locks (flock(2)) on the files and
// directories a process must be the only one to use, and names the
// process that holds one when another asks for it.
//
// A flock belongs to an open file: it is released when the file is closed,
// or when the process ends however it ends (a crash, kill -9), so a lock
// left by a dead process never has to be cleared by hand. Two opens of one
// file exclude each other even within one process.
package lockfile

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrHeld means another open file holds the lock: another process, most
// likely (name it with [HolderOf]). The caller must not use what the lock
// guards, and should tell the operator who holds it.
var ErrHeld = errors.New("locked by another process")

// ErrUnsupported means the filesystem does not support flock (some network
// filesystems): nothing can be known about other users.
var ErrUnsupported = errors.New("the filesystem does not support locks")

// TryLock takes an exclusive flock on f without waiting. It returns
// [ErrHeld] if another open file holds one, [ErrUnsupported] if the
// filesystem has none. The lock lasts until f is closed.
func TryLock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return ErrHeld
		case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
			return fmt.Errorf("%w: %s: %v", ErrUnsupported, f.Name(), err)
		default:
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
	}
}
