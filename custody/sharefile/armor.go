package sharefile

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
)

// Armour labels.
const (
	shareLabel      = "EMBASSY CUSTODIAN SHARE"
	publicKeyLabel  = "EMBASSY CUSTODIAN PUBLIC KEY"
	privateKeyLabel = "EMBASSY CUSTODIAN PRIVATE KEY"
)

// MaxFileSize bounds every file this package reads, armoured or not.
const MaxFileSize = 64 << 10

// armorLineLen is the number of base64 characters per armoured line.
const armorLineLen = 64

// armor writes body as a text block in the style of RFC 7468: explanatory
// lines (for people; readers ignore them), a blank line, the BEGIN line,
// base64 in lines of 64 characters, and the END line.
func armor(label string, explanatory []string, body []byte) []byte {
	var b bytes.Buffer
	for _, l := range explanatory {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(explanatory) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString("-----BEGIN " + label + "-----\n")
	s := base64.StdEncoding.EncodeToString(body)
	for len(s) > armorLineLen {
		b.WriteString(s[:armorLineLen])
		b.WriteByte('\n')
		s = s[armorLineLen:]
	}
	if s != "" {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString("-----END " + label + "-----\n")
	return b.Bytes()
}

// isArmored reports whether data holds a BEGIN line for label.
func isArmored(label string, data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN "+label+"-----"))
}

// dearmor extracts the one block labelled label from data. Text before the
// BEGIN line and after the END line is ignored; inside the block only
// base64 lines may appear (surrounding spaces and CRs, as mail may add, are
// dropped).
func dearmor(label string, data []byte) ([]byte, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, more than the %d allowed", len(data), MaxFileSize)
	}
	begin, end := "-----BEGIN "+label+"-----", "-----END "+label+"-----"
	lines := strings.Split(string(data), "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == begin {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("no %q line", begin)
	}
	var b64 strings.Builder
	stop := -1
	for i := start + 1; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == end {
			stop = i
			break
		}
		if strings.HasPrefix(l, "-----") {
			return nil, fmt.Errorf("line %d: %q inside the %s block", i+1, l, label)
		}
		b64.WriteString(l)
	}
	if stop < 0 {
		return nil, fmt.Errorf("no %q line after the BEGIN line", end)
	}
	for i := stop + 1; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == begin {
			return nil, fmt.Errorf("line %d: a second %s block; give one per file", i+1, label)
		}
	}
	body, err := base64.StdEncoding.Strict().DecodeString(b64.String())
	if err != nil {
		return nil, fmt.Errorf("the %s block is not valid base64: %w", label, err)
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("the %s block is empty", label)
	}
	return body, nil
}
