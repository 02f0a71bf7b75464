package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/node"
)

// syncBuffer is a bytes.Buffer a serving goroutine writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCLI runs one embassy command in this process and returns its standard
// output, standard error and error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

// serving is an 'embassy serve' running in this process.
type serving struct {
	out  *syncBuffer
	addr string
	stop func() error
}

// startServe runs 'embassy serve args...' until the test ends, and waits
// for the banner that names the address it listens on.
func startServe(t *testing.T, args ...string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &serving{out: &syncBuffer{}}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), strings.NewReader(""), s.out, s.out) }()
	var once sync.Once
	var serveErr error
	s.stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { s.stop() })
	re := regexp.MustCompile(`serving S3 at https?://(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(s.out.String()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case err := <-done:
			once.Do(func() { cancel(); serveErr = err }) // stop must not wait on done again
			t.Fatalf("serve %v ended before serving: %v\n%s", args, err, s.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve %v: no banner after 30s:\n%s", args, s.out)
		}
	}
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve --dev --dir X makes and serves the development node in X, as --data
// X would; it is not silently ignored.
func TestServeDevUsesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "devnode")
	s := startServe(t, "--dev", "--dir", dir, "--address", "127.0.0.1:0")
	if !strings.Contains(s.out.String(), "created a development node in "+dir) {
		t.Errorf("banner does not name %s:\n%s", dir, s.out)
	}
	c, err := node.LoadConfig(dir)
	if err != nil {
		t.Fatalf("no node in --dir: %v", err)
	}
	if !c.Node.Dev {
		t.Errorf("node in %s is not a development node", dir)
	}
	if _, err := os.Stat("embassy-dev"); err == nil {
		t.Errorf("serve --dev --dir also created ./embassy-dev")
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve ended with %v", err)
	}
}

func TestServeRefusesWhatItWouldIgnore(t *testing.T) {
	prod := filepath.Join(t.TempDir(), "prod")
	if _, err := node.Init(prod, node.InitOptions{Nation: "EST"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"dev on a production node", []string{"serve", "--dev", "--dir", prod, "--address", "127.0.0.1:0"}, "--dev: " + prod + " holds a node that is not a development node"},
		{"data without dev", []string{"serve", "--dir", prod, "--data", "x", "--address", "127.0.0.1:0"}, "--data names the directory of a --dev node"},
		{"dir and data disagree", []string{"serve", "--dev", "--dir", prod, "--data", "elsewhere", "--address", "127.0.0.1:0"}, "name two different directories"},
		// One rule for access keys: the flags keep node.yaml's.
		{"two-character access key", []string{"serve", "--dir", prod, "--access-key", "kk", "--secret-key", "long-enough-secret", "--address", "127.0.0.1:0"},
			`--access-key "kk": must be 3 to 128 characters, got 2`},
		{"slash in access key", []string{"serve", "--dir", prod, "--access-key", "ab/c", "--secret-key", "long-enough-secret", "--address", "127.0.0.1:0"},
			`--access-key "ab/c": must be printable ASCII without '/'`},
		{"short secret", []string{"serve", "--dir", prod, "--access-key", "EMBKEY01", "--secret-key", "short", "--address", "127.0.0.1:0"},
			"--secret-key: must be at least 8 characters"},
		{"credential with a short access key", []string{"serve", "--dir", prod, "--credential", "bob:kk:long-enough-secret", "--address", "127.0.0.1:0"},
			"--credential bob:kk:…: access key: must be 3 to 128 characters, got 2"},
		{"access key twice", []string{"serve", "--dir", prod, "--access-key", "EMBKEY01", "--secret-key", "long-enough-secret", "--credential", "bob:EMBKEY01:other-long-secret", "--address", "127.0.0.1:0"},
			"access key EMBKEY01 is already in --access-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("err %v, stderr %q; want an error containing %q", err, stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat("x"); err == nil {
		t.Errorf("a refused serve created a directory")
	}
}

// A node whose root key is split starts sealed: the banner says so, and
// 'status' without --node finds the node at its configured s3.address.
func TestServeSealedBannerAndStatusAddress(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "node")
	var pubs []custody.CustodianPublic
	aliceKey := filepath.Join(work, "alice.key")
	for _, name := range []string{"alice", "bob"} {
		k, err := custody.GenerateCustodian(name)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, k.Public())
		if name == "alice" {
			b, _ := k.MarshalPrivate()
			if err := os.WriteFile(aliceKey, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	addr := freeAddr(t)
	c, err := node.Init(dir, node.InitOptions{Nation: "EST", Custodians: pubs, Threshold: 2,
		Share: func(string, []byte) error { return nil }, Configure: func(c *node.Config) {
			c.S3.Address = addr
			c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTKEY", SecretKey: "test-secret-key"}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--dir", dir)
	if s.addr != addr {
		t.Fatalf("serving at %s, want the configured %s", s.addr, addr)
	}
	if want := "SEALED: the root key is split among custodians (shamir 2 of 2); S3 requests are refused until 2 of them run 'embassy unseal --node http://" + addr; !strings.Contains(s.out.String(), want) {
		t.Errorf("banner lacks %q:\n%s", want, s.out)
	}

	// Anonymously, the node says only that it is sealed.
	out, stderr, err := runCLI(t, "--dir", dir, "status")
	if err != nil {
		t.Fatalf("status without --node: %v\n%s", err, stderr)
	}
	if want := "node at http://" + addr + ": SEALED\n"; out != want {
		t.Errorf("anonymous status printed %q, want %q", out, want)
	}
	// A custodian sees the rest.
	out, stderr, err = runCLI(t, "--dir", dir, "status", "--key", aliceKey)
	if err != nil {
		t.Fatalf("status as a custodian: %v\n%s", err, stderr)
	}
	if want := fmt.Sprintf("node %s (EST): SEALED (0 of 2 shares given); custody: shamir 2 of 2\n", c.Node.ID); out != want {
		t.Errorf("status printed %q, want %q", out, want)
	}
	out, _, err = runCLI(t, "--dir", dir, "status", "--json", "--key", aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Unseal struct {
			Shares json.RawMessage `json:"shares_given"`
		} `json:"unseal"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if string(st.Unseal.Shares) != "[]" {
		t.Errorf("shares_given is %s, want []", st.Unseal.Shares)
	}
}

func TestDefaultNodeURL(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no node", "", "http://127.0.0.1:9000"},
		{"default address", "s3: {}\n", "http://127.0.0.1:9000"},
		{"configured port", "s3:\n  address: 127.0.0.1:9402\n", "http://127.0.0.1:9402"},
		{"all interfaces", "s3:\n  address: 0.0.0.0:9443\n  tls_cert: c.pem\n  tls_key: k.pem\n", "https://127.0.0.1:9443"},
		{"all IPv6 interfaces", "s3:\n  address: '[::]:9000'\n  allow_insecure: true\n", "http://[::1]:9000"},
		{"empty host", "s3:\n  address: ':9001'\n", "http://127.0.0.1:9001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.yaml != "" {
				y := "node:\n  id: 0123456789abcdef\n  nation: EST\n" + tc.yaml
				if err := os.WriteFile(filepath.Join(dir, node.ConfigFile), []byte(y), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := defaultNodeURL(dir)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// A serving node whose node.yaml was edited behind the custodians' backs
// (here: a principal added) refuses the unseal that reaches the threshold:
// the custodian is told which file and what differs, S3 stays 503, and
// nothing is written to the sites.
func TestServeRefusesUnsealOverEditedFiles(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "node")
	keys := filepath.Join(work, "keys")
	shares := filepath.Join(work, "shares")
	var pubArgs []string
	for _, name := range []string{"alice", "bob"} {
		if _, stderr, err := runCLI(t, "custodian", "keygen", name, "--out", keys, "--no-passphrase"); err != nil {
			t.Fatalf("keygen: %v\n%s", err, stderr)
		}
		pubArgs = append(pubArgs, "--custodian", filepath.Join(keys, name+".pub"))
	}
	if _, stderr, err := runCLI(t, append([]string{"--dir", dir, "init", "--nation", "EST", "--shares-out", shares}, pubArgs...)...); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	u := func(name string) []string {
		return []string{"--unseal", filepath.Join(shares, name+".share") + ":" + filepath.Join(keys, name+".key")}
	}
	unsealBoth := append(u("alice"), u("bob")...)
	for _, s := range []string{"est-1", "lux-1"} {
		args := append([]string{"--dir", dir}, unsealBoth...)
		if _, stderr, err := runCLI(t, append(args, "site", "add", s, "--path", filepath.Join(work, "sites", s), "--jurisdiction", strings.ToUpper(s[:3]), "--provider", "gov-dc")...); err != nil {
			t.Fatalf("site add: %v\n%s", err, stderr)
		}
	}
	cn := unsealedNode(t, dir, filepath.Join(shares, "alice.share"), filepath.Join(keys, "alice.key"), filepath.Join(shares, "bob.share"), filepath.Join(keys, "bob.key"))
	c := *cn.Config
	c.S3.Address = freeAddr(t)
	c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTKEY", SecretKey: "test-secret-key"}}
	if err := cn.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	cn.Close()

	// The attack: a principal with every clearance, added by hand.
	path := filepath.Join(dir, node.ConfigFile)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte("principals:\n"), []byte("principals:\n  - name: mallory\n    nation: EST\n    clearances:\n      NATO: COSMIC TOP SECRET\n    roles: [admin]\n"), 1), 0o600)
	before := map[string][]byte{}
	filepath.WalkDir(filepath.Join(work, "sites"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			before[p], _ = os.ReadFile(p)
		}
		return nil
	})

	s := startServe(t, "--dir", dir)
	url := "http://" + s.addr
	if _, stderr, err := runCLI(t, "unseal", "--node", url, "--share", filepath.Join(shares, "alice.share"), "--key", filepath.Join(keys, "alice.key")); err != nil {
		t.Fatalf("first share: %v\n%s", err, stderr)
	}
	_, stderr, err := runCLI(t, "unseal", "--node", url, "--share", filepath.Join(shares, "bob.share"), "--key", filepath.Join(keys, "bob.key"))
	if err == nil {
		t.Fatal("the node unsealed over an edited node.yaml")
	}
	for _, want := range []string{
		"embassy: error: node: node files do not verify; the node serves nothing until they do:\n",
		"\n  node.yaml: does not verify under this node's root key",
		"\n      - principal mallory (nation EST; clearances NATO COSMIC TOP SECRET",
		"\n    way forward: restore the sites' copy with 'embassy config restore'",
		"\nhint: see 'Node files that do not verify' in docs/operator-guide.md",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("unseal's error lacks %q:\n%s", want, stderr)
		}
	}
	resp, err := http.Get(url + "/registry")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("S3 answered %d after the refused unseal, want 503", resp.StatusCode)
	}
	out, _, _ := runCLI(t, "status", "--node", url)
	if !strings.Contains(out, "SEALED") {
		t.Errorf("status after the refused unseal: %s", out)
	}
	after := map[string][]byte{}
	filepath.WalkDir(filepath.Join(work, "sites"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			after[p], _ = os.ReadFile(p)
		}
		return nil
	})
	if len(after) != len(before) {
		t.Errorf("the sites hold %d files after the refused unseal, %d before", len(after), len(before))
	}
	for p, b := range before {
		if !bytes.Equal(after[p], b) {
			t.Errorf("%s changed", p)
		}
	}
}

// TestServeSecretsFromFiles: serve takes secrets from files or the
// environment, not the command line; the flags that took them still work,
// deprecated, with a warning.
func TestServeSecretsFromFiles(t *testing.T) {
	work := t.TempDir()
	secret := filepath.Join(work, "admin.secret")
	os.WriteFile(secret, []byte("admin-secret-from-a-file\n"), 0o600)
	creds := filepath.Join(work, "more.creds")
	os.WriteFile(creds, []byte("# principal:access-key:secret-key\nbob:EMBBOB01:bob-secret-from-a-file\n"), 0o600)
	t.Setenv("EMBASSY_SECRET_KEY_FILE", secret)
	s := startServe(t, "--dev", "--dir", filepath.Join(work, "dev"), "--address", freeAddr(t), "--access-key", "EMBADMIN01", "--credentials-file", creds)
	out := s.out.String()
	for _, want := range []string{"AWS_ACCESS_KEY_ID=EMBADMIN01 (secret as given)", "principal bob: AWS_ACCESS_KEY_ID=EMBBOB01 (secret as given)"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	// Secrets given are not repeated where a service's output is logged.
	for _, secret := range []string{"admin-secret-from-a-file", "bob-secret-from-a-file"} {
		if strings.Contains(out, secret) {
			t.Errorf("banner shows the secret %q:\n%s", secret, out)
		}
	}
	if strings.Contains(out, "deprecated") {
		t.Errorf("a warning without a deprecated flag:\n%s", out)
	}
	// bob is not a principal of the node: his credential authenticates
	// but can do nothing, and serve says so.
	if want := "embassy: warning: principal bob is not configured: its credential EMBBOB01 can do nothing until 'embassy principal add bob'"; !strings.Contains(out, want) {
		t.Errorf("banner lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "principal admin is not configured") {
		t.Errorf("a warning about the configured admin:\n%s", out)
	}
	s.stop()
	t.Setenv("EMBASSY_SECRET_KEY_FILE", "")
	s = startServe(t, "--dev", "--dir", filepath.Join(work, "dev"), "--address", freeAddr(t), "--access-key", "EMBADMIN01", "--secret-key", "on-the-command-line")
	if !strings.Contains(s.out.String(), "embassy: warning: --secret-key is deprecated: a secret on the command line is visible to every user of this machine (ps)") {
		t.Errorf("no deprecation warning:\n%s", s.out)
	}
}
