package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/node"
)

// TestHostedSiteCLI runs the commands of docs/alliance.md's "Host an ally's
// site": LUX's node hosts EST's with a quota, EST adds the site with
// 'site add --peer LUX', stores and reads back through it while LUX serves,
// a write past the quota is refused naming it, and 'host ls' shows LUX's
// operators sizes and counts without a name or a label.
func TestHostedSiteCLI(t *testing.T) {
	work := t.TempDir()
	est, lux := filepath.Join(work, "est"), filepath.Join(work, "lux")
	run := func(dir string, args ...string) (string, string, error) {
		t.Helper()
		return runCLI(t, append([]string{"--dir", dir}, args...)...)
	}
	cli := func(dir string, args ...string) string {
		t.Helper()
		out, errOut, err := run(dir, args...)
		if err != nil {
			t.Fatalf("embassy %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	for _, d := range []struct{ dir, nation string }{{est, "EST"}, {lux, "LUX"}} {
		cli(d.dir, "init", "--nation", d.nation)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := node.LoadConfig(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		c.Node.Dev = true
		c.Alliance.Listen = addr
		c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTADMIN01", SecretKey: "not-for-printing-0123456789"}}
		if d.nation == "LUX" {
			// What LUX offers its guests, as its card states it, in a
			// directory its operators made (the node never makes it).
			if err := os.Mkdir(filepath.Join(work, "hosted"), 0o700); err != nil {
				t.Fatal(err)
			}
			c.Alliance.Hosting = &node.HostingConfig{Path: filepath.Join(work, "hosted"), Jurisdiction: "LUX", Provider: "lux-gov-dc", Control: "LUX", Accredited: "NATO SECRET"}
		}
		if err := node.SaveConfig(d.dir, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"est-1", "est-2"} {
		cli(est, "site", "add", s, "--path", filepath.Join(work, "sites", s), "--jurisdiction", "EST", "--provider", "gov-dc", "--accredited", "NATO SECRET")
	}
	fp := regexp.MustCompile(`fingerprint (SHA256:\S+)`)
	card := func(dir string) (string, string) {
		file := dir + ".card"
		_, errOut, err := run(dir, "peer", "card", "-o", file)
		m := fp.FindStringSubmatch(errOut)
		if err != nil || m == nil {
			t.Fatalf("peer card: %v %q", err, errOut)
		}
		return file, m[1]
	}
	estCard, estFP := card(est)
	luxCard, luxFP := card(lux)
	if b, _ := os.ReadFile(luxCard); !strings.Contains(string(b), "hosting-jurisdiction LUX\nhosting-provider lux-gov-dc\nhosting-control LUX\nhosting-accredited NATO SECRET\n") {
		t.Fatalf("LUX's card lacks its hosting commitment:\n%s", b)
	}
	cli(lux, "peer", "add", estCard, "--fingerprint", estFP)
	cli(est, "peer", "add", luxCard, "--fingerprint", luxFP)

	if out := cli(lux, "host", "add", "EST", "--quota", "1MiB"); !regexp.MustCompile(`^node [0-9a-f]{16} \(EST\) hosted, quota 1 MiB\n$`).MatchString(out) {
		t.Errorf("host add: %q", out)
	}
	srv := startServe(t, "--dir", lux, "--address", "127.0.0.1:0")

	// A second hosted site on the same host is refused; so is a quota the
	// host did not grant.
	if _, errOut, err := run(est, "site", "add", "lux-hosted", "--peer", "LUX", "--quota", "10TiB"); err == nil || !strings.Contains(errOut, "hosts this node up to 1 MiB, not the 10 TiB asked for") {
		t.Errorf("site add asking more than granted: %v %s", err, errOut)
	}
	if out := cli(est, "site", "add", "lux-hosted", "--peer", "LUX", "--quota", "1MiB"); out != "site lux-hosted added: peer in LUX, provider lux-gov-dc (controlled from LUX)\n" {
		t.Errorf("site add --peer: %q", out)
	}
	if _, errOut, err := run(est, "site", "add", "lux-again", "--peer", "LUX"); err == nil || !strings.Contains(errOut, "hosts site lux-hosted already") {
		t.Errorf("the same host as a second site: %v %s", err, errOut)
	}
	if out := cli(est, "site", "ls"); !regexp.MustCompile(`(?m)^lux-hosted +LUX +lux-gov-dc +LUX +NATO SECRET +peer +peer [0-9a-f]{16} +ok$`).MatchString(out) {
		t.Errorf("site ls:\n%s", out)
	}
	cli(est, "vault", "create", "registry", "--erasure", "1+1", "--survive", "jurisdictions=1")
	note := filepath.Join(work, "note.txt")
	os.WriteFile(note, []byte("kept in Luxembourg, sealed"), 0o600)
	cli(est, "put", note, "registry/2026/note.txt", "--label", "NATO RESTRICTED")
	back := filepath.Join(work, "back.txt")
	cli(est, "get", "registry/2026/note.txt", back)
	if b, _ := os.ReadFile(back); string(b) != "kept in Luxembourg, sealed" {
		t.Errorf("read back %q", b)
	}
	big := make([]byte, 2<<20)
	rand.Read(big)
	bigFile := filepath.Join(work, "big.bin")
	os.WriteFile(bigFile, big, 0o600)
	if _, errOut, err := run(est, "put", bigFile, "registry/2026/big.bin"); err == nil || !strings.Contains(errOut, "may keep 1 MiB on this node") ||
		!strings.Contains(errOut, "hint: free space on the full sites") {
		t.Errorf("put past the quota: %v\n%s", err, errOut)
	}

	t.Setenv("EMBASSY_ACCESS_KEY", "EMBTESTADMIN01")
	t.Setenv("EMBASSY_SECRET_KEY", "not-for-printing-0123456789")
	out := cli(lux, "--node", "http://"+srv.addr, "host", "ls")
	if !regexp.MustCompile(`(?m)^NATION +NODES +SITE BYTES +SITE BLOBS +QUOTA +REPLICA BYTES +REPLICA BLOBS\nEST +1 +\d+ (B|KiB|MiB) +\d+ +1 MiB +0 B +0$`).MatchString(out) {
		t.Errorf("host ls:\n%s", out)
	}
	for _, secret := range []string{"note", "2026", "RESTRICTED", "registry", "big"} {
		if strings.Contains(out, secret) {
			t.Errorf("host ls shows %q:\n%s", secret, out)
		}
	}
	out = cli(lux, "--node", "http://"+srv.addr, "--json", "host", "ls")
	if !strings.Contains(out, `"nation": "EST"`) || !strings.Contains(out, `"quota": 1048576`) {
		t.Errorf("host ls --json:\n%s", out)
	}
	if _, errOut, err := run(lux, "--node", "http://"+srv.addr, "host", "rm", "EST"); err == nil || !strings.Contains(errOut, "they are its data") {
		t.Errorf("host rm of a guest with data: %v %s", err, errOut)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if out := cli(lux, "audit", "log", "--kind", "host.add"); !strings.Contains(out, "host.add by admin") {
		t.Errorf("LUX's audit log:\n%s", out)
	}
	hostedSiteUnavailable(t, work, est, lux, run, cli, back)
	// The host's files are ciphertext.
	filepath.WalkDir(filepath.Join(work, "hosted"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("kept in Luxembourg")) {
				t.Errorf("%s holds plaintext", p)
			}
		}
		return nil
	})
}

// hostedSiteUnavailable: EST's hosted site on LUX is unavailable, with the
// reason, when LUX's node is down, when EST's store on LUX is missing (a
// volume not mounted) and when it is half there (an empty mount point): a
// write that needs it fails with nothing visible, reads go on from EST's
// own shards, LUX's 'host ls' says the store is unavailable, nothing is
// made in the store's place on LUX's disk, and once the store is back
// every blob of EST's is still there and reads come from it again.
func hostedSiteUnavailable(t *testing.T, work, est, lux string, run func(string, ...string) (string, string, error), cli func(string, ...string) string, back string) {
	t.Helper()
	estConf, err := node.LoadConfig(est)
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(work, "hosted", estConf.Node.ID)
	before := storeNames(t, store)
	if len(before) == 0 {
		t.Fatal("EST's store on LUX holds nothing")
	}
	small := filepath.Join(work, "small.txt")
	os.WriteFile(small, []byte("must not be half-written"), 0o600)
	state := regexp.MustCompile(`(?m)^lux-hosted +LUX +lux-gov-dc +LUX +NATO SECRET +peer +peer [0-9a-f]{16} +(.*)$`)
	siteState := func() string {
		t.Helper()
		m := state.FindStringSubmatch(cli(est, "site", "ls"))
		if m == nil {
			t.Fatal("site ls shows no lux-hosted")
		}
		return m[1]
	}
	readBack := func(why string) {
		t.Helper()
		os.Remove(back)
		cli(est, "get", "registry/2026/note.txt", back)
		if b, _ := os.ReadFile(back); string(b) != "kept in Luxembourg, sealed" {
			t.Errorf("%s: read back %q", why, b)
		}
	}
	cannotWrite := func(why string) {
		t.Helper()
		if _, errOut, err := run(est, "put", small, "registry/2026/small.txt"); err == nil || !strings.Contains(errOut, "lux-hosted") {
			t.Errorf("%s: a put that needs the hosted site: %v\n%s", why, err, errOut)
		}
		if out, _, _ := run(est, "ls", "registry/2026/"); strings.Contains(out, "small.txt") {
			t.Errorf("%s: a failed put is visible:\n%s", why, out)
		}
	}

	// LUX's node is down.
	if st := siteState(); !strings.HasPrefix(st, "unavailable: ") || !strings.Contains(st, "127.0.0.1") {
		t.Errorf("site ls with LUX down: %q", st)
	}
	readBack("LUX down")
	cannotWrite("LUX down")

	// LUX serves, but EST's store is not there: the volume holding it is
	// not mounted.
	aside := store + ".unmounted"
	if err := os.Rename(store, aside); err != nil {
		t.Fatal(err)
	}
	// (serve takes a credential from the environment: not this one)
	t.Setenv("EMBASSY_ACCESS_KEY", "")
	t.Setenv("EMBASSY_SECRET_KEY", "")
	srv := startServe(t, "--dir", lux, "--address", "127.0.0.1:0")
	if st := siteState(); !strings.HasPrefix(st, "unavailable: ") || !strings.Contains(st, "keeps for you cannot be reached now") {
		t.Errorf("site ls with the store missing: %q", st)
	}
	readBack("store missing")
	cannotWrite("store missing")
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing store was made again on LUX's disk: %v", err)
	}
	t.Setenv("EMBASSY_ACCESS_KEY", "EMBTESTADMIN01")
	t.Setenv("EMBASSY_SECRET_KEY", "not-for-printing-0123456789")
	if out := cli(lux, "--node", "http://"+srv.addr, "host", "ls"); !strings.Contains(out, "(1 store unavailable)") {
		t.Errorf("host ls with the store missing:\n%s", out)
	}

	// Half there: the mount point is, empty, without the volume.
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if st := siteState(); !strings.HasPrefix(st, "unavailable: ") {
		t.Errorf("site ls with the store half there: %q", st)
	}
	readBack("store half there")
	cannotWrite("store half there")
	if names := storeNames(t, store); len(names) != 0 {
		t.Errorf("written into an empty mount point: %v", names)
	}

	// The volume is back: everything EST kept there still is, and the
	// site is in use again.
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(aside, store); err != nil {
		t.Fatal(err)
	}
	if st := siteState(); st != "ok" {
		t.Errorf("site ls with the store back: %q", st)
	}
	if after := storeNames(t, store); !slices.Equal(after, before) {
		t.Errorf("EST's blobs on LUX: %v, were %v", after, before)
	}
	readBack("store back")
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
}

// storeNames lists the files of a store, temporary ones excepted.
func storeNames(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(root, p); !d.IsDir() && !strings.HasPrefix(rel, ".tmp") {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
