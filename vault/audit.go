package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
)

// Every change the engine commits is on the node's audit log: a new
// version (object.put, object.delete-marker), a new revision of one
// (object.lock, object.relabel, object.rewrap, object.move), a version
// deleted (the deletion record, evidence.delete). A commit's entry is
// written into the index in the commit's own transaction when the log
// takes entries from the engine's index (audit/pending.go): durable with
// the commit, with no second fsync to wait for. Otherwise, and for
// deletion records (durable before the delete commits), it is appended to
// the node's local log (group-committed) before the index commit. The
// log reaches the sites asynchronously. Nothing a deletion record covers
// is removed from a site before the record is on the sites holding the
// version.
//
// When the append fails, a fail-closed engine (Config.AuditFailClosed)
// refuses the change; otherwise it logs the failure and goes on.

// AuditLog is the node's audit log as the engine uses it (package audit
// implements it).
type AuditLog = evidence.Log

// Kinds of audit log events the engine writes.
const (
	KindPut          = "object.put"
	KindDeleteMarker = "object.delete-marker"
	KindLock         = "object.lock"
	KindRelabel      = "object.relabel"
	KindRewrap       = "object.rewrap"
	KindMove         = "object.move"
	KindDelete       = "evidence.delete"
)

// ErrAudit: the change was refused because the audit log could not record
// it (the node is fail-closed). Nothing was changed; retry once the log is
// writable again.
var ErrAudit = errors.New("the audit log cannot record the change")

// Actor names who a context acts for on the audit log: the principal, or
// "node" for the node's own work.
func Actor(ctx context.Context) string {
	if p, ok := PrincipalFrom(ctx); ok && p.Name != "" {
		return p.Name
	}
	return "node"
}

// manifestEvent is the audit log event of committing m as kind.
func manifestEvent(ctx context.Context, kind string, m *manifest.Manifest) audit.Event {
	ev := audit.Event{Kind: kind, Actor: Actor(ctx), Vault: m.Vault, Key: m.Key, Version: m.Version, Revision: m.Revision, Detail: map[string]string{}}
	switch kind {
	case KindPut:
		ev.Detail["size"] = strconv.FormatInt(m.Size, 10)
		ev.Detail["parts"] = strconv.Itoa(len(m.Parts))
		if m.ETag != "" {
			ev.Detail["etag"] = m.ETag
		}
	case KindLock:
		if m.Lock == nil {
			ev.Detail["lock"] = "none"
		} else {
			if m.Lock.Mode != "" {
				ev.Detail["mode"] = m.Lock.Mode
				ev.Detail["until"] = m.Lock.Until.UTC().Format(time.RFC3339)
			}
			ev.Detail["legal_hold"] = strconv.FormatBool(m.Lock.LegalHold)
		}
	case KindRewrap:
		ev.Detail["key_generation"] = strconv.Itoa(max(m.KeyGen, 1))
	case KindMove:
		ev.Detail["sites"] = fmt.Sprint(manifestSites(m))
	}
	if m.Label != "" {
		ev.Detail["label"] = m.Label
	}
	if len(ev.Detail) == 0 {
		ev.Detail = nil
	}
	return ev
}

// indexLog is an audit log that takes entries committed in the index
// write they record (audit.Log, through the node's proxy): the index
// commit's fsync makes the entry durable, with no second wait.
type indexLog interface {
	// IndexEntry seals ev for the write into the index into;
	// audit.ErrNotAttached when the log takes none from it (then
	// append), an error wrapping audit.ErrLog, with the entry, when the
	// log cannot take entries.
	IndexEntry(into audit.Pending, ev audit.Event) ([]byte, error)
	// Committed says index writes carrying entries committed.
	Committed()
}

// indexEntry returns the audit log entry to commit with the index write
// recording ev, or nil when ev is to be appended before the write
// (record). With a fail-closed engine an error refuses the change.
func (e *Engine) indexEntry(ctx context.Context, ev audit.Event) ([]byte, bool, error) {
	il, ok := e.audit.(indexLog)
	into, ok2 := e.index.(audit.Pending)
	if !ok || !ok2 {
		return nil, false, nil
	}
	entry, err := il.IndexEntry(into, ev)
	if errors.Is(err, audit.ErrNotAttached) {
		return nil, false, nil
	}
	if err != nil {
		if e.failClosed {
			return nil, true, fmt.Errorf("%w: %v", ErrAudit, err)
		}
		e.log.ErrorContext(ctx, "the audit log cannot take entries now (the node is not fail-closed: it goes on, the entry waits in the index)", "kind", ev.Kind, "err", err)
	}
	return entry, entry != nil, nil
}

// record appends events to the audit log. With a fail-closed engine an
// error refuses the change (it wraps ErrAudit); otherwise it is logged.
func (e *Engine) record(ctx context.Context, evs ...audit.Event) error {
	if e.audit == nil {
		return nil
	}
	if _, err := e.audit.Append(ctx, evs...); err != nil {
		if e.failClosed {
			return fmt.Errorf("%w: %v", ErrAudit, err)
		}
		e.log.ErrorContext(ctx, "change not recorded on the audit log (the node is not fail-closed: it goes on)", "kind", evs[0].Kind, "err", err)
	}
	return nil
}

// recordFailure appends that a change recorded before did not take effect
// (best effort: the change is already refused).
func (e *Engine) recordFailure(ctx context.Context, ev audit.Event, cause error) {
	if e.audit == nil {
		return
	}
	ev.Time, ev.Outcome = 0, "failed: "+cause.Error()
	ev.Record = nil
	if _, err := e.audit.Append(context.WithoutCancel(ctx), ev); err != nil {
		e.log.WarnContext(ctx, "failure not recorded on the audit log", "kind", ev.Kind, "err", err)
	}
}

// Record appends events on the node's behalf (the outcome of a scrub, a
// drill, a rebuild), best effort: a failure is logged.
func (e *Engine) Record(ctx context.Context, evs ...audit.Event) {
	if e.audit == nil {
		return
	}
	if _, err := e.audit.Append(context.WithoutCancel(ctx), evs...); err != nil {
		e.log.WarnContext(ctx, "not recorded on the audit log", "kind", evs[0].Kind, "err", err)
	}
}

// AuditLog returns the engine's audit log, or nil.
func (e *Engine) AuditLog() AuditLog { return e.audit }
