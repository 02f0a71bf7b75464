// Package memory is a site driver that keeps blobs in memory, for tests and
// benchmarks that must not measure a disk.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/site"
)

// Site is an in-memory site. The zero value is not usable; call New.
type Site struct {
	mu    sync.RWMutex
	blobs map[string]blob
}

type blob struct {
	data []byte
	mod  time.Time
}

// New returns an empty in-memory site.
func New() *Site { return &Site{blobs: map[string]blob{}} }

// Put implements site.Site.
func (s *Site) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := site.CheckName(name); err != nil {
		return err
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size))
	}
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if size >= 0 && int64(buf.Len()) != size {
		return fmt.Errorf("memory site: put %s: reader yielded %d bytes, expected %d", name, buf.Len(), size)
	}
	s.mu.Lock()
	s.blobs[name] = blob{data: buf.Bytes(), mod: time.Now()}
	s.mu.Unlock()
	return nil
}

// Get implements site.Site.
func (s *Site) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := site.CheckName(name); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("memory site: get %s: negative offset %d", name, off)
	}
	s.mu.RLock()
	b, ok := s.blobs[name]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("memory site: get %s: %w", name, site.ErrNotFound)
	}
	d := b.data
	if off > int64(len(d)) {
		off = int64(len(d))
	}
	d = d[off:]
	if length >= 0 && length < int64(len(d)) {
		d = d[:length]
	}
	return io.NopCloser(bytes.NewReader(d)), nil
}

// Stat implements site.Site.
func (s *Site) Stat(ctx context.Context, name string) (site.Info, error) {
	if err := site.CheckName(name); err != nil {
		return site.Info{}, err
	}
	s.mu.RLock()
	b, ok := s.blobs[name]
	s.mu.RUnlock()
	if !ok {
		return site.Info{}, fmt.Errorf("memory site: stat %s: %w", name, site.ErrNotFound)
	}
	return site.Info{Name: name, Size: int64(len(b.data)), Modified: b.mod}, nil
}

// Delete implements site.Site.
func (s *Site) Delete(ctx context.Context, name string) error {
	if err := site.CheckName(name); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.blobs, name)
	s.mu.Unlock()
	return nil
}

// List implements site.Site.
func (s *Site) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	s.mu.RLock()
	var infos []site.Info
	for n, b := range s.blobs {
		if strings.HasPrefix(n, prefix) {
			infos = append(infos, site.Info{Name: n, Size: int64(len(b.data)), Modified: b.mod})
		}
	}
	s.mu.RUnlock()
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

// Corrupt flips the bit at offset off of the named blob, for tests.
func (s *Site) Corrupt(name string, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[name]
	if !ok || off >= int64(len(b.data)) {
		return fmt.Errorf("memory site: corrupt %s at %d: no such byte", name, off)
	}
	d := bytes.Clone(b.data)
	d[off] ^= 0x01
	s.blobs[name] = blob{data: d, mod: b.mod}
	return nil
}
