package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/internal/atomicfile"
)

// Besides the witnesses of Config.Witnesses, which tessera asks before it
// publishes a checkpoint, a log can be witnessed in the background: the
// node sends its latest published checkpoint to each such witness when it
// can ([Log.Cosign]), keeps the cosignatures it gets ([Cosignatures]), and
// 'audit verify' checks them. Publication never waits for them. This is
// how allied nodes witness each other by default (docs/alliance.md).

// WitnessPost sends an add-checkpoint request body (C2SP tlog-witness) to
// a witness and returns the status and body of its answer.
type WitnessPost func(ctx context.Context, body []byte) (status int, answer []byte, err error)

// Cosigned is a checkpoint of the log with one witness's cosignature.
type Cosigned struct {
	// Witness is the witness's key name.
	Witness string `json:"witness"`
	Size    uint64 `json:"size"`
	// Checkpoint is the log's signed note with the witness's cosignature
	// line(s) added.
	Checkpoint string `json:"checkpoint"`
}

// ErrWitnessRefused: a witness refused the log's checkpoint. When its
// answer says it cosigned a checkpoint the log does not hold (a larger
// one, or another root at the same size), the log was shown to it in
// another history: a split view, see [RefusedError].
var ErrWitnessRefused = errors.New("the witness refused the checkpoint")

// RefusedError is a witness's refusal of a checkpoint, with its status.
type RefusedError struct {
	Witness string
	Status  int
	Reason  string
	// Split: the answer shows that the witness holds another history of
	// the log than the one this node has.
	Split bool
}

func (e *RefusedError) Error() string {
	if e.Split {
		return fmt.Sprintf("witness %s refused the log's checkpoint (%d): %s: it was shown another history of this log (a split view)", e.Witness, e.Status, e.Reason)
	}
	return fmt.Sprintf("witness %s refused the log's checkpoint (%d): %s", e.Witness, e.Status, e.Reason)
}

func (e *RefusedError) Unwrap() error { return ErrWitnessRefused }

// Cosign sends the log's latest published checkpoint to the witness whose
// cosignature/v1 verifier is wv, through post, with a consistency proof
// from known (the size of the last checkpoint the witness cosigned, as far
// as the caller knows; 0 when it does not). When the witness answers that
// it holds another size (409), it tries once more from that size. It
// returns the checkpoint with the witness's cosignature.
func (l *Log) Cosign(ctx context.Context, wv note.Verifier, post WitnessPost, known uint64) (Cosigned, error) {
	raw, cp, err := l.Checkpoint(ctx)
	if err != nil {
		return Cosigned{}, fmt.Errorf("the log's checkpoint: %w", err)
	}
	// Only the log's own signatures go to the witness: cosignatures of
	// other witnesses are not its business.
	raw, err = ownSignatures(raw, l.cfg.Origin)
	if err != nil {
		return Cosigned{}, err
	}
	for try := 0; ; try++ {
		if known > cp.Size {
			post(ctx, fmt.Appendf(nil, "old %d\n\n%s", known, raw))
			return Cosigned{}, &RefusedError{Witness: wv.Name(), Status: 409, Split: true,
				Reason: fmt.Sprintf("it cosigned a checkpoint of %d entries, the log's has %d", known, cp.Size)}
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", known)
		if known > 0 && known < cp.Size {
			pb, err := client.NewProofBuilder(ctx, cp.Size, l.reader.ReadTile)
			if err != nil {
				return Cosigned{}, fmt.Errorf("consistency proof: %w", err)
			}
			p, err := pb.ConsistencyProof(ctx, known, cp.Size)
			if err != nil {
				return Cosigned{}, fmt.Errorf("consistency proof from %d to %d: %w", known, cp.Size, err)
			}
			for _, h := range p {
				body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
			}
		}
		body.WriteString("\n")
		body.Write(raw)
		status, answer, err := post(ctx, body.Bytes())
		if err != nil {
			return Cosigned{}, fmt.Errorf("witness %s: %w", wv.Name(), err)
		}
		switch {
		case status == 200:
			return cosignature(wv, raw, answer, cp.Size)
		case status == 409:
			size, perr := strconv.ParseUint(strings.TrimSpace(string(answer)), 10, 64)
			switch {
			case perr != nil:
				// Not a size: the witness holds another root at this size.
				return Cosigned{}, &RefusedError{Witness: wv.Name(), Status: status, Split: true, Reason: firstLine(answer)}
			case size > cp.Size:
				// The log holds less than the witness cosigned (a node
				// directory restored from an older copy, or another
				// history). Say so to the witness, as the one that
				// cosigned more: it refuses and keeps the evidence.
				post(ctx, fmt.Appendf(nil, "old %d\n\n%s", size, raw))
				return Cosigned{}, &RefusedError{Witness: wv.Name(), Status: status, Split: true,
					Reason: fmt.Sprintf("it cosigned a checkpoint of %d entries, the log's has %d", size, cp.Size)}
			case try > 0:
				return Cosigned{}, &RefusedError{Witness: wv.Name(), Status: status,
					Reason: fmt.Sprintf("it moved to %d entries meanwhile", size)}
			}
			known = size
		default:
			// 422: no consistency proof from what it cosigned, which the
			// log does not hold.
			return Cosigned{}, &RefusedError{Witness: wv.Name(), Status: status, Reason: firstLine(answer),
				Split: status == 422}
		}
	}
}

// ownSignatures returns the checkpoint with only the signature lines of
// the log's own keys (named origin).
func ownSignatures(raw []byte, origin string) ([]byte, error) {
	text, sigs, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		return nil, errors.New("the log's checkpoint is not a signed note")
	}
	var out bytes.Buffer
	out.Write(text)
	out.WriteString("\n\n")
	for line := range strings.Lines(string(sigs)) {
		if strings.HasPrefix(line, "— "+origin+" ") {
			out.WriteString(line)
		}
	}
	return out.Bytes(), nil
}

// Cosignatures keeps the latest cosigned checkpoint of the log from each
// background witness, in a file (atomic writes).
type Cosignatures struct {
	path string
	mu   sync.Mutex
	m    map[string]Cosigned // by witness name
}

// OpenCosignatures reads the cosignatures kept in the file at path (none
// when it does not exist).
func OpenCosignatures(path string) (*Cosignatures, error) {
	c := &Cosignatures{path: path, m: map[string]Cosigned{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("cosignatures: %w", err)
	default:
		if err := json.Unmarshal(b, &c.m); err != nil {
			return nil, fmt.Errorf("cosignatures: %s: %w", path, err)
		}
	}
	return c, nil
}

// Get returns the latest cosigned checkpoint kept for witness.
func (c *Cosignatures) Get(witness string) (Cosigned, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[witness]
	return v, ok
}

// All returns the latest cosigned checkpoint kept for each witness, in the
// order of the witnesses' names.
func (c *Cosignatures) All() []Cosigned {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Cosigned, 0, len(c.m))
	for _, k := range slices.Sorted(maps.Keys(c.m)) {
		out = append(out, c.m[k])
	}
	return out
}

// Put keeps cs as the latest cosigned checkpoint of its witness.
func (c *Cosignatures) Put(cs Cosigned) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]Cosigned, len(c.m)+1)
	for k, v := range c.m {
		next[k] = v
	}
	next[cs.Witness] = cs
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.path, b, 0o600); err != nil {
		return fmt.Errorf("cosignatures: %w", err)
	}
	c.m = next
	return nil
}

// CheckCosigned checks a kept cosigned checkpoint: cosigned by the
// witness wv, signed by the log, and held by the log's tree. An error
// wrapping errNotOurs means another history (a split view).
func (l *Log) CheckCosigned(ctx context.Context, wv note.Verifier, cs Cosigned) error {
	cp, err := ParseWitnessCheckpoint([]byte(cs.Checkpoint), l.cfg.Origin, l.cfg.Verifiers, wv)
	if err != nil {
		return err
	}
	return l.holds(ctx, cp)
}

// cosignature checks a witness's answer, a signature line, as its
// cosignature of the checkpoint raw (of size entries), and returns the
// checkpoint with that one line added.
func cosignature(wv note.Verifier, raw, answer []byte, size uint64) (Cosigned, error) {
	signed := append(bytes.Clone(raw), answer...)
	n, err := note.Open(signed, note.VerifierList(wv))
	if err != nil || len(n.Sigs) == 0 {
		return Cosigned{}, fmt.Errorf("witness %s: its answer is not a cosignature of the checkpoint by its key: %v", wv.Name(), err)
	}
	line := fmt.Sprintf("— %s %s\n", n.Sigs[0].Name, n.Sigs[0].Base64)
	return Cosigned{Witness: wv.Name(), Size: size, Checkpoint: string(raw) + line}, nil
}
