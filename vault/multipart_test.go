package vault

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/embassy-dev/embassy/index"
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
