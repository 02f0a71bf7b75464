package node

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/embassy-dev/embassy/custody"
)

// Node files — node.yaml, custody.json and requests.json — carry an
// authenticator on their last line: HMAC-SHA256 under a key derived from
// the root key over the file's name, a generation and every byte before
// that line (custody.Keyring.FileMAC). In node.yaml the line is a YAML
// comment; in the JSON files it is a second JSON text:
//
//	# embassy-authenticator: v1 generation 7 hmac-sha256 BASE64
//	{"embassy_authenticator":{"version":1,"generation":7,"hmac_sha256":"BASE64"}}
//
// Every write through the node raises the generation by one. Before the
// node is unsealed the files are read as they are (to listen, present TLS
// and know the custodians); at unseal, before anything is served, each is
// verified and compared with the copy in the newest node descriptor on the
// sites (verifyNodeFiles).

// nodeFile is a node file as read from disk.
type nodeFile struct {
	name string
	raw  []byte // the whole file
	body []byte // what the authenticator covers
	gen  uint64
	mac  []byte // nil: no authenticator (written before they existed, or by hand)
}

const (
	yamlAuthPrefix = "# embassy-authenticator: "
	jsonAuthPrefix = `{"embassy_authenticator":`
)

var yamlAuthLine = regexp.MustCompile(`^# embassy-authenticator: v1 generation ([0-9]{1,19}) hmac-sha256 ([A-Za-z0-9+/=]{44})$`)

type jsonAuth struct {
	Auth struct {
		Version    int    `json:"version"`
		Generation uint64 `json:"generation"`
		MAC        string `json:"hmac_sha256"`
	} `json:"embassy_authenticator"`
}

// errMalformedAuth: the last line looks like an authenticator but is not one.
var errMalformedAuth = errors.New("malformed authenticator line")

// splitNodeFile separates a node file's body from its authenticator line.
// A file without one is returned with a nil mac.
func splitNodeFile(name string, raw []byte) (nodeFile, error) {
	f := nodeFile{name: name, raw: raw, body: raw}
	trimmed := bytes.TrimSuffix(raw, []byte("\n"))
	start := bytes.LastIndexByte(trimmed, '\n') + 1
	last := string(trimmed[start:])
	switch {
	case strings.HasPrefix(last, yamlAuthPrefix):
		m := yamlAuthLine.FindStringSubmatch(last)
		if m == nil {
			return f, fmt.Errorf("%s: %w", name, errMalformedAuth)
		}
		gen, err := strconv.ParseUint(m[1], 10, 64)
		mac, err2 := base64.StdEncoding.DecodeString(m[2])
		if err != nil || err2 != nil || len(mac) != custody.FileMACSize {
			return f, fmt.Errorf("%s: %w", name, errMalformedAuth)
		}
		f.body, f.gen, f.mac = raw[:start], gen, mac
	case strings.HasPrefix(last, jsonAuthPrefix):
		var a jsonAuth
		dec := json.NewDecoder(strings.NewReader(last))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil || a.Auth.Version != 1 {
			return f, fmt.Errorf("%s: %w", name, errMalformedAuth)
		}
		mac, err := base64.StdEncoding.DecodeString(a.Auth.MAC)
		if err != nil || len(mac) != custody.FileMACSize {
			return f, fmt.Errorf("%s: %w", name, errMalformedAuth)
		}
		f.body, f.gen, f.mac = raw[:start], a.Auth.Generation, mac
	}
	return f, nil
}

// authenticated returns body followed by its authenticator line for
// generation gen. body must end with a newline.
func authenticated(keys *custody.Keyring, name string, gen uint64, body []byte) ([]byte, error) {
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(bytes.Clone(body), '\n')
	}
	mac, err := keys.FileMAC(name, gen, body)
	if err != nil {
		return nil, err
	}
	m := base64.StdEncoding.EncodeToString(mac)
	out := bytes.Clone(body)
	if strings.HasSuffix(name, ".yaml") {
		return fmt.Appendf(out, "%sv1 generation %d hmac-sha256 %s\n", yamlAuthPrefix, gen, m), nil
	}
	return fmt.Appendf(out, `%s{"version":1,"generation":%d,"hmac_sha256":"%s"}}`+"\n", jsonAuthPrefix, gen, m), nil
}

// writeNodeFile writes body as generation gen of the node file name in
// dir, authenticated under keys, atomically.
func writeNodeFile(dir string, keys *custody.Keyring, name string, gen uint64, body []byte) error {
	b, err := authenticated(keys, name, gen, body)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, name), b)
}

// readNodeFile reads a node file; a missing one is (nil, nil).
func readNodeFile(dir, name string) (*nodeFile, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := splitNodeFile(name, raw)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// verify checks f's authenticator under keys. It reports whether only the
// previous root of a rotation in progress verified it.
func (f *nodeFile) verify(keys *custody.Keyring) (previous bool, err error) {
	if f.mac == nil {
		return false, errNoAuthenticator
	}
	return keys.VerifyFileMAC(f.name, f.gen, f.body, f.mac)
}

var errNoAuthenticator = errors.New("no authenticator")

// nodeFileGen returns the generation of the node file name on disk if it
// verifies under keys, else 0.
func nodeFileGen(dir string, keys *custody.Keyring, name string) uint64 {
	f, err := readNodeFile(dir, name)
	if err != nil || f == nil {
		return 0
	}
	if _, err := f.verify(keys); err != nil {
		return 0
	}
	return f.gen
}

// saveNodeFile writes body as the next generation of the node file name:
// one more than both the generation the node last verified or wrote and
// the one on disk, so that a generation is never written twice.
func (n *Node) saveNodeFile(name string, body []byte) error {
	keys := n.Keys()
	if keys == nil {
		return fmt.Errorf("%s: %w: the node cannot authenticate its files before it is unsealed", name, ErrSealed)
	}
	n.genMu.Lock()
	defer n.genMu.Unlock()
	gen := max(n.gens[name], nodeFileGen(n.Dir, keys, name)) + 1
	if err := writeNodeFile(n.Dir, keys, name, gen, body); err != nil {
		return err
	}
	if n.gens == nil {
		n.gens = map[string]uint64{}
	}
	n.gens[name] = gen
	return nil
}

// loadVerified reads the node file name and verifies it: it must carry an
// authenticator that verifies and a generation no older than the one the
// node last verified or wrote. A missing file is (nil, nil).
func (n *Node) loadVerified(name string) (*nodeFile, error) {
	f, err := readNodeFile(n.Dir, name)
	if err != nil || f == nil {
		return f, err
	}
	keys := n.Keys()
	if keys == nil {
		return nil, fmt.Errorf("%s: %w: it cannot be verified yet", name, ErrSealed)
	}
	if _, err := f.verify(keys); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; restore it ('embassy config restore') or remove it", ErrNodeFile, name, err)
	}
	n.genMu.Lock()
	known := n.gens[name]
	n.genMu.Unlock()
	if f.gen < known {
		return nil, fmt.Errorf("%w: %s is generation %d, older than generation %d this node wrote", ErrNodeFile, name, f.gen, known)
	}
	return f, nil
}

// ErrNodeFile: a node file does not verify: it was changed outside the
// node (by hand, or by someone without the root key), replaced by an older
// or another node's copy, or damaged. The node refuses to serve until the
// file is restored ('embassy config restore') or re-authenticated with
// 'embassy config edit'.
var ErrNodeFile = errors.New("node file does not verify")

// ConfigCheck says how far node.yaml could be checked without unsealing.
type ConfigCheck int

const (
	// ConfigUnverified: the root key is split among custodians, so
	// node.yaml was read as it is.
	ConfigUnverified ConfigCheck = iota
	// ConfigVerified: the authenticator verifies under the local root key
	// file (the file is not compared with the sites).
	ConfigVerified
	// ConfigBad: it does not verify under the local root key file.
	ConfigBad
)

// CheckConfigFile checks node.yaml in dir as far as a command without the
// custodians' shares can: under the local root key file if the node has
// one.
func CheckConfigFile(dir string) (ConfigCheck, error) {
	if _, err := os.Stat(filepath.Join(dir, CustodyFile)); err == nil {
		return ConfigUnverified, nil
	}
	keys, err := localKeys(dir)
	if err != nil {
		return ConfigUnverified, err
	}
	f, err := readNodeFile(dir, ConfigFile)
	if err != nil || f == nil {
		return ConfigBad, err
	}
	if _, err := f.verify(keys); err != nil {
		return ConfigBad, nil
	}
	return ConfigVerified, nil
}
