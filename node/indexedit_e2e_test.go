package node

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/vault"
)

// serveS3 opens the node in dir and serves its S3 API in-process, with
// the credential AKADMIN / secret-of-admin for the admin principal.
func serveS3(t *testing.T, dir string) (*Node, *minio.Client, func()) {
	t.Helper()
	n, err := Open(context.Background(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	h, err := n.S3Handler()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	c, err := minio.New(strings.TrimPrefix(hs.URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("AKADMIN", "secret-of-admin", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return n, c, func() { hs.Close(); n.Close() }
}

// TestS3RefusesHandEditedIndexEntry: an index entry whose envelope was
// edited in the index file while the node was stopped is not served
// through S3 (neither the object nor its metadata), and a repairing scrub
// puts the verified envelope back from the sites.
func TestS3RefusesHandEditedIndexEntry(t *testing.T) {
	n := newNode(t)
	n.Config.S3.Credentials = append(n.Config.S3.Credentials, CredentialConfig{Principal: "admin", AccessKey: "AKADMIN", SecretKey: "secret-of-admin"})
	if err := SaveConfig(n.Dir, n.Config); err != nil {
		t.Fatal(err)
	}
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	dir := n.Dir
	n.Close()

	n, c, stop := serveS3(t, dir)
	ctx := context.Background()
	body := []byte("the land registry, parcel 4711")
	if _, err := c.PutObject(ctx, "registry", "parcel", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	iv, err := n.Index.Latest(ctx, "registry", "parcel")
	if err != nil {
		t.Fatal(err)
	}
	stop()

	// Flip one bit of the sealed body where the index file holds it.
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	edited := 0
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("v/registry")).Bucket([]byte("envelopes"))
		var keys [][]byte
		b.ForEach(func(k, v []byte) error {
			if bytes.Equal(v, iv.Envelope) {
				keys = append(keys, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range keys {
			env := bytes.Clone(iv.Envelope)
			env[40] ^= 0x01
			if err := b.Put(k, env); err != nil {
				return err
			}
			edited++
		}
		return nil
	})
	db.Close()
	if err != nil || edited != 1 {
		t.Fatalf("edited %d envelopes: %v", edited, err)
	}

	n, c, stop = serveS3(t, dir)
	defer stop()
	if _, err := c.StatObject(ctx, "registry", "parcel", minio.StatObjectOptions{}); err == nil {
		t.Fatal("HEAD of an object whose index entry was edited succeeded")
	}
	if o, err := c.GetObject(ctx, "registry", "parcel", minio.GetObjectOptions{}); err == nil {
		got, err := io.ReadAll(o)
		if err == nil || bytes.Equal(got, body) {
			t.Fatalf("GET of an object whose index entry was edited served it: %q, %v", got, err)
		}
	}
	rep, err := n.Keeper().Scrub(vault.AsSystem(ctx), housekeeping.ScrubOptions{Repair: true})
	if err != nil || rep.DamagedCopies != 1 {
		t.Fatalf("repairing scrub: %+v, %v", rep, err)
	}
	o, err := c.GetObject(ctx, "registry", "parcel", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the scrub: %q, %v", got, err)
	}
}
