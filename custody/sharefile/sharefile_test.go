package sharefile

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/custody/shamir"
)

// testParams keeps Argon2id cheap in tests.
var testParams = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

const testPassphrase = "correct horse battery staple"

var (
	testSetOnce sync.Once
	testSecret  []byte
	testSet     shamir.Set
	testShares  [][]byte
)

// shares returns the encoded shares of a 3-of-5 split of a fixed secret,
// made once per test binary.
func shares(t testing.TB) (shamir.Set, [][]byte) {
	t.Helper()
	testSetOnce.Do(func() {
		testSecret = []byte("0123456789abcdef0123456789abcdef")
		set, ss, err := shamir.SplitSet(testSecret, 5, 3)
		if err != nil {
			panic(err)
		}
		testSet = set
		for _, s := range ss {
			b, err := s.MarshalBinary()
			if err != nil {
				panic(err)
			}
			testShares = append(testShares, b)
		}
	})
	return testSet, testShares
}

func passphraseRecipient(t testing.TB, pass string) *PassphraseRecipient {
	t.Helper()
	r, err := NewPassphraseRecipient([]byte(pass), testParams)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func passphraseIdentity(t testing.TB, pass string) *PassphraseIdentity {
	t.Helper()
	id, err := NewPassphraseIdentity([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func generateKey(t testing.TB) (*HybridRecipient, *HybridIdentity) {
	t.Helper()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

var testHeader = Header{Node: "est-tallinn-1", Custodian: "Tõnu Tamm"}

func TestRoundTrip(t *testing.T) {
	set, encoded := shares(t)
	pub, priv := generateKey(t)
	tests := []struct {
		name       string
		to         Recipient
		id         Identity
		wantMethod Method
	}{
		{"passphrase", passphraseRecipient(t, testPassphrase), passphraseIdentity(t, testPassphrase), MethodPassphrase},
		{"hybrid", pub, priv, MethodHybrid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := Seal(encoded[2], testHeader, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			armored, err := Armor(file)
			if err != nil {
				t.Fatal(err)
			}
			for form, f := range map[string][]byte{"binary": file, "armoured": armored} {
				hdr, share, err := Open(f, tt.id)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				if !bytes.Equal(share, encoded[2]) {
					t.Errorf("%s: opened share differs from the sealed one", form)
				}
				want := Header{
					Node: testHeader.Node, Custodian: testHeader.Custodian,
					SetID: set.ID, Threshold: 3, Total: 5, Index: 3,
					Method: tt.wantMethod,
				}
				if tt.wantMethod == MethodPassphrase {
					want.Argon2 = testParams
				} else {
					want.Recipient = pub.Fingerprint()
				}
				if hdr != want {
					t.Errorf("%s: header\n%+v\nwant\n%+v", form, hdr, want)
				}
				parsed, err := ParseHeader(f)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				if parsed != hdr {
					t.Errorf("%s: ParseHeader\n%+v\ndiffers from Open's\n%+v", form, parsed, hdr)
				}
			}
		})
	}
}

// TestRecoverFromFiles runs the custody story end to end: seal each share
// for its custodian, open three files, combine.
func TestRecoverFromFiles(t *testing.T) {
	_, encoded := shares(t)
	var recovered []shamir.SetShare
	for i, share := range encoded[:3] {
		pass := fmt.Sprintf("custodian %d passphrase", i)
		hdr := Header{Node: "lux-1", Custodian: fmt.Sprintf("custodian %d", i)}
		file, err := Seal(share, hdr, passphraseRecipient(t, pass))
		if err != nil {
			t.Fatal(err)
		}
		_, opened, err := Open(file, passphraseIdentity(t, pass))
		if err != nil {
			t.Fatal(err)
		}
		s, err := shamir.ParseSetShare(opened)
		if err != nil {
			t.Fatal(err)
		}
		recovered = append(recovered, s)
	}
	secret, err := shamir.CombineSet(recovered)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secret, testSecret) {
		t.Error("recovered a wrong secret")
	}
}

func TestOpenFailures(t *testing.T) {
	_, encoded := shares(t)
	pub, priv := generateKey(t)
	_, otherPriv := generateKey(t)
	passFile, err := Seal(encoded[0], testHeader, passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	hybridFile, err := Seal(encoded[0], testHeader, pub)
	if err != nil {
		t.Fatal(err)
	}
	costly := func(p Argon2Params) []byte {
		// A file claiming parameters Seal would refuse to use.
		h, n, err := parseHeader(passFile)
		if err != nil {
			t.Fatal(err)
		}
		h.Argon2 = p
		hb, err := h.marshal()
		if err != nil {
			t.Fatal(err)
		}
		return append(hb, passFile[n:]...)
	}
	tests := []struct {
		name    string
		file    []byte
		id      Identity
		is      error
		wantErr string
	}{
		{"wrong passphrase", passFile, passphraseIdentity(t, "not the passphrase"), ErrDecrypt,
			"cannot decrypt the share: the passphrase is wrong, or the file was altered"},
		{"wrong private key", hybridFile, otherPriv, ErrWrongKey,
			"sealed to another custodian key: the file is for " + pub.Fingerprint().String() + ", this key is " + otherPriv.Recipient().Fingerprint().String()},
		{"key for passphrase file", passFile, priv, ErrWrongMethod,
			"the file is sealed to a passphrase (Argon2id, 64 KiB, 1 passes, 1 threads), but a custodian private key was given"},
		{"passphrase for key file", hybridFile, passphraseIdentity(t, testPassphrase), ErrWrongMethod,
			"the file is sealed to custodian key " + pub.Fingerprint().String() + ", but a passphrase was given"},
		{"too much memory", costly(Argon2Params{Time: 1, MemoryKiB: MaxArgon2MemoryKiB + 1024, Threads: 1}), passphraseIdentity(t, testPassphrase), ErrCostTooHigh,
			"argon2id memory 1025 MiB is more than the 1024 MiB allowed"},
		{"too much time", costly(Argon2Params{Time: MaxArgon2Time + 1, MemoryKiB: 64, Threads: 1}), passphraseIdentity(t, testPassphrase), ErrCostTooHigh,
			"argon2id time 17 is more than the 16 passes allowed"},
		{"truncated ciphertext", passFile[:len(passFile)-1], passphraseIdentity(t, testPassphrase), ErrDecrypt, "cannot decrypt"},
		{"ciphertext too short", passFile[:len(passFile)-60], passphraseIdentity(t, testPassphrase), nil, "the encrypted share is 42 bytes; it must be 86 to 1094"},
		{"empty", nil, passphraseIdentity(t, testPassphrase), nil, "not a custodian share file"},
		{"garbage", []byte("hello"), passphraseIdentity(t, testPassphrase), nil, "not a custodian share file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, share, err := Open(tt.file, tt.id)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if share != nil || hdr != (Header{}) {
				t.Error("Open returned a share or header with its error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want one wrapping %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestTamperEveryByte flips each byte of a sealed file in turn: none of the
// altered files may open.
func TestTamperEveryByte(t *testing.T) {
	_, encoded := shares(t)
	pub, priv := generateKey(t)
	passFile, err := Seal(encoded[1], testHeader, passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	hybridFile, err := Seal(encoded[1], testHeader, pub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file []byte
		id   Identity
	}{
		{"passphrase", passFile, passphraseIdentity(t, testPassphrase)},
		{"hybrid", hybridFile, priv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := parseHeader(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.file {
				f := bytes.Clone(tt.file)
				f[i] ^= 0x01
				if _, _, err := Open(f, tt.id); err == nil {
					part := "header"
					if i >= n {
						part = "ciphertext"
					}
					t.Fatalf("file with byte %d (%s) altered opened", i, part)
				}
			}
		})
	}
}

// TestTamperedHeaderReportsDecrypt checks the error a person sees when a
// header field that still parses was changed: a decryption failure, not a
// wrong share.
func TestTamperedHeaderReportsDecrypt(t *testing.T) {
	_, encoded := shares(t)
	pub, priv := generateKey(t)
	for name, to := range map[string]struct {
		r  Recipient
		id Identity
	}{
		"passphrase": {passphraseRecipient(t, testPassphrase), passphraseIdentity(t, testPassphrase)},
		"hybrid":     {pub, priv},
	} {
		t.Run(name, func(t *testing.T) {
			file, err := Seal(encoded[0], Header{Node: "est-1", Custodian: "alice"}, to.r)
			if err != nil {
				t.Fatal(err)
			}
			f := bytes.Replace(file, []byte("alice"), []byte("alicf"), 1)
			if h, err := ParseHeader(f); err != nil || h.Custodian != "alicf" {
				t.Fatalf("the altered header does not parse: %v", err)
			}
			_, _, err = Open(f, to.id)
			if !errors.Is(err, ErrDecrypt) {
				t.Errorf("err = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestSealRejects(t *testing.T) {
	set, encoded := shares(t)
	r := passphraseRecipient(t, testPassphrase)
	otherSet := set.ID
	otherSet[0] ^= 1
	tests := []struct {
		name    string
		share   []byte
		hdr     Header
		wantErr string
	}{
		{"not a share", []byte("secret"), testHeader, "seal share: decode share: 6 bytes is shorter"},
		{"no node", encoded[0], Header{Custodian: "alice"}, "node id is empty"},
		{"no custodian", encoded[0], Header{Node: "n"}, "custodian name is empty"},
		{"newline in name", encoded[0], Header{Node: "n", Custodian: "alice\nEvil: yes"}, `custodian name "alice\nEvil: yes" contains the unprintable character U+000A`},
		{"bidi override", encoded[0], Header{Node: "n\u202e", Custodian: "alice"}, "unprintable character U+202E"},
		{"padded name", encoded[0], Header{Node: " n", Custodian: "alice"}, "starts or ends with a space"},
		{"long name", encoded[0], Header{Node: strings.Repeat("n", 256), Custodian: "alice"}, "node id is 256 bytes, more than 255"},
		{"bad utf-8", encoded[0], Header{Node: "n\xff", Custodian: "alice"}, "not valid UTF-8"},
		{"other set", encoded[0], Header{Node: "n", Custodian: "a", SetID: otherSet}, "header names share set " + otherSet.String() + " but the share belongs to " + set.ID.String()},
		{"other index", encoded[0], Header{Node: "n", Custodian: "a", Index: 2}, "header says index 2 but the share's is 1"},
		{"other threshold", encoded[0], Header{Node: "n", Custodian: "a", Threshold: 2}, "header says threshold 2 but the share's is 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Seal(tt.share, tt.hdr, r)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	// Matching values are accepted.
	if _, err := Seal(encoded[0], Header{Node: "n", Custodian: "a", SetID: set.ID, Threshold: 3, Total: 5, Index: 1}, r); err != nil {
		t.Errorf("a header agreeing with the share: %v", err)
	}
}

func TestNewPassphraseRecipientRejects(t *testing.T) {
	tests := []struct {
		name    string
		pass    string
		params  Argon2Params
		wantErr string
	}{
		{"short passphrase", "short", testParams, "passphrase is 5 bytes; it must be at least 12"},
		{"zero time", testPassphrase, Argon2Params{Time: 0, MemoryKiB: 64, Threads: 1}, "argon2id time is 0"},
		{"zero threads", testPassphrase, Argon2Params{Time: 1, MemoryKiB: 64, Threads: 0}, "argon2id threads is 0"},
		{"memory below lanes", testPassphrase, Argon2Params{Time: 1, MemoryKiB: 15, Threads: 2}, "memory 15 KiB is less than 8 KiB per thread"},
		{"memory above limit", testPassphrase, Argon2Params{Time: 1, MemoryKiB: 2 << 20, Threads: 1}, "more than the 1024 MiB allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPassphraseRecipient([]byte(tt.pass), tt.params)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	r, err := NewPassphraseRecipient([]byte(testPassphrase), Argon2Params{})
	if err != nil {
		t.Fatal(err)
	}
	if r.params != DefaultArgon2Params {
		t.Errorf("zero params became %v, want the defaults %v", r.params, DefaultArgon2Params)
	}
	if DefaultArgon2Params != (Argon2Params{Time: 3, MemoryKiB: 65536, Threads: 2}) {
		t.Errorf("defaults are %v, want 64 MiB, 3 passes, 2 threads", DefaultArgon2Params)
	}
	if _, err := NewPassphraseIdentity(nil); err == nil {
		t.Error("NewPassphraseIdentity accepted an empty passphrase")
	}
}

// TestPassphraseCopied checks that wiping the caller's passphrase buffer
// does not change what a recipient or identity holds.
func TestPassphraseCopied(t *testing.T) {
	_, encoded := shares(t)
	pass := []byte(testPassphrase)
	r, err := NewPassphraseRecipient(pass, testParams)
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewPassphraseIdentity(pass)
	if err != nil {
		t.Fatal(err)
	}
	clear(pass)
	file, err := Seal(encoded[0], testHeader, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(file, id); err != nil {
		t.Fatal(err)
	}
}

func TestRedaction(t *testing.T) {
	_, priv := generateKey(t)
	keyFile, err := priv.PrivateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	body, err := dearmor(privateKeyLabel, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	seed := body[2:]
	r := passphraseRecipient(t, testPassphrase)
	id := passphraseIdentity(t, testPassphrase)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "priv", priv, "r", r, "id", id)
	var out strings.Builder
	for _, v := range []any{priv, *priv, r, *r, id, *id, []*HybridIdentity{priv}, struct{ K *HybridIdentity }{priv}} {
		fmt.Fprintf(&out, "%v %+v %#v %s\n", v, v, v, v)
	}
	out.WriteString(logged.String())
	s := out.String()
	if strings.Contains(s, testPassphrase) || strings.Contains(s, "horse") {
		t.Errorf("output shows the passphrase:\n%s", s)
	}
	for _, enc := range []string{fmt.Sprintf("%x", seed[:8]), fmt.Sprint(seed[:4])[1:10], b64(seed)[:10]} {
		if strings.Contains(s, enc) {
			t.Errorf("output shows the private key (%q):\n%s", enc, s)
		}
	}
	if !strings.Contains(s, priv.Recipient().Fingerprint().String()) {
		t.Errorf("output does not name the key by its fingerprint:\n%s", s)
	}
}

// TestZeroValues checks that recipients and identities not made by this
// package's constructors are refused rather than used or panicked on.
func TestZeroValues(t *testing.T) {
	_, encoded := shares(t)
	for name, r := range map[string]Recipient{
		"nil":                nil,
		"zero passphrase":    &PassphraseRecipient{},
		"nil passphrase":     (*PassphraseRecipient)(nil),
		"zero custodian key": &HybridRecipient{},
		"nil custodian key":  (*HybridRecipient)(nil),
	} {
		if _, err := Seal(encoded[0], testHeader, r); err == nil {
			t.Errorf("Seal to %s succeeded", name)
		}
	}
	pub, _ := generateKey(t)
	passFile, err := Seal(encoded[0], testHeader, passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	hybridFile, err := Seal(encoded[0], testHeader, pub)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		file []byte
		id   Identity
	}{
		"nil":              {passFile, nil},
		"zero passphrase":  {passFile, &PassphraseIdentity{}},
		"nil passphrase":   {passFile, (*PassphraseIdentity)(nil)},
		"zero private key": {hybridFile, &HybridIdentity{}},
		"nil private key":  {hybridFile, (*HybridIdentity)(nil)},
	} {
		if _, _, err := Open(tc.file, tc.id); err == nil {
			t.Errorf("Open with %s succeeded", name)
		}
	}
	if s := fmt.Sprint(HybridIdentity{}); !strings.Contains(s, "empty") {
		t.Errorf("zero HybridIdentity prints as %q", s)
	}
}

// One flipped bit anywhere after the magic is reported as an altered file
// (ErrAltered, or ErrDecrypt whose message says the file was altered),
// never as an unsupported suite alone, nor blamed on the key.
func TestTamperedHeaderSaysAltered(t *testing.T) {
	_, encoded := shares(t)
	pub, priv := generateKey(t)
	file, err := Seal(encoded[1], testHeader, pub)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := parseHeader(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(magic); i < n; i++ {
		f := bytes.Clone(file)
		f[i] ^= 0x01
		_, _, err := Open(f, priv)
		switch {
		case err == nil:
			t.Fatalf("byte %d altered: opened", i)
		case errors.Is(err, ErrWrongKey):
			t.Errorf("byte %d altered: blamed on the key: %v", i, err)
		case !strings.Contains(err.Error(), "altered"):
			t.Errorf("byte %d altered: %v does not say the file was altered", i, err)
		}
	}
}
