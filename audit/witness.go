package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/internal/atomicfile"
)

// A Witness cosigns other logs' checkpoints (C2SP tlog-witness,
// https://c2sp.org/tlog-witness): for each log it follows it keeps the
// latest checkpoint it cosigned, and cosigns a new one only when it is
// signed by the log's key and a consistency proof shows that it extends
// the one before. So a log that shows one history to some and another to
// others cannot get both cosigned by the same witness.
type Witness struct {
	signer note.Signer
	path   string

	mu    sync.Mutex
	logs  map[string]note.Verifier // by origin
	state map[string]witnessed

	// OnSplit, if set before the witness serves, is told of every refusal
	// that shows the log signed two histories ([WitnessError.Split]): the
	// witness's operator must hear of it, and the refused checkpoint,
	// signed by the log's key, is the evidence. It is called with the
	// witness's lock held: it must not call the witness.
	OnSplit func(*WitnessError)
	// OnRestart, if set before the witness serves, is told of every log
	// restart it accepted ([Witness.RestartOf]), with the witness's lock
	// held: it must not call the witness.
	OnRestart func(WitnessRestart)
	// Persist, if set before the witness serves, keeps a copy of the
	// witness's state (the content of its state file) beyond the node
	// directory — the node's sites ([MergeWitnessStates] brings it back).
	// It is called with the new state before a cosignature leaves, with
	// the witness's lock held; when it fails, the checkpoint is not
	// cosigned (503) and the log's node tries again later.
	Persist func(state []byte) error
}

// witnessed is the latest checkpoint cosigned for a log.
type witnessed struct {
	Size uint64 `json:"size"`
	Hash []byte `json:"hash"`
	// Checkpoint is the checkpoint as cosigned: the log's signed note with
	// this witness's cosignature line added (absent in state written
	// before it was kept).
	Checkpoint string `json:"checkpoint,omitempty"`
}

// WitnessedLog names a log a witness follows: its origin and the C2SP
// verifier key (vkey) of its checkpoints.
type WitnessedLog struct {
	Origin string
	Key    string
}

// WitnessName is the name of a node's witness cosignatures (its
// cosignature/v1 key), distinct from its log's origin.
func WitnessName(nodeID string) string { return "embassy-witness/" + nodeID }

// MaxAddCheckpoint bounds an add-checkpoint request body.
const MaxAddCheckpoint = 64 << 10

// maxProofLines is the most consistency proof lines tlog-witness allows.
const maxProofLines = 63

// NewWitness returns a witness that cosigns with signer (a C2SP
// cosignature/v1 signer) the checkpoints of logs, and keeps what it
// cosigned in the file at statePath (created when missing).
func NewWitness(signer note.Signer, statePath string, logs []WitnessedLog) (*Witness, error) {
	w := &Witness{signer: signer, path: statePath, state: map[string]witnessed{}}
	if err := w.SetLogs(logs); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("witness: %w", err)
	default:
		if err := json.Unmarshal(b, &w.state); err != nil {
			return nil, fmt.Errorf("witness: %s: %w", statePath, err)
		}
	}
	return w, nil
}

// SetLogs replaces the logs the witness follows (a configuration change
// on a running node). What it cosigned for each log is kept: a log
// removed and added again is held to the checkpoint cosigned before.
func (w *Witness) SetLogs(logs []WitnessedLog) error {
	m := make(map[string]note.Verifier, len(logs))
	for _, l := range logs {
		v, err := note.NewVerifier(l.Key)
		if err != nil {
			return fmt.Errorf("witness: log %q: key: %w", l.Origin, err)
		}
		if v.Name() != l.Origin {
			return fmt.Errorf("witness: log %q: its key is named %q", l.Origin, v.Name())
		}
		m[l.Origin] = v
	}
	w.mu.Lock()
	w.logs = m
	w.mu.Unlock()
	return nil
}

// Latest returns the latest checkpoint of the log origin the witness
// cosigned, with its cosignature, or nil.
func (w *Witness) Latest(origin string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.logs[origin]; !ok {
		return nil
	}
	if s := w.state[origin].Checkpoint; s != "" {
		return []byte(s)
	}
	return nil
}

// ServeLatest serves the latest checkpoint cosigned of the log named by
// the query parameter origin (GET; 404 when the witness follows no such
// log or has cosigned none of it yet). The body is the signed note, with
// the log's signatures and this witness's cosignature: anyone can check it
// with both keys. This is embassy's addition to C2SP tlog-witness, which
// has no such request; 'embassy audit verify' asks it.
func (w *Witness) ServeLatest(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		rw.Header().Set("Allow", http.MethodGet)
		http.Error(rw, "the latest checkpoint takes GET", http.StatusMethodNotAllowed)
		return
	}
	origin := r.URL.Query().Get("origin")
	if origin == "" {
		http.Error(rw, "name the log: ?origin=ORIGIN", http.StatusBadRequest)
		return
	}
	cp := w.Latest(origin)
	if cp == nil {
		http.Error(rw, fmt.Sprintf("no checkpoint of log %q cosigned", origin), http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(cp)
}

// WitnessError is an add-checkpoint refusal, with its HTTP status.
type WitnessError struct {
	Status int
	Reason string
	// Size, when SizeHint, is the size of the latest checkpoint cosigned,
	// which the client should send as its old size (409 Conflict).
	Size     uint64
	SizeHint bool
	// Split is set when the refused checkpoint, signed by the log's key,
	// contradicts what the witness cosigned: "fork" (another root at the
	// size cosigned), "inconsistent" (no consistency proof from the
	// checkpoint cosigned) or "rollback" (smaller than the checkpoint
	// cosigned, sent as if the witness had cosigned that one: a log that
	// lost entries, or a replay of an older checkpoint).
	Split string
	// Origin is the log; Checkpoint the refused checkpoint (the evidence)
	// and Cosigned the size of the latest checkpoint cosigned, when Split
	// is set.
	Origin     string
	Checkpoint []byte
	Cosigned   uint64
}

func (e *WitnessError) Error() string { return e.Reason }

func refuse(status int, format string, a ...any) *WitnessError {
	return &WitnessError{Status: status, Reason: fmt.Sprintf(format, a...)}
}

// split marks e as evidence of a split view of origin, and tells OnSplit.
func (w *Witness) split(e *WitnessError, kind, origin string, cp []byte, cosigned uint64) *WitnessError {
	e.Split, e.Origin, e.Checkpoint, e.Cosigned = kind, origin, bytes.Clone(cp), cosigned
	if w.OnSplit != nil {
		w.OnSplit(e)
	}
	return e
}

// Follows reports whether the witness follows the log origin.
func (w *Witness) Follows(origin string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.logs[origin]
	return ok
}

// AddCheckpoint handles an add-checkpoint request body and returns the
// witness's cosignature line(s), or a *WitnessError.
func (w *Witness) AddCheckpoint(body []byte) ([]byte, error) {
	return w.addCheckpoint(body, "")
}

// AddCheckpointOf is AddCheckpoint for a caller authenticated as the node
// of the log origin (an allied node over the peer link): a checkpoint of
// any other log is refused (403).
func (w *Witness) AddCheckpointOf(origin string, body []byte) ([]byte, error) {
	return w.addCheckpoint(body, origin)
}

func (w *Witness) addCheckpoint(body []byte, only string) ([]byte, error) {
	if len(body) > MaxAddCheckpoint {
		return nil, refuse(http.StatusBadRequest, "the request is larger than %d bytes", MaxAddCheckpoint)
	}
	oldSize, hashes, cpRaw, err := parseAddCheckpoint(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed request: %v", err)
	}
	origin, _, _ := bytes.Cut(cpRaw, []byte("\n"))
	if only != "" && string(origin) != only {
		return nil, refuse(http.StatusForbidden, "a checkpoint of log %q: a node submits only its own log's (%s)", origin, only)
	}
	w.mu.Lock()
	v, ok := w.logs[string(origin)]
	w.mu.Unlock()
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown log %q", origin)
	}
	cp, _, _, err := log.ParseCheckpoint(cpRaw, string(origin), v)
	if err != nil {
		return nil, refuse(http.StatusForbidden, "the checkpoint is not signed by the log's key: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.state[cp.Origin]
	if oldSize > cp.Size {
		e := refuse(http.StatusBadRequest, "old size %d is larger than the checkpoint's %d", oldSize, cp.Size)
		if oldSize == prev.Size {
			// The log knows what was cosigned, and signed a smaller tree.
			e.Reason = fmt.Sprintf("a checkpoint of %d entries, smaller than the %d cosigned: a log that lost entries, or a replay of an older checkpoint", cp.Size, prev.Size)
			return nil, w.split(e, "rollback", cp.Origin, cpRaw, prev.Size)
		}
		return nil, e
	}
	if oldSize != prev.Size {
		e := refuse(http.StatusConflict, "the latest checkpoint cosigned has %d entries, not %d", prev.Size, oldSize)
		e.Size, e.SizeHint = prev.Size, true
		return nil, e
	}
	switch {
	case oldSize == cp.Size:
		if len(hashes) != 0 {
			return nil, refuse(http.StatusBadRequest, "a proof between checkpoints of the same size")
		}
		if prev.Size > 0 && !bytes.Equal(prev.Hash, cp.Hash) {
			return nil, w.split(refuse(http.StatusConflict, "a checkpoint of %d entries with another root than the one cosigned: a fork", cp.Size), "fork", cp.Origin, cpRaw, prev.Size)
		}
	case oldSize == 0:
		if len(hashes) != 0 {
			return nil, refuse(http.StatusBadRequest, "a proof from an empty tree")
		}
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, cp.Size, hashes, prev.Hash, cp.Hash); err != nil {
			return nil, w.split(refuse(http.StatusUnprocessableEntity, "the checkpoint of %d entries is not consistent with the one of %d cosigned: %v", cp.Size, prev.Size, err), "inconsistent", cp.Origin, cpRaw, prev.Size)
		}
	}
	return w.cosignLocked(cp, cpRaw)
}

// cosignLocked cosigns the checkpoint cp (raw: cpRaw) and makes it the
// latest cosigned of its log, with the witness's lock held.
func (w *Witness) cosignLocked(cp *log.Checkpoint, cpRaw []byte) ([]byte, error) {
	// The new state is durable before the cosignature leaves: after a
	// crash the witness never cosigns a fork of what it cosigned.
	text, _, _ := bytes.Cut(cpRaw, []byte("\n\n"))
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, w.signer)
	if err != nil {
		return nil, err
	}
	_, sig, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return nil, errors.New("witness: cosigning failed")
	}
	next := make(map[string]witnessed, len(w.state)+1)
	for k, s := range w.state {
		next[k] = s
	}
	kept := string(cpRaw)
	if !strings.HasSuffix(kept, "\n") {
		kept += "\n"
	}
	next[cp.Origin] = witnessed{Size: cp.Size, Hash: cp.Hash, Checkpoint: kept + string(sig)}
	b, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(w.path, b, 0o600); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	w.state = next
	if w.Persist != nil {
		if err := w.Persist(b); err != nil {
			return nil, refuse(http.StatusServiceUnavailable, "the witness could not keep what it cosigns beyond its node directory, so it cosigns nothing now: %v", err)
		}
	}
	return sig, nil
}

// parseAddCheckpoint splits an add-checkpoint body: the old size line,
// the proof lines, an empty line and the checkpoint.
func parseAddCheckpoint(body []byte) (uint64, [][]byte, []byte, error) {
	r := bufio.NewReader(bytes.NewReader(body))
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, nil, errors.New("no old size line")
	}
	s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "old ")
	if !ok {
		return 0, nil, nil, errors.New("the first line is not 'old SIZE'")
	}
	oldSize, err := strconv.ParseUint(s, 10, 64)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, nil, nil, fmt.Errorf("old size %q", s)
	}
	var hashes [][]byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, nil, errors.New("no empty line before the checkpoint")
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		if len(hashes) == maxProofLines {
			return 0, nil, nil, fmt.Errorf("more than %d proof lines", maxProofLines)
		}
		h, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(h) != rfc6962.DefaultHasher.Size() {
			return 0, nil, nil, fmt.Errorf("proof line %q is not a base64 SHA-256 hash", line)
		}
		hashes = append(hashes, h)
	}
	consumed := len(body) - r.Buffered()
	cp := body[consumed:]
	if len(cp) == 0 {
		return 0, nil, nil, errors.New("no checkpoint")
	}
	return oldSize, hashes, cp, nil
}

// ServeHTTP serves add-checkpoint (POST, the request body as C2SP
// tlog-witness says).
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "add-checkpoint takes POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := readLimited(r, MaxAddCheckpoint)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	sig, err := w.AddCheckpoint(body)
	WriteAddCheckpointAnswer(rw, sig, err)
}

// WriteAddCheckpointAnswer writes the answer to an add-checkpoint request
// as C2SP tlog-witness says: the cosignature, or the refusal's status
// (409 with the size cosigned as text/x.tlog.size).
func WriteAddCheckpointAnswer(rw http.ResponseWriter, sig []byte, err error) {
	if err != nil {
		var we *WitnessError
		if !errors.As(err, &we) {
			http.Error(rw, "the witness could not record the checkpoint", http.StatusInternalServerError)
			return
		}
		if we.SizeHint {
			rw.Header().Set("Content-Type", "text/x.tlog.size")
			rw.WriteHeader(we.Status)
			fmt.Fprintf(rw, "%d\n", we.Size)
			return
		}
		http.Error(rw, we.Reason, we.Status)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(sig)
}

func readLimited(r *http.Request, n int64) ([]byte, error) {
	b := new(bytes.Buffer)
	if _, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, n)); err != nil {
		return nil, fmt.Errorf("request body: %v", err)
	}
	return b.Bytes(), nil
}

// MaxWitnessState bounds a witness state read back from a site.
const MaxWitnessState = 4 << 20

// MergeWitnessStates merges witness states (state files' contents) into
// local, the state in the node directory (nil when there is none), and
// returns the merged state and how many logs it took from copies. A copy
// comes from a site, which could be stale or altered: only its entries
// whose checkpoint carries this witness's own cosignature (verifier wv)
// and matches the entry's size and root count, so a copy can only bring
// back what the witness really cosigned. For each log the largest
// checkpoint wins: a witness brought back holds every log to the most it
// ever cosigned of it that survived anywhere.
func MergeWitnessStates(wv note.Verifier, local []byte, copies ...[]byte) ([]byte, int, error) {
	state := map[string]witnessed{}
	if len(local) > 0 {
		if err := json.Unmarshal(local, &state); err != nil {
			return nil, 0, fmt.Errorf("witness: the local state: %w", err)
		}
	}
	took := map[string]bool{}
	for _, c := range copies {
		if len(c) > MaxWitnessState {
			continue
		}
		var m map[string]witnessed
		if json.Unmarshal(c, &m) != nil {
			continue
		}
		for origin, s := range m {
			if s.Size <= state[origin].Size || !cosignedBy(wv, origin, s) {
				continue
			}
			state[origin] = s
			took[origin] = true
		}
	}
	b, err := json.Marshal(state)
	return b, len(took), err
}

// cosignedBy reports whether s's checkpoint is of origin, of s's size and
// root, and cosigned by wv.
func cosignedBy(wv note.Verifier, origin string, s witnessed) bool {
	n, err := note.Open([]byte(s.Checkpoint), note.VerifierList(wv))
	if err != nil || len(n.Sigs) == 0 {
		return false
	}
	cp := new(log.Checkpoint)
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return false
	}
	return cp.Origin == origin && cp.Size == s.Size && bytes.Equal(cp.Hash, s.Hash)
}
