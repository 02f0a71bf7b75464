package boltindex

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

// Writing the file's tail before bbolt needs it.
//
// bbolt grows its file with ftruncate, so the file past the high-water
// mark (the last page in use) is a hole, and a commit that puts a page
// there has the filesystem allocate its block. Its fdatasync must then
// write the inode too (on ext4 without a journal, a synchronous write
// before the flush; with one, a journal commit): a round trip to the
// disk more, in the commit every put waits for. A growing index (every
// new object adds about a kilobyte) puts a page past the old mark in
// almost every commit.
//
// So the committer writes zeros over the next fillAhead bytes past the
// mark, within the file's size (it never makes the file larger: bbolt
// decides that), before it runs a batch, once fewer than fillLow bytes
// there are known to be written: one write of up to a MiB every thousand
// or so small puts, whose blocks the next commit's fdatasync makes
// durable with the pages, and commits then overwrite allocated blocks.
// Past the mark no committed state lives (bbolt reads no page there and
// lists none free), and the batch's transaction holds bbolt's writer
// lock, so nothing else writes there meanwhile; a fill that fails is
// left (the commit allocates as before).
const (
	fillAhead = 1 << 20
	fillLow   = fillAhead / 2
)

// filler writes zeros past the high-water mark (committer only).
type filler struct {
	f      *os.File // the index file, opened for writing beside bbolt
	zeroed int64    // the file is written (no hole) from the mark to here
	zeros  []byte
}

func openFiller(path string) *filler {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil // the commits allocate as before
	}
	return &filler{f: f}
}

// fill runs inside a write transaction, before its writes.
func (fl *filler) fill(tx *bolt.Tx) {
	if fl == nil {
		return
	}
	mark := tx.Size()
	if fl.zeroed >= mark+fillLow {
		return
	}
	fi, err := fl.f.Stat()
	if err != nil {
		return
	}
	from, to := max(fl.zeroed, mark), min(mark+fillAhead, fi.Size())
	if from >= to {
		// The file ends at the mark or within fillLow of it: bbolt
		// grows it at a commit, and the next batch fills the new room.
		return
	}
	if fl.zeros == nil {
		fl.zeros = make([]byte, fillAhead)
	}
	if _, err := fl.f.WriteAt(fl.zeros[:to-from], from); err != nil {
		return
	}
	fl.zeroed = to
}

func (fl *filler) close() {
	if fl != nil {
		fl.f.Close()
	}
}
