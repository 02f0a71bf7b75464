package sharefile

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/embassy-dev/embassy/custody/shamir"
)

// Errors of Open. Each is wrapped with details; test for them with errors.Is.
var (
	// ErrDecrypt means the share did not decrypt: the passphrase is wrong,
	// or the file was altered after it was sealed. Check the passphrase;
	// if it is right, the file is damaged and the custodian needs another
	// copy.
	ErrDecrypt = errors.New("cannot decrypt the share")

	// ErrWrongKey means the file is sealed to another custodian key than
	// the one given. Use the private key whose fingerprint the file names.
	ErrWrongKey = errors.New("sealed to another custodian key")

	// ErrWrongMethod means the identity is of the wrong kind: a passphrase
	// for a file sealed to a key, or a key for a passphrase file.
	ErrWrongMethod = errors.New("wrong kind of identity")

	// ErrAltered means the file's header holds what no file of its
	// version can hold, or names another key than the one the share
	// inside is sealed to: it was changed (or damaged) after it was
	// written. The custodian needs another copy.
	ErrAltered = errors.New("the file was altered")

	// ErrCostTooHigh means the file asks for more Argon2id memory or time
	// than this package allows (MaxArgon2MemoryKiB, MaxArgon2Time). Such a
	// file was not written by this package; do not open it.
	ErrCostTooHigh = errors.New("key derivation cost too high")
)

// A Recipient is someone a share can be sealed to: a *PassphraseRecipient
// or a *HybridRecipient.
type Recipient interface {
	method() Method
}

// An Identity opens share files: a *PassphraseIdentity or a
// *HybridIdentity.
type Identity interface {
	method() Method
}

// Seal encrypts share, an encoded shamir.SetShare, to one custodian and
// returns the binary share file; Armor turns it into text.
//
// From hdr Seal reads Node and Custodian. SetID, Threshold, Total and Index
// are taken from the share; when hdr sets them (non-zero), they must agree
// with it. Method, Argon2 and Recipient are set from to.
func Seal(share []byte, hdr Header, to Recipient) ([]byte, error) {
	if to == nil {
		return nil, errors.New("seal share: no recipient given")
	}
	s, err := shamir.ParseSetShare(share)
	if err != nil {
		return nil, fmt.Errorf("seal share: %w", err)
	}
	fromShare := Header{SetID: s.Set.ID, Threshold: s.Set.Threshold, Total: s.Set.Total, Index: int(s.Share.X)}
	clear(s.Share.Y)
	if err := agree(&hdr, fromShare); err != nil {
		return nil, fmt.Errorf("seal share: %w", err)
	}
	h := fileHeader{Header: hdr}
	h.Method = to.method()
	h.Argon2 = Argon2Params{}
	h.Recipient = Fingerprint{}

	var sealed []byte
	switch to := to.(type) {
	case *PassphraseRecipient:
		if to == nil || to.passphrase == nil {
			return nil, errors.New("seal share: passphrase recipient not made by NewPassphraseRecipient")
		}
		h.Argon2 = to.params
		rand.Read(h.salt[:])
		rand.Read(h.nonce[:])
		hb, err := h.marshal()
		if err != nil {
			return nil, fmt.Errorf("seal share: %w", err)
		}
		aead, err := passphraseAEAD(to.passphrase, h.salt[:], h.Argon2)
		if err != nil {
			return nil, fmt.Errorf("seal share: %w", err)
		}
		sealed = append(hb, aead.Seal(nil, h.nonce[:], share, hb)...)
	case *HybridRecipient:
		if to == nil || to.pk == nil {
			return nil, errors.New("seal share: custodian key not made by GenerateKey or ParseHybridRecipient")
		}
		h.Recipient = to.fp
		enc, sender, err := hpke.NewSender(to.pk, hybridKDF, hybridAEAD, hybridInfo(&h.Header))
		if err != nil {
			return nil, fmt.Errorf("seal share: %w", err)
		}
		copy(h.enc[:], enc)
		hb, err := h.marshal()
		if err != nil {
			return nil, fmt.Errorf("seal share: %w", err)
		}
		ct, err := sender.Seal(hb, share)
		if err != nil {
			return nil, fmt.Errorf("seal share: %w", err)
		}
		sealed = append(hb, ct...)
	default:
		return nil, fmt.Errorf("seal share: unsupported recipient %T", to)
	}
	return sealed, nil
}

// agree fills the zero share fields of hdr from want and reports the
// non-zero ones that differ.
func agree(hdr *Header, want Header) error {
	if hdr.SetID == (shamir.SetID{}) {
		hdr.SetID = want.SetID
	} else if hdr.SetID != want.SetID {
		return fmt.Errorf("header names share set %s but the share belongs to %s", hdr.SetID, want.SetID)
	}
	for _, f := range []struct {
		name      string
		got, want *int
	}{
		{"threshold", &hdr.Threshold, &want.Threshold},
		{"total", &hdr.Total, &want.Total},
		{"index", &hdr.Index, &want.Index},
	} {
		if *f.got == 0 {
			*f.got = *f.want
		} else if *f.got != *f.want {
			return fmt.Errorf("header says %s %d but the share's is %d", f.name, *f.got, *f.want)
		}
	}
	return nil
}

// binaryFile returns the binary share file in data, which is either that
// or its armoured form.
func binaryFile(data []byte) ([]byte, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, more than the %d allowed", len(data), MaxFileSize)
	}
	if bytes.HasPrefix(data, []byte(magic)) {
		return data, nil
	}
	if isArmored(shareLabel, data) {
		return dearmor(shareLabel, data)
	}
	return nil, errors.New("not a custodian share file: neither binary (starting " + magic + ") nor armoured (-----BEGIN " + shareLabel + "-----)")
}

// ParseHeader reads the plain header of a share file, binary or armoured,
// without decrypting anything. The header is not authenticated until Open
// succeeds: show it to people, but decide nothing on it alone.
func ParseHeader(file []byte) (Header, error) {
	b, err := binaryFile(file)
	if err != nil {
		return Header{}, fmt.Errorf("read share file: %w", err)
	}
	h, n, err := parseHeader(b)
	if err != nil {
		return Header{}, fmt.Errorf("read share file header: %w", err)
	}
	if err := checkCiphertextLen(len(b) - n); err != nil {
		return Header{}, fmt.Errorf("read share file: %w", err)
	}
	return h.Header, nil
}

func checkCiphertextLen(n int) error {
	if n < minCiphertext || n > maxCiphertext {
		return fmt.Errorf("the encrypted share is %d bytes; it must be %d to %d", n, minCiphertext, maxCiphertext)
	}
	return nil
}

// Open decrypts a share file, binary or armoured, with the custodian's
// identity and returns its authenticated header and the encoded
// shamir.SetShare it holds. The share is secret: wipe it when done.
func Open(file []byte, id Identity) (Header, []byte, error) {
	b, err := binaryFile(file)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open share file: %w", err)
	}
	h, n, err := parseHeader(b)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open share file: header: %w", err)
	}
	hb, ct := b[:n], b[n:]
	if err := checkCiphertextLen(len(ct)); err != nil {
		return Header{}, nil, fmt.Errorf("open share file: %w", err)
	}
	if id == nil {
		return Header{}, nil, errors.New("open share file: no identity given")
	}
	if id.method() != h.Method {
		return Header{}, nil, fmt.Errorf("open share file: %w: the file is sealed to %s, but a %s was given",
			ErrWrongMethod, h.sealedTo(), identityKind(id))
	}
	var share []byte
	switch id := id.(type) {
	case *PassphraseIdentity:
		if id == nil || id.passphrase == nil {
			return Header{}, nil, errors.New("open share file: passphrase identity not made by NewPassphraseIdentity")
		}
		if err := h.Argon2.checkCost(); err != nil {
			return Header{}, nil, fmt.Errorf("open share file: %w", err)
		}
		aead, err := passphraseAEAD(id.passphrase, h.salt[:], h.Argon2)
		if err != nil {
			return Header{}, nil, fmt.Errorf("open share file: %w", err)
		}
		share, err = aead.Open(nil, h.nonce[:], ct, hb)
		if err != nil {
			return Header{}, nil, fmt.Errorf("open share file: %w: the passphrase is wrong, or the file was altered", ErrDecrypt)
		}
	case *HybridIdentity:
		if id == nil || id.sk == nil {
			return Header{}, nil, errors.New("open share file: custodian private key not made by GenerateKey or ParseHybridIdentity")
		}
		if h.Recipient != id.pub.fp {
			if sealedToAnyway(h, ct, id) {
				return Header{}, nil, fmt.Errorf("open share file: %w: its header names the key %s, but the share inside is sealed to this key (%s)", ErrAltered, h.Recipient, id.pub.fp)
			}
			return Header{}, nil, fmt.Errorf("open share file: %w: the file is for %s, this key is %s", ErrWrongKey, h.Recipient, id.pub.fp)
		}
		r, err := hpke.NewRecipient(h.enc[:], id.sk, hybridKDF, hybridAEAD, hybridInfo(&h.Header))
		if err != nil {
			return Header{}, nil, fmt.Errorf("open share file: %w: the encapsulated key is invalid: %v", ErrDecrypt, err)
		}
		share, err = r.Open(hb, ct)
		if err != nil {
			return Header{}, nil, fmt.Errorf("open share file: %w: the file was altered", ErrDecrypt)
		}
	default:
		return Header{}, nil, fmt.Errorf("open share file: unsupported identity %T", id)
	}
	if err := checkShare(share, h.Header); err != nil {
		clear(share)
		return Header{}, nil, fmt.Errorf("open share file: %w", err)
	}
	return h.Header, share, nil
}

// sealedToAnyway reports whether the share in a file whose header names
// another recipient opens with id once the header names id: whether only
// the recipient fingerprint was changed.
func sealedToAnyway(h fileHeader, ct []byte, id *HybridIdentity) bool {
	h.Recipient = id.pub.fp
	hb, err := h.marshal()
	if err != nil {
		return false
	}
	r, err := hpke.NewRecipient(h.enc[:], id.sk, hybridKDF, hybridAEAD, hybridInfo(&h.Header))
	if err != nil {
		return false
	}
	share, err := r.Open(hb, ct)
	clear(share)
	return err == nil
}

// checkShare checks that a decrypted share is one the header describes.
// Only a faulty sealer could make a file that fails this: the header is
// authenticated.
func checkShare(share []byte, h Header) error {
	s, err := shamir.ParseSetShare(share)
	if err != nil {
		return fmt.Errorf("decrypted share: %w", err)
	}
	defer clear(s.Share.Y)
	got := Header{SetID: s.Set.ID, Threshold: s.Set.Threshold, Total: s.Set.Total, Index: int(s.Share.X)}
	want := Header{SetID: h.SetID, Threshold: h.Threshold, Total: h.Total, Index: h.Index}
	if got != want {
		return fmt.Errorf("decrypted share is share %d of %d (%d needed) of set %s, but the header says share %d of %d (%d needed) of set %s",
			got.Index, got.Total, got.Threshold, got.SetID, want.Index, want.Total, want.Threshold, want.SetID)
	}
	return nil
}

func identityKind(id Identity) string {
	switch id.(type) {
	case *PassphraseIdentity:
		return "passphrase"
	case *HybridIdentity:
		return "custodian private key"
	}
	return fmt.Sprintf("%T", id)
}

// Armor returns a share file as text that can be printed or mailed: a few
// lines summarising the header for people, then the file in base64 between
// "-----BEGIN EMBASSY CUSTODIAN SHARE-----" and
// "-----END EMBASSY CUSTODIAN SHARE-----". Open and ParseHeader read only
// the block; the summary is not authenticated.
func Armor(file []byte) ([]byte, error) {
	if !bytes.HasPrefix(file, []byte(magic)) {
		return nil, errors.New("armor share file: not a binary share file")
	}
	h, err := ParseHeader(file)
	if err != nil {
		return nil, fmt.Errorf("armor %w", err)
	}
	return armor(shareLabel, []string{
		"Embassy custodian share (this summary is not authenticated; the block is)",
		"Node:      " + h.Node,
		"Custodian: " + h.Custodian,
		fmt.Sprintf("Share:     %d of %d; any %d recover the node's key", h.Index, h.Total, h.Threshold),
		"Share set: " + h.SetID.String(),
		"Sealed to: " + h.sealedTo(),
	}, file), nil
}

// Dearmor returns the binary form of a share file given in either form.
func Dearmor(file []byte) ([]byte, error) {
	b, err := binaryFile(file)
	if err != nil {
		return nil, fmt.Errorf("dearmor share file: %w", err)
	}
	return b, nil
}
