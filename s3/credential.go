package s3

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// The one rule for S3 credentials, wherever they come from (node.yaml's
// s3.credentials, serve's --access-key and --credential flags): an access
// key of 3 to 128 characters that a SigV4 Credential field can carry (no
// '/', ',', '=', space or control character), and a secret of at least 8.
const (
	MinAccessKeyLen = 3
	MaxAccessKeyLen = 128
	MinSecretKeyLen = 8
)

// ValidAccessKey checks an access key against the rule above.
func ValidAccessKey(k string) error {
	if n := len(k); n < MinAccessKeyLen || n > MaxAccessKeyLen {
		return fmt.Errorf("must be %d to %d characters, got %d", MinAccessKeyLen, MaxAccessKeyLen, n)
	}
	if i := strings.IndexFunc(k, func(r rune) bool {
		return r == '/' || r == ',' || r == '=' || r > unicode.MaxASCII || !unicode.IsGraphic(r) || r == ' '
	}); i >= 0 {
		return fmt.Errorf("must be printable ASCII without '/', ',', '=' or spaces (a SigV4 signature carries it), found %q", k[i:i+1])
	}
	return nil
}

// ValidSecretKey checks a secret key against the rule above.
func ValidSecretKey(s string) error {
	if len(s) < MinSecretKeyLen {
		return errors.New("must be at least 8 characters")
	}
	return nil
}

// Validate checks a credential: a principal, and access and secret keys
// that keep the rule above.
func (c Credential) Validate() error {
	if c.Principal == "" {
		return errors.New("credential: principal must be set")
	}
	if err := ValidAccessKey(c.AccessKey); err != nil {
		return fmt.Errorf("access key %q: %w", c.AccessKey, err)
	}
	if err := ValidSecretKey(c.SecretKey); err != nil {
		return fmt.Errorf("secret key of access key %s: %w", c.AccessKey, err)
	}
	return nil
}
