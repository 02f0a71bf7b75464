package node

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/vault"
)

// labelledNode is a node (not dev) with principals of every kind and S3
// credentials for each, serving S3 in-process.
func labelledNode(t *testing.T) (*Node, map[string]*minio.Client) {
	t.Helper()
	n := newNode(t)
	for i := range n.Config.Sites {
		n.Config.Sites[i].Accredited = "NATO SECRET"
	}
	n.Config.Principals = append(n.Config.Principals,
		access.Principal{Name: "officer", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}},
		access.Principal{Name: "ally", Nation: "USA", Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}},
		access.Principal{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "RESTRICTED"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}},
		access.Principal{Name: "outsider", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}},
	)
	for _, p := range []string{"officer", "ally", "clerk", "outsider"} {
		n.Config.S3.Credentials = append(n.Config.S3.Credentials, CredentialConfig{Principal: p, AccessKey: "AK" + strings.ToUpper(p), SecretKey: "secret-of-" + p})
	}
	if err := SaveConfig(n.Dir, n.Config); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n2, err := Open(context.Background(), n.Dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n2.Close() })
	if err := n2.AddVault(VaultConfig{Name: "intel", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	h, err := n2.S3Handler()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	clients := map[string]*minio.Client{}
	for _, p := range []string{"officer", "ally", "clerk", "outsider"} {
		c, err := minio.New(strings.TrimPrefix(hs.URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("AK"+strings.ToUpper(p), "secret-of-"+p, ""), Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		clients[p] = c
	}
	return n2, clients
}

// TestS3RefusesPrincipals: a principal of each refused kind gets
// AccessDenied on GET, HEAD and as a CopyObject source, and LIST and
// ListObjectVersions do not show the object; the cleared principal reads it.
func TestS3RefusesPrincipals(t *testing.T) {
	n, c := labelledNode(t)
	ctx := context.Background()
	body := []byte("troop movements")
	if _, err := n.Engine.Put(n.As(ctx, "officer"), "intel", "report", bytes.NewReader(body), vault.PutOptions{
		Size: int64(len(body)), Label: "NATO SECRET//REL TO EST//RESTRICTIVE Compartment: ALPHA"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ally", "clerk", "outsider"} {
		t.Run(p, func(t *testing.T) {
			denied := func(op string, err error) {
				t.Helper()
				if minio.ToErrorResponse(err).Code != "AccessDenied" {
					t.Fatalf("%s: %v, want AccessDenied", op, err)
				}
			}
			o, err := c[p].GetObject(ctx, "intel", "report", minio.GetObjectOptions{})
			if err == nil {
				_, err = io.ReadAll(o)
			}
			denied("GET", err)
			_, err = c[p].StatObject(ctx, "intel", "report", minio.StatObjectOptions{})
			if minio.ToErrorResponse(err).StatusCode != 403 {
				t.Fatalf("HEAD: %v, want 403", err)
			}
			_, err = c[p].CopyObject(ctx, minio.CopyDestOptions{Bucket: "intel", Object: "copy-" + p}, minio.CopySrcOptions{Bucket: "intel", Object: "report"})
			denied("CopyObject source", err)
			for o := range c[p].ListObjects(ctx, "intel", minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				if o.Key == "report" {
					t.Fatal("the refused object is listed")
				}
			}
			for o := range c[p].ListObjects(ctx, "intel", minio.ListObjectsOptions{Recursive: true}) {
				if o.Key == "report" {
					t.Fatal("the refused object is listed")
				}
			}
		})
	}
	o, err := c["officer"].GetObject(ctx, "intel", "report", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the cleared principal reads %q, %v", got, err)
	}
}
