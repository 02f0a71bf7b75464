package housekeeping

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"

	"github.com/embassy-dev/embassy/manifest"
)

// stateFile is VerifyLog's replayed log: every version's state in a
// temporary on-disk hash table, read and written a slot at a time, so the
// heap it takes does not depend on how many versions there are.
//
// It replaced a bbolt file (until 2026-12-05), whose heap grew with the
// log: each transaction of random 16-byte keys holds a node and a page
// buffer for every leaf and branch page it touches, more of them as the
// tree grows (205 pages a transaction of 256 keys at 32,768 versions, 391
// at a million), and bbolt's freelist keeps an entry for every page it
// ever handed out again (internal/freelist's allocs map), so, at last,
// one for nearly every page of the file. Replaying a million versions
// took 7.4 MiB of live heap that way, against 3.7 MiB at 32,768.
//
// The table is open addressing with linear probing over slots of
// slotSize bytes, hashed with a random seed (IDs come from the sites too,
// which must not be able to pick colliding ones); it doubles when half
// full. Names (vault and key) go to a second, append-only file.
type stateFile struct {
	dir          string
	slots, names *os.File
	cap, used    uint64 // slots, and slots in use; cap is a power of two
	namesEnd     int64
	seed         maphash.Seed
	buf          [slotSize]byte
}

// A slot: the ID, a byte set when used, the flags, the vault's and the
// key's lengths, the revisions, and where the name is in the names file.
const (
	slotSize    = 48
	slotUsed    = 16
	slotFlags   = 17
	slotVLen    = 18 // uint16
	slotKLen    = 20 // uint32
	slotSiteRev = 24 // uint64
	slotIdxRev  = 32 // uint64
	slotNameOff = 40 // uint64

	minSlots = 1 << 12
)

func openStateFile(dir string) (*stateFile, error) {
	s := &stateFile{dir: dir, seed: maphash.MakeSeed()}
	var err error
	if s.slots, err = newTemp(dir, minSlots*slotSize); err != nil {
		return nil, err
	}
	if s.names, err = newTemp(dir, 0); err != nil {
		s.slots.Close()
		return nil, err
	}
	s.cap = minSlots
	return s, nil
}

// newTemp makes a temporary file of size zero bytes in dir, already
// removed: it goes when closed (or when the process ends).
func newTemp(dir string, size int64) (*os.File, error) {
	f, err := os.CreateTemp(dir, "audit-verify-*.tmp")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (s *stateFile) close() {
	s.slots.Close()
	s.names.Close()
}

// find returns the slot holding id, or the free slot where it goes
// (found false).
func (s *stateFile) find(id manifest.ID) (slot uint64, found bool, err error) {
	i := maphash.Bytes(s.seed, id[:]) & (s.cap - 1)
	for range s.cap {
		if _, err := s.slots.ReadAt(s.buf[:], int64(i)*slotSize); err != nil {
			return 0, false, fmt.Errorf("state file: %w", err)
		}
		if s.buf[slotUsed] == 0 {
			return i, false, nil
		}
		if manifest.ID(s.buf[:16]) == id {
			return i, true, nil
		}
		i = (i + 1) & (s.cap - 1)
	}
	return 0, false, errors.New("state file: full")
}

// decode reads the state in s.buf (the name from the names file).
func (s *stateFile) decode() (versionState, error) {
	b := s.buf[:]
	st := versionState{
		flags:    b[slotFlags],
		siteRev:  int(binary.LittleEndian.Uint64(b[slotSiteRev:])),
		indexRev: int(binary.LittleEndian.Uint64(b[slotIdxRev:])),
	}
	vl, kl := int(binary.LittleEndian.Uint16(b[slotVLen:])), int(binary.LittleEndian.Uint32(b[slotKLen:]))
	if vl+kl > 0 {
		name := make([]byte, vl+kl)
		if _, err := s.names.ReadAt(name, int64(binary.LittleEndian.Uint64(b[slotNameOff:]))); err != nil {
			return st, fmt.Errorf("state file: %w", err)
		}
		st.vault, st.key = string(name[:vl]), string(name[vl:])
	}
	return st, nil
}

// encode puts id's state st into s.buf; old is the state the slot held
// (its name is written again only if it changed).
func (s *stateFile) encode(id manifest.ID, st, old versionState) error {
	if len(st.vault) > 1<<16-1 || len(st.key) > 1<<32-1 {
		return fmt.Errorf("state file: name of version %s too long", id)
	}
	b := s.buf[:]
	nameOff := binary.LittleEndian.Uint64(b[slotNameOff:])
	if st.vault != old.vault || st.key != old.key {
		nameOff = uint64(s.namesEnd)
		name := append([]byte(st.vault), st.key...)
		if _, err := s.names.WriteAt(name, s.namesEnd); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		s.namesEnd += int64(len(name))
	}
	clear(b)
	copy(b, id[:])
	b[slotUsed] = 1
	b[slotFlags] = st.flags
	binary.LittleEndian.PutUint16(b[slotVLen:], uint16(len(st.vault)))
	binary.LittleEndian.PutUint32(b[slotKLen:], uint32(len(st.key)))
	binary.LittleEndian.PutUint64(b[slotSiteRev:], uint64(st.siteRev))
	binary.LittleEndian.PutUint64(b[slotIdxRev:], uint64(st.indexRev))
	binary.LittleEndian.PutUint64(b[slotNameOff:], nameOff)
	return nil
}

// update applies fn to the states of ids.
func (s *stateFile) update(ids []manifest.ID, fn func(i int, st *versionState)) error {
	for i, id := range ids {
		slot, found, err := s.find(id)
		if err != nil {
			return err
		}
		var old versionState
		if found {
			if old, err = s.decode(); err != nil {
				return err
			}
		} else {
			clear(s.buf[:])
		}
		st := old
		fn(i, &st)
		if err := s.encode(id, st, old); err != nil {
			return err
		}
		if _, err := s.slots.WriteAt(s.buf[:], int64(slot)*slotSize); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		if !found {
			s.used++
			if s.used > s.cap/2 {
				if err := s.grow(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *stateFile) get(id manifest.ID) (versionState, bool, error) {
	_, found, err := s.find(id)
	if err != nil || !found {
		return versionState{}, false, err
	}
	st, err := s.decode()
	return st, true, err
}

// grow moves every slot to a table twice the size.
func (s *stateFile) grow() error {
	old, oldCap := s.slots, s.cap
	f, err := newTemp(s.dir, int64(2*oldCap)*slotSize)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	s.slots, s.cap = f, 2*oldCap
	defer old.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(old, 0, int64(oldCap)*slotSize), 64<<10)
	var b [slotSize]byte
	for range oldCap {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		if b[slotUsed] == 0 {
			continue
		}
		slot, found, err := s.find(manifest.ID(b[:16]))
		if err != nil {
			return err
		}
		if found {
			return errors.New("state file: a version twice")
		}
		if _, err := s.slots.WriteAt(b[:], int64(slot)*slotSize); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
	}
	return nil
}

// forEach calls fn for every version's state, in no particular order.
func (s *stateFile) forEach(fn func(id manifest.ID, st versionState) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(s.slots, 0, int64(s.cap)*slotSize), 64<<10)
	for range s.cap {
		if _, err := io.ReadFull(r, s.buf[:]); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		if s.buf[slotUsed] == 0 {
			continue
		}
		st, err := s.decode()
		if err != nil {
			return err
		}
		if err := fn(manifest.ID(s.buf[:16]), st); err != nil {
			return err
		}
	}
	return nil
}
