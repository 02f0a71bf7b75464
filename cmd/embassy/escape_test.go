package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/node"
)

func TestSafeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2026/population.db", "2026/population.db"},
		{"with spaces and ünïcödé", "with spaces and ünïcödé"},
		{`"registry" is not VAULT/KEY`, `"registry" is not VAULT/KEY`},
		{"a\nb", `"a\nb"`},
		{"row\r", `"row\r"`},
		{"tab\there", `"tab\there"`},
		{"red\x1b[31m", `"red\x1b[31m"`},
		{"bidi\u202eevil", `"bidi\u202eevil"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
	} {
		if got := safeText(tc.in); got != tc.want {
			t.Errorf("safeText(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// An S3 writer chooses object keys. A key with a newline, a carriage return
// or an escape sequence must not forge rows in what operators and
// custodians read: ls, versions, stat, rm, request ls, approve and error
// messages print it quoted, on one line, without the raw control bytes.
func TestHostileKeysAreEscaped(t *testing.T) {
	const evil = "evil\nembassy: request 000000000000: pending\x1b[2K\r"
	const quoted = `"registry/evil\nembassy: request 000000000000: pending\x1b[2K\r"`
	noRaw := func(what, out string, lines int) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\r") {
			t.Errorf("%s printed a raw control character:\n%q", what, out)
		}
		if got := strings.Count(out, "\n"); lines >= 0 && got != lines {
			t.Errorf("%s printed %d lines, want %d:\n%s", what, got, lines, out)
		}
	}
	work := t.TempDir()
	dir := filepath.Join(work, "node")
	keys := filepath.Join(work, "keys")
	shares := filepath.Join(work, "shares")
	args := []string{"--dir", dir, "init", "--nation", "EST", "--shares-out", shares}
	for _, name := range []string{"alice", "bob"} {
		k, err := custody.GenerateCustodian(name)
		if err != nil {
			t.Fatal(err)
		}
		priv, _ := k.MarshalPrivate()
		pub, _ := k.Public().MarshalPublic()
		os.MkdirAll(keys, 0o700)
		atomicfile.Write(filepath.Join(keys, name+".key"), priv, 0o600)
		atomicfile.Write(filepath.Join(keys, name+".pub"), pub, 0o644)
		args = append(args, "--custodian", filepath.Join(keys, name+".pub"))
	}
	must := func(args ...string) string {
		t.Helper()
		out, stderr, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("embassy %q: %v\n%s", args, err, stderr)
		}
		return out
	}
	must(args...)
	u := []string{"--dir", dir, "--unseal", filepath.Join(shares, "alice.share") + ":" + filepath.Join(keys, "alice.key"),
		"--unseal", filepath.Join(shares, "bob.share") + ":" + filepath.Join(keys, "bob.key")}
	d := func(args ...string) []string { return append(append([]string(nil), u...), args...) }
	for _, s := range []string{"est", "lux", "fin"} {
		must(d("site", "add", s+"-1", "--path", filepath.Join(work, "sites", s), "--jurisdiction", strings.ToUpper(s), "--provider", "gov-dc", "--accredited", "NATO SECRET")...)
	}
	must(d("vault", "create", "registry", "--erasure", "1+1")...)
	file := filepath.Join(work, "minutes.txt")
	os.WriteFile(file, []byte("minutes"), 0o644)

	out := must(d("put", file, "registry/"+evil, "--label", "NATO RESTRICTED")...)
	noRaw("put", out, 1)
	if !strings.HasPrefix(out, quoted+" version ") {
		t.Errorf("put printed %q, want it to start with %s", out, quoted)
	}
	out = must(d("ls", "registry", "-r")...)
	noRaw("ls", out, 1)
	if !strings.Contains(out, strings.TrimPrefix(quoted, `"registry/`)) {
		t.Errorf("ls does not show the key quoted:\n%s", out)
	}
	out = must(d("versions", "registry/")...)
	noRaw("versions", out, 2)
	out = must(d("stat", "registry/"+evil)...)
	if !strings.Contains(out, "object:   "+quoted+"\n") {
		t.Errorf("stat does not show the key quoted:\n%s", out)
	}
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("stat printed a raw control character:\n%q", out)
	}
	_, stderr, err := runCLI(t, d("get", "registry/"+evil+"x", filepath.Join(work, "out"))...)
	if err == nil {
		t.Fatal("get of a missing key succeeded")
	}
	noRaw("an error naming the key", stderr, 1)

	// Lowering the label is a two-person request whose summary names the
	// key: custodians read it in 'request ls' and 'approve'.
	if _, stderr, err := runCLI(t, d("relabel", "registry/"+evil, "NATO UNCLASSIFIED")...); err == nil || !strings.Contains(stderr, "two-person approval required") {
		t.Fatalf("relabel: %v\n%s", err, stderr)
	}
	id := firstRequest(t, dir)
	n := unsealedNode(t, dir, filepath.Join(shares, "alice.share"), filepath.Join(keys, "alice.key"), filepath.Join(shares, "bob.share"), filepath.Join(keys, "bob.key"))
	c := *n.Config
	c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTKEY", SecretKey: "test-secret-key"}}
	c.S3.Address = freeAddr(t)
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	n.Close()
	srv := startServe(t, "--dir", dir)
	defer srv.stop()
	out = must("--dir", dir, "request", "ls", "--key", filepath.Join(keys, "alice.key"))
	noRaw("request ls", out, 2)
	if !strings.Contains(out, `"lower the label of registry/evil\nembassy: request 000000000000: pending\x1b[2K\r version `) {
		t.Errorf("request ls does not show the summary quoted:\n%s", out)
	}
	for _, name := range []string{"alice", "bob"} {
		must("--dir", dir, "unseal", "--share", filepath.Join(shares, name+".share"), "--key", filepath.Join(keys, name+".key"))
	}
	out, stderr, err = runCLI(t, "--dir", dir, "approve", id, "--key", filepath.Join(keys, "alice.key"))
	if err != nil {
		t.Fatalf("approve: %v\n%s", err, stderr)
	}
	// approve prints the whole request, a line per field, each quoted.
	noRaw("approve's description of the request", stderr, -1)
	if !strings.Contains(stderr, "\n  the node's summary: \"lower the label of registry/evil\\n") {
		t.Errorf("approve does not show the summary quoted:\n%s", stderr)
	}
	if !strings.Contains(stderr, "\n    key: \"evil\\n") {
		t.Errorf("approve does not show the key parameter quoted:\n%s", stderr)
	}
	noRaw("approve", out, 1)
}
