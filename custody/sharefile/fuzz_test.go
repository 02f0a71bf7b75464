package sharefile

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns sealed files of both methods, binary and armoured, and
// the identities that open them.
func fuzzSeeds(f *testing.F) ([][]byte, *PassphraseIdentity, *HybridIdentity) {
	_, encoded := shares(f)
	pub, priv := generateKey(f)
	r, err := NewPassphraseRecipient([]byte(testPassphrase), Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	var files [][]byte
	for _, to := range []Recipient{r, pub} {
		file, err := Seal(encoded[0], testHeader, to)
		if err != nil {
			f.Fatal(err)
		}
		text, err := Armor(file)
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, file, text)
	}
	for _, name := range []string{"alice.share", "bob.share"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			files = append(files, b)
		}
	}
	id, err := NewPassphraseIdentity([]byte(testPassphrase))
	if err != nil {
		f.Fatal(err)
	}
	return files, id, priv
}

// FuzzParseHeader checks that the header parser never panics, and that
// whatever header it accepts re-encodes to the bytes it was read from.
func FuzzParseHeader(f *testing.F) {
	files, _, _ := fuzzSeeds(f)
	for _, file := range files {
		f.Add(file)
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		hdr, err := ParseHeader(data)
		if err != nil {
			return
		}
		b, err := Dearmor(data)
		if err != nil {
			t.Fatalf("ParseHeader accepted what Dearmor rejects: %v", err)
		}
		h, n, err := parseHeader(b)
		if err != nil {
			t.Fatalf("parseHeader rejects what ParseHeader accepted: %v", err)
		}
		if h.Header != hdr {
			t.Fatalf("ParseHeader and parseHeader disagree:\n%+v\n%+v", hdr, h.Header)
		}
		again, err := h.marshal()
		if err != nil {
			t.Fatalf("a parsed header does not encode: %v", err)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("header re-encodes differently:\n%x\n%x", b[:n], again)
		}
		if hdr.String() == "" || hdr.Method.String() == "" {
			t.Fatal("empty description")
		}
	})
}

// FuzzOpen checks that Open never panics on any input with either kind of
// identity, and that what it opens is consistent with ParseHeader.
func FuzzOpen(f *testing.F) {
	files, pass, priv := fuzzSeeds(f)
	for _, file := range files {
		f.Add(file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := ParseHeader(data); err == nil && h.Method == MethodPassphrase &&
			uint64(h.Argon2.Time)*uint64(h.Argon2.MemoryKiB) > 1024 {
			t.Skip("too costly to derive a key on every input")
		}
		for _, id := range []Identity{pass, priv} {
			hdr, share, err := Open(data, id)
			if err != nil {
				continue
			}
			parsed, err := ParseHeader(data)
			if err != nil {
				t.Fatalf("Open accepted a file ParseHeader rejects: %v", err)
			}
			if parsed != hdr {
				t.Fatalf("Open's header differs from ParseHeader's:\n%+v\n%+v", hdr, parsed)
			}
			if err := checkShare(share, hdr); err != nil {
				t.Fatalf("Open returned a share its header does not describe: %v", err)
			}
		}
	})
}

// FuzzParseKeys checks that the key parsers never panic and that what they
// accept round-trips.
func FuzzParseKeys(f *testing.F) {
	pub, priv := generateKey(f)
	pubText, _ := pub.MarshalText()
	keyFile, err := priv.PrivateKeyFile()
	if err != nil {
		f.Fatal(err)
	}
	cheap := Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1}
	r, err := NewPassphraseRecipient([]byte(testPassphrase), cheap)
	if err != nil {
		f.Fatal(err)
	}
	encKeyFile, err := priv.EncryptedPrivateKeyFile(r)
	if err != nil {
		f.Fatal(err)
	}
	pass, err := NewPassphraseIdentity([]byte(testPassphrase))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pubText)
	f.Add(pub.Bytes())
	f.Add(keyFile)
	f.Add(encKeyFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := dearmor(encryptedKeyLabel, data); err != nil || len(b) < 10 ||
			uint64(binary.BigEndian.Uint32(b[1:5]))*uint64(binary.BigEndian.Uint32(b[5:9])) <= 1024 {
			if id, err := DecryptHybridIdentity(data, pass); err == nil {
				kf, err := id.EncryptedPrivateKeyFile(r)
				if err != nil {
					t.Fatal(err)
				}
				id2, err := DecryptHybridIdentity(kf, pass)
				if err != nil || !id2.Recipient().Equal(id.Recipient()) {
					t.Fatalf("encrypted private key does not round-trip: %v", err)
				}
			}
		}
		if r, err := ParseHybridRecipient(data); err == nil {
			text, _ := r.MarshalText()
			r2, err := ParseHybridRecipient(text)
			if err != nil || !r2.Equal(r) {
				t.Fatalf("public key does not round-trip: %v", err)
			}
		}
		if id, err := ParseHybridIdentity(data); err == nil {
			kf, err := id.PrivateKeyFile()
			if err != nil {
				t.Fatal(err)
			}
			id2, err := ParseHybridIdentity(kf)
			if err != nil || !id2.Recipient().Equal(id.Recipient()) {
				t.Fatalf("private key does not round-trip: %v", err)
			}
		}
	})
}
