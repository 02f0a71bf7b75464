package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/embassy-dev/embassy/node"
)

// s3Labelled sends a signed S3 request with an x-embassy-label header.
func s3Labelled(ctx context.Context, url, ak, sk, method, path, label string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if label != "" {
		req.Header.Set("X-Embassy-Label", label)
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestRemoteConfigEdit: 'embassy --node URL config edit' on a running
// node (no restart): a principal and its S3 credential added through the
// editor are in force for a signed S3 request at once; a label policy
// added the same way takes effect; 'config show' never prints a secret
// and its markers keep the secrets they name; a tampered marker is
// refused; a principal without the admin role is refused by the node.
func TestRemoteConfigEdit(t *testing.T) {
	_, url, ak, sk := devServe(t)
	const doraAK, doraSK = "AKDORA000001", "dora-secret-key-0001"
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, append([]string{"--node", url}, args...)...)
		if err != nil {
			t.Fatalf("embassy --node %v: %v\n%s%s", args, err, out, errOut)
		}
		return out
	}
	cli("vault", "create", "lab", "--survive", "jurisdictions=1")
	editWith := func(body string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "proposed.yaml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		// The "editor" puts the prepared file in place of the one opened.
		t.Setenv("EDITOR", "cp "+f)
	}
	dora := s3client{url, doraAK, doraSK}
	if st, _, err := dora.do(t.Context(), "PUT", "/lab/by-dora", []byte("x")); err != nil || st != http.StatusForbidden {
		t.Fatalf("dora before her credential exists: %d %v", st, err)
	}

	// 1. A principal and her credential, through the editor.
	shown := cli("config", "show")
	proposed := strings.Replace(shown, "principals:\n", "principals:\n  - name: dora\n    nation: EST\n    roles:\n      - writer\n", 1) +
		"s3:\n  credentials:\n    - principal: dora\n      access_key: " + doraAK + "\n      secret_key: " + doraSK + "\n"
	editWith(proposed)
	out := cli("config", "edit")
	if !strings.Contains(out, "s3 credential "+doraAK+" of principal dora added") || !strings.Contains(out, "node.yaml updated: generation") {
		t.Fatalf("config edit:\n%s", out)
	}
	if strings.Contains(out, doraSK) {
		t.Errorf("config edit printed the new secret:\n%s", out)
	}
	if st, b, err := dora.do(t.Context(), "PUT", "/lab/by-dora", []byte("written by dora")); err != nil || st != 200 {
		t.Fatalf("dora's signed PUT after the edit: %d %v %s", st, err, b)
	}

	// 2. What the node shows holds no secret, as text or JSON.
	shown = cli("config", "show")
	js := cli("config", "show", "--json")
	for _, s := range []string{shown, js} {
		if strings.Contains(s, doraSK) || strings.Contains(s, sk) {
			t.Fatalf("config show holds a secret:\n%s", s)
		}
	}
	if !strings.Contains(shown, "secret_key: embassy-redacted:s3.credentials/"+doraAK) {
		t.Fatalf("no marker in\n%s", shown)
	}
	var view node.ConfigView
	if err := json.Unmarshal([]byte(js), &view); err != nil || view.Body != shown || view.Generation == 0 {
		t.Fatalf("config show --json: %v %+v", err, view)
	}

	// 3. A label policy, through the editor; the marker keeps dora's
	// secret.
	const label = "EST SALAJANE"
	if st, b, err := s3Labelled(t.Context(), url, ak, sk, "PUT", "/lab/est-doc", label, []byte("est")); err != nil || st == 200 {
		t.Fatalf("a label of an unknown policy before the edit: %d %v %s", st, err, b)
	}
	editWith(shown + "policies:\n  - id: EST\n    levels:\n      - AVALIK\n      - SALAJANE\n    equivalents:\n      NATO:\n        SALAJANE: SECRET\n")
	out = cli("config", "edit")
	if !strings.Contains(out, "node.yaml updated") {
		t.Fatalf("config edit (policy):\n%s", out)
	}
	if st, b, err := s3Labelled(t.Context(), url, ak, sk, "PUT", "/lab/est-doc", label, []byte("est")); err != nil || st != 200 {
		t.Fatalf("a label of the policy added: %d %v %s", st, err, b)
	}
	if st, b, err := dora.do(t.Context(), "PUT", "/lab/by-dora-2", []byte("kept")); err != nil || st != 200 {
		t.Fatalf("dora's credential after an edit that kept its marker: %d %v %s", st, err, b)
	}

	// 4. A tampered marker is refused, and nothing changes.
	before := cli("config", "show")
	tampered := filepath.Join(t.TempDir(), "tampered.yaml")
	os.WriteFile(tampered, []byte(strings.Replace(before, "embassy-redacted:s3.credentials/"+doraAK, "embassy-redacted:s3.credentials/AKFORGED", 1)), 0o600)
	_, errOut, err := runCLI(t, "--node", url, "config", "edit", "--apply", tampered)
	if err == nil || !strings.Contains(errOut, "names no secret of the node.yaml in force") {
		t.Errorf("a tampered marker: %v\n%s", err, errOut)
	}
	if after := cli("config", "show"); after != before {
		t.Errorf("a refused edit changed node.yaml:\n%s", after)
	}

	// 5. Dora (a writer) is refused by the node, for showing and editing.
	t.Setenv("EMBASSY_ACCESS_KEY", doraAK)
	t.Setenv("EMBASSY_SECRET_KEY", doraSK)
	for _, args := range [][]string{{"config", "show"}, {"config", "edit", "--apply", tampered}} {
		if _, errOut, err := runCLI(t, append([]string{"--node", url}, args...)...); err == nil || !strings.Contains(errOut, "access denied") {
			t.Errorf("dora: embassy --node %v: %v\n%s", args, err, errOut)
		}
	}
	t.Setenv("EMBASSY_ACCESS_KEY", ak)
	t.Setenv("EMBASSY_SECRET_KEY", sk)
	if after := cli("config", "show"); after != before {
		t.Errorf("a refused caller changed node.yaml:\n%s", after)
	}
}

// TestPlainSecretsRefused: a proposal carrying a secret in clear is not
// sent to a node reached by plain http on another host; loopback and https
// are fine, and so is a proposal whose secrets are all markers.
func TestPlainSecretsRefused(t *testing.T) {
	clear := []byte("s3:\n  credentials:\n  - access_key: AKNEW\n    secret_key: s3cr3t-in-clear\n    principal: ops\n")
	markers := []byte("s3:\n  credentials:\n  - access_key: AKOPS\n    secret_key: \"embassy-redacted:s3.credentials/AKOPS\"\n    principal: ops\n")
	for _, c := range []struct {
		url     string
		body    []byte
		refused bool
	}{
		{"http://10.1.2.3:9443", clear, true},
		{"http://node.example.org:9000", clear, true},
		{"http://[2001:db8::1]:9000", clear, true},
		{"https://node.example.org:9443", clear, false},
		{"http://127.0.0.1:9000", clear, false},
		{"http://[::1]:9000", clear, false},
		{"http://localhost:9000", clear, false},
		{"http://10.1.2.3:9443", markers, false},
	} {
		err := plainSecrets(c.url, c.body)
		if (err != nil) != c.refused {
			t.Errorf("plainSecrets(%s, %q) = %v, want refused %v", c.url, c.body, err, c.refused)
		}
		if err != nil && (!strings.Contains(err.Error(), "s3.credentials[0].secret_key") || !strings.Contains(err.Error(), "nothing was sent")) {
			t.Errorf("refusal does not name the secret or say nothing was sent: %v", err)
		}
	}
}
