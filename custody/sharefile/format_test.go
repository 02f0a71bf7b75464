package sharefile

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/custody/shamir"
)

var update = flag.Bool("update", false, "rewrite the share files under testdata")

// TestHeaderLayout reads sealed files by hand, following the package
// documentation byte by byte.
func TestHeaderLayout(t *testing.T) {
	set, encoded := shares(t)
	pub, _ := generateKey(t)
	hdr := Header{Node: "node-1", Custodian: "alice"}
	common := func(t *testing.T, b []byte, method byte) []byte {
		t.Helper()
		want := []byte("EMBSHARE\x01")
		want = append(want, method, 6)
		want = append(want, "node-1"...)
		want = append(want, 5)
		want = append(want, "alice"...)
		want = append(want, set.ID[:]...)
		want = append(want, 3, 5, 2) // threshold, total, index
		if !bytes.HasPrefix(b, want) {
			t.Fatalf("file starts\n%x\nwant\n%x", b[:len(want)], want)
		}
		return b[len(want):]
	}

	t.Run("passphrase", func(t *testing.T) {
		file, err := Seal(encoded[1], hdr, passphraseRecipient(t, testPassphrase))
		if err != nil {
			t.Fatal(err)
		}
		rest := common(t, file, 0x01)
		if got := binary.BigEndian.Uint32(rest[0:4]); got != testParams.Time {
			t.Errorf("time = %d, want %d", got, testParams.Time)
		}
		if got := binary.BigEndian.Uint32(rest[4:8]); got != testParams.MemoryKiB {
			t.Errorf("memory = %d, want %d", got, testParams.MemoryKiB)
		}
		if rest[8] != testParams.Threads {
			t.Errorf("threads = %d, want %d", rest[8], testParams.Threads)
		}
		salt, nonce, ct := rest[9:25], rest[25:37], rest[37:]
		if len(ct) != len(encoded[1])+16 {
			t.Errorf("ciphertext is %d bytes, want the share's %d plus a 16-byte tag", len(ct), len(encoded[1]))
		}
		// Decrypt by hand with the documented construction.
		h := fileHeader{Header: Header{Argon2: testParams}}
		copy(h.salt[:], salt)
		aead, err := passphraseAEAD([]byte(testPassphrase), h.salt[:], h.Argon2)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := aead.Open(nil, nonce, ct, file[:len(file)-len(ct)])
		if err != nil {
			t.Fatalf("the documented construction does not decrypt: %v", err)
		}
		if !bytes.Equal(pt, encoded[1]) {
			t.Error("decrypted something other than the share")
		}
	})

	t.Run("hybrid", func(t *testing.T) {
		file, err := Seal(encoded[1], hdr, pub)
		if err != nil {
			t.Fatal(err)
		}
		rest := common(t, file, 0x02)
		if got := hex.EncodeToString(rest[:6]); got != "647a00010002" {
			t.Errorf("HPKE suite = %s, want 647a 0001 0002", got)
		}
		fp := pub.Fingerprint()
		if !bytes.Equal(rest[6:38], fp[:]) {
			t.Error("the fingerprint field is not the recipient's")
		}
		if ct := rest[38+1120:]; len(ct) != len(encoded[1])+16 {
			t.Errorf("ciphertext is %d bytes, want the share's %d plus a 16-byte tag", len(ct), len(encoded[1]))
		}
		info := []byte("embassy custodian share v1\x00\x06node-1\x05alice")
		info = append(info, set.ID[:]...)
		if got := hybridInfo(&Header{Node: "node-1", Custodian: "alice", SetID: set.ID}); !bytes.Equal(got, info) {
			t.Errorf("HPKE info = %q, want %q", got, info)
		}
	})
}

// The files under testdata were sealed by an earlier build. Opening them
// proves that files already in custodians' hands still open.
const (
	goldenPassphrase = "golden custodian passphrase"
	goldenSecret     = "embassy golden test root key 32b"
)

func TestGoldenFiles(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	priv, err := ParseHybridIdentity(read("custodian.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseHybridRecipient(read("custodian.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Recipient().Equal(pub) {
		t.Fatal("testdata/custodian.key and custodian.pub are not a pair")
	}
	pass := passphraseIdentity(t, goldenPassphrase)
	decrypted, err := DecryptHybridIdentity(read("custodian.key.enc"), pass)
	if err != nil {
		t.Fatal(err)
	}
	if !decrypted.Recipient().Equal(pub) {
		t.Fatal("testdata/custodian.key.enc holds another key than custodian.key")
	}
	var got []shamir.SetShare
	for _, f := range []struct {
		name   string
		id     Identity
		method Method
	}{
		{"alice.share", pass, MethodPassphrase},
		{"bob.share", priv, MethodHybrid},
	} {
		hdr, share, err := Open(read(f.name), f.id)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if hdr.Node != "golden-node" || hdr.Method != f.method || hdr.Threshold != 2 || hdr.Total != 3 {
			t.Errorf("%s: header %v", f.name, hdr)
		}
		s, err := shamir.ParseSetShare(share)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	secret, err := shamir.CombineSet(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(secret) != goldenSecret {
		t.Errorf("golden shares recover %q, want %q", secret, goldenSecret)
	}
}

func writeGolden(t *testing.T) {
	_, ss, err := shamir.SplitSet([]byte(goldenSecret), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := generateKey(t)
	r, err := NewPassphraseRecipient([]byte(goldenPassphrase), testParams)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range []struct {
		name, custodian string
		to              Recipient
	}{
		{"alice.share", "Alice", r},
		{"bob.share", "Bob", pub},
	} {
		enc, err := ss[i].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		file, err := Seal(enc, Header{Node: "golden-node", Custodian: f.custodian}, f.to)
		if err != nil {
			t.Fatal(err)
		}
		text, err := Armor(file)
		if err != nil {
			t.Fatal(err)
		}
		write(f.name, text)
	}
	pubText, _ := pub.MarshalText()
	write("custodian.pub", pubText)
	keyFile, err := priv.PrivateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	write("custodian.key", []byte(strings.Replace(string(keyFile), "Embassy custodian private key.", "Embassy custodian private key, FOR TESTS ONLY.", 1)))
	encKeyFile, err := priv.EncryptedPrivateKeyFile(r)
	if err != nil {
		t.Fatal(err)
	}
	write("custodian.key.enc", encKeyFile)
}
