package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/vault"
)

// The node records on its audit log, besides what the engine records:
// every change to node.yaml (config.change, field by field: sites,
// vaults and their policies, principals, credentials), every two-person
// request with each decision and its outcome (request.*), unsealing
// (custody.unseal), key rotations (key.*), identity replacements
// (identity.replace), every node descriptor published
// (descriptor.publish, with its generation), scrubs, drills, index
// rebuilds, collections and recoveries (housekeeping records these), and
// how every job ended (job.end) and changes of a job's rate (job.rate).
//
// Events that arise while the node is sealed (unseal attempts) cannot be
// sealed under the log key, which the node holds only once unsealed: they
// wait in audit/sealed.jsonl, each line chained to the one before by its
// SHA-256 so that a line removed from the middle shows, and are appended
// to the log, marked as recorded while sealed, at unseal.

// Audit log event kinds the node writes.
const (
	KindConfigChange   = "config.change"
	KindRequestCreate  = "request.create"
	KindRequestApprove = "request.approve"
	KindRequestReject  = "request.reject"
	KindRequestExecute = "request.execute"
	KindRequestExpire  = "request.expire"
	// KindRequestRebuild: requests.json disagreed with the log and was
	// rebuilt from it.
	KindRequestRebuild  = "request.rebuild"
	KindUnseal          = "custody.unseal"
	KindUnsealAttempt   = "custody.unseal-attempt"
	KindDescriptor      = "descriptor.publish"
	KindIdentityReplace = "identity.replace"
	KindRootRotate      = "key.rotate-root"
	KindVaultKeyRotate  = "key.rotate"
	KindRecover         = "node.recover"
	KindLogRestored     = "audit.restored"
	// KindJobEnd records how a job (drain, scrub, drill, index rebuild,
	// key rotation) ended: done, failed, cancelled or interrupted, how
	// far it got and its report's counts (jobs.go).
	KindJobEnd = "job.end"
	// KindJobRate records an operator's change of a running job's rate.
	KindJobRate           = "job.rate"
	sealedJournal         = "sealed.jsonl"
	maxSealedJournalBytes = 1 << 20
)

// record appends events to the audit log. A fail-closed node refuses the
// change being recorded when that fails (the error wraps
// vault.ErrAudit); otherwise the failure is logged. A sealed node keeps
// them until unseal.
func (n *Node) record(ctx context.Context, evs ...audit.Event) error {
	n.auditSwap.RLock()
	defer n.auditSwap.RUnlock()
	l := n.Audit()
	if l == nil {
		n.recordSealed(evs...)
		return nil
	}
	if _, err := l.Append(ctx, evs...); err != nil {
		if n.conf().failClosed() {
			return fmt.Errorf("%w: %v", vault.ErrAudit, err)
		}
		n.Log.ErrorContext(ctx, "not recorded on the audit log (the node is not fail-closed: it goes on)", "kind", evs[0].Kind, "err", err)
	}
	return nil
}

// recordBestEffort appends events, logging a failure: for what is
// recorded after it happened (an outcome, a descriptor written).
func (n *Node) recordBestEffort(ctx context.Context, evs ...audit.Event) {
	n.auditSwap.RLock()
	defer n.auditSwap.RUnlock()
	l := n.Audit()
	if l == nil {
		n.recordSealed(evs...)
		return
	}
	if _, err := l.Append(context.WithoutCancel(ctx), evs...); err != nil {
		n.Log.ErrorContext(ctx, "not recorded on the audit log", "kind", evs[0].Kind, "err", err)
	}
}

var sealedMu sync.Mutex

type sealedLine struct {
	Prev  string      `json:"prev"` // base64 SHA-256 of the line before ("" first)
	Event audit.Event `json:"event"`
}

// recordSealed keeps events that arise while the node is sealed.
func (n *Node) recordSealed(evs ...audit.Event) {
	sealedMu.Lock()
	defer sealedMu.Unlock()
	dir := n.path(AuditDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.Log.Error("sealed-node audit journal", "err", err)
		return
	}
	p := filepath.Join(dir, sealedJournal)
	old, _ := os.ReadFile(p)
	if len(old) > maxSealedJournalBytes {
		n.Log.Warn("sealed-node audit journal full; event not kept", "kind", evs[0].Kind)
		return
	}
	prev := ""
	if lines := bytes.Split(bytes.TrimSpace(old), []byte("\n")); len(old) > 0 {
		prev = lineHash(lines[len(lines)-1])
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		n.Log.Error("sealed-node audit journal", "err", err)
		return
	}
	defer f.Close()
	for _, e := range evs {
		if e.Time == 0 {
			e.Time = time.Now().UnixNano()
		}
		b, _ := json.Marshal(sealedLine{Prev: prev, Event: e})
		f.Write(append(b, '\n'))
		prev = lineHash(b)
	}
	f.Sync()
}

func lineHash(b []byte) string {
	h := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(h[:])
}

// flushSealed appends what was recorded while sealed to the log, marking
// each event (and a broken chain), and removes the file.
func (n *Node) flushSealed(ctx context.Context) {
	sealedMu.Lock()
	defer sealedMu.Unlock()
	p := filepath.Join(n.path(AuditDir), sealedJournal)
	b, err := os.ReadFile(p)
	l := n.Audit()
	if errors.Is(err, os.ErrNotExist) || l == nil {
		return
	}
	var evs []audit.Event
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxSealedJournalBytes+1)
	for sc.Scan() {
		line := sc.Bytes()
		var l sealedLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		e := audit.Event{Kind: "audit.sealed-journal", Time: time.Now().UnixNano(), Actor: "node"}
		if err := dec.Decode(&l); err != nil || l.Event.Kind == "" || l.Event.Time <= 0 {
			e.Outcome = "a line of the sealed-node journal is malformed: " + strconv.Quote(string(line))
		} else {
			e = l.Event
			e.Record = nil
			if e.Detail == nil {
				e.Detail = map[string]string{}
			}
			e.Detail["recorded_while_sealed"] = "true"
			if l.Prev != prev {
				e.Detail["chain"] = "broken: the line before it is missing or was changed"
			}
		}
		prev = lineHash(line)
		evs = append(evs, e)
	}
	if len(evs) > 0 {
		if _, err := l.Append(ctx, evs...); err != nil {
			n.Log.Error("what was recorded while sealed is not on the audit log yet", "err", err)
			return
		}
	}
	os.Remove(p)
}

// requestEvent is the audit log event of a two-person request.
func (n *Node) requestEvent(kind string, r *Request) audit.Event {
	d := map[string]string{"request": r.ID, "op": r.Op.Kind, "digest": r.Digest}
	switch kind {
	case KindRequestCreate:
		d["summary"] = r.Op.Summary
		d["created"] = r.Created.UTC().Format(time.RFC3339Nano)
		d["expires"] = r.Expires.UTC().Format(time.RFC3339Nano)
		d["needed"] = strconv.Itoa(r.Needed)
		for k, v := range r.Op.Params {
			d["param."+k] = v
		}
	case KindRequestExecute:
		d["status"] = r.Status
		if r.Result != "" {
			d["result"] = r.Result
		}
	}
	actor := r.Requester
	if actor == "" {
		actor = "node"
	}
	return audit.Event{Kind: kind, Actor: actor, Detail: d}
}

// decisionEvent records one custodian's decision, with its signature.
func decisionEvent(r *Request, d Decision, approve bool) audit.Event {
	kind := KindRequestReject
	if approve {
		kind = KindRequestApprove
	}
	return audit.Event{Kind: kind, Actor: "custodian:" + d.Custodian, Time: d.At.UnixNano(), Detail: map[string]string{
		"request": r.ID, "op": r.Op.Kind, "digest": r.Digest, "signature": base64.StdEncoding.EncodeToString(d.Signature)}}
}

// configChangeEvent describes a change to node.yaml, field by field.
func configChangeEvent(ctx context.Context, old, next []byte) (audit.Event, bool) {
	e := audit.Event{Kind: KindConfigChange, Actor: vault.Actor(ctx)}
	oc, err1 := ParseConfig(old)
	nc, err2 := ParseConfig(next)
	if old == nil || err1 != nil || err2 != nil {
		e.Detail = map[string]string{"changes": "node.yaml written"}
		return e, true
	}
	var texts []string
	for _, c := range ConfigChanges(oc, nc) {
		texts = append(texts, c.Text)
	}
	if len(texts) == 0 {
		return e, false
	}
	e.Detail = map[string]string{"changes": strings.Join(texts, "\n")}
	return e, true
}
