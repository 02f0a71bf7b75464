package node

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xee
	}
	return len(p), nil
}

// TestRecoverListedBlobs: recovery from an ally (RecoverFromPeer) reads
// what the ally sends, which is outside input. A blob that belongs on
// every site is read whole, but never more than the size the ally listed
// (at most maxSharedBlob) and only if exactly that; a site's own blob
// streams to the site and is stored only if the ally sends exactly the
// size it listed. Before, each blob was read whole with io.ReadAll: an
// ally sending an endless body made the recovering node allocate until it
// died, and a large shard blob was held whole in memory.
func TestRecoverListedBlobs(t *testing.T) {
	data := bytes.Repeat([]byte("blob"), 1000)
	bodies := map[string]func() io.Reader{
		"exact":   func() io.Reader { return bytes.NewReader(data) },
		"short":   func() io.Reader { return bytes.NewReader(data[:len(data)-1]) },
		"longer":  func() io.Reader { return io.MultiReader(bytes.NewReader(data), strings.NewReader("x")) },
		"endless": func() io.Reader { return io.MultiReader(bytes.NewReader(data), endless{}) },
	}
	for name, body := range bodies {
		open := func(federation.BlobRef) (io.ReadCloser, error) { return io.NopCloser(body()), nil }
		t.Run(name, func(t *testing.T) {
			ref := federation.BlobRef{Site: federation.AllSites, Name: federation.BlobDescriptor, Size: int64(len(data))}
			b, err := readListed(ref, open)
			if (err == nil) != (name == "exact") || (err == nil && !bytes.Equal(b, data)) {
				t.Errorf("readListed: %d bytes, %v", len(b), err)
			}
			s := memory.New()
			ref = federation.BlobRef{Site: "est-1", Name: "s/ab/ab000000000000000000000000000000.1", Size: int64(len(data))}
			err = copyListed(t.Context(), s, ref, open)
			if (err == nil) != (name == "exact") {
				t.Errorf("copyListed: %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), "listed") {
				t.Errorf("copyListed: %v, want an error naming the size listed", err)
			}
			_, serr := s.Stat(t.Context(), ref.Name)
			if (serr == nil) != (name == "exact") || (serr != nil && !errors.Is(serr, site.ErrNotFound)) {
				t.Errorf("after copyListed: stat %v", serr)
			}
		})
	}
	// A shared blob listed larger than any may be is not asked for.
	asked := false
	_, err := readListed(federation.BlobRef{Site: federation.AllSites, Name: federation.BlobDescriptor, Size: maxSharedBlob + 1}, func(federation.BlobRef) (io.ReadCloser, error) {
		asked = true
		return io.NopCloser(endless{}), nil
	})
	if err == nil || asked {
		t.Errorf("a blob listed at %d bytes: asked %v, %v", maxSharedBlob+1, asked, err)
	}
}
