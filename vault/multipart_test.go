package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
)

func TestMultipartUpload(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	up, err := n.e.CreateUpload(ctx, "registry", "mp/object", PutOptions{ContentType: "application/x-test", Meta: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	part := func(i int) []byte { return content(fmt.Sprintf("part-%d", i), MinPartSize+i*1000) }
	// Upload parts out of order, and part 2 twice (the second replaces the first).
	var etags = map[int]string{}
	for _, i := range []int{3, 1, 2, 2} {
		data := part(i)
		if i == 3 {
			data = []byte("short last part")
		}
		p, err := n.e.PutPart(ctx, "registry", "mp/object", up.ID, i, bytes.NewReader(data), int64(len(data)), func() string { return fmt.Sprintf("\"%032x\"", i) })
		if err != nil {
			t.Fatal(err)
		}
		etags[i] = p.ETag
	}
	parts, err := n.e.ListParts(ctx, "registry", "mp/object", up.ID)
	if err != nil || len(parts) != 3 || parts[0].Number != 1 {
		t.Fatalf("ListParts = %+v, %v", parts, err)
	}
	page, _ := n.e.ListUploads(ctx, "registry", index.UploadOptions{})
	if len(page.Uploads) != 1 || page.Uploads[0].ID != up.ID {
		t.Fatalf("ListUploads = %+v", page.Uploads)
	}
	bad := []struct {
		name  string
		parts []CompletePart
		want  error
	}{
		{"missing part", []CompletePart{{1, etags[1]}, {4, etags[2]}}, ErrInvalidPart},
		{"wrong etag", []CompletePart{{1, etags[2]}}, ErrInvalidPart},
		{"out of order", []CompletePart{{2, etags[2]}, {1, etags[1]}}, ErrInvalidPartOrder},
		{"small part before the last", []CompletePart{{1, etags[1]}, {3, etags[3]}, {4, etags[2]}}, ErrPartTooSmall},
	}
	for _, tc := range bad {
		if _, err := n.e.CompleteUpload(ctx, "registry", "mp/object", up.ID, tc.parts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	info, err := n.e.CompleteUpload(ctx, "registry", "mp/object", up.ID, []CompletePart{{1, etags[1]}, {2, etags[2]}, {3, etags[3]}})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(part(1), part(2)...), "short last part"...)
	if info.Size != int64(len(want)) || info.Parts != 3 || info.ContentType != "application/x-test" {
		t.Fatalf("completed info = %+v", info)
	}
	if info.ETag[len(info.ETag)-3:] != "-3\"" {
		t.Fatalf("multipart ETag %s does not end in -3", info.ETag)
	}
	if got := n.mustRead("mp/object"); !bytes.Equal(got, want) {
		t.Fatal("multipart object differs")
	}
	// A range across the part boundary.
	got, _, err := n.read("mp/object", GetOptions{Offset: int64(len(part(1))) - 10, Length: 20})
	if err != nil || !bytes.Equal(got, want[len(part(1))-10:len(part(1))+10]) {
		t.Fatalf("range across parts: %v", err)
	}
	if _, err := n.e.ListParts(ctx, "registry", "mp/object", up.ID); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("upload survives completion: %v", err)
	}
	// The replaced part 2 left no blobs: only the three parts' shards
	// and their manifest copies remain.
	if c := n.blobCount(); c != 3*6+len(distinctSites(n, "mp/object")) {
		t.Fatalf("%d blobs on the sites, want %d", c, 3*6+len(distinctSites(n, "mp/object")))
	}
}

func distinctSites(n *testNode, key string) map[string]bool {
	locs, _ := n.e.Locate(n.t.Context(), "registry", key, [16]byte{})
	m := map[string]bool{}
	for _, l := range locs {
		m[l.Site] = true
	}
	return m
}

func TestAbortUploadRemovesParts(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	up, _ := n.e.CreateUpload(ctx, "registry", "ab", PutOptions{})
	if _, err := n.e.PutPart(ctx, "registry", "ab", up.ID, 1, bytes.NewReader(content("p", 3*testStripe)), -1, nil); err != nil {
		t.Fatal(err)
	}
	if n.blobCount() != 6 {
		t.Fatalf("%d blobs after one part", n.blobCount())
	}
	if err := n.e.AbortUpload(ctx, "registry", "ab", up.ID); err != nil {
		t.Fatal(err)
	}
	if n.blobCount() != 0 {
		t.Fatalf("%d blobs after abort", n.blobCount())
	}
	if _, err := n.e.PutPart(ctx, "registry", "ab", up.ID, 2, bytes.NewReader([]byte("x")), 1, nil); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("part after abort: %v", err)
	}
	if _, err := n.e.CompleteUpload(ctx, "registry", "other-key", up.ID, []CompletePart{{1, "x"}}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("upload id used with another key: %v", err)
	}
}

// TestUploadOwnership: an upload belongs to its initiator and the vault's
// operators; one recorded before uploads had owners belongs to operators
// only; listings show each principal its own.
func TestUploadOwnership(t *testing.T) {
	ln := newLabelNode(t)
	as := func(p access.Principal) context.Context { return WithPrincipal(t.Context(), p) }
	colleague := officer
	colleague.Name = "colleague"
	operator := officer
	operator.Name, operator.Roles = "ops", []string{"operator"}

	up, err := ln.e.CreateUpload(as(officer), "intel", "report", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("officer's words")
	if _, err := ln.e.PutPart(as(colleague), "intel", "report", up.ID, 1, bytes.NewReader(data), int64(len(data)), nil); !errors.Is(err, access.ErrDenied) {
		t.Fatalf("a colleague of the same nation uploads a part: %v", err)
	}
	if _, err := ln.e.ListParts(as(colleague), "intel", "report", up.ID); !errors.Is(err, access.ErrDenied) {
		t.Fatalf("a colleague lists the parts: %v", err)
	}
	if err := ln.e.AbortUpload(as(colleague), "intel", "report", up.ID); !errors.Is(err, access.ErrDenied) {
		t.Fatalf("a colleague aborts: %v", err)
	}
	p, err := ln.e.PutPart(as(officer), "intel", "report", up.ID, 1, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ln.e.CompleteUpload(as(colleague), "intel", "report", up.ID, []CompletePart{{1, p.ETag}}); !errors.Is(err, access.ErrDenied) {
		t.Fatalf("a colleague completes: %v", err)
	}
	if _, err := ln.e.ListParts(as(operator), "intel", "report", up.ID); err != nil {
		t.Fatalf("an operator lists the parts: %v", err)
	}
	for who, want := range map[string]int{"officer": 1, "colleague": 0, "ops": 1} {
		p := map[string]access.Principal{"officer": officer, "colleague": colleague, "ops": operator}[who]
		page, err := ln.e.ListUploads(as(p), "intel", index.UploadOptions{})
		if err != nil || len(page.Uploads) != want {
			t.Errorf("%s lists %d uploads (%v), want %d", who, len(page.Uploads), err, want)
		}
	}

	// An upload recorded before uploads had owners: operators only.
	old, err := ln.e.CreateUpload(AsSystem(t.Context()), "intel", "legacy", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, rec, err := ln.e.upload(t.Context(), "intel", "legacy", old.ID)
	if err != nil || rec.Initiator != "" {
		t.Fatalf("a system upload has initiator %q (%v)", rec.Initiator, err)
	}
	rec.K, rec.M, rec.StripeSize = 0, 0, 0
	u.Data, _ = json.Marshal(rec)
	if err := ln.ix.PutUpload(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.e.PutPart(as(officer), "intel", "legacy", old.ID, 1, bytes.NewReader(data), int64(len(data)), nil); !errors.Is(err, access.ErrDenied) {
		t.Fatalf("a writer feeds an ownerless upload: %v", err)
	}
	if err := ln.e.AbortUpload(as(operator), "intel", "legacy", old.ID); err != nil {
		t.Fatalf("an operator aborts an ownerless upload: %v", err)
	}
}

// TestUploadKeepsItsCode: an upload completes with the code recorded when
// it started, whatever the vault's policy became meanwhile, and the object
// reads back. An upload recorded without a code whose parts no longer match
// the vault's is refused at completion, not acknowledged unreadable.
func TestUploadKeepsItsCode(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	up, err := n.e.CreateUpload(ctx, "registry", "coded", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := n.e.Vault("registry")
	k, m := v.Policy.K, v.Policy.M
	data := content("coded", 3*testStripe+17)
	p1, err := n.e.PutPart(ctx, "registry", "coded", up.ID, 1, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := v
	changed.Policy.K, changed.Policy.M, changed.Policy.Survive = 2, 1, placement.Loss{Sites: 1}
	if err := n.e.SetVault(changed); err != nil {
		t.Fatal(err)
	}
	info, err := n.e.CompleteUpload(ctx, "registry", "coded", up.ID, []CompletePart{{1, p1.ETag}})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, n.e, "registry", "coded", info.VersionID); !bytes.Equal(got, data) {
		t.Fatal("the object does not read back")
	}
	m0, _, err := n.e.resolve(AsSystem(ctx), "registry", "coded", info.VersionID)
	if err != nil || m0.K != k || m0.M != m {
		t.Fatalf("completed as %d+%d (%v), want the recorded %d+%d", m0.K, m0.M, err, k, m)
	}

	// A record without a code, parts written under another one.
	if err := n.e.SetVault(v); err != nil {
		t.Fatal(err)
	}
	up2, err := n.e.CreateUpload(ctx, "registry", "legacy", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := n.e.PutPart(ctx, "registry", "legacy", up2.ID, 1, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	u, rec, _ := n.e.upload(ctx, "registry", "legacy", up2.ID)
	rec.K, rec.M, rec.StripeSize = 0, 0, 0
	u.Data, _ = json.Marshal(rec)
	if err := n.ix.PutUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := n.e.SetVault(changed); err != nil {
		t.Fatal(err)
	}
	if _, err := n.e.CompleteUpload(ctx, "registry", "legacy", up2.ID, []CompletePart{{1, p2.ETag}}); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("completing parts of another code: %v, want ErrInvalidPart", err)
	}
}

// TestSinglePartLabelledUpload: a labelled upload of exactly one part
// completes, and its binding verifies on read.
func TestSinglePartLabelledUpload(t *testing.T) {
	ln := newLabelNode(t)
	ctx := WithPrincipal(t.Context(), officer)
	up, err := ln.e.CreateUpload(ctx, "intel", "one", PutOptions{Label: "NATO SECRET//REL TO EST"})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("one part only")
	p, err := ln.e.PutPart(ctx, "intel", "one", up.ID, 1, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ln.e.CompleteUpload(ctx, "intel", "one", up.ID, []CompletePart{{1, p.ETag}})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, ln.e, "intel", "one", info.VersionID, officer); !bytes.Equal(got, data) {
		t.Fatalf("read %q", got)
	}
}

// readAll reads a version in full, acting as p (or without a principal).
func readAll(t *testing.T, e *Engine, vault, key string, id manifest.ID, p ...access.Principal) []byte {
	t.Helper()
	ctx := t.Context()
	if len(p) > 0 {
		ctx = WithPrincipal(ctx, p[0])
	}
	r, err := e.Get(ctx, vault, key, GetOptions{VersionID: id, Length: -1})
	if err != nil {
		t.Fatalf("get %s/%s: %v", vault, key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s/%s: %v", vault, key, err)
	}
	return b
}
