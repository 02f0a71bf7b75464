package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// AuditReport is what `embassy audit verify` found: the log's copies on
// the sites (what anyone holding node.pub can check too), the index and
// every site's manifests and descriptor against the log (what only the
// node, holding the keys, can check).
type AuditReport struct {
	Log   audit.LogCheck        `json:"log"`
	State housekeeping.LogAudit `json:"state"`
	// Witnesses is what each witness in audit.witnesses, and each peer
	// witnessing the log (URL "peer NATION"), said: the latest checkpoint
	// of the log it cosigned (and, for a peer, the cosignature the node
	// kept) must be one of the log's tree.
	Witnesses []audit.WitnessCheck `json:"witnesses"`
	// Descriptors lists each site's node descriptor generation.
	Descriptors []SiteDescriptor `json:"descriptors"`
	// Problems gathers every problem above: tampering or damage. The
	// command exits non-zero when there is any.
	Problems []string `json:"problems"`
	// Window gathers what is only not done yet: entries not yet on every
	// site, checkpoints not yet cosigned.
	Window []string `json:"window"`
	OK     bool     `json:"ok"`
}

// SiteDescriptor is one site's node descriptor, as audit verify saw it.
type SiteDescriptor struct {
	Site       string `json:"site"`
	Generation uint64 `json:"generation"`
	Problem    string `json:"problem,omitempty"`
}

// VerifyAudit checks the audit log's copies, then the index, the sites'
// manifests and their node descriptors against the log.
func (n *Node) VerifyAudit(ctx context.Context) (AuditReport, error) {
	rep := AuditReport{Witnesses: []audit.WitnessCheck{}, Descriptors: []SiteDescriptor{}, Problems: []string{}, Window: []string{}}
	if err := n.Ready(); err != nil {
		return rep, err
	}
	l := n.Audit()
	if l == nil {
		return rep, errors.New("the audit log is not open")
	}
	var err error
	if rep.Log, err = l.CheckCopies(ctx); err != nil {
		return rep, err
	}
	rep.Problems = append(rep.Problems, rep.Log.Problems...)
	rep.Window = append(rep.Window, rep.Log.Window...)
	// A split view shown only outside is seen by the witnesses alone.
	// Their client is this verification's: its connections are closed
	// when it is done, not left idle in the process.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	for _, w := range n.conf().Audit.Witnesses {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		wc := l.CheckWitness(wctx, hc, w.Key, w.URL)
		cancel()
		rep.Witnesses = append(rep.Witnesses, wc)
		name := cmp.Or(wc.Witness, w.URL)
		if wc.Problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("witness %s cosigned a checkpoint of %d entries that is not the log's: a split view (%s)", name, wc.Size, wc.Problem))
		} else if wc.Window != "" {
			rep.Window = append(rep.Window, fmt.Sprintf("witness %s: %s", name, wc.Window))
		}
	}
	n.checkPeerWitnesses(ctx, l, &rep)
	if rep.State, err = n.Keeper().VerifyLog(ctx, n.path(AuditDir)); err != nil {
		return rep, err
	}
	rep.Problems = append(rep.Problems, rep.State.Problems...)
	if more := rep.State.ProblemCount - len(rep.State.Problems); more > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("… and %d more problems of the index and the sites", more))
	}
	for _, e := range rep.State.SiteErrors {
		rep.Window = append(rep.Window, "could not check: "+e)
	}
	// Every site's descriptor must be the newest the log records.
	want := rep.State.DescriptorGeneration
	for _, s := range n.Engine.Sites() {
		sd := SiteDescriptor{Site: s.ID}
		d, err := readDescriptor(ctx, n.Keys(), s.Store)
		switch {
		case errors.Is(err, site.ErrUnavailable):
			sd.Problem = "unavailable"
			rep.Window = append(rep.Window, fmt.Sprintf("site %s: node descriptor not read (unavailable)", s.ID))
		case err != nil:
			sd.Problem = err.Error()
			rep.Problems = append(rep.Problems, fmt.Sprintf("site %s: node descriptor: %v", s.ID, err))
		default:
			sd.Generation = d.Generation
			if d.Generation < want {
				sd.Problem = fmt.Sprintf("stale: generation %d, the log records %d", d.Generation, want)
				rep.Problems = append(rep.Problems, fmt.Sprintf("site %s holds node descriptor generation %d, older than generation %d the audit log records: a stale descriptor (replayed, or a write the site missed: the node republishes on its next start)", s.ID, d.Generation, want))
			}
		}
		rep.Descriptors = append(rep.Descriptors, sd)
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// AuditQuery selects events for `embassy audit log`.
type AuditQuery struct {
	Since time.Time `json:"since"`
	Vault string    `json:"vault,omitempty"`
	// Kind is a kind ("object.put") or a prefix of kinds ("object.",
	// "request").
	Kind string `json:"kind,omitempty"`
	// Limit bounds the events returned, newest first (default 1000).
	Limit int `json:"limit,omitempty"`
}

// AuditEntry is one event as `embassy audit log` shows it.
type AuditEntry struct {
	Index uint64 `json:"index"`
	// At is the event's time (Time, in Unix nanoseconds, as RFC 3339).
	At time.Time `json:"at"`
	audit.Event
}

// NewAuditEntry is entry i of the log, holding e.
func NewAuditEntry(i uint64, e audit.Event) AuditEntry {
	return AuditEntry{Index: i, At: e.At(), Event: e}
}

// AuditLogEvents returns the events matching q, newest first. The log is
// read oldest first; only the newest q.Limit matches are kept.
func (n *Node) AuditLogEvents(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	l := n.Audit()
	if l == nil {
		return nil, errors.New("the audit log is not open (the node is sealed)")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	var ring []AuditEntry
	since := q.Since.UnixNano()
	err := l.Events(ctx, 0, func(i uint64, e audit.Event) error {
		if (!q.Since.IsZero() && e.Time < since) || (q.Vault != "" && e.Vault != q.Vault) {
			return nil
		}
		if q.Kind != "" && e.Kind != q.Kind && !strings.HasPrefix(e.Kind, strings.TrimSuffix(q.Kind, ".")+".") {
			return nil
		}
		if len(ring) == limit {
			ring = ring[1:]
		}
		ring = append(ring, NewAuditEntry(i, e))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(ring)
	if ring == nil {
		ring = []AuditEntry{}
	}
	return ring, nil
}

// baselineAudit records, on a log that is empty, every version the index
// holds: what existed when the log began (a node upgraded from a release
// without one). Without it every older version would look unknown to the
// log.
func (n *Node) baselineAudit(ctx context.Context) error {
	l := n.Audit()
	if l == nil || l.Appended() > 0 {
		return nil
	}
	ctx = vault.AsSystem(ctx)
	var evs []audit.Event
	flush := func() error {
		if len(evs) == 0 {
			return nil
		}
		_, err := l.Append(ctx, evs...)
		evs = evs[:0]
		return err
	}
	count := 0
	for _, v := range n.Engine.Vaults() {
		vo := index.VersionOptions{Max: index.MaxList}
		for {
			page, err := n.Index.Versions(ctx, v.Name, vo)
			if err != nil {
				return err
			}
			for _, x := range page.Versions {
				full, err := n.Index.Get(ctx, x.Vault, x.Key, x.ID)
				if err != nil {
					return err
				}
				m, err := manifest.Open(full.Envelope, n.Keys())
				if err != nil {
					continue // scrub reports it; the log records what verifies
				}
				evs = append(evs, audit.Event{Kind: housekeeping.KindBaseline, Actor: "node", Vault: m.Vault, Key: m.Key, Version: m.Version, Revision: m.Revision})
				count++
				if len(evs) == 512 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if !page.Truncated {
				break
			}
			vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if count > 0 {
		n.Log.Info("audit log begun with the versions the index holds", "versions", count)
	}
	return nil
}

func (n *Node) adminAuditLog(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q := AuditQuery{Vault: r.URL.Query().Get("vault"), Kind: r.URL.Query().Get("kind")}
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"since: want an RFC 3339 time: " + err.Error()})
			return
		}
		q.Since = t
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		if _, err := fmt.Sscan(s, &q.Limit); err != nil || q.Limit < 1 || q.Limit > 100000 {
			writeJSON(w, http.StatusBadRequest, adminError{"limit: want 1 to 100000"})
			return
		}
	}
	evs, err := n.AuditLogEvents(r.Context(), q)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, adminError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, evs)
}

func (n *Node) adminAuditVerify(w http.ResponseWriter, r *http.Request, c *adminCall) {
	rep, err := n.VerifyAudit(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, adminError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// ErrNoAuditEntry: the audit log has no entry for the object asked about.
var ErrNoAuditEntry = errors.New("the audit log has no entry for it")

// AuditProof writes the proof file (C2SP tlog-proof, [audit.Log.Prove]) of
// the newest audit log entry about vault/key, about its version id when id
// is not zero: the entry, its inclusion proof and a checkpoint that covers
// it, cosigned by whatever witnesses cosigned it, allied peers included.
// Anyone holding the node's public key (node.pub) can check it offline.
func (n *Node) AuditProof(ctx context.Context, vaultName, key string, id manifest.ID) ([]byte, AuditEntry, error) {
	l := n.Audit()
	if l == nil {
		return nil, AuditEntry{}, errors.New("the audit log is not open (the node is sealed)")
	}
	var found AuditEntry
	ok := false
	err := l.Events(ctx, 0, func(i uint64, e audit.Event) error {
		if e.Vault == vaultName && e.Key == key && (id.IsZero() || e.Version == id) {
			found, ok = NewAuditEntry(i, e), true
		}
		return nil
	})
	if err != nil {
		return nil, found, err
	}
	if !ok {
		what := vaultName + "/" + key
		if !id.IsZero() {
			what += " version " + id.String()
		}
		return nil, found, fmt.Errorf("%w: %s", ErrNoAuditEntry, what)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The checkpoint carries the cosignatures of the peers that witness
	// the log in the background, as well as those of audit.witnesses.
	var cosigned []audit.Cosigned
	if kept, err := n.cosignatures(); err == nil {
		cosigned = kept.All()
	} else {
		n.Log.WarnContext(ctx, "audit proof: the peers' cosignatures cannot be read; the proof carries none of them", "err", err)
	}
	p, err := l.ProveEntry(ctx, found.Index, cosigned...)
	return p, found, err
}
