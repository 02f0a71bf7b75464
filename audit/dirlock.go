package audit

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/embassy-dev/embassy/internal/lockfile"
)

// One open log per directory. Two logs of one directory would each take
// the entries its journal holds beyond the tree and add them to the tree:
// the second's sequencer stops ("journal entry 68 was sequenced at 69"),
// so nothing can read the log through it, and the tree then holds one
// entry twice and lacks the journal's next one. A node opens its log once,
// and only while it holds its index alone (boltindex), so only a misuse
// does this: housekeeping's crash tests once kept the logs of the engines
// they had finished with open while opening the next one, and garbage
// collection, unable to read its records, left a drained site unemptied.
//
// Open takes a flock on the directory (internal/lockfile), which two
// opens exclude even within one process and which a crash releases, and
// refuses the directory when another log holds it, naming the process.
// The lock is released once the log's tessera goroutines have stopped
// (tessera.go): after Close, or later if some outlived it.

// lockDir locks the log directory dir, creating it if needed. A
// filesystem without locks is said in the log and not locked (nil file).
func lockDir(dir string, log *slog.Logger) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	err = lockfile.TryLock(f)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, lockfile.ErrUnsupported):
		f.Close()
		log.Warn("audit log: the directory's filesystem has no locks: a second log of it, which would corrupt it, could not be refused", "dir", dir, "err", err)
		return nil, nil
	case errors.Is(err, lockfile.ErrHeld):
		who := lockfile.HolderOfFile(f)
		f.Close()
		return nil, fmt.Errorf("audit log %s is open already, in %s: one log of a directory may be open at a time (two would both add the entries its journal holds to the log); close the other first", dir, who)
	default:
		f.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
}
