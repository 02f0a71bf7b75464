package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

// One process per S3 site. A directory site is locked with flock
// (sitelock.go); a bucket has no lock, so a node holds a lease on each of
// its S3 sites: the blob node/lease beside the site marker, naming the
// node, a random instance id drawn at each open, the host, the process and
// the node directory, with a renewal counter. It is taken when the site is
// first checked (after its marker), created only if absent (If-None-Match:
// *) or taken over only from the version seen (If-Match), and renewed
// every third of the lease time (the site's s3.lease) with If-Match on the
// version the holder wrote. So two copies of one node directory (a
// restored backup, a standby) never write to one bucket: the second finds
// the lease held and the site unavailable, naming the holder.
//
// A holder gone without closing (a crash, a machine lost) is outlived: a
// waiter takes the site over once the blob has stayed unchanged (one ETag)
// for the lease time as the waiter measures it, its own clock only, never
// compared with another machine's; at once when the holder was a process
// of this host that no longer runs. A holder that could not renew for two
// thirds of the lease time stops writing to the site (leaseFence refuses
// puts and deletes and cuts those in flight) before any waiter may take
// over, and one whose renewal is refused (taken over) finds the site
// unavailable at once. Close removes the lease after reading it back as
// its own. A provider that ignores conditional writes makes the lease
// advisory only: it is found out when the lease is taken (a second create
// must fail), said in the log, and the holder then reads the lease back
// before each renewal.

// LeaseBlob is the lease's blob on an S3 site.
const LeaseBlob = "node/lease"

// leaseFormat names the lease blob's format.
const leaseFormat = "embassy-site-lease/1"

// maxLeaseBlob bounds a lease blob read.
const maxLeaseBlob = 4 << 10

// siteLeaseRecord is the lease blob (JSON).
type siteLeaseRecord struct {
	Format   string `json:"format"`
	Node     string `json:"node"`
	Instance string `json:"instance"` // 32 hex digits, drawn at each open
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Dir      string `json:"dir"`
	// Machine names the holder's running kernel and process namespace
	// (thisMachine): a process id means something only there. Absent in
	// a lease written before it was added.
	Machine  string `json:"machine,omitempty"`
	Renewals uint64 `json:"renewals"`
	Lease    string `json:"lease"` // the holder's lease time ("30s")
}

// parseLease reads a lease blob, checking every field.
func parseLease(b []byte) (*siteLeaseRecord, error) {
	if len(b) > maxLeaseBlob {
		return nil, fmt.Errorf("lease of %d bytes: at most %d", len(b), maxLeaseBlob)
	}
	var r siteLeaseRecord
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("lease: data after the record")
	}
	switch {
	case r.Format != leaseFormat:
		return nil, fmt.Errorf("lease: format %q, want %q", r.Format, leaseFormat)
	case !validNodeID(r.Node):
		return nil, fmt.Errorf("lease: node %q is not a node id", r.Node)
	case len(r.Instance) != 32 || !isHex(r.Instance):
		return nil, fmt.Errorf("lease: instance %q is not 32 hex digits", r.Instance)
	case r.PID < 0:
		return nil, fmt.Errorf("lease: pid %d", r.PID)
	case len(r.Host) > 255 || len(r.Dir) > 2048 || len(r.Machine) > 255:
		return nil, errors.New("lease: host, dir or machine too long")
	}
	if _, err := r.leaseTime(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *siteLeaseRecord) leaseTime() (time.Duration, error) {
	d, err := time.ParseDuration(r.Lease)
	if err != nil || d < s3site.MinLease || d > s3site.MaxLease {
		return 0, fmt.Errorf("lease: lease time %q is not from %s to %s", r.Lease, s3site.MinLease, s3site.MaxLease)
	}
	return d, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// holder names the lease's holder for a person.
func (r *siteLeaseRecord) holder() string {
	return fmt.Sprintf("process %d on host %s (node directory %q, instance %s, renewed %d times)", r.PID, r.Host, r.Dir, r.Instance[:8], r.Renewals)
}

func (r *siteLeaseRecord) encode() []byte {
	b, _ := json.Marshal(r)
	return append(b, '\n')
}

// goneFromThisHost reports whether the holder was a process of this host
// that no longer runs. The host name alone does not say so: two
// containers, or a machine and its clone, can share one, and a process id
// is only looked up in this process's own namespace. So the lease must
// also name this very kernel (its boot id) and process namespace
// (thisMachine); one that does not, or is older than that field, waits
// out the lease time like any other.
func (r *siteLeaseRecord) goneFromThisHost() bool {
	h, err := os.Hostname()
	if err != nil || h != r.Host || r.PID <= 0 || r.PID == os.Getpid() {
		return false
	}
	if m := thisMachine(); m == "" || r.Machine != m {
		return false
	}
	return errors.Is(syscall.Kill(r.PID, 0), syscall.ESRCH)
}

// thisMachine names this process's kernel, by the boot id it draws at each
// boot, and its process-id namespace; "" where Linux does not say.
func thisMachine() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + " " + ns
}

// siteLeases are the leases a node holds, and those it waits for.
type siteLeases struct {
	mu       sync.Mutex
	instance string                   // this open's instance id
	held     map[string]*heldLease    // by site id
	waits    map[string]leaseWait     // by site id: the version seen held by another
	guards   map[string]*site.Guarded // by site id: told when a lease is lost
	// lapsed is a test's hook: renewals stop (a holder frozen, or
	// killed, without closing).
	lapsed bool
}

type leaseWait struct {
	etag  string
	since time.Time
}

// heldLease is a lease this node holds on one site.
type heldLease struct {
	n     *Node
	id    string // site id
	where string // the site's location
	ss    *s3site.Site
	every time.Duration // lease time

	mu       sync.Mutex
	rec      siteLeaseRecord
	etag     string
	version  string    // the version id written last (a versioned bucket)
	body     []byte    // what was written last
	advisory bool      // the provider ignores conditional writes
	lost     string    // why the lease is no longer this node's
	taken    time.Time // when the write that took it began
	deadline time.Time // writes stop then, unless renewed: two thirds of the lease time after the last renewal began
	fence    context.Context
	unfence  context.CancelFunc
	timer    *time.Timer

	stop chan struct{}
	done chan struct{}
}

// instance returns this open's instance id, drawn on first use.
func (n *Node) leaseInstance() string {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	if n.leases.instance == "" {
		var b [16]byte
		rand.Read(b[:])
		n.leases.instance = hex.EncodeToString(b[:])
	}
	return n.leases.instance
}

// checkLease takes, or keeps, this node's lease on an S3 site whose
// marker has verified. A lease another instance holds makes the site
// unavailable, naming the holder, until it lapses.
func (n *Node) checkLease(ctx context.Context, sc SiteConfig, ss *s3site.Site) error {
	where := n.siteLocation(sc).String()
	n.leases.mu.Lock()
	l := n.leases.held[sc.ID]
	n.leases.mu.Unlock()
	if l != nil && l.where == where {
		l.mu.Lock()
		lost := l.lost
		l.mu.Unlock()
		if lost == "" {
			return nil
		}
		n.dropLease(sc.ID, l)
	}
	every := sc.S3.LeaseTime()
	b, etag, err := ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
	if errors.Is(err, site.ErrNotFound) {
		return n.takeLease(ctx, sc, ss, where, s3site.Condition{IfAbsent: true}, nil)
	}
	if err != nil {
		return fmt.Errorf("read the site lease: %w", err)
	}
	rec, perr := parseLease(b)
	switch {
	case perr == nil && rec.Instance == n.leaseInstance():
		// This open's own lease, let go of (a site that left the
		// configuration and came back): take it again.
		return n.takeLease(ctx, sc, ss, where, s3site.Condition{IfMatch: etag}, rec)
	case perr == nil && rec.goneFromThisHost():
		n.Log.Warn("site lease held by a process of this host that no longer runs: taken over", "site", sc.ID, "holder", rec.holder())
		return n.takeLease(ctx, sc, ss, where, s3site.Condition{IfMatch: etag}, rec)
	}
	wait := every
	if perr == nil {
		if t, _ := rec.leaseTime(); t > wait {
			wait = t // the holder fences itself by its own lease time
		}
	}
	now := time.Now()
	n.leases.mu.Lock()
	w, ok := n.leases.waits[sc.ID]
	if !ok || w.etag != etag {
		w = leaseWait{etag: etag, since: now}
		if n.leases.waits == nil {
			n.leases.waits = map[string]leaseWait{}
		}
		n.leases.waits[sc.ID] = w
	}
	n.leases.mu.Unlock()
	seen := now.Sub(w.since)
	if seen >= wait {
		what := "damaged"
		if perr == nil {
			what = "held by " + rec.holder()
		}
		n.Log.Warn("site lease unchanged for the lease time: taken over (its holder stopped without closing)", "site", sc.ID, "lease", what, "unchanged_for", seen.Round(time.Second).String())
		return n.takeLease(ctx, sc, ss, where, s3site.Condition{IfMatch: etag}, rec)
	}
	var holder string
	if perr != nil {
		holder = "someone: it is damaged (" + perr.Error() + ")"
	} else {
		holder = rec.holder()
		if rec.Node != n.conf().Node.ID {
			holder = "node " + rec.Node + "'s " + holder
		}
	}
	return &site.UnavailableError{
		Reason: fmt.Sprintf("its lease (%s) is held by %s: this node (node directory %s) cannot use it too: two copies of one node directory (a restored backup, a standby) must never use one site. Stop the other; if it stopped without closing (a crash, a machine lost), this node takes the site over once the lease has stayed unchanged for %s (unchanged for %s so far)",
			LeaseBlob, holder, absDir(n.Dir), wait, seen.Round(time.Second)),
		Recheck: min(wait-seen, every/3) + 10*time.Millisecond,
	}
}

// takeLease writes this node's lease under cond and starts renewing it.
// prev is the lease taken over, if any.
func (n *Node) takeLease(ctx context.Context, sc SiteConfig, ss *s3site.Site, where string, cond s3site.Condition, prev *siteLeaseRecord) error {
	every := sc.S3.LeaseTime()
	host, _ := os.Hostname()
	rec := siteLeaseRecord{Format: leaseFormat, Node: n.conf().Node.ID, Instance: n.leaseInstance(), Host: host, PID: os.Getpid(), Dir: absDir(n.Dir), Machine: thisMachine(), Lease: every.String()}
	body := rec.encode()
	start := time.Now()
	w, err := ss.PutIf(ctx, LeaseBlob, body, cond)
	if errors.Is(err, s3site.ErrPrecondition) {
		// Another instance took it first: look again soon.
		return &site.UnavailableError{Reason: "its lease (" + LeaseBlob + ") was taken by another process as this node took it: two copies of one node must never use one site; checking again", Recheck: time.Second}
	}
	if err != nil {
		return fmt.Errorf("take the site lease: %w", err)
	}
	l := &heldLease{n: n, id: sc.ID, where: where, ss: ss, every: every, rec: rec, etag: w.ETag, version: w.VersionID, body: body, stop: make(chan struct{}), done: make(chan struct{})}
	// A provider that honours conditional writes refuses a second create.
	if w2, err := ss.PutIf(ctx, LeaseBlob, body, s3site.Condition{IfAbsent: true}); err == nil {
		l.advisory, l.etag = true, w2.ETag
		if w.VersionID != "" && w2.VersionID != w.VersionID {
			ss.DeleteVersion(ctx, LeaseBlob, w.VersionID)
		}
		l.version = w2.VersionID
		n.Log.Warn("the S3 provider ignores conditional writes (If-None-Match: *): the site's lease is advisory only, read back before each renewal; two copies of this node starting at once could both use the site", "site", sc.ID)
	} else if !errors.Is(err, s3site.ErrPrecondition) {
		n.Log.Warn("could not check that the S3 provider honours conditional writes", "site", sc.ID, "err", err)
	}
	// Read it back: the one that holds it is the one whose lease is there.
	got, etag, err := ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
	if err != nil {
		return fmt.Errorf("read the site lease back: %w", err)
	}
	if !bytes.Equal(got, body) {
		return &site.UnavailableError{Reason: "its lease (" + LeaseBlob + ") was taken by another process as this node took it: two copies of one node must never use one site; checking again", Recheck: time.Second}
	}
	l.etag, l.taken, l.deadline = etag, start, start.Add(l.every*2/3)
	l.fence, l.unfence = context.WithCancel(context.Background())
	l.timer = time.AfterFunc(time.Until(l.deadline), l.unfence)
	n.leases.mu.Lock()
	if old := n.leases.held[sc.ID]; old != nil {
		n.leases.mu.Unlock()
		n.dropLease(sc.ID, old)
		n.leases.mu.Lock()
	}
	if n.leases.held == nil {
		n.leases.held = map[string]*heldLease{}
	}
	n.leases.held[sc.ID] = l
	delete(n.leases.waits, sc.ID)
	n.leases.mu.Unlock()
	if prev != nil {
		n.Log.Info("site lease taken", "site", sc.ID, "from", prev.holder())
	}
	go l.renew()
	return nil
}

// renew renews the lease every third of the lease time until stopped or
// lost.
func (l *heldLease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.every / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.n.leases.mu.Lock()
		lapsed := l.n.leases.lapsed
		l.n.leases.mu.Unlock()
		if lapsed {
			continue
		}
		if !l.renewOnce() {
			return
		}
	}
}

// renewOnce renews the lease once and reports whether it is still held.
func (l *heldLease) renewOnce() bool {
	ctx, cancel := context.WithTimeout(context.Background(), l.every/3)
	defer cancel()
	start := time.Now()
	l.mu.Lock()
	rec, etag, advisory, prevBody, prevVersion := l.rec, l.etag, l.advisory, l.body, l.version
	l.mu.Unlock()
	if advisory {
		got, e, err := l.ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
		if errors.Is(err, site.ErrNotFound) {
			l.lose(nil)
			return false
		}
		if err == nil && !bytes.Equal(got, prevBody) {
			l.lose(got)
			return false
		}
		if err == nil {
			etag = e
		}
	}
	rec.Renewals++
	body := rec.encode()
	w, err := l.ss.PutIf(ctx, LeaseBlob, body, s3site.Condition{IfMatch: etag})
	if errors.Is(err, site.ErrNotFound) {
		l.lose(nil) // removed by hand: taken again at the next check
		return false
	}
	if errors.Is(err, s3site.ErrPrecondition) {
		// Refused: taken over, unless a retry of this very write
		// found its own first attempt done.
		got, e, gerr := l.ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
		switch {
		case errors.Is(gerr, site.ErrNotFound):
			l.lose(nil)
			return false
		case gerr != nil:
			l.n.Log.Warn("could not renew the site lease, nor read it back", "site", l.id, "err", gerr)
			return true
		case !bytes.Equal(got, body):
			l.lose(got)
			return false
		}
		w, err = s3site.Written{ETag: e}, nil
	}
	if err != nil {
		l.n.Log.Warn("could not renew the site lease: writes to the site stop if it cannot be renewed for two thirds of the lease time", "site", l.id, "err", err)
		return true
	}
	l.mu.Lock()
	l.rec, l.etag, l.body, l.version = rec, w.ETag, body, w.VersionID
	l.deadline = start.Add(l.every * 2 / 3)
	if l.fence.Err() != nil {
		l.fence, l.unfence = context.WithCancel(context.Background())
		l.n.Log.Info("site lease renewed again: writes to the site resume", "site", l.id)
	}
	l.timer.Stop()
	l.timer = time.AfterFunc(time.Until(l.deadline), l.unfence)
	l.mu.Unlock()
	if prevVersion != "" && w.VersionID != "" && prevVersion != w.VersionID {
		// A versioned bucket keeps every renewal: remove the old one.
		if err := l.ss.DeleteVersion(ctx, LeaseBlob, prevVersion); err != nil {
			l.n.Log.Debug("could not remove an old version of the site lease", "site", l.id, "err", err)
		}
	}
	return true
}

// lose marks the lease as taken over (got: the lease found), or removed
// (got nil): the site is unavailable at once.
func (l *heldLease) lose(got []byte) {
	why := "its lease (" + LeaseBlob + ") was taken over"
	if r, err := parseLease(got); err == nil {
		why += " by " + r.holder()
	} else if got == nil {
		why = "its lease (" + LeaseBlob + ") was removed"
	}
	l.mu.Lock()
	l.lost = why
	l.unfence()
	l.timer.Stop()
	l.mu.Unlock()
	l.n.leases.mu.Lock()
	g := l.n.leases.guards[l.id]
	l.n.leases.mu.Unlock()
	if g != nil {
		g.Forget() // unavailable at once, naming the new holder
	}
	l.n.Log.Error("site lease lost: nothing more is written to the site until this node holds its lease again", "site", l.id, "reason", why)
}

// state returns why writes may not go to the site now ("" when they may),
// and the context that ends when they may no longer.
func (l *heldLease) state() (string, context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.lost != "":
		return l.lost + ": this node no longer writes to it", nil
	case l.fence.Err() != nil || !time.Now().Before(l.deadline):
		// (The clock, not only the timer: a timer late under load
		// must not let a write begin after the deadline.)
		return fmt.Sprintf("its lease (%s) could not be renewed for two thirds of the lease time (%s): this node stopped writing to it so that another copy may take it over safely", LeaseBlob, l.every), nil
	}
	return "", l.fence
}

// dropLease stops renewing l (without removing it) and forgets it.
func (n *Node) dropLease(id string, l *heldLease) {
	n.leases.mu.Lock()
	if n.leases.held[id] == l {
		delete(n.leases.held, id)
	}
	n.leases.mu.Unlock()
	l.halt()
}

func (l *heldLease) halt() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	l.timer.Stop()
	l.unfence()
	l.mu.Unlock()
}

// releaseLeases removes the leases of sites no longer configured (or, with
// keep nil, all of them: Close), each after reading it back as this
// node's.
func (n *Node) releaseLeases(keep []SiteConfig) {
	n.leases.mu.Lock()
	var gone []*heldLease
	for id, l := range n.leases.held {
		kept := false
		for _, s := range keep {
			kept = kept || (s.ID == id && s.Driver == "s3" && n.siteLocation(s).String() == l.where)
		}
		if !kept {
			gone = append(gone, l)
			delete(n.leases.held, id)
		}
	}
	n.leases.mu.Unlock()
	for _, l := range gone {
		l.halt()
		l.mu.Lock()
		lost := l.lost
		l.mu.Unlock()
		if lost != "" {
			l.ss.Close()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, _, err := l.ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
		if r, perr := parseLease(got); err == nil && perr == nil && r.Instance == l.rec.Instance {
			err = l.ss.Delete(ctx, LeaseBlob)
		}
		cancel()
		if err != nil && !errors.Is(err, site.ErrNotFound) {
			n.Log.Warn("could not remove the site lease: another copy of the node waits the lease time before using the site", "site", l.id, "err", err)
		}
		l.ss.Close()
	}
}

// leaseFence is an S3 site as the node writes to it: puts and deletes go
// through only while the node's lease on the site is fresh, and are cut
// short when it goes stale; nothing goes through once the lease is lost.
type leaseFence struct {
	site.Site
	n  *Node
	id string
}

// gate returns the context a write runs in, or why it may not.
func (f *leaseFence) gate(ctx context.Context) (context.Context, func(), error) {
	f.n.leases.mu.Lock()
	l := f.n.leases.held[f.id]
	f.n.leases.mu.Unlock()
	if l == nil {
		return nil, nil, &site.UnavailableError{Reason: "this node does not hold its lease (" + LeaseBlob + ")", Recheck: time.Second}
	}
	why, fence := l.state()
	if why != "" {
		return nil, nil, &site.UnavailableError{Reason: why, Recheck: time.Second}
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(fence, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

func (f *leaseFence) fenced(err error) error {
	if err == nil {
		return nil
	}
	f.n.leases.mu.Lock()
	l := f.n.leases.held[f.id]
	f.n.leases.mu.Unlock()
	if l == nil {
		return &site.UnavailableError{Reason: "this node let go of its lease (" + LeaseBlob + ") during the write", Recheck: time.Second}
	}
	if why, _ := l.state(); why != "" {
		return &site.UnavailableError{Reason: why, Recheck: time.Second}
	}
	return err
}

// Put implements site.Site.
func (f *leaseFence) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	ctx, done, err := f.gate(ctx)
	if err != nil {
		return err
	}
	defer done()
	return f.fenced(f.Site.Put(ctx, name, r, size))
}

// Delete implements site.Site.
func (f *leaseFence) Delete(ctx context.Context, name string) error {
	ctx, done, err := f.gate(ctx)
	if err != nil {
		return err
	}
	defer done()
	return f.fenced(f.Site.Delete(ctx, name))
}

// Get implements site.Site: reads go on while the lease is stale, not once
// it is lost.
func (f *leaseFence) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := f.lostErr(); err != nil {
		return nil, err
	}
	return f.Site.Get(ctx, name, off, length)
}

// Stat implements site.Site.
func (f *leaseFence) Stat(ctx context.Context, name string) (site.Info, error) {
	if err := f.lostErr(); err != nil {
		return site.Info{}, err
	}
	return f.Site.Stat(ctx, name)
}

// List implements site.Site.
func (f *leaseFence) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	if err := f.lostErr(); err != nil {
		return err
	}
	return f.Site.List(ctx, prefix, fn)
}

func (f *leaseFence) lostErr() error {
	f.n.leases.mu.Lock()
	l := f.n.leases.held[f.id]
	f.n.leases.mu.Unlock()
	if l == nil {
		return &site.UnavailableError{Reason: "this node does not hold its lease (" + LeaseBlob + ")", Recheck: time.Second}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != "" {
		return &site.UnavailableError{Reason: l.lost + ": this node no longer uses it", Recheck: time.Second}
	}
	return nil
}

// Unwrap returns the site underneath.
func (f *leaseFence) Unwrap() site.Site { return f.Site }

// leasesInUse refuses, before anything is written, to recover a node
// whose S3 sites another instance's lease holds and renews: most likely
// the node itself, still running. A lease that stays unchanged for its
// lease time is a crashed holder's, and does not stop the recovery (the
// recovered node takes it over when it opens). It may so wait up to the
// lease time, saying so in the log.
func leasesInUse(ctx context.Context, n *Node, sites []SiteConfig) error {
	for _, sc := range sites {
		if sc.Driver != "s3" || sc.S3 == nil {
			continue
		}
		st, err := OpenSiteConfig(ctx, sc)
		if err != nil {
			continue
		}
		ss := st.(*s3site.Site)
		defer ss.Close()
		b, etag, err := ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
		if err != nil {
			continue // none, or not reached: the report says so
		}
		rec, perr := parseLease(b)
		if perr == nil && rec.goneFromThisHost() {
			continue
		}
		wait := sc.S3.LeaseTime()
		holder := "someone (it is damaged)"
		if perr == nil {
			holder = rec.holder()
			if t, _ := rec.leaseTime(); t > wait {
				wait = t
			}
		}
		if n.Log != nil {
			n.Log.Warn("an S3 site's lease is held: waiting up to the lease time to see whether it is renewed (a running node) or not (a crashed one)", "site", sc.ID, "holder", holder, "lease", wait.String())
		}
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(wait/10, time.Until(deadline))):
			}
			_, e, err := ss.GetTagged(ctx, LeaseBlob, maxLeaseBlob)
			if errors.Is(err, site.ErrNotFound) {
				break
			}
			if err == nil && e != etag {
				return fmt.Errorf("site %s: its lease (%s) is renewed by %s, most likely the node being recovered, still running: stop it before recovering it (two copies of one node must never use one site); nothing was written", sc.ID, LeaseBlob, holder)
			}
		}
	}
	return nil
}
