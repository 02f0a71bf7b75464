package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profiler captures an embassy server's Go profiles during each phase,
// through its operator endpoint GET /_embassy/v1/debug/pprof/{name}
// (docs/admin-api.md), signed with the benchmark's credential, whose
// principal must hold the operator role (`serve --dev`'s admin does).
//
// For a phase it writes, into DIR/SERVER-OP-SIZE-cCONC/:
//   - allocs-before.pb.gz and allocs-after.pb.gz: the cumulative
//     allocation profile just before and just after the phase, so that
//     `go tool pprof -sample_index=alloc_space -base allocs-before.pb.gz
//     allocs-after.pb.gz` shows what the phase allocated;
//   - cpu-NNN.pb.gz: back-to-back CPU profiles of chunk each, from the
//     phase's start until the first chunk that ends after the phase
//     does; `go tool pprof cpu-*.pb.gz` merges them.
type profiler struct {
	admin *adminClient
	dir   string
	chunk time.Duration
}

// fetch GETs one profile into path.
func (p *profiler) fetch(ctx context.Context, name, query, path string) error {
	u := "debug/pprof/" + name
	if query != "" {
		u += "?" + query
	}
	resp, err := p.admin.send(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: %s: %s (the credential's principal needs the operator role)", name, resp.Status, msg)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", name, err)
	}
	return f.Close()
}

// phaseDir names the directory of one phase's profiles.
func phaseDir(server, op string, s caseSpec) string {
	return fmt.Sprintf("%s-%s-%s-c%d", server, op, formatSize(s.Size), s.Concurrency)
}

// start takes the allocation profile before a phase and starts the CPU
// profiles; the function it returns, called when the phase has ended,
// waits for the CPU profile in flight and takes the allocation profile
// after it.
func (p *profiler) start(ctx context.Context, server, op string, s caseSpec) (func() error, error) {
	d := filepath.Join(p.dir, phaseDir(server, op, s))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	if err := p.fetch(ctx, "allocs", "", filepath.Join(d, "allocs-before.pb.gz")); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var (
		wg      sync.WaitGroup
		loopErr error
	)
	secs := max(1, int(p.chunk/time.Second))
	wg.Go(func() {
		for i := 0; ; i++ {
			err := p.fetch(ctx, "profile", fmt.Sprintf("seconds=%d", secs), filepath.Join(d, fmt.Sprintf("cpu-%03d.pb.gz", i)))
			if err != nil {
				loopErr = err
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
	return func() error {
		close(done)
		wg.Wait()
		return errors.Join(loopErr, p.fetch(ctx, "allocs", "", filepath.Join(d, "allocs-after.pb.gz")))
	}, nil
}
