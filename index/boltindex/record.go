package boltindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// Records. A "latest" value is a summary of a key's newest version; a
// "versions" value is a version's record: its summary and where its
// manifest envelope is. Two encodings of each are read, told apart by bit
// 7 of the first byte (the flags), and only the compact one is written:
//
// Compact (since index format 4; flags has bit 7 set):
//
//	latest:   flags || id || BE64(created) || uvarint(size) || etag || str(label)
//	versions: flags || uvarint(size) || etag || str(label) || uvarint(n)
//
// where etag is manifest.AppendETag's form (16 bytes for an MD5 ETag) and
// str is a uvarint length and the bytes. A version record leaves out the
// id and creation time, which its key holds, and its envelope is the value
// of BE64(n) in the vault's "envelopes" bucket (n = 0: no envelope).
// Envelopes get increasing numbers as they are written, so that bucket
// fills its pages instead of splitting them half empty as keys inserted
// between others do: at 10,000 small objects it holds an envelope in
// about 380 bytes, where an envelope inside its record took about 600.
//
// Full (index format 3; bit 7 clear), both values:
//
//	flags || id || BE64(created) || uvarint(size) || uvarint(len etag) ||
//	etag || uvarint(len label) || label [|| uvarint(len envelope) || envelope]
//
// An index of format 3 is upgraded to format 4 when it is opened, with no
// rewriting: its records are rewritten compact when their version is next
// written, or by MigrateRecords in the background.

// Flags of a record's first byte.
const (
	flagDeleteMarker = 1 << 0
	flagCompact      = 1 << 7
	flagsKnown       = flagDeleteMarker | flagCompact
)

// encodeSummary returns a "latest" value.
func encodeSummary(v index.Version) []byte {
	b := make([]byte, 0, 1+16+8+10+18+1+len(v.Label))
	b = append(b, recordFlags(v))
	b = append(b, v.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(v.Created))
	return appendSummaryTail(b, v)
}

// encodeRecord returns a "versions" value whose envelope is number n.
func encodeRecord(v index.Version, n uint64) []byte {
	b := make([]byte, 0, 1+10+18+1+len(v.Label)+10)
	b = append(b, recordFlags(v))
	b = appendSummaryTail(b, v)
	return binary.AppendUvarint(b, n)
}

func envKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// putRecord writes v's record under vk, its envelope apart, and removes
// the envelope of the record it replaces. A record that already holds
// exactly v (its bytes and its envelope's) is left as it is, and
// putRecord reports that: a rebuild rewrites every version, nearly all
// unchanged, and a rewritten envelope goes to the end of its bucket while
// the page it leaves is freed only once every envelope on it has gone,
// which grew the file by a third ("The index after a rebuild",
// docs/design.md).
func (b buckets) putRecord(vk []byte, v index.Version) (unchanged bool, err error) {
	old := b.versions.Get(vk)
	if old != nil && b.holds(vk, old, v) {
		return true, nil
	}
	if err := b.deleteEnvelope(vk, old); err != nil {
		return false, err
	}
	var n uint64
	if len(v.Envelope) > 0 {
		if n, err = b.env.NextSequence(); err != nil {
			return false, err
		}
		if err := b.env.Put(envKey(n), v.Envelope); err != nil {
			return false, err
		}
	}
	return false, b.versions.Put(vk, encodeRecord(v, n))
}

// holds reports whether the record old under vk is v's, compact, with v's
// envelope.
func (b buckets) holds(vk, old []byte, v index.Version) bool {
	if !isCompact(old) || b.env == nil {
		return false
	}
	_, n, err := decodeRecord(vk, old, false)
	if err != nil || (n == 0) != (len(v.Envelope) == 0) {
		return false
	}
	if n != 0 && !bytes.Equal(b.env.Get(envKey(n)), v.Envelope) {
		return false
	}
	return bytes.Equal(old, encodeRecord(v, n))
}

// deleteRecord removes the record under vk and its envelope.
func (b buckets) deleteRecord(vk []byte) error {
	if err := b.deleteEnvelope(vk, b.versions.Get(vk)); err != nil {
		return err
	}
	return b.versions.Delete(vk)
}

// deleteEnvelope removes the envelope of old, the compact record under vk,
// if any. A record that does not decode is being replaced or removed: its
// envelope, if it has one, stays behind, unreferenced, rather than that
// failing the write.
func (b buckets) deleteEnvelope(vk, old []byte) error {
	if !isCompact(old) || b.env == nil {
		return nil
	}
	_, n, err := decodeRecord(vk, old, false)
	if err != nil || n == 0 {
		return nil
	}
	return b.env.Delete(envKey(n))
}

// record decodes the "versions" value rec under vk; withEnvelope also
// fetches the envelope.
func (b buckets) record(vk, rec []byte, withEnvelope bool) (index.Version, error) {
	v, n, err := decodeRecord(vk, rec, withEnvelope)
	if err != nil || !withEnvelope || !isCompact(rec) || n == 0 {
		return v, err
	}
	var env []byte
	if b.env != nil {
		env = b.env.Get(envKey(n))
	}
	if env == nil {
		return v, corrupt(fmt.Sprintf("envelope %d of version %s missing", n, v.ID))
	}
	v.Envelope = bytes.Clone(env)
	return v, nil
}

func recordFlags(v index.Version) byte {
	f := byte(flagCompact)
	if v.DeleteMarker {
		f |= flagDeleteMarker
	}
	return f
}

func appendSummaryTail(b []byte, v index.Version) []byte {
	b = binary.AppendUvarint(b, uint64(v.Size))
	b = manifest.AppendETag(b, v.ETag)
	b = binary.AppendUvarint(b, uint64(len(v.Label)))
	return append(b, v.Label...)
}

// isCompact reports whether a value is in the compact encoding.
func isCompact(val []byte) bool { return len(val) > 0 && val[0]&flagCompact != 0 }

func corrupt(what string) error {
	return fmt.Errorf("index record corrupt: %s; rebuild the index", what)
}

// decodeSummary reads a "latest" value of either encoding.
func decodeSummary(b []byte) (index.Version, error) {
	var v index.Version
	err := readSummary(&v, b, nil)
	return v, err
}

// readSummary decodes a "latest" value of either encoding into v, its
// label interned by d (nil: a string of its own).
func readSummary(v *index.Version, b []byte, d *listDecoder) error {
	if !isCompact(b) {
		return decodeFull(v, b, false, d)
	}
	if len(b) < 1+16+8 {
		return corrupt("short record")
	}
	if b[0]&^flagsKnown != 0 {
		return corrupt("unknown flags")
	}
	v.DeleteMarker = b[0]&flagDeleteMarker != 0
	copy(v.ID[:], b[1:17])
	v.Created = int64(binary.BigEndian.Uint64(b[17:25]))
	rest, err := readSummaryTail(v, b[25:], d)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return corrupt("trailing bytes")
	}
	return nil
}

// summaryID is the version id of a "latest" value, which it checks as
// decodeSummary does (failing exactly where that fails) without building
// the summary's strings: what a version listing needs of each key's latest.
func summaryID(b []byte) (manifest.ID, error) {
	if !isCompact(b) {
		v, err := decodeSummary(b)
		return v.ID, err
	}
	var id manifest.ID
	if len(b) < 1+16+8 {
		return id, corrupt("short record")
	}
	if b[0]&^flagsKnown != 0 {
		return id, corrupt("unknown flags")
	}
	copy(id[:], b[1:17])
	b = b[25:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > math.MaxInt64 {
		return id, corrupt("size")
	}
	b, err := manifest.SkipETag(b[n:])
	if err != nil {
		return id, corrupt("etag")
	}
	ll, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < ll {
		return id, corrupt("label")
	}
	if len(b) > n+int(ll) {
		return id, corrupt("trailing bytes")
	}
	return id, nil
}

// decodeRecord reads a "versions" value of either encoding stored under
// key k. It returns the number of a compact record's envelope (which
// buckets.record fetches); withEnvelope copies out a full record's.
func decodeRecord(k, b []byte, withEnvelope bool) (index.Version, uint64, error) {
	var v index.Version
	n, err := readRecord(&v, k, b, withEnvelope, nil)
	return v, n, err
}

// readRecord is decodeRecord into v, its label interned by d (nil: a
// string of its own). It leaves v.Key alone.
func readRecord(v *index.Version, k, b []byte, withEnvelope bool, d *listDecoder) (uint64, error) {
	if !isCompact(b) {
		return 0, decodeFull(v, b, withEnvelope, d)
	}
	_, created, id, ok := versionKeyParts(k)
	if !ok {
		return 0, corrupt("version key")
	}
	if b[0]&^flagsKnown != 0 {
		return 0, corrupt("unknown flags")
	}
	v.ID, v.Created = id, created
	v.DeleteMarker = b[0]&flagDeleteMarker != 0
	rest, err := readSummaryTail(v, b[1:], d)
	if err != nil {
		return 0, err
	}
	n, l := binary.Uvarint(rest)
	if l <= 0 || l != len(rest) {
		return 0, corrupt("envelope number")
	}
	return n, nil
}

func readSummaryTail(v *index.Version, b []byte, d *listDecoder) ([]byte, error) {
	size, n := binary.Uvarint(b)
	if n <= 0 || size > math.MaxInt64 {
		return nil, corrupt("size")
	}
	v.Size = int64(size)
	if d != nil && d.key != nil {
		// The key and the ETag in one string.
		var err error
		d.buf = append(d.buf[:0], d.key...)
		if d.buf, b, err = manifest.AppendETagText(d.buf, b[n:]); err != nil {
			return nil, corrupt("etag")
		}
		s := string(d.buf)
		v.Key, v.ETag = s[:len(d.key)], s[len(d.key):]
	} else {
		etag, rest, err := manifest.ReadETag(b[n:])
		if err != nil {
			return nil, corrupt("etag")
		}
		v.ETag, b = etag, rest
	}
	ll, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < ll {
		return nil, corrupt("label")
	}
	v.Label = d.label(b[n : n+int(ll)])
	return b[n+int(ll):], nil
}

// decodeFull reads a value in the full encoding of index format 3 into v.
func decodeFull(v *index.Version, b []byte, withEnvelope bool, d *listDecoder) error {
	if len(b) < 1+16+8 {
		return corrupt("short record")
	}
	if b[0]&^flagDeleteMarker != 0 {
		return corrupt("unknown flags")
	}
	v.DeleteMarker = b[0]&flagDeleteMarker != 0
	copy(v.ID[:], b[1:17])
	v.Created = int64(binary.BigEndian.Uint64(b[17:25]))
	b = b[25:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > math.MaxInt64 {
		return corrupt("size")
	}
	v.Size = int64(size)
	b = b[n:]
	el, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < el {
		return corrupt("etag")
	}
	v.ETag = string(b[n : n+int(el)])
	b = b[n+int(el):]
	ll, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < ll {
		return corrupt("label")
	}
	v.Label = d.label(b[n : n+int(ll)])
	b = b[n+int(ll):]
	if withEnvelope {
		envLen, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) != envLen {
			return corrupt("envelope")
		}
		v.Envelope = bytes.Clone(b[n:])
	}
	return nil
}

// listDecoder holds what a listing's decoding shares between records: a
// vault's versions carry few distinct labels, so the strings of the last
// few are kept and handed out again instead of a new one a record. When
// key is set, a compact record's ETag is built in one string with that
// key, and v.Key set to it: one allocation for both (buf is the bytes
// they are built in).
type listDecoder struct {
	labels [4]string
	next   int
	key    []byte
	buf    []byte
}

// label returns b as a string: one of d's when it holds an equal one, a
// new one otherwise (and always when d is nil).
func (d *listDecoder) label(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if d == nil {
		return string(b)
	}
	for _, s := range d.labels {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	d.labels[d.next] = s
	d.next = (d.next + 1) % len(d.labels)
	return s
}
