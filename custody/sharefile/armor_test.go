package sharefile

import (
	"bytes"
	"strings"
	"testing"
)

func TestArmorLayout(t *testing.T) {
	_, encoded := shares(t)
	file, err := Seal(encoded[3], testHeader, passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	text, err := Armor(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	wantStart := []string{
		"Embassy custodian share (this summary is not authenticated; the block is)",
		"Node:      est-tallinn-1",
		"Custodian: Tõnu Tamm",
		"Share:     4 of 5; any 3 recover the node's key",
	}
	for i, w := range wantStart {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i+1, lines[i], w)
		}
	}
	begin := -1
	for i, l := range lines {
		if l == "-----BEGIN EMBASSY CUSTODIAN SHARE-----" {
			begin = i
		}
	}
	if begin < 1 || lines[begin-1] != "" {
		t.Fatalf("no BEGIN line after a blank line:\n%s", text)
	}
	if last := lines[len(lines)-1]; last != "-----END EMBASSY CUSTODIAN SHARE-----" {
		t.Errorf("last line = %q, want the END line", last)
	}
	body := lines[begin+1 : len(lines)-1]
	for i, l := range body {
		if len(l) != 64 && i != len(body)-1 || len(l) > 64 || l == "" {
			t.Errorf("base64 line %d is %d characters", i+1, len(l))
		}
	}
	back, err := Dearmor(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, file) {
		t.Error("Dearmor(Armor(file)) differs from file")
	}
	if _, err := Armor(text); err == nil {
		t.Error("Armor accepted an already armoured file")
	}
}

// TestDearmorTolerates covers what mail and printing do to text.
func TestDearmorTolerates(t *testing.T) {
	_, encoded := shares(t)
	file, err := Seal(encoded[0], testHeader, passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	text, err := Armor(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	tests := []struct {
		name string
		in   string
	}{
		{"as written", s},
		{"CRLF line ends", strings.ReplaceAll(s, "\n", "\r\n")},
		{"indented", strings.ReplaceAll(s, "\n", "\n    ")},
		{"trailing spaces", strings.ReplaceAll(s, "\n", "  \n")},
		{"no summary", s[strings.Index(s, "-----BEGIN"):]},
		{"mail around it", "Dear custodian,\n\nyour share:\n\n" + s + "\nRegards,\nthe node\n"},
		{"no final newline", strings.TrimSuffix(s, "\n")},
		{"blank lines inside", strings.Replace(s, "-----BEGIN EMBASSY CUSTODIAN SHARE-----\n", "-----BEGIN EMBASSY CUSTODIAN SHARE-----\n\n", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Dearmor([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, file) {
				t.Error("dearmoured file differs")
			}
		})
	}
}

func TestDearmorRejects(t *testing.T) {
	_, encoded := shares(t)
	file, err := Seal(encoded[0], testHeader, passphraseRecipient(t, testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	text, err := Armor(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	const begin, end = "-----BEGIN EMBASSY CUSTODIAN SHARE-----", "-----END EMBASSY CUSTODIAN SHARE-----"
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"no END", strings.Replace(s, end, "", 1), `no "` + end + `" line after the BEGIN line`},
		{"two blocks", s + s, "a second EMBASSY CUSTODIAN SHARE block; give one per file"},
		{"PEM header inside", strings.Replace(s, begin+"\n", begin+"\nProc-Type: 4,ENCRYPTED\n", 1), "not valid base64"},
		{"other armour inside", strings.Replace(s, begin+"\n", begin+"\n-----BEGIN OTHER-----\n", 1), `"-----BEGIN OTHER-----" inside the EMBASSY CUSTODIAN SHARE block`},
		{"corrupt base64", strings.Replace(s, begin+"\n", begin+"\n!", 1), "not valid base64"},
		{"empty block", begin + "\n" + end + "\n", "the EMBASSY CUSTODIAN SHARE block is empty"},
		{"not a share", "-----BEGIN EMBASSY CUSTODIAN SHARE-----\naGVsbG8=\n" + end + "\n", "not a custodian share file: it does not start with EMBSHARE"},
		{"public key", "-----BEGIN EMBASSY CUSTODIAN PUBLIC KEY-----\naGVsbG8=\n-----END EMBASSY CUSTODIAN PUBLIC KEY-----\n", "neither binary"},
		{"too big", s + strings.Repeat(" ", MaxFileSize), "more than the 65536 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
