package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// open opens the node in a.dir, unsealing it offline with --unseal shares
// when its root key is split among custodians.
func (a *app) open(ctx context.Context) (*node.Node, error) {
	return a.openWith(ctx, node.OpenOptions{})
}

// openWith is open with options.
func (a *app) openWith(ctx context.Context, o node.OpenOptions) (*node.Node, error) {
	o.Logger = node.NewLogger(node.LogConfig{Level: "warn"}, a.stderr)
	n, err := node.OpenWith(ctx, a.dir, o)
	if err != nil {
		return nil, err
	}
	if err := a.unsealOffline(n); err != nil {
		n.Close()
		return nil, err
	}
	if err := a.checkPrincipal(n); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// unsealOffline unseals a sealed node with the --unseal shares.
func (a *app) unsealOffline(n *node.Node) error {
	if !n.Sealed() {
		return nil
	}
	for _, spec := range a.unseal {
		sharePath, keyPath, ok := strings.Cut(spec, ":")
		if !ok {
			return fmt.Errorf("--unseal %q: want SHARE-FILE:KEY-FILE", spec)
		}
		_, share, err := a.openShare(sharePath, keyPath)
		if err != nil {
			return err
		}
		_, err = n.Unseal(share)
		clear(share)
		if err != nil {
			return err
		}
	}
	if err := n.Ready(); err != nil {
		return withHint(err, "this node's root key is split among custodians: pass --unseal SHARE:KEY for enough of them, or run 'embassy serve' and have them 'embassy unseal'")
	}
	return nil
}

// checkPrincipal refuses a --principal (or EMBASSY_PRINCIPAL) that the
// node does not know: on a production node it would act with no nation and
// no clearance, and every refusal would blame its nation. A development
// node lets any name act as a cleared national.
func (a *app) checkPrincipal(n *node.Node) error {
	if n.Config.Node.Dev {
		return nil
	}
	var names []string
	for _, p := range n.Config.Principals {
		if p.Name == a.principal {
			return nil
		}
		names = append(names, p.Name)
	}
	return withHint(fmt.Errorf("--principal %q: no such principal in %s (principals: %s)", a.principal, filepath.Join(a.dir, node.ConfigFile), dash(strings.Join(names, ", "))),
		"act as one of them with --principal NAME (or EMBASSY_PRINCIPAL), or add it with 'embassy principal add'")
}

// readConfig reads node.yaml for a command that only shows it. With
// --unseal the node is opened, so what is shown is verified; without, the
// file is checked as far as it can be without custodians
// (node.CheckConfigFile) and a note on standard error says when what is
// shown is unverified.
func (a *app) readConfig(ctx context.Context) (*node.Config, error) {
	if len(a.unseal) > 0 {
		n, err := a.open(ctx)
		if err != nil {
			return nil, err
		}
		defer n.Close()
		return n.Config, nil
	}
	c, err := node.LoadConfig(a.dir)
	if err != nil {
		return nil, notInit(err)
	}
	switch st, err := node.CheckConfigFile(a.dir); {
	case err != nil:
		fmt.Fprintf(a.stderr, "note: unverified: node.yaml could not be checked (%v)\n", err)
	case st == node.ConfigUnverified:
		fmt.Fprintln(a.stderr, "note: unverified: node.yaml was read without the root key, which custodians hold (give --unseal SHARE:KEY for enough of them to verify it)")
	case st == node.ConfigBad:
		fmt.Fprintln(a.stderr, "warning: node.yaml does not verify under this node's root key: what follows is not what the node runs with (see 'embassy config restore')")
	}
	return c, nil
}

// objectRef is an object version named on the command line, with the node
// opened and a context acting as the CLI's principal.
type objectRef struct {
	n     *node.Node
	ctx   context.Context
	vault string
	key   string
	id    manifest.ID
}

// openObject parses VAULT/KEY and an optional --version, and opens the
// node. The caller closes ref.n.
func (a *app) openObject(ctx context.Context, path, version string) (objectRef, error) {
	vaultName, key, err := needKey(path)
	if err != nil {
		return objectRef{}, err
	}
	id, err := parseVersion(version)
	if err != nil {
		return objectRef{}, err
	}
	n, err := a.open(ctx)
	if err != nil {
		return objectRef{}, err
	}
	return objectRef{n: n, ctx: n.As(ctx, a.principal), vault: vaultName, key: key, id: id}, nil
}

// splitPath splits "vault/key" into its parts; key may be empty.
func splitPath(p string) (vaultName, key string) {
	vaultName, key, _ = strings.Cut(p, "/")
	return vaultName, key
}

func needKey(p string) (string, string, error) {
	v, k := splitPath(p)
	if v == "" || k == "" {
		return "", "", withHint(fmt.Errorf("%q is not VAULT/KEY", p), "name an object as vault/key, e.g. registry/2026/population.db")
	}
	return v, k, nil
}

func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
}

// explain adds hints to engine errors a person can act on.
func explain(err error) error {
	switch {
	case errors.Is(err, vault.ErrNoSuchVault):
		return withHint(err, "list vaults with 'embassy vault ls' or create one with 'embassy vault create'")
	case errors.Is(err, site.ErrFull):
		// Before infeasible: a policy that cannot be kept because sites
		// are full is fixed by room, not by a weaker policy.
		return withHint(err, "free space on the full sites, add sites ('embassy site add'), or drain them ('embassy site drain ID')")
	case errors.Is(err, placement.ErrInfeasible):
		return withHint(err, "add sites in more jurisdictions or providers ('embassy site add'), or relax --survive / --erasure")
	case errors.Is(err, vault.ErrApprovalRequired):
		return withHint(err, "custodians approve with 'embassy approve ID --key CUSTODIAN.key' (list with 'embassy request ls')")
	case errors.Is(err, vault.ErrUnreadable):
		return withHint(err, "too few sites hold intact shards; bring sites back online, then run the read again")
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress draws a progress bar on a terminal; elsewhere it does nothing.
type progress struct {
	w     io.Writer
	label string
	total int64
	count bool // n and total count items, not bytes
	start time.Time
	mu    sync.Mutex
	n     int64
	done  chan struct{}
	wg    sync.WaitGroup
}

// newProgress starts a bar over total bytes (0 if unknown).
func (a *app) newProgress(label string, total int64) *progress {
	return a.startProgress(&progress{label: label, total: total, start: time.Now()})
}

// versionCounter returns a callback for the engine's (done, total) version
// progress that draws a bar from its first call on, and a function that
// ends the bar.
func (a *app) versionCounter(label string) (update func(done, total int), finish func()) {
	var p *progress
	update = func(done, total int) {
		if p == nil {
			p = a.startProgress(&progress{label: label, total: int64(total), count: true, start: time.Now()})
		}
		p.set(int64(done))
	}
	finish = func() {
		if p != nil {
			p.finish()
		}
	}
	return update, finish
}

func (a *app) startProgress(p *progress) *progress {
	if !isTerminal(a.stderr) || a.json {
		return p
	}
	p.w, p.done = a.stderr, make(chan struct{})
	p.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.done:
				p.draw()
				fmt.Fprintln(p.w)
				return
			}
		}
	})
	return p
}

func (p *progress) add(n int) {
	p.mu.Lock()
	p.n += int64(n)
	p.mu.Unlock()
}

func (p *progress) set(n int64) {
	p.mu.Lock()
	p.n = n
	p.mu.Unlock()
}

func (p *progress) draw() {
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	fmt.Fprintf(p.w, "\r%s", p.line(n, time.Since(p.start)))
}

// line renders the bar after n units in elapsed time: amount, rate and,
// when the total is known, the time left at the rate so far.
func (p *progress) line(n int64, elapsed time.Duration) string {
	amount, unit := human, "/s"
	if p.count {
		amount, unit = func(v int64) string { return fmt.Sprint(v) }, " versions/s"
	}
	rate := float64(n) / max(elapsed.Seconds(), 1e-3)
	if p.total <= 0 {
		return fmt.Sprintf("%s %s  %s%s ", p.label, amount(n), amount(int64(rate)), unit)
	}
	const width = 30
	fill := min(int(float64(width)*float64(n)/float64(p.total)), width)
	eta := "--"
	if left := p.total - n; left <= 0 {
		eta = "0s"
	} else if rate > 0 {
		eta = time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s%s] %s / %s  %s%s  ETA %s ", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		amount(n), amount(p.total), amount(int64(rate)), unit, eta)
}

func (p *progress) finish() {
	if p.done != nil {
		close(p.done)
		p.wg.Wait()
	}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

// Seek lets the engine retry a put on other sites.
func (r *progressReader) Seek(off int64, whence int) (int64, error) {
	s, ok := r.r.(io.Seeker)
	if !ok {
		return 0, errors.New("not seekable")
	}
	pos, err := s.Seek(off, whence)
	if err == nil && whence == io.SeekStart {
		r.p.set(pos)
	}
	return pos, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w *progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}
