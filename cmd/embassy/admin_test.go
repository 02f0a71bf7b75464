package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

// custodianKeys writes alice's and bob's key files into work.
func custodianKeys(t *testing.T, work string) (map[string]string, []custody.CustodianPublic) {
	t.Helper()
	keys := map[string]string{}
	var pubs []custody.CustodianPublic
	for _, c := range []string{"alice", "bob"} {
		k, err := custody.GenerateCustodian(c)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, k.Public())
		b, _ := k.MarshalPrivate()
		keys[c] = filepath.Join(work, c+".key")
		if err := os.WriteFile(keys[c], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return keys, pubs
}

// custodianNode makes a sealed node in work/name split between the
// custodians, serving on a free address, and returns its directory and
// share files.
func custodianNode(t *testing.T, work, name string, pubs []custody.CustodianPublic) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(work, name)
	shares := map[string]string{}
	addr := freeAddr(t)
	_, err := node.Init(dir, node.InitOptions{Nation: "EST", Custodians: pubs, Threshold: 2,
		Share: func(c string, f []byte) error {
			shares[c] = filepath.Join(work, name+"-"+c+".share")
			return os.WriteFile(shares[c], f, 0o600)
		}, Configure: func(c *node.Config) {
			c.S3.Address = addr
			c.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTKEY", SecretKey: "test-secret-key"}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	startServe(t, "--dir", dir)
	return dir, shares
}

// TestUnsealChecksTheNode: unseal sends a share only to the node it belongs
// to, and only over TLS to a node not on this machine; the node's
// ceremony is untouched by a refused attempt.
func TestUnsealChecksTheNode(t *testing.T) {
	work := t.TempDir()
	keys, pubs := custodianKeys(t, work)
	dir, shares := custodianNode(t, work, "a", pubs)
	// The same custodians also hold shares of another node.
	_, otherShares := custodianNode(t, work, "b", pubs)
	_, stderr, err := runCLI(t, "--dir", dir, "unseal", "--share", otherShares["alice"], "--key", keys["alice"])
	if err == nil || !strings.Contains(stderr, "is a share of node") || !strings.Contains(stderr, "not sent") {
		t.Fatalf("unseal with another node's share: %v\n%s", err, stderr)
	}
	out, _, err := runCLI(t, "--dir", dir, "status", "--key", keys["alice"])
	if err != nil || !strings.Contains(out, "SEALED (0 of 2 shares given)") {
		t.Fatalf("after the refused share: %q, %v", out, err)
	}
	// Plain http to a node elsewhere: refused before anything is sent.
	_, stderr, err = runCLI(t, "--dir", dir, "unseal", "--node", "http://192.0.2.10:9000", "--share", shares["alice"], "--key", keys["alice"])
	if err == nil || !strings.Contains(stderr, "refusing to send a share over plain http to http://192.0.2.10:9000") {
		t.Fatalf("unseal over plain http to another machine: %v\n%s", err, stderr)
	}
	// Nor by spelling the scheme otherwise, hiding a host behind user
	// info, or another scheme.
	for nodeURL, want := range map[string]string{
		"HTTP://192.0.2.10:9000":           "refusing to send a share over plain http",
		"http://127.0.0.1@192.0.2.10:9000": "refusing to send a share over plain http",
		"ftp://192.0.2.10/":                "must start with https://",
	} {
		_, stderr, err = runCLI(t, "--dir", dir, "unseal", "--node", nodeURL, "--share", shares["alice"], "--key", keys["alice"])
		if err == nil || !strings.Contains(stderr, want) {
			t.Errorf("unseal --node %s: %v\n%s", nodeURL, err, stderr)
		}
	}
	// A node (or whoever answers for it) that claims the share's node id
	// and redirects the share elsewhere is not followed.
	c, err := node.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	var elsewhere atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer sink.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			json.NewEncoder(w).Encode(node.Status{Node: c.Node.ID, Nation: "EST", Unseal: node.UnsealStatus{Sealed: true}})
			return
		}
		http.Redirect(w, r, sink.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	_, stderr, err = runCLI(t, "--dir", dir, "unseal", "--node", redirector.URL, "--share", shares["alice"], "--key", keys["alice"])
	if err == nil || !strings.Contains(stderr, "redirects to") || elsewhere.Load() != 0 {
		t.Fatalf("unseal redirected: %v, %d requests elsewhere\n%s", err, elsewhere.Load(), stderr)
	}
	// The right share, to the right node.
	for _, c := range []string{"alice", "bob"} {
		if _, stderr, err := runCLI(t, "--dir", dir, "unseal", "--share", shares[c], "--key", keys[c]); err != nil {
			t.Fatalf("unseal %s: %v\n%s", c, err, stderr)
		}
	}
	out, _, err = runCLI(t, "--dir", dir, "status")
	if err != nil || !strings.Contains(out, ": unsealed") {
		t.Fatalf("after both shares: %q, %v", out, err)
	}
	// A custodian sees each key's encryptions under random GCM nonces.
	out, _, err = runCLI(t, "--dir", dir, "status", "--key", keys["alice"])
	if err != nil || !regexp.MustCompile(`(?m)^manifest key [0-9a-f]{16}: [1-9][0-9]* encryptions, [0-9.]+% of the limit 4294967296$`).MatchString(out) {
		t.Fatalf("a custodian's status of the unsealed node does not show the manifest key's encryptions: %q, %v", out, err)
	}
}

// TestApproveRefusesADigestThatDoesNotMatch: a node (or whoever answers
// in its name) that shows a custodian one request and gives the digest of
// another gets no signature.
func TestApproveRefusesADigestThatDoesNotMatch(t *testing.T) {
	work := t.TempDir()
	k, _ := custody.GenerateCustodian("alice")
	b, _ := k.MarshalPrivate()
	keyPath := filepath.Join(work, "alice.key")
	os.WriteFile(keyPath, b, 0o600)

	const nodeID = "2372b0be3c9b9a21"
	shown := &node.Request{ID: "677c5de9c72b", Op: vault.Operation{Kind: "object.relabel", Summary: "raise the label of registry/plan",
		Params: map[string]string{"vault": "registry", "key": "plan", "version": "00112233445566778899aabbccddeeff", "label": "NATO SECRET"}},
		Requester: "admin", Created: time.Now().UTC(), Expires: time.Now().UTC().Add(time.Hour), Needed: 2, Status: "pending"}
	real := *shown
	real.Op.Params = map[string]string{"vault": "registry", "key": "plan", "version": "00112233445566778899aabbccddeeff", "label": "NATO UNCLASSIFIED//REL TO EST, LUX, USA"}
	shown.Digest = real.ComputeDigest(nodeID) // the digest of what would really be done

	var posts atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST":
			posts.Add(1)
			w.WriteHeader(500)
		case strings.HasSuffix(r.URL.Path, "/v1/custody/status"):
			json.NewEncoder(w).Encode(node.Status{Node: nodeID, Nation: "EST"})
		case strings.HasSuffix(r.URL.Path, "/v1/custody/requests"):
			json.NewEncoder(w).Encode([]*node.Request{shown})
		default:
			w.WriteHeader(404)
		}
	}))
	defer fake.Close()
	_, stderr, err := runCLI(t, "approve", shown.ID, "--key", keyPath, "--node", fake.URL)
	if err == nil || !strings.Contains(stderr, "the request's digest does not match its parameters: refusing to sign request 677c5de9c72b") {
		t.Fatalf("approve of a request whose digest is another's: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, `label: "NATO SECRET"`) || !strings.Contains(stderr, "DOES NOT MATCH") {
		t.Errorf("approve does not show what it was shown:\n%s", stderr)
	}
	if posts.Load() != 0 {
		t.Fatal("a decision was sent")
	}
	// --node-id pins the node.
	shown.Digest = shown.ComputeDigest(nodeID)
	_, stderr, err = runCLI(t, "approve", shown.ID, "--key", keyPath, "--node", fake.URL, "--node-id", "ffffffffffffffff")
	if err == nil || !strings.Contains(stderr, "not ffffffffffffffff (--node-id): refusing to sign") || posts.Load() != 0 {
		t.Fatalf("approve with another --node-id: %v\n%s", err, stderr)
	}
}
