package shamir

import (
	"encoding/binary"
	"fmt"
)

// The encoding of a SetShare is described, byte by byte, in the package
// documentation.
const (
	encodingVersion = 1
	headerLen       = 54
	// MaxEncodedLen is the longest encoded SetShare.
	MaxEncodedLen = headerLen + MaxSecretLen
)

// MarshalBinary encodes the share in the format described above. It fails
// only if the share could not be decoded again: a set or x out of range, or a
// y of a length no SplitSet makes.
func (s SetShare) MarshalBinary() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("encode share: %w", err)
	}
	b := make([]byte, headerLen, headerLen+len(s.Share.Y))
	b[0] = encodingVersion
	copy(b[1:17], s.Set.ID[:])
	b[17] = byte(s.Set.Threshold)
	b[18] = byte(s.Set.Total)
	copy(b[19:51], s.Set.Commitment[:])
	b[51] = s.Share.X
	binary.BigEndian.PutUint16(b[52:54], uint16(len(s.Share.Y)))
	return append(b, s.Share.Y...), nil
}

// UnmarshalBinary decodes a share encoded by MarshalBinary. It copies what it
// keeps, so b may be reused (and should be wiped) afterwards.
func (s *SetShare) UnmarshalBinary(b []byte) error {
	v, err := ParseSetShare(b)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSetShare decodes a share encoded by MarshalBinary, rejecting anything
// that is not exactly such an encoding.
func ParseSetShare(b []byte) (SetShare, error) {
	if len(b) < headerLen {
		return SetShare{}, fmt.Errorf("decode share: %d bytes is shorter than the %d-byte header", len(b), headerLen)
	}
	if b[0] != encodingVersion {
		return SetShare{}, fmt.Errorf("decode share: unknown version %d (this program reads version %d)", b[0], encodingVersion)
	}
	var s SetShare
	copy(s.Set.ID[:], b[1:17])
	s.Set.Threshold = int(b[17])
	s.Set.Total = int(b[18])
	copy(s.Set.Commitment[:], b[19:51])
	s.Share.X = b[51]
	n := int(binary.BigEndian.Uint16(b[52:54]))
	if len(b) != headerLen+n {
		return SetShare{}, fmt.Errorf("decode share: header says y is %d bytes, but %d follow it", n, len(b)-headerLen)
	}
	s.Share.Y = append([]byte(nil), b[headerLen:]...)
	if err := s.check(); err != nil {
		return SetShare{}, fmt.Errorf("decode share: %w", err)
	}
	return s, nil
}

// check reports whether the share is one that SplitSet could have made.
func (s SetShare) check() error {
	if err := s.Set.check(); err != nil {
		return err
	}
	if s.Share.X == 0 || int(s.Share.X) > s.Set.Total {
		return fmt.Errorf("share %d is outside share set %s, whose shares are numbered 1 to %d", s.Share.X, s.Set.ID, s.Set.Total)
	}
	if n := len(s.Share.Y); n < MinSetSecretLen || n > MaxSecretLen {
		return fmt.Errorf("share %d is %d bytes long; shares of a set are %d to %d", s.Share.X, n, MinSetSecretLen, MaxSecretLen)
	}
	return nil
}
