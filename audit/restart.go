package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
)

// A log restart. A node rebuilt from an ally's replica (docs/alliance.md,
// "Recover from an ally") holds its log as far as the ally's copy of it
// went; its witnesses may have cosigned later checkpoints, whose entries
// are lost. Going on from the recovered log is another history than the
// one they cosigned, which they rightly refuse as a split view. So the
// node says so on its log: its first entry after recovery is a
// log.restart naming the size and root of the log it recovered (the base)
// and each checkpoint a witness cosigned that the recovered log does not
// hold. A witness whose latest cosigned checkpoint is named there, and is
// beyond the base, cosigns the node's checkpoint that includes the entry
// ([Witness.RestartOf], given the entry's proof file) instead of one that
// extends its own, and records that it did (OnRestart): the loss is
// declared once, on the node's log and on the witness's, never silent. A
// checkpoint of another history without such an entry is refused as
// before; a restart entry that names anything but the witness's latest
// checkpoint is refused; and once the witness moved on to the restarted
// log, the entry names nothing it holds.

// KindLogRestart is the entry a log restarted after a recovery that lost
// witnessed entries records first.
const KindLogRestart = "log.restart"

// A LogRestart is what a log.restart entry says.
type LogRestart struct {
	// Base is the size of the log recovered (the ally's copy), BaseRoot
	// its root.
	Base     uint64
	BaseRoot []byte
	// Witnessed are the checkpoints witnesses cosigned that the recovered
	// log does not hold: the history lost.
	Witnessed []Witnessed
}

// Witnessed is a checkpoint a witness cosigned: its size and root.
type Witnessed struct {
	Size uint64
	Root []byte
}

// Lost is how many entries the witnesses cosigned beyond the base.
func (r LogRestart) Lost() uint64 {
	var lost uint64
	for _, w := range r.Witnessed {
		if w.Size > r.Base {
			lost = max(lost, w.Size-r.Base)
		}
	}
	return lost
}

// Event renders the restart as its log entry's event, with more details
// for a person to read.
func (r LogRestart) Event(actor string, more map[string]string) Event {
	d := map[string]string{}
	for k, v := range more {
		d[k] = v
	}
	var lines []string
	for _, w := range r.Witnessed {
		lines = append(lines, fmt.Sprintf("%d %s", w.Size, base64.StdEncoding.EncodeToString(w.Root)))
	}
	d["base"] = strconv.FormatUint(r.Base, 10)
	d["base_root"] = base64.StdEncoding.EncodeToString(r.BaseRoot)
	d["witnessed"] = strings.Join(lines, "\n")
	d["lost"] = strconv.FormatUint(r.Lost(), 10)
	return Event{Kind: KindLogRestart, Actor: actor, Detail: d}
}

// ParseLogRestart reads a log.restart event.
func ParseLogRestart(e Event) (LogRestart, error) {
	var r LogRestart
	if e.Kind != KindLogRestart {
		return r, fmt.Errorf("a %s entry, not a %s", e.Kind, KindLogRestart)
	}
	var err error
	if r.Base, err = strconv.ParseUint(e.Detail["base"], 10, 64); err != nil {
		return r, fmt.Errorf("base %q", e.Detail["base"])
	}
	if r.BaseRoot, err = base64.StdEncoding.DecodeString(e.Detail["base_root"]); err != nil || len(r.BaseRoot) != 32 {
		return r, fmt.Errorf("base_root %q", e.Detail["base_root"])
	}
	for line := range strings.Lines(e.Detail["witnessed"]) {
		s, root, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		size, err := strconv.ParseUint(s, 10, 64)
		h, herr := base64.StdEncoding.DecodeString(root)
		if !ok || err != nil || herr != nil || len(h) != 32 {
			return r, fmt.Errorf("witnessed checkpoint %q: want SIZE ROOT", line)
		}
		r.Witnessed = append(r.Witnessed, Witnessed{Size: size, Root: h})
	}
	if len(r.Witnessed) == 0 {
		return r, fmt.Errorf("it names no witnessed checkpoint")
	}
	return r, nil
}

// WitnessRestart is a restart a witness accepted: it cosigned Checkpoint
// (of Size entries) of the log Origin, whose entry Index is the
// log.restart naming the checkpoint of Cosigned entries it held before.
type WitnessRestart struct {
	Origin     string
	Index      uint64
	Size       uint64
	Cosigned   uint64
	Restart    LogRestart
	Checkpoint []byte
}

// MaxRestart bounds a restart request (a proof file).
const MaxRestart = 64 << 10

// RestartOf handles a restart request from the node of the log origin
// (authenticated by the caller): body is the proof file ([Log.Prove]) of a
// log.restart entry against the checkpoint to cosign, signed by the log's
// key. It cosigns that checkpoint when the entry names the latest
// checkpoint this witness cosigned of the log, beyond the restart's base,
// and returns the cosignature; otherwise a *WitnessError (409 with the
// size cosigned when the entry names another checkpoint).
func (w *Witness) RestartOf(origin string, body []byte) ([]byte, error) {
	if len(body) > MaxRestart {
		return nil, refuse(http.StatusBadRequest, "the request is larger than %d bytes", MaxRestart)
	}
	w.mu.Lock()
	v, ok := w.logs[origin]
	w.mu.Unlock()
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown log %q", origin)
	}
	pc, err := VerifyProof(body, origin, v, nil, nil, 0)
	if err != nil {
		return nil, refuse(http.StatusForbidden, "not a proof of an entry of the log under a checkpoint signed by its key: %v", err)
	}
	r, err := ParseLogRestart(pc.Event)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "the entry proved is not a log restart: %v", err)
	}
	var p proof.TLogProof
	if err := p.Unmarshal(body); err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed proof: %v", err)
	}
	cpRaw, err := ownSignatures(p.Checkpoint, origin)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	cp, _, _, err := log.ParseCheckpoint(cpRaw, origin, v)
	if err != nil {
		return nil, refuse(http.StatusForbidden, "the checkpoint is not signed by the log's key: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.state[origin]
	named := false
	for _, c := range r.Witnessed {
		named = named || (c.Size == prev.Size && bytes.Equal(c.Root, prev.Hash))
	}
	if prev.Size == 0 || !named {
		e := refuse(http.StatusConflict, "the restart names no checkpoint this witness holds as the latest it cosigned (%d entries)", prev.Size)
		e.Size, e.SizeHint = prev.Size, true
		return nil, e
	}
	if prev.Size <= r.Base {
		return nil, refuse(http.StatusConflict, "the checkpoint of %d entries cosigned is not beyond the recovered log of %d: nothing of it was lost, so no restart from it", prev.Size, r.Base)
	}
	if pc.Index < r.Base {
		return nil, refuse(http.StatusBadRequest, "the restart entry is entry %d, inside the recovered log of %d entries it names", pc.Index, r.Base)
	}
	sig, err := w.cosignLocked(cp, cpRaw)
	if err != nil {
		return nil, err
	}
	if w.OnRestart != nil {
		w.OnRestart(WitnessRestart{Origin: origin, Index: pc.Index, Size: cp.Size, Cosigned: prev.Size, Restart: r, Checkpoint: cpRaw})
	}
	return sig, nil
}

// Restart sends the restart request for the log.restart entry i to the
// witness wv through post: the entry's proof file against the log's
// latest checkpoint (with the log's own signatures only). It returns the
// checkpoint with the witness's cosignature.
func (l *Log) Restart(ctx context.Context, wv note.Verifier, post WitnessPost, i uint64) (Cosigned, error) {
	if err := l.AwaitIntegrated(ctx, i+1); err != nil {
		return Cosigned{}, err
	}
	var raw []byte
	var cp *log.Checkpoint
	for {
		var err error
		if raw, cp, err = l.Checkpoint(ctx); err != nil {
			return Cosigned{}, fmt.Errorf("the log's checkpoint: %w", err)
		}
		if cp.Size > i {
			break
		}
		select {
		case <-ctx.Done():
			return Cosigned{}, fmt.Errorf("audit: no checkpoint covers entry %d yet: %w", i, ctx.Err())
		case <-time.After(l.cfg.CheckpointInterval / 2):
		}
	}
	raw, err := ownSignatures(raw, l.cfg.Origin)
	if err != nil {
		return Cosigned{}, err
	}
	body, err := l.Prove(ctx, i, raw)
	if err != nil {
		return Cosigned{}, err
	}
	status, answer, err := post(ctx, body)
	if err != nil {
		return Cosigned{}, fmt.Errorf("witness %s: %w", wv.Name(), err)
	}
	if status != http.StatusOK {
		return Cosigned{}, &RefusedError{Witness: wv.Name(), Status: status, Reason: firstLine(answer)}
	}
	return cosignature(wv, raw, answer, cp.Size)
}

// Holds checks that the log's tree holds the checkpoint cp: same root at
// its size. An error means another history (or entries the log lost).
func (l *Log) Holds(ctx context.Context, cp *log.Checkpoint) error { return l.holds(ctx, cp) }

// Root returns the root of the log's tree of its first size entries.
func (l *Log) Root(ctx context.Context, size uint64) ([]byte, error) {
	if size == 0 {
		return bytes.Clone(emptyRoot[:]), nil
	}
	return l.localRoot(ctx, size)
}
