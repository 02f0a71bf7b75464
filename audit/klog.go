package audit

import (
	"context"
	"log/slog"
	"sync"

	"k8s.io/klog/v2"
)

var klogOnce sync.Once

// quietTessera sends tessera's own logging (klog, a process-wide logger)
// to the process's default slog logger, its informational lines at debug
// level: they describe tessera's internals, not the node's. The log's own
// failures are reported on the node's logger.
func quietTessera() {
	klogOnce.Do(func() {
		klog.SetSlogLogger(slog.New(demote{slog.Default().Handler()}))
	})
}

// demote lowers records below warnings to debug.
type demote struct{ h slog.Handler }

func (d demote) Enabled(ctx context.Context, lv slog.Level) bool {
	if lv < slog.LevelWarn {
		lv = slog.LevelDebug
	}
	return d.h.Enabled(ctx, lv)
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		r.Level = slog.LevelDebug
	}
	return d.h.Handle(ctx, r)
}

func (d demote) WithAttrs(as []slog.Attr) slog.Handler { return demote{d.h.WithAttrs(as)} }
func (d demote) WithGroup(n string) slog.Handler       { return demote{d.h.WithGroup(n)} }
