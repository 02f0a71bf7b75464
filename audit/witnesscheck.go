package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// A witness that cosigned a checkpoint of our log that our log does not
// contain has seen another history signed with our key: a split view
// shown to outsiders (or to that witness only). The sites cannot show it;
// only the witness can. [Log.CheckWitness] asks a witness for the latest
// checkpoint of our log it cosigned (embassy's GET beside add-checkpoint,
// [Witness.ServeLatest]) and checks that it is a checkpoint of our tree.

// WitnessCheck is what one witness said about our log.
type WitnessCheck struct {
	// Witness is the witness's key name; URL its tlog-witness prefix.
	Witness string `json:"witness"`
	URL     string `json:"url"`
	// Size is the size of the latest checkpoint it cosigned (0 when it
	// could not be asked or cosigned none).
	Size uint64 `json:"size"`
	// Problem says what contradicts the log: a checkpoint it cosigned that
	// is not one of our tree.
	Problem string `json:"problem,omitempty"`
	// Window says why it could not be checked (unreachable, cosigned
	// nothing yet, a witness that does not serve its latest checkpoint),
	// or that it is behind.
	Window string `json:"window,omitempty"`
}

// MaxWitnessCheckpoint bounds a witness's answer.
const MaxWitnessCheckpoint = 16 << 10

// LatestURL is where a witness whose tlog-witness URL prefix is prefix
// serves its latest cosigned checkpoint of origin.
func LatestURL(prefix, origin string) string {
	return strings.TrimSuffix(prefix, "/") + "/checkpoint?origin=" + url.QueryEscape(origin)
}

// ParseWitnessCheckpoint checks a witness's answer: a checkpoint of
// origin signed by one of the log's verifiers and cosigned by the witness
// (its cosignature/v1 verifier).
func ParseWitnessCheckpoint(raw []byte, origin string, logVerifiers []note.Verifier, witness note.Verifier) (*log.Checkpoint, error) {
	if len(raw) > MaxWitnessCheckpoint {
		return nil, fmt.Errorf("the answer is larger than %d bytes", MaxWitnessCheckpoint)
	}
	if _, err := note.Open(raw, note.VerifierList(witness)); err != nil {
		return nil, fmt.Errorf("not cosigned by the witness's key: %w", err)
	}
	cp, err := OpenCheckpoint(raw, origin, logVerifiers)
	if err != nil {
		return nil, fmt.Errorf("not a checkpoint signed by the node's key: %w", err)
	}
	return cp, nil
}

// CheckWitness asks the witness with verifier key vkey at prefix (its
// tlog-witness URL prefix) for the latest checkpoint of the log it
// cosigned, and checks that the log's tree holds it: same root at that
// size. A witness that cosigned a checkpoint beyond the log's tree, or
// with another root, is a split view (a Problem). One it cannot ask, or
// that cosigned nothing yet, is reported in Window.
func (l *Log) CheckWitness(ctx context.Context, hc *http.Client, vkey, prefix string) WitnessCheck {
	return l.CheckWitnessVia(ctx, vkey, prefix, func(ctx context.Context) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, LatestURL(prefix, l.cfg.Origin), nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxWitnessCheckpoint+1))
		return resp.StatusCode, raw, err
	})
}

// CheckWitnessVia is [Log.CheckWitness] with the witness asked by fetch,
// which returns the status and body of its answer (an allied node's
// witness is asked over the peer link); where names it in the report.
func (l *Log) CheckWitnessVia(ctx context.Context, vkey, where string, fetch func(context.Context) (int, []byte, error)) WitnessCheck {
	wc := WitnessCheck{URL: where}
	wv, err := fnote.NewVerifier(vkey)
	if err != nil {
		wc.Problem = "its key: " + err.Error()
		return wc
	}
	wc.Witness = wv.Name()
	status, raw, err := fetch(ctx)
	if err != nil {
		wc.Window = "not reached: " + err.Error()
		return wc
	}
	switch {
	case status == http.StatusNotFound:
		wc.Window = "has cosigned no checkpoint of this log yet, or does not serve its latest (" + firstLine(raw) + ")"
		return wc
	case status != http.StatusOK:
		wc.Window = fmt.Sprintf("answered %d %s (%s)", status, http.StatusText(status), firstLine(raw))
		return wc
	}
	cp, err := ParseWitnessCheckpoint(raw, l.cfg.Origin, l.cfg.Verifiers, wv)
	if err != nil {
		wc.Problem = "its answer is not a checkpoint of this log that it cosigned: " + err.Error()
		return wc
	}
	wc.Size = cp.Size
	if err := l.holds(ctx, cp); err != nil {
		if ctx.Err() != nil {
			wc.Window = "not checked: " + ctx.Err().Error()
			return wc
		}
		wc.Problem = err.Error()
		return wc
	}
	if _, own, err := l.Checkpoint(ctx); err == nil && own.Size > cp.Size {
		wc.Window = fmt.Sprintf("%d entries behind the node's checkpoint", own.Size-cp.Size)
	}
	return wc
}

// errNotOurs: a checkpoint signed with the log's key that is not one of
// the log's tree.
var errNotOurs = errors.New("not a checkpoint of the node's log")

// holds checks that the log's tree holds cp: the tree integrated now is at
// least cp's size, and a consistency proof from the local tiles leads from
// cp's root to the root of the tree now.
func (l *Log) holds(ctx context.Context, cp *log.Checkpoint) error {
	n := l.Integrated()
	if cp.Size > n {
		return fmt.Errorf("%w: it covers %d entries, the log holds %d (another history signed with the node's key, or a node directory that lost entries)", errNotOurs, cp.Size, n)
	}
	if cp.Size == 0 {
		if !bytes.Equal(cp.Hash, emptyRoot[:]) {
			return fmt.Errorf("%w: an empty tree with another root", errNotOurs)
		}
		return nil
	}
	root, err := l.localRoot(ctx, n)
	if err != nil {
		return fmt.Errorf("the node's tree of %d entries: %w", n, err)
	}
	if cp.Size == n {
		if !bytes.Equal(root, cp.Hash) {
			return fmt.Errorf("%w: its root for %d entries differs from the log's", errNotOurs, n)
		}
		return nil
	}
	pb, err := client.NewProofBuilder(ctx, n, l.reader.ReadTile)
	if err != nil {
		return fmt.Errorf("the node's tree of %d entries: %w", n, err)
	}
	p, err := pb.ConsistencyProof(ctx, cp.Size, n)
	if err != nil {
		return fmt.Errorf("the node's tree of %d entries: %w", n, err)
	}
	if proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, n, p, cp.Hash, root) != nil {
		return fmt.Errorf("%w: its root for %d entries is not the log's", errNotOurs, cp.Size)
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}
