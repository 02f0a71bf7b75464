package sharefile

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the cost parameters of Argon2id (RFC 9106). They are
// stored in every passphrase-sealed file, so a file opens with the
// parameters it was sealed with.
type Argon2Params struct {
	Time      uint32 // passes over the memory, 1..MaxArgon2Time
	MemoryKiB uint32 // memory in KiB, 8·Threads..MaxArgon2MemoryKiB
	Threads   uint8  // lanes, at least 1
}

// DefaultArgon2Params are used when a PassphraseRecipient is given the zero
// Argon2Params: 64 MiB, 3 passes, 2 lanes (RFC 9106's second recommended
// setting, with the lanes a custodian's laptop has to spare).
var DefaultArgon2Params = Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}

// Limits on the Argon2id parameters of a file. Open refuses a file that asks
// for more, so that a crafted file cannot make it use unbounded memory or
// time.
const (
	MaxArgon2MemoryKiB = 1 << 20 // 1 GiB
	MaxArgon2Time      = 16
)

// String describes the parameters for people.
func (p Argon2Params) String() string {
	mem := fmt.Sprintf("%d KiB", p.MemoryKiB)
	if p.MemoryKiB%1024 == 0 {
		mem = fmt.Sprintf("%d MiB", p.MemoryKiB/1024)
	}
	return fmt.Sprintf("Argon2id, %s, %d passes, %d threads", mem, p.Time, p.Threads)
}

// check reports parameters that Argon2id cannot use as stated.
func (p Argon2Params) check() error {
	switch {
	case p.Time == 0:
		return fmt.Errorf("argon2id time is 0; it must be at least 1")
	case p.Threads == 0:
		return fmt.Errorf("argon2id threads is 0; it must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads):
		return fmt.Errorf("argon2id memory %d KiB is less than 8 KiB per thread (%d threads)", p.MemoryKiB, p.Threads)
	}
	return nil
}

// checkCost reports parameters above this package's limits.
func (p Argon2Params) checkCost() error {
	switch {
	case p.MemoryKiB > MaxArgon2MemoryKiB:
		return fmt.Errorf("%w: argon2id memory %d MiB is more than the %d MiB allowed", ErrCostTooHigh, p.MemoryKiB/1024, MaxArgon2MemoryKiB/1024)
	case p.Time > MaxArgon2Time:
		return fmt.Errorf("%w: argon2id time %d is more than the %d passes allowed", ErrCostTooHigh, p.Time, MaxArgon2Time)
	}
	return nil
}

// MinPassphraseLen is the shortest passphrase, in bytes, that
// NewPassphraseRecipient accepts. A share file may be printed, mailed or
// copied; its passphrase is then all that protects the share from an
// offline guessing attack.
const MinPassphraseLen = 12

// A PassphraseRecipient seals share files with a passphrase. It holds a copy
// of the passphrase and redacts it when printed or logged.
type PassphraseRecipient struct {
	_          [0]func() // not comparable
	passphrase []byte
	params     Argon2Params
}

// NewPassphraseRecipient returns a recipient that seals with passphrase
// (at least MinPassphraseLen bytes) and Argon2id params; the zero params
// mean DefaultArgon2Params. The passphrase is copied.
func NewPassphraseRecipient(passphrase []byte, params Argon2Params) (*PassphraseRecipient, error) {
	if len(passphrase) < MinPassphraseLen {
		return nil, fmt.Errorf("passphrase is %d bytes; it must be at least %d", len(passphrase), MinPassphraseLen)
	}
	if params == (Argon2Params{}) {
		params = DefaultArgon2Params
	}
	if err := params.check(); err != nil {
		return nil, err
	}
	if err := params.checkCost(); err != nil {
		return nil, err
	}
	return &PassphraseRecipient{passphrase: clone(passphrase), params: params}, nil
}

func (r *PassphraseRecipient) method() Method { return MethodPassphrase }

// String describes the recipient without its passphrase.
func (r PassphraseRecipient) String() string {
	return "passphrase recipient (" + r.params.String() + ")"
}

// GoString is String, so that %#v does not print the passphrase.
func (r PassphraseRecipient) GoString() string { return r.String() }

// LogValue keeps the passphrase out of structured logs.
func (r PassphraseRecipient) LogValue() slog.Value {
	return slog.StringValue(r.String())
}

// A PassphraseIdentity opens share files sealed with a passphrase. It holds
// a copy of the passphrase and redacts it when printed or logged.
type PassphraseIdentity struct {
	_          [0]func() // not comparable
	passphrase []byte
}

// NewPassphraseIdentity returns an identity that opens files with
// passphrase, which is copied and must not be empty.
func NewPassphraseIdentity(passphrase []byte) (*PassphraseIdentity, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("passphrase is empty")
	}
	return &PassphraseIdentity{passphrase: clone(passphrase)}, nil
}

func (id *PassphraseIdentity) method() Method { return MethodPassphrase }

// String describes the identity without its passphrase.
func (id PassphraseIdentity) String() string { return "passphrase identity" }

// GoString is String, so that %#v does not print the passphrase.
func (id PassphraseIdentity) GoString() string { return id.String() }

// LogValue keeps the passphrase out of structured logs.
func (id PassphraseIdentity) LogValue() slog.Value { return slog.StringValue(id.String()) }

// passphraseAEAD derives an AES-256-GCM key from the passphrase, a salt and
// Argon2id parameters.
func passphraseAEAD(passphrase, salt []byte, p Argon2Params) (cipher.AEAD, error) {
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
