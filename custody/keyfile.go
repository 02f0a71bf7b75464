package custody

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/embassy-dev/embassy/internal/atomicfile"
)

// keyFileHeader starts a local root key file. Such a file is the whole root
// key in one place: suitable for development and for nodes whose operators
// accept that, never for production custody.
const keyFileHeader = "EMBASSY LOCAL ROOT KEY v1\n"

// WriteKeyFile stores root in a local key file readable only by its owner,
// atomically. It refuses to overwrite an existing file.
func WriteKeyFile(path string, root RootKey) error {
	if !root.Valid() {
		return errors.New("custody: invalid root key")
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("custody: key file %s already exists", path)
	}
	var b bytes.Buffer
	b.WriteString(keyFileHeader)
	b.WriteString(base64.StdEncoding.EncodeToString(root.k[:]))
	b.WriteString("\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("custody: %w", err)
	}
	return atomicfile.Write(path, b.Bytes(), 0o600)
}

// ReadKeyFile loads a root key written by WriteKeyFile.
func ReadKeyFile(path string) (RootKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return RootKey{}, fmt.Errorf("custody: read key file: %w", err)
	}
	rest, ok := strings.CutPrefix(string(b), keyFileHeader)
	if !ok {
		return RootKey{}, fmt.Errorf("custody: %s is not an embassy local root key file", path)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil || len(raw) != 32 {
		return RootKey{}, fmt.Errorf("custody: %s: malformed key", path)
	}
	var k [32]byte
	copy(k[:], raw)
	clear(raw)
	return RootKey{k: &k}, nil
}
