package node

import (
	"context"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

func hasProblem(rep AuditReport, sub string) bool {
	for _, p := range rep.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}

// TestAuditVerifyFromTheAttackersSide: audit verify names a site serving
// an older node descriptor than the log records, and a site whose copy of
// the log is a fork signed with the node's own key (a split view: what a
// stolen key, or a restored node directory writing beside the real one,
// would show some sites), and exits clean before and after.
func TestAuditVerifyFromTheAttackersSide(t *testing.T) {
	n := newNode(t)
	ctx := t.Context()
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Engine.Put(n.As(ctx, "admin"), "registry", "minutes", strings.NewReader("minutes"), vault.PutOptions{Size: 7}); err != nil {
		t.Fatal(err)
	}
	rep, err := n.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("an untouched node: %v %+v", err, rep.Problems)
	}

	// A stale descriptor: the one est-1 held before the last publish.
	descPath := filepath.Join(sitePath(n, "est-1"), DescriptorBlob)
	old, err := os.ReadFile(descPath)
	if err != nil {
		t.Fatal(err)
	}
	n.PublishDescriptor(ctx)
	if err := os.WriteFile(descPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = n.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !hasProblem(rep, "site est-1 holds node descriptor generation") || !hasProblem(rep, "a stale descriptor") {
		t.Fatalf("a replayed descriptor on est-1 not named: %q", rep.Problems)
	}
	n.PublishDescriptor(ctx)

	// A fork: a log with the same origin and key but other entries,
	// served by lux-1 as its copy.
	cfg, err := n.auditConfig(n.Keys())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dir, cfg.Sites, cfg.CheckpointInterval = t.TempDir(), nil, 100*time.Millisecond
	fork, err := audit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 3 {
		if last, err = fork.Append(ctx, audit.Event{Kind: "object.put", Actor: "mallory", Vault: "registry", Key: "forged"}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for a checkpoint covering the fork's entries.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := fork.ProveEntry(wctx, last); err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	fork.Close(cctx)
	// The node's copies are done (nothing is appended until the check),
	// so its copier does not write over the fork.
	l := n.Audit()
	if err := l.Sync(wctx, l.Appended(), []string{"lux-1"}); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(sitePath(n, "lux-1"), strings.TrimSuffix(audit.SitePrefix, "/"))
	forkDir := filepath.Join(cfg.Dir, "tlog")
	err = filepath.WalkDir(forkDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(forkDir, p)
		if rel != "checkpoint" && !strings.HasPrefix(rel, "tile"+string(filepath.Separator)) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(logDir, rel)), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(logDir, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = n.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !hasProblem(rep, "site lux-1: its checkpoint") || !hasProblem(rep, "split view or a fork") {
		t.Fatalf("a forked log on lux-1 not named: %q", rep.Problems)
	}
	for _, c := range rep.Log.Copies {
		if c.Site != "lux-1" && c.Problem != "" {
			t.Errorf("site %s: %s", c.Site, c.Problem)
		}
	}
}

// TestNodeWitnessesAnother: node B witnesses node A's log (audit.witnessed
// on B, audit.witnesses on A): A's published checkpoints carry B's
// cosignature, which verifies with the key B's 'audit key' prints, and a
// proof file from A checks with B as a required witness.
func TestNodeWitnessesAnother(t *testing.T) {
	a, b := newNode(t), newNode(t)
	ctx := t.Context()
	aID := a.Config.Node.ID
	aPub := a.Keys().Identity().Public()
	vkey, err := audit.VerifierKey(audit.Origin(aID), aPub)
	if err != nil {
		t.Fatal(err)
	}
	bc := *b.Config
	bc.Audit.Witnessed = []WitnessedLogConfig{{Origin: audit.Origin(aID), Key: vkey}}
	if err := b.SaveConfig(&bc); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	wkey := custody.WitnessVerifierKey(audit.WitnessName(b.Config.Node.ID), b.Keys().Identity().Public())
	ac := *a.Config
	ac.Audit.Witnesses = []WitnessConfig{{Key: wkey, URL: srv.URL + AdminPrefix + "v1/witness"}}
	ff := false
	ac.Audit.WitnessFailOpen = &ff
	if err := a.SaveConfig(&ac); err != nil {
		t.Fatal(err)
	}
	a = reopen(t, a)
	if err := a.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Put(a.As(ctx, "admin"), "registry", "minutes", strings.NewReader("minutes"), vault.PutOptions{Size: 7}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, _, err := a.AuditProof(wctx, "registry", "minutes", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	wv, err := fnote.NewVerifier(wkey)
	if err != nil {
		t.Fatal(err)
	}
	ed, pq, _ := audit.Verifiers(audit.Origin(aID), aPub)
	pc, err := audit.VerifyProof(p, audit.Origin(aID), ed[0], pq[0], []note.Verifier{wv}, 1)
	if err != nil || len(pc.Witnesses) != 1 {
		t.Fatalf("A's proof with B as a required witness: %v %+v", err, pc)
	}
	// B keeps what it cosigned.
	if _, err := os.Stat(filepath.Join(b.Dir, AuditDir, "witness.json")); err != nil {
		t.Fatal(err)
	}
}

// editConfig changes the configuration of a running node through the
// live path ('embassy config edit': ProposeConfig), and fails unless it
// was applied at once.
func editConfig(t *testing.T, n *Node, change func(*Config)) {
	t.Helper()
	c := *n.conf()
	c.Audit.Witnesses = append([]WitnessConfig(nil), c.Audit.Witnesses...)
	c.Audit.Witnessed = append([]WitnessedLogConfig(nil), c.Audit.Witnessed...)
	change(&c)
	body, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.ProposeConfig(t.Context(), body)
	if err != nil || !res.Applied {
		t.Fatalf("config edit: %v %+v", err, res)
	}
}

// TestWitnessSettingsLive: witness settings changed on running nodes
// (through config edit, no restart) are in force at once: B starts
// witnessing A's log, A's next checkpoints are cosigned by B (a proof file
// checks with B as a required witness), turning witness_fail_open off
// reopens A's log while writes go on, audit verify asks B for what it
// cosigned, and a witness removed is asked nothing more.
func TestWitnessSettingsLive(t *testing.T) {
	a, b := newNode(t), newNode(t)
	ctx := t.Context()
	aID := a.Config.Node.ID
	vkey, err := audit.VerifierKey(audit.Origin(aID), a.Keys().Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	editConfig(t, b, func(c *Config) {
		c.Audit.Witnessed = []WitnessedLogConfig{{Origin: audit.Origin(aID), Key: vkey}}
	})
	wkey := custody.WitnessVerifierKey(audit.WitnessName(b.Config.Node.ID), b.Keys().Identity().Public())
	log := a.Audit()
	editConfig(t, a, func(c *Config) {
		ff := false
		c.Audit.Witnesses = []WitnessConfig{{Key: wkey, URL: srv.URL + AdminPrefix + "v1/witness"}}
		c.Audit.WitnessFailOpen = &ff
	})
	if a.Audit() == log || a.Audit().WitnessFailOpen() {
		t.Fatal("turning witness_fail_open off did not reopen the log with it off")
	}
	if err := a.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Put(a.As(ctx, "admin"), "registry", "minutes", strings.NewReader("minutes"), vault.PutOptions{Size: 7}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, _, err := a.AuditProof(wctx, "registry", "minutes", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	wv, err := fnote.NewVerifier(wkey)
	if err != nil {
		t.Fatal(err)
	}
	ed, pq, _ := audit.Verifiers(audit.Origin(aID), a.Keys().Identity().Public())
	if pc, err := audit.VerifyProof(p, audit.Origin(aID), ed[0], pq[0], []note.Verifier{wv}, 1); err != nil || len(pc.Witnesses) != 1 {
		t.Fatalf("A's proof with B, made a witness without a restart, required: %v %+v", err, pc)
	}
	rep, err := a.VerifyAudit(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Witnesses) != 1 || rep.Witnesses[0].Problem != "" || rep.Witnesses[0].Size == 0 {
		t.Fatalf("audit verify with B as witness: %+v %+v", rep.Problems, rep.Witnesses)
	}

	// B's witness removed (custodians approve that; here applied as an
	// approved config.edit is): A's checkpoints go on without it.
	c := *a.conf()
	c.Audit.Witnesses, c.Audit.WitnessFailOpen = nil, nil
	body, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.applyConfig(&c, body); err != nil {
		t.Fatal(err)
	}
	before := b.witness.Load().Latest(audit.Origin(aID))
	if _, err := a.Engine.Put(a.As(ctx, "admin"), "registry", "budget", strings.NewReader("budget"), vault.PutOptions{Size: 6}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.AuditProof(wctx, "registry", "budget", manifest.ID{}); err != nil {
		t.Fatal(err)
	}
	if after := b.witness.Load().Latest(audit.Origin(aID)); string(after) != string(before) {
		t.Fatalf("a witness removed from audit.witnesses was still sent checkpoints")
	}
	// B stops witnessing A: add-checkpoint knows A no more.
	editConfig(t, b, func(c *Config) { c.Audit.Witnessed = nil })
	if b.witness.Load() != nil {
		t.Fatal("B still witnesses after audit.witnessed was emptied")
	}
}

// TestCopyIntervalLive: audit.copy_interval is in force on the running
// node's log at once: shortening it is a free config edit, lengthening it
// takes custodians (refused on a node without them), and once approved it
// is in force too; audit verify reports the interval and the window.
func TestCopyIntervalLive(t *testing.T) {
	n := newNode(t)
	ctx := t.Context()
	if got := n.Audit().CopyInterval(); got != audit.DefaultCopyInterval {
		t.Fatalf("the log copies every %v, want the default %v", got, audit.DefaultCopyInterval)
	}
	editConfig(t, n, func(c *Config) {
		iv := copyIntervalYAML(500 * time.Millisecond)
		c.Audit.CopyInterval = &iv
	})
	if got := n.Audit().CopyInterval(); got != 500*time.Millisecond {
		t.Fatalf("after config edit to 500ms the log copies every %v", got)
	}
	rep, err := n.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Log.CopyInterval != "500ms" || rep.Log.CopyWindow != "800ms" {
		t.Fatalf("audit verify reports copy interval %q, window %q; want 500ms, 800ms", rep.Log.CopyInterval, rep.Log.CopyWindow)
	}

	// Lengthening it through config edit waits for custodians, which
	// this node has none of: nothing changes.
	c := *n.conf()
	iv := copyIntervalYAML(30 * time.Second)
	c.Audit.CopyInterval = &iv
	body, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if res, err := n.ProposeConfig(ctx, body); err == nil && res.Applied {
		t.Fatalf("lengthening audit.copy_interval was applied without custodians: %+v", res)
	}
	if got := n.Audit().CopyInterval(); got != 500*time.Millisecond {
		t.Fatalf("after a refused edit the log copies every %v, want 500ms", got)
	}
	// Applied as an approved config.edit is: in force at once.
	if err := n.applyConfig(&c, body); err != nil {
		t.Fatal(err)
	}
	if got := n.Audit().CopyInterval(); got != 30*time.Second {
		t.Fatalf("after the approved edit the log copies every %v, want 30s", got)
	}
}

// TestCopyIntervalAfterRestart: a node opens its log with the configured
// audit.copy_interval.
func TestCopyIntervalAfterRestart(t *testing.T) {
	n := newNode(t)
	editConfig(t, n, func(c *Config) {
		iv := copyIntervalYAML(250 * time.Millisecond)
		c.Audit.CopyInterval = &iv
	})
	n = reopen(t, n)
	if got := n.Audit().CopyInterval(); got != 250*time.Millisecond {
		t.Fatalf("the reopened node's log copies every %v, want the configured 250ms", got)
	}
}
