package fault

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
	"github.com/embassy-dev/embassy/site/sitetest"
)

func TestConformanceWithoutFaults(t *testing.T) {
	sitetest.Run(t, func(t *testing.T) site.Site { return New(memory.New(), 1) })
}

func TestFaults(t *testing.T) {
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789"), 100)
	t.Run("down", func(t *testing.T) {
		s := New(memory.New(), 1)
		s.Set(Config{Down: true})
		if err := s.Put(ctx, "a", bytes.NewReader(data), -1); !errors.Is(err, site.ErrUnavailable) {
			t.Fatalf("Put on a down site: %v", err)
		}
		if _, err := s.Get(ctx, "a", 0, -1); !errors.Is(err, site.ErrUnavailable) {
			t.Fatalf("Get on a down site: %v", err)
		}
	})
	t.Run("fail mid-write stores nothing", func(t *testing.T) {
		inner := memory.New()
		s := New(inner, 1)
		s.Set(Config{FailPutAfter: 100})
		if err := s.Put(ctx, "a", bytes.NewReader(data), -1); !errors.Is(err, ErrInjected) {
			t.Fatalf("Put: %v, want ErrInjected", err)
		}
		if _, err := inner.Stat(ctx, "a"); !errors.Is(err, site.ErrNotFound) {
			t.Fatalf("partial write visible: %v", err)
		}
	})
	t.Run("torn write", func(t *testing.T) {
		inner := memory.New()
		s := New(inner, 1)
		s.Set(Config{TornWrite: true})
		if err := s.Put(ctx, "a", bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		if info, _ := inner.Stat(ctx, "a"); info.Size != int64(len(data)/2) {
			t.Fatalf("torn write stored %d bytes, want %d", info.Size, len(data)/2)
		}
	})
	t.Run("corrupt reads", func(t *testing.T) {
		s := New(memory.New(), 1)
		if err := s.Put(ctx, "a", bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		s.Set(Config{CorruptReads: true})
		rc, err := s.Get(ctx, "a", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		if bytes.Equal(got, data) || len(got) != len(data) {
			t.Fatal("corrupting read returned the original bytes")
		}
	})
}
