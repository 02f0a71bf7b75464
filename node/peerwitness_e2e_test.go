package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/vault"
)

// putN writes n small objects to EST's registry as its officer, named
// prefix0…, and returns once the audit log published a checkpoint
// covering them.
func putN(t *testing.T, n *Node, prefix string, count int) {
	t.Helper()
	ctx := t.Context()
	for i := range count {
		body := fmt.Appendf(nil, "%s %d", prefix, i)
		if _, err := n.Engine.Put(n.As(ctx, "officer"), "registry", fmt.Sprintf("%s%d", prefix, i), bytes.NewReader(body),
			vault.PutOptions{Size: int64(len(body)), Label: "NATO RESTRICTED//REL TO EST, LUX"}); err != nil {
			t.Fatal(err)
		}
	}
	published(t, n)
}

// published waits until the node's log published a checkpoint of every
// entry appended so far, and returns its size.
func published(t *testing.T, n *Node) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	l := n.Audit()
	if _, err := l.ProveEntry(ctx, l.Appended()-1); err != nil {
		t.Fatal(err)
	}
	_, cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// cosigningBy returns what a round of WitnessPeers did with the peer of
// nation.
func cosigningBy(t *testing.T, rs []PeerCosigning, nation string) PeerCosigning {
	t.Helper()
	for _, r := range rs {
		if r.Nation == nation {
			return r
		}
	}
	t.Fatalf("no peer witness of %s in %+v", nation, rs)
	return PeerCosigning{}
}

// copyTree copies the directory src to dst, keeping file modes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPeersWitnessEachOther: three allied nodes that trust each other
// witness each other's audit logs without any witness setting: each
// cosigns the others' checkpoints over the peer link, the cosignatures are
// kept, and audit verify checks them. Then EST shows LUX and FIN different
// histories: it advances with FIN opted out (LUX alone cosigns), is
// restored from a backup of its node directory and sites taken before,
// and writes another history. LUX refuses it, records the split with the
// refused checkpoint as evidence, and audit verify on EST names LUX's
// checkpoint as a split view; FIN, shown only the second history, holds a
// checkpoint contradicting LUX's.
func TestPeersWitnessEachOther(t *testing.T) {
	est, lux, fin := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	nodes := []*allyNode{est, lux, fin}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				trust(t, a, b)
			}
		}
	}
	ctx := t.Context()
	estOrigin := audit.Origin(est.Config.Node.ID)

	// Every node witnesses the others' logs, by default.
	putN(t, est.Node, "2026/a", 3)
	n0 := published(t, est.Node)
	for _, a := range nodes {
		published(t, a.Node)
		rs, err := a.WitnessPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 {
			t.Fatalf("%s has %d peer witnesses, want 2: %+v", a.Config.Node.Nation, len(rs), rs)
		}
		for _, r := range rs {
			if r.Err != "" || r.Size == 0 {
				t.Fatalf("%s's checkpoint by %s: %+v", a.Config.Node.Nation, r.Nation, r)
			}
		}
	}
	for _, w := range []*allyNode{lux, fin} {
		if cp := w.witness.Load().Latest(estOrigin); !bytes.Contains(cp, fmt.Appendf(nil, "\n%d\n", n0)) {
			t.Fatalf("%s's latest cosigned checkpoint of EST's log:\n%s", w.Config.Node.Nation, cp)
		}
	}
	rep, err := est.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if peers := peerChecks(rep); len(peers) != 2 || !rep.OK {
		t.Fatalf("audit verify on EST: %d peer witnesses, problems %q, window %q", len(peers), rep.Problems, rep.Window)
	}
	kept, err := est.cosignatures()
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range est.peerWitnesses() {
		if cs, ok := kept.Get(pw.v.Name()); !ok || cs.Size != n0 {
			t.Fatalf("EST kept %+v for %s", cs, pw.Peer.Card.Nation)
		}
	}

	t.Run("attacks", func(t *testing.T) { peerWitnessAttacks(t, est, lux, fin) })

	// A backup of EST's whole installation (node directory and sites),
	// taken while it is stopped.
	estDir := est.Dir
	estSites := filepath.Join(estDir, "..", "est-sites")
	backup := t.TempDir()
	est.stop()
	est.Close()
	copyTree(t, estDir, filepath.Join(backup, "node"))
	copyTree(t, estSites, filepath.Join(backup, "sites"))

	// History A: EST opts FIN out and goes on; only LUX sees it.
	a, err := Open(ctx, estDir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	c := *a.Config
	c.Alliance.Peers = append([]PeerConfig(nil), c.Alliance.Peers...)
	no := false
	for i, p := range c.Alliance.Peers {
		if strings.Contains(p.Card, "\nnation FIN\n") {
			c.Alliance.Peers[i].Witness = &no
		}
	}
	if err := a.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	putN(t, a, "2026/history-a", 6)
	nA := published(t, a)
	rs, err := a.WitnessPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Nation != "LUX" || rs[0].Err != "" || rs[0].Size != nA {
		t.Fatalf("history A witnessed: %+v", rs)
	}
	a.Close()

	// History B: the backup restored, another history written; EST's
	// node shows it to both.
	for _, d := range []string{estDir, estSites} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	copyTree(t, filepath.Join(backup, "node"), estDir)
	copyTree(t, filepath.Join(backup, "sites"), estSites)
	b, err := Open(ctx, estDir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	putN(t, b, "2026/history-b", 1)
	nB := published(t, b)
	if nB >= nA {
		t.Fatalf("history B has %d entries, history A %d: the test wants B smaller", nB, nA)
	}
	rs, err = b.WitnessPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := cosigningBy(t, rs, "LUX"); !r.Split || !strings.Contains(r.Err, fmt.Sprintf("it cosigned a checkpoint of %d entries, the log's has %d", nA, nB)) {
		t.Fatalf("LUX, shown history B: %+v", r)
	}
	if r := cosigningBy(t, rs, "FIN"); r.Err != "" || r.Size != nB {
		t.Fatalf("FIN, shown history B only: %+v", r)
	}

	// LUX recorded the split on its own log, with B's checkpoint.
	var split audit.Event
	waitFor(t, "LUX's witness.split event", func() bool {
		return lux.Audit().Events(ctx, 0, func(_ uint64, e audit.Event) error {
			if e.Kind == KindWitnessSplit {
				split = e
			}
			return nil
		}) == nil && split.Kind != ""
	})
	if split.Detail["log"] != estOrigin || split.Detail["nation"] != "EST" || split.Detail["split"] != "rollback" || split.Detail["cosigned"] != fmt.Sprint(nA) {
		t.Fatalf("LUX's witness.split: %+v", split)
	}
	ed, _, _ := audit.Verifiers(estOrigin, b.Keys().Identity().Public())
	evidence, err := audit.OpenCheckpoint([]byte(split.Detail["checkpoint"]), estOrigin, ed)
	if err != nil || evidence.Size != nB {
		t.Fatalf("the evidence LUX kept is not EST's signed checkpoint of history B: %v %+v", err, evidence)
	}

	// What an operator alerts on: LUX counts the split it refused; EST's
	// node marks LUX, not FIN, whose cosigned size it shows.
	for _, m := range []struct {
		n      *Node
		name   string
		labels map[string]string
		want   float64
	}{
		{lux.Node, "embassy_witness_splits_total", map[string]string{"log": estOrigin}, 1},
		{b, "embassy_peer_witness_split", map[string]string{"nation": "LUX"}, 1},
		{b, "embassy_peer_witness_split", map[string]string{"nation": "FIN"}, 0},
		{b, "embassy_peer_witness_cosigned_entries", map[string]string{"nation": "FIN"}, float64(nB)},
	} {
		if got := gathered(t, m.n, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}

	// audit verify on EST's node names LUX's checkpoint as a split view.
	rep, err = b.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("(peer LUX) cosigned a checkpoint of %d entries that is not the log's: a split view", nA)
	if rep.OK || !containsLine(rep.Problems, want) {
		t.Fatalf("audit verify on the restored EST: problems %q, want one with %q", rep.Problems, want)
	}
	if containsLine(rep.Problems, "(peer FIN)") {
		t.Fatalf("FIN cosigned history B, which is the node's: problems %q", rep.Problems)
	}

	// LUX and FIN now hold checkpoints of EST's log, both signed with its
	// key, that cannot both be true: what anyone comparing them sees.
	luxCP, finCP := checkpointOf(t, lux.witness.Load().Latest(estOrigin), ed), checkpointOf(t, fin.witness.Load().Latest(estOrigin), ed)
	if luxCP.Size != nA || finCP.Size != nB {
		t.Fatalf("LUX holds %d entries, FIN %d; want %d and %d", luxCP.Size, finCP.Size, nA, nB)
	}
}

func checkpointOf(t *testing.T, raw []byte, ed []note.Verifier) *log.Checkpoint {
	t.Helper()
	n, err := note.Open(raw, note.VerifierList(ed...))
	if err != nil {
		t.Fatalf("not a checkpoint signed by EST: %v\n%s", err, raw)
	}
	cp := new(log.Checkpoint)
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	return cp
}

func peerChecks(rep AuditReport) []audit.WitnessCheck {
	var out []audit.WitnessCheck
	for _, w := range rep.Witnesses {
		if strings.HasPrefix(w.URL, "peer ") {
			out = append(out, w)
		}
	}
	return out
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// waitFor waits until cond holds, failing after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerWitnessAttacks: what a peer may not make a witness do, and what a
// node that is not a peer cannot do at all.
func peerWitnessAttacks(t *testing.T, est, lux, fin *allyNode) {
	ctx := t.Context()
	estOrigin := audit.Origin(est.Config.Node.ID)
	cosignedBefore := lux.witness.Load().Latest(estOrigin)

	// A checkpoint of EST's log not signed by EST's log key (FIN's key,
	// under EST's origin), sent by EST over the peer link: 403.
	forger, _, err := fin.Keys().CheckpointSigners(estOrigin)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: estOrigin, Size: 1000, Hash: make([]byte, 32)}.Marshal())}, forger)
	if err != nil {
		t.Fatal(err)
	}
	st, body, err := est.peerPost(ctx, lux.Config.Node.ID, PeerWitnessEndpoint, append([]byte("old 0\n\n"), forged...))
	if err != nil || st != http.StatusForbidden || !strings.Contains(string(body), "not signed by the log's key") {
		t.Fatalf("a checkpoint not signed by EST's key: %d %s %v", st, body, err)
	}
	// FIN's own genuine checkpoint, sent by EST: a node submits only its
	// own log's.
	finCP, _, err := fin.Audit().Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, body, err = est.peerPost(ctx, lux.Config.Node.ID, PeerWitnessEndpoint, append([]byte("old 0\n\n"), finCP...))
	if err != nil || st != http.StatusForbidden || !strings.Contains(string(body), "submits only its own log's") {
		t.Fatalf("FIN's checkpoint sent by EST: %d %s %v", st, body, err)
	}
	// A malformed body: 400, nothing changed.
	st, _, err = est.peerPost(ctx, lux.Config.Node.ID, PeerWitnessEndpoint, []byte("new 0\n\n"))
	if err != nil || st != http.StatusBadRequest {
		t.Fatalf("garbage: %d %v", st, err)
	}
	if got := lux.witness.Load().Latest(estOrigin); !bytes.Equal(got, cosignedBefore) {
		t.Fatalf("a refused request changed what LUX cosigned:\n%s", got)
	}

	// A node LUX does not trust (it trusts LUX) cannot reach LUX's peer
	// listener at all, and its log is unknown on LUX's public witness
	// endpoint.
	xyz := newAllyNode(t, "XYZ")
	trust(t, xyz, lux)
	published(t, xyz.Node)
	xcp, _, err := xyz.Audit().Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := xyz.peerPost(ctx, lux.Config.Node.ID, PeerWitnessEndpoint, append([]byte("old 0\n\n"), xcp...)); err == nil {
		t.Fatal("a node LUX does not trust reached its peer witness")
	}
	if rs, err := xyz.WitnessPeers(ctx); err != nil || len(rs) != 1 || rs[0].Err == "" {
		t.Fatalf("XYZ's round with LUX: %+v %v", rs, err)
	}
	srv := httptest.NewServer(lux.Handler())
	defer srv.Close()
	r, err := http.Post(srv.URL+"/_embassy/v1/witness/add-checkpoint", "text/plain", bytes.NewReader(append([]byte("old 0\n\n"), xcp...)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "unknown log") {
		t.Fatalf("XYZ's checkpoint on LUX's public witness endpoint: %d %s", r.StatusCode, b)
	}
	if lux.witness.Load().Latest(audit.Origin(xyz.Config.Node.ID)) != nil {
		t.Fatal("LUX cosigned the log of a node it does not trust")
	}

	// A peer opted out: LUX stops witnessing FIN's log (404 over the peer
	// link) and stops sending FIN its own.
	c := *lux.Config
	c.Alliance.Peers = append([]PeerConfig(nil), c.Alliance.Peers...)
	no := false
	for i, p := range c.Alliance.Peers {
		if strings.Contains(p.Card, "\nnation FIN\n") {
			c.Alliance.Peers[i].Witness = &no
		}
	}
	if err := lux.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	st, body, err = fin.peerPost(ctx, lux.Config.Node.ID, PeerWitnessEndpoint, append([]byte("old 0\n\n"), finCP...))
	if err != nil || st != http.StatusNotFound {
		t.Fatalf("FIN's checkpoint at LUX, opted out: %d %s %v", st, body, err)
	}
	if rs, err := lux.WitnessPeers(ctx); err != nil || len(rs) != 1 || rs[0].Nation != "EST" {
		t.Fatalf("LUX's peer witnesses with FIN opted out: %+v %v", rs, err)
	}
	// And back in.
	c.Alliance.Peers[slicesIndex(c.Alliance.Peers, "FIN")].Witness = nil
	if err := lux.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	if rs, err := fin.WitnessPeers(ctx); err != nil || cosigningBy(t, rs, "LUX").Err != "" {
		t.Fatalf("FIN's round, opted in again: %+v %v", rs, err)
	}
}

func slicesIndex(ps []PeerConfig, nation string) int {
	for i, p := range ps {
		if strings.Contains(p.Card, "\nnation "+nation+"\n") {
			return i
		}
	}
	return -1
}

// gathered returns the value of the metric name with labels (summed over
// the series that have them) from the node's registry.
func gathered(t *testing.T, n *Node, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := n.metricsFor().reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return sum(f, labels)
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestWitnessesCompareNotes: EST shows LUX its real log and FIN a
// checkpoint of another history of the same size, signed with EST's key
// (EST does not send FIN its checkpoints; FIN witnesses EST's log as its
// peer). Each witness alone cosigned what it was shown; comparing notes
// over the peer link (witness/of), LUX and FIN each find the fork, record
// it once as witness.split with the other's checkpoint, and count it.
func TestWitnessesCompareNotes(t *testing.T) {
	est, lux, fin := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	trust(t, est, lux)
	for _, a := range []*allyNode{lux, fin} {
		trust(t, a, est)
	}
	trust(t, lux, fin)
	trust(t, fin, lux)
	ctx := t.Context()
	origin := audit.Origin(est.Config.Node.ID)
	putN(t, est.Node, "2026/a", 2)
	rs, err := est.WitnessPeers(ctx)
	if err != nil || len(rs) != 1 || rs[0].Nation != "LUX" || rs[0].Err != "" {
		t.Fatalf("EST's round: %+v %v", rs, err)
	}
	size := rs[0].Size
	if ds, err := lux.CompareWitnesses(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("before the fork: %+v %v", ds, err)
	}

	ed, pq, err := est.Keys().CheckpointSigners(origin)
	if err != nil {
		t.Fatal(err)
	}
	hash := bytes.Repeat([]byte{7}, 32)
	forged, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: size, Hash: hash}.Marshal())}, ed, pq)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fin.Handler())
	defer srv.Close()
	r, err := http.Post(srv.URL+"/_embassy/v1/witness/add-checkpoint", "text/plain", bytes.NewReader(append([]byte("old 0\n\n"), forged...)))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("FIN, shown the other history first: %s", r.Status)
	}

	for _, c := range []struct {
		w     *allyNode
		other string
	}{{lux, "FIN"}, {fin, "LUX"}} {
		ds, err := c.w.CompareWitnesses(ctx)
		if err != nil || len(ds) != 1 || ds[0].Log != origin || ds[0].Nation != c.other || ds[0].Size != size {
			t.Fatalf("%s comparing notes: %+v %v", c.w.Config.Node.Nation, ds, err)
		}
		// Again: reported once.
		if _, err := c.w.CompareWitnesses(ctx); err != nil {
			t.Fatal(err)
		}
		var splits []audit.Event
		if err := c.w.Audit().Events(ctx, 0, func(_ uint64, e audit.Event) error {
			if e.Kind == KindWitnessSplit {
				splits = append(splits, e)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(splits) != 1 || splits[0].Detail["seen_by_nation"] != c.other || splits[0].Detail["nation"] != "EST" || splits[0].Detail["split"] != "fork" {
			t.Fatalf("%s's witness.split events: %+v", c.w.Config.Node.Nation, splits)
		}
		if got := gathered(t, c.w.Node, "embassy_witness_splits_total", map[string]string{"log": origin}); got != 1 {
			t.Errorf("%s: embassy_witness_splits_total = %v", c.w.Config.Node.Nation, got)
		}
	}
}
