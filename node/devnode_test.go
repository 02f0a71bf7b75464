package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/vault"
)

// devRegistry opens a fresh development node with a vault "registry".
func devRegistry(t *testing.T) *Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dev")
	if _, err := InitDev(dir, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(t.Context(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A development node's sites are accredited to NATO COSMIC TOP SECRET (as
// docs/operator-guide.md says): a labelled put is placed as on any node.
func TestDevNodeHoldsLabelledData(t *testing.T) {
	n := devRegistry(t)
	ctx := n.As(t.Context(), "admin")
	for _, l := range []string{"NATO SECRET", "NATO COSMIC TOP SECRET//REL TO EST, LUX"} {
		if _, err := n.Engine.Put(ctx, "registry", "minutes", bytes.NewReader([]byte("minutes")), vault.PutOptions{Size: 7, Label: l}); err != nil {
			t.Fatalf("put labelled %q on a dev node: %v", l, err)
		}
		r, err := n.Engine.Get(ctx, "registry", "minutes", vault.GetOptions{Length: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != "minutes" {
			t.Errorf("read back %q", b)
		}
	}
}

// A credential whose principal the node does not know (given to serve, as
// --credentials-file does, or left after 'principal rm') can do nothing,
// on a development node too: it once acted as a fully cleared admin there,
// so removing a principal raised its leftover credentials to admin.
func TestDevNodeUnknownPrincipalHasNoPower(t *testing.T) {
	n := devRegistry(t)
	c := *n.conf()
	c.Principals = append(slices.Clone(c.Principals), access.Principal{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "RESTRICTED"}})
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	creds := []s3.Credential{
		{Principal: "admin", AccessKey: "AKDEVADMIN", SecretKey: "dev-admin-secret"},
		{Principal: "ghost", AccessKey: "AKDEVGHOST", SecretKey: "dev-ghost-secret"},
		{Principal: "clerk", AccessKey: "AKDEVCLERK", SecretKey: "dev-clerk-secret"},
	}
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, ServeOptions{Address: "127.0.0.1:0", Credentials: creds, Ready: func(addr string, _ bool) { ready <- addr }})
	}()
	defer func() {
		cancel()
		<-done
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	client := func(c s3.Credential) *minio.Client {
		m, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	admin, ghost, clerk := client(creds[0]), client(creds[1]), client(creds[2])
	if _, err := admin.PutObject(t.Context(), "registry", "deed", strings.NewReader("deed"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("admin put: %v", err)
	}
	refused := func(who string, m *minio.Client) {
		t.Helper()
		if _, err := m.PutObject(t.Context(), "registry", "forged", strings.NewReader("forged"), 6, minio.PutObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 403 {
			t.Errorf("%s put: %v, want 403", who, err)
		}
		if err := m.RemoveObject(t.Context(), "registry", "deed", minio.RemoveObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 403 {
			t.Errorf("%s delete: %v, want 403", who, err)
		}
		if err := m.MakeBucket(t.Context(), "stolen", minio.MakeBucketOptions{}); minio.ToErrorResponse(err).StatusCode != 403 {
			t.Errorf("%s make bucket: %v, want 403", who, err)
		}
		if _, err := m.StatObject(t.Context(), "registry", "deed", minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 403 {
			t.Errorf("%s stat: %v, want 403", who, err)
		}
	}
	refused("ghost (never configured)", ghost)
	// clerk may write while configured (the vault's owner nation, no label).
	if _, err := clerk.PutObject(t.Context(), "registry", "note", strings.NewReader("note"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("clerk put while configured: %v", err)
	}
	if err := n.RemovePrincipal(n.As(t.Context(), "admin"), "clerk"); err != nil {
		t.Fatal(err)
	}
	refused("clerk (removed, credential still given to serve)", clerk)
	if _, err := admin.StatObject(t.Context(), "registry", "deed", minio.StatObjectOptions{}); err != nil {
		t.Errorf("deed after the refusals: %v", err)
	}
}
