package sharefile

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestKeyFilesRoundTrip(t *testing.T) {
	_, encoded := shares(t)
	pub, priv := generateKey(t)
	pubText, err := pub.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pubText, []byte("-----BEGIN EMBASSY CUSTODIAN PUBLIC KEY-----\n")) {
		t.Errorf("public key text lacks its BEGIN line:\n%s", pubText)
	}
	pub2, err := ParseHybridRecipient(pubText)
	if err != nil {
		t.Fatal(err)
	}
	var pub3 HybridRecipient
	if err := pub3.UnmarshalText(pubText); err != nil {
		t.Fatal(err)
	}
	pub4, err := ParseHybridRecipient(pub.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*HybridRecipient{pub2, &pub3, pub4} {
		if !p.Equal(pub) || p.Fingerprint() != pub.Fingerprint() {
			t.Error("a parsed public key differs from the original")
		}
	}
	keyFile, err := priv.PrivateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(keyFile, []byte("-----BEGIN EMBASSY CUSTODIAN PRIVATE KEY-----\n")) {
		t.Errorf("private key file lacks its BEGIN line:\n%s", keyFile)
	}
	priv2, err := ParseHybridIdentity(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Exporting must not disturb the key: a second export is the same.
	encFile, err := priv.EncryptedPrivateKeyFile(passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	again, err := priv.PrivateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, keyFile) {
		t.Error("a second PrivateKeyFile differs from the first")
	}
	fromEnc, err := DecryptHybridIdentity(encFile, passphraseIdentity(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	if !fromEnc.Recipient().Equal(pub) {
		t.Error("EncryptedPrivateKeyFile after PrivateKeyFile holds another key")
	}
	if !priv2.Recipient().Equal(pub) {
		t.Error("the parsed private key has another public key")
	}
	// A file sealed to the parsed public key opens with the parsed private key.
	file, err := Seal(encoded[0], testHeader, pub2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(file, priv2); err != nil {
		t.Fatal(err)
	}
}

func TestKeyParseRejects(t *testing.T) {
	pub, priv := generateKey(t)
	keyFile, err := priv.PrivateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	privBody, err := dearmor(privateKeyLabel, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pubBody := pub.Bytes()
	wrongKEM := func(b []byte) []byte { b = bytes.Clone(b); b[1] ^= 1; return b }

	recipients := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "it is 0 bytes, not 1218"},
		{"short", pubBody[:100], "it is 100 bytes, not 1218"},
		{"wrong KEM", wrongKEM(pubBody), "KEM 0x647b is not MLKEM768-X25519 (0x647a)"},
		{"private key as public", keyFile, "it is"},
		{"armour without end", []byte("-----BEGIN EMBASSY CUSTODIAN PUBLIC KEY-----\nAAAA\n"), "no \"-----END EMBASSY CUSTODIAN PUBLIC KEY-----\" line"},
	}
	for _, tt := range recipients {
		t.Run("recipient/"+tt.name, func(t *testing.T) {
			_, err := ParseHybridRecipient(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	identities := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, `no "-----BEGIN EMBASSY CUSTODIAN PRIVATE KEY-----" line`},
		{"binary", privBody, "no \"-----BEGIN"},
		{"short", armor(privateKeyLabel, nil, privBody[:20]), "it is 20 bytes, not 34"},
		{"wrong KEM", armor(privateKeyLabel, nil, wrongKEM(privBody)), "KEM 0x647b is not MLKEM768-X25519"},
		{"public key", armor(privateKeyLabel, nil, pubBody), "it is 1218 bytes, not 34"},
	}
	for _, tt := range identities {
		t.Run("identity/"+tt.name, func(t *testing.T) {
			_, err := ParseHybridIdentity(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "read custodian private key: ") {
				t.Errorf("err = %q does not say what was being read", err)
			}
		})
	}
}

func TestEncryptedKeyFile(t *testing.T) {
	_, encoded := shares(t)
	pub, priv := generateKey(t)
	keyFile, err := priv.EncryptedPrivateKeyFile(passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(keyFile, []byte("\n-----BEGIN EMBASSY CUSTODIAN ENCRYPTED PRIVATE KEY-----\n")) {
		t.Errorf("encrypted key file lacks its BEGIN line:\n%s", keyFile)
	}
	body, err := dearmor(encryptedKeyLabel, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := priv.PrivateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := dearmor(privateKeyLabel, plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, seed[2:10]) {
		t.Error("the encrypted key file contains the key in the clear")
	}

	id, err := DecryptHybridIdentity(keyFile, passphraseIdentity(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	if !id.Recipient().Equal(pub) {
		t.Fatal("decrypted key has another public key")
	}
	file, err := Seal(encoded[0], testHeader, pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(file, id); err != nil {
		t.Fatal(err)
	}

	tamper := func(i int) []byte {
		b := bytes.Clone(body)
		b[i] ^= 1
		return armor(encryptedKeyLabel, nil, b)
	}
	tests := []struct {
		name    string
		file    []byte
		pass    string
		is      error
		wantErr string
	}{
		{"wrong passphrase", keyFile, "not the right passphrase", ErrDecrypt, "the passphrase is wrong, or the file was altered"},
		{"altered salt", tamper(12), testPassphrase, ErrDecrypt, "the passphrase is wrong, or the file was altered"},
		{"altered ciphertext", tamper(len(body) - 1), testPassphrase, ErrDecrypt, "the passphrase is wrong"},
		{"altered version", tamper(0), testPassphrase, nil, "version 0 is not supported"},
		{"too costly", armor(encryptedKeyLabel, nil, append([]byte{1, 0, 0, 0, 1, 0, 0x20, 0, 0, 1}, body[10:]...)), testPassphrase, ErrCostTooHigh, "argon2id memory 2048 MiB"},
		{"truncated", armor(encryptedKeyLabel, nil, body[:40]), testPassphrase, nil, "it is 40 bytes, not 88"},
		{"plain key file", plain, testPassphrase, nil, "the file is not encrypted; use ParseHybridIdentity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecryptHybridIdentity(tt.file, passphraseIdentity(t, tt.pass))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want one wrapping %v", err, tt.is)
			}
		})
	}
	if _, err := ParseHybridIdentity(keyFile); err == nil || !strings.Contains(err.Error(), "the file is encrypted; use DecryptHybridIdentity") {
		t.Errorf("ParseHybridIdentity of an encrypted file: err = %v", err)
	}
}
