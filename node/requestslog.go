package node

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/vault"
)

// requests.json is a cache of the audit log's request entries: every
// request, decision and outcome is on the log before it is in the file
// (record, then saveRequests). When the node opens, the file is checked
// against the log; a file that disagrees with it (restored from a backup,
// an approval or a rejection taken out, a request added or removed) is
// rebuilt from the log, and the rebuild is itself recorded.
//
// So that opening does not read the whole log each time, the node keeps
// RequestsCheckedFile: how far the log had been read when requests.json
// last agreed with it, and the file's SHA-256 then, authenticated like the
// node files. Only the entries after that point are read, unless the file
// changed behind the node's back or request entries were appended since:
// then the whole log is read.

var errStop = errors.New("stop")

// RequestsCheckedFile records how far requests.json was checked against
// the audit log.
const RequestsCheckedFile = "requests.checked"

type requestsChecked struct {
	LogSize uint64 `json:"log_size"`
	SHA256  string `json:"requests_sha256"`
}

// requestsBody returns requests.json's body as verified ("" when absent).
func (n *Node) requestsBody() ([]byte, error) {
	f, err := n.loadVerified(RequestsFile)
	if err != nil || f == nil {
		return nil, err
	}
	return f.body, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// noteRequestsChecked records that requests.json, as it is now, agrees
// with the first size entries of the log. Called with reqMu held.
func (n *Node) noteRequestsChecked(size uint64) {
	body, err := n.requestsBody()
	if err != nil {
		return
	}
	b, _ := json.Marshal(requestsChecked{LogSize: size, SHA256: sha256Hex(body)})
	keys := n.Keys()
	gen := nodeFileGen(n.Dir, keys, RequestsCheckedFile) + 1
	if err := writeNodeFile(n.Dir, keys, RequestsCheckedFile, gen, append(b, '\n')); err != nil {
		n.Log.Warn("requests.json: note how far it agrees with the audit log", "err", err)
	}
}

// lastRequestsChecked reads RequestsCheckedFile; ok is false when it is
// missing or does not verify.
func (n *Node) lastRequestsChecked() (requestsChecked, bool) {
	f, err := readNodeFile(n.Dir, RequestsCheckedFile)
	if err != nil || f == nil || f.mac == nil {
		return requestsChecked{}, false
	}
	if _, err := f.verify(n.Keys()); err != nil {
		return requestsChecked{}, false
	}
	var rc requestsChecked
	if json.Unmarshal(f.body, &rc) != nil {
		return requestsChecked{}, false
	}
	return rc, true
}

// RequestsCheck says what checking requests.json against the log found.
type RequestsCheck struct {
	// Full is true when the whole log was read.
	Full bool `json:"full"`
	// Differences lists how the file disagreed with the log; when there
	// is any, the file was rebuilt from the log.
	Differences []string `json:"differences"`
}

// checkRequests checks requests.json against the audit log and rebuilds
// it from the log when they disagree.
func (n *Node) checkRequests(ctx context.Context) (RequestsCheck, error) {
	rep := RequestsCheck{Differences: []string{}}
	l := n.Audit()
	if l == nil || n.Keys() == nil {
		return rep, nil
	}
	n.reqMu.Lock()
	defer n.reqMu.Unlock()
	body, err := n.requestsBody()
	if err != nil {
		return rep, err
	}
	size := l.Appended()
	if rc, ok := n.lastRequestsChecked(); ok && rc.SHA256 == sha256Hex(body) && rc.LogSize <= size {
		found := false
		err := n.requestEvents(ctx, l, rc.LogSize, func(uint64, audit.Event) { found = true })
		if err != nil {
			return rep, err
		}
		if !found {
			if rc.LogSize < size {
				n.noteRequestsChecked(size)
			}
			return rep, nil
		}
	}
	rep.Full = true
	fromLog, first, err := n.requestsFromLog(ctx, l)
	if err != nil {
		return rep, err
	}
	file, err := n.loadRequests()
	if err != nil {
		return rep, err
	}
	merged, diffs := mergeRequests(n.conf().Node.ID, fromLog, file, first)
	rep.Differences = diffs
	if len(diffs) > 0 {
		n.Log.Warn("requests.json disagrees with the audit log: rebuilt from the log", "differences", diffs)
		if err := n.record(ctx, audit.Event{Kind: KindRequestRebuild, Actor: "node", Detail: map[string]string{
			"differences": strings.Join(diffs, "; ")}}); err != nil {
			return rep, err
		}
		if err := n.saveRequests(merged); err != nil {
			return rep, err
		}
	} else {
		n.noteRequestsChecked(l.Appended())
	}
	return rep, nil
}

// requestEvents calls fn for every request entry of the log from index
// from on. Entries that do not open with the node's keys (sealed by an
// identity the node no longer holds: a node directory from before
// identities) are skipped, and counted in a warning.
func (n *Node) requestEvents(ctx context.Context, l *audit.Log, from uint64, fn func(uint64, audit.Event)) error {
	unreadable := 0
	err := l.Entries(ctx, from, func(i uint64, entry []byte) error {
		e, _, err := audit.OpenEntry(n.Keys(), entry)
		if err != nil {
			unreadable++
			return nil
		}
		if strings.HasPrefix(e.Kind, "request.") {
			fn(i, e)
		}
		return nil
	})
	if unreadable > 0 {
		n.Log.Warn("requests.json check: audit log entries that do not open with the node's keys were skipped", "count", unreadable)
	}
	return err
}

// logRequest is a request as the log records it.
type logRequest struct {
	r *Request
	// outcome is true when the log records how the request ended
	// (rejected, executed, failed, expired).
	outcome bool
}

// requestsFromLog rebuilds every request from the log's request entries,
// and returns the time of the log's first entry.
func (n *Node) requestsFromLog(ctx context.Context, l *audit.Log) (map[string]*logRequest, time.Time, error) {
	out := map[string]*logRequest{}
	var first time.Time
	if err := l.Events(ctx, 0, func(_ uint64, e audit.Event) error {
		first = e.At()
		return errStop
	}); err != nil && !errors.Is(err, errStop) {
		// The first entry does not open: the log's start is unknown, and
		// requests only in requests.json are kept.
		first = time.Time{}
	}
	err := n.requestEvents(ctx, l, 0, func(_ uint64, e audit.Event) {
		d := e.Detail
		id := d["request"]
		if e.Kind == KindRequestCreate {
			out[id] = &logRequest{r: requestFromEvent(n.conf().Node.ID, e)}
			return
		}
		lr, ok := out[id]
		if !ok {
			return // a request made before the log began
		}
		r := lr.r
		switch e.Kind {
		case KindRequestApprove, KindRequestReject:
			sig, err := base64.StdEncoding.DecodeString(d["signature"])
			if err != nil {
				return
			}
			dec := Decision{Custodian: strings.TrimPrefix(e.Actor, "custodian:"), At: e.At(), Signature: sig}
			if e.Kind == KindRequestApprove {
				r.Approvals = append(r.Approvals, dec)
			} else {
				r.Rejection, r.Status, lr.outcome = &dec, StatusRejected, true
			}
		case KindRequestExecute:
			r.Status, r.Result, lr.outcome = d["status"], d["result"], true
		case KindRequestExpire:
			r.Status, lr.outcome = StatusExpired, true
		}
	})
	return out, first, err
}

// requestFromEvent rebuilds a request from its request.create entry.
func requestFromEvent(nodeID string, e audit.Event) *Request {
	d := e.Detail
	r := &Request{ID: d["request"], Op: vault.Operation{Kind: d["op"], Summary: d["summary"], Params: map[string]string{}},
		Digest: d["digest"], Status: StatusPending, Approvals: []Decision{}}
	for k, v := range d {
		if p, ok := strings.CutPrefix(k, "param."); ok {
			r.Op.Params[p] = v
		}
	}
	r.Created, _ = time.Parse(time.RFC3339Nano, d["created"])
	r.Expires, _ = time.Parse(time.RFC3339Nano, d["expires"])
	r.Needed, _ = strconv.Atoi(d["needed"])
	// An empty requester is recorded as the actor "node".
	r.Requester = e.Actor
	if r.digest(nodeID) != r.Digest && e.Actor == "node" {
		r.Requester = ""
	}
	return r
}

// mergeRequests compares requests.json (file) with the log's requests and
// returns the requests as they should be, and the differences. The log
// decides which requests exist, their decisions and, when it records it,
// their outcome; the file's copy of a request is kept when its digest is
// the log's (the file then holds exactly what was signed), and its outcome
// when the log records none (an outcome whose entry could not be
// appended). A request only in the file is kept when it was made before
// the log began.
func mergeRequests(nodeID string, fromLog map[string]*logRequest, file []*Request, first time.Time) ([]*Request, []string) {
	var diffs []string
	byID := map[string]*Request{}
	var out []*Request
	for _, f := range file {
		if f == nil {
			continue
		}
		byID[f.ID] = f
		if _, ok := fromLog[f.ID]; !ok {
			if !first.IsZero() && !f.Created.Before(first) {
				diffs = append(diffs, fmt.Sprintf("request %s is not on the log: removed", f.ID))
				continue
			}
			out = append(out, f) // made before the log began
		}
	}
	for _, id := range slices.Sorted(maps.Keys(fromLog)) {
		lr := fromLog[id]
		want := lr.r
		f, ok := byID[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("request %s (%s) is on the log but not in requests.json", id, want.Op.Kind))
		case f.Digest != want.Digest:
			diffs = append(diffs, fmt.Sprintf("request %s: its digest differs from the log's", id))
		default:
			if f.digest(nodeID) == f.Digest {
				// The file's copy is what was signed: keep its fields.
				r := *f
				r.Approvals, r.Rejection = want.Approvals, want.Rejection
				r.Status, r.Result = want.Status, want.Result
				r.Needed = max(f.Needed, want.Needed)
				want = &r
			}
			if d := decisionsDiffer(f.Approvals, lr.r.Approvals); d != "" {
				diffs = append(diffs, fmt.Sprintf("request %s: %s", id, d))
			}
			if (f.Rejection == nil) != (lr.r.Rejection == nil) || (f.Rejection != nil && f.Rejection.Custodian != lr.r.Rejection.Custodian) {
				diffs = append(diffs, fmt.Sprintf("request %s: its rejection differs from the log's", id))
			}
			switch {
			case lr.outcome && f.Status != want.Status:
				diffs = append(diffs, fmt.Sprintf("request %s is %s in requests.json, %s on the log", id, f.Status, want.Status))
			case !lr.outcome && f.Status != StatusPending && f.Status != StatusRejected:
				// An outcome the log could not record: the file's stands.
				want.Status, want.Result = f.Status, f.Result
			}
		}
		out = append(out, want)
	}
	slices.SortStableFunc(out, func(a, b *Request) int { return a.Created.Compare(b.Created) })
	return out, diffs
}

// decisionsDiffer says how the file's approvals differ from the log's.
func decisionsDiffer(file, log []Decision) string {
	key := func(d Decision) string { return d.Custodian + "\x00" + string(d.Signature) }
	inLog := map[string]bool{}
	for _, d := range log {
		inLog[key(d)] = true
	}
	inFile := map[string]bool{}
	var extra, missing []string
	for _, d := range file {
		inFile[key(d)] = true
		if !inLog[key(d)] {
			extra = append(extra, d.Custodian)
		}
	}
	for _, d := range log {
		if !inFile[key(d)] {
			missing = append(missing, d.Custodian)
		}
	}
	var s []string
	if len(missing) > 0 {
		s = append(s, "approvals on the log missing from requests.json: "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		s = append(s, "approvals in requests.json not on the log: "+strings.Join(extra, ", "))
	}
	return strings.Join(s, "; ")
}
