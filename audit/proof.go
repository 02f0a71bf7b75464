package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// A proof file is a C2SP tlog-proof (https://c2sp.org/tlog-proof): the
// index of an entry, its Merkle inclusion proof and a checkpoint that
// includes it, signed by the node (Ed25519), cosigned with the node's
// ML-DSA-44 key and by whatever witnesses had cosigned it. Its extra data
// (ProofExtra, JSON) carries the entry itself and its opening: the salt and
// the event, which hash to the entry's commitment. So anyone holding only
// the node's public key can check that this event is in the node's log,
// and learns nothing of the log's other entries.

// ProofFormat names the extra data's format.
const ProofFormat = "embassy audit proof v1"

// ProofExtra is the extra data of an embassy proof file.
type ProofExtra struct {
	Format string `json:"format"`
	Origin string `json:"origin"`
	// Entry is the log entry (sealed), Salt and Event its opening.
	Entry []byte `json:"entry"`
	Salt  []byte `json:"salt"`
	Event []byte `json:"event"`
}

// MaxProof bounds a proof file.
const MaxProof = 1 << 20

// Prove writes the proof file of entry i, against the checkpoint cp (raw,
// as published) that includes it.
func (l *Log) Prove(ctx context.Context, i uint64, cp []byte) ([]byte, error) {
	c, err := l.openCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	if i >= c.Size {
		return nil, fmt.Errorf("audit: entry %d is not under the checkpoint (%d entries): try again in a moment", i, c.Size)
	}
	// The entry's bundle is read as the tree integrated now has it (a
	// bundle partial at i+1 entries is gone once more were integrated).
	var entry []byte
	if err := readEntries(ctx, l.reader.ReadEntryBundle, i, max(c.Size, l.Integrated()), func(k uint64, e []byte) error {
		if k == i {
			entry = bytes.Clone(e)
			return errFound
		}
		return nil
	}); err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	_, o, err := OpenEntry(l.cfg.Keys, entry)
	if err != nil {
		return nil, err
	}
	pb, err := client.NewProofBuilder(ctx, c.Size, l.reader.ReadTile)
	if err != nil {
		return nil, err
	}
	hashes, err := pb.InclusionProof(ctx, i)
	if err != nil {
		return nil, err
	}
	extra, err := json.Marshal(ProofExtra{Format: ProofFormat, Origin: l.cfg.Origin, Entry: entry, Salt: o.Salt, Event: o.Event})
	if err != nil {
		return nil, err
	}
	p := proof.TLogProof{Index: i, Checkpoint: cp, ExtraData: extra}
	for _, h := range hashes {
		if len(h) != sha256.Size {
			return nil, errors.New("audit: malformed inclusion proof")
		}
		p.Hashes = append(p.Hashes, [sha256.Size]byte(h))
	}
	return p.Marshal(), nil
}

// errFound stops a read at the entry sought.
var errFound = errors.New("found")

// ProofCheck is what VerifyProof found.
type ProofCheck struct {
	Index      uint64   `json:"index"`
	Origin     string   `json:"origin"`
	TreeSize   uint64   `json:"tree_size"`
	Event      Event    `json:"event"`
	Ed25519    bool     `json:"ed25519"`
	MLDSA44    bool     `json:"ml_dsa_44"`
	Witnesses  []string `json:"witnesses"`             // witnesses whose cosignature verified
	Unverified []string `json:"unverified_signatures"` // other signatures on the checkpoint, not checked
}

// ErrProof: a proof file does not prove what it says.
var ErrProof = errors.New("audit proof does not verify")

// VerifyProof checks a proof file: the checkpoint signed by the node's
// Ed25519 key (ed) and cosigned by its ML-DSA-44 key (pq, unless nil), the
// entry's inclusion under it, and the opening against the entry's
// commitment. witnesses, if given, are the witnesses' cosignature verifiers
// and at least quorum of them must have cosigned.
func VerifyProof(b []byte, origin string, ed, pq note.Verifier, witnesses []note.Verifier, quorum int) (ProofCheck, error) {
	var pc ProofCheck
	if len(b) > MaxProof {
		return pc, fmt.Errorf("%w: larger than %d bytes", ErrProof, MaxProof)
	}
	var p proof.TLogProof
	if err := p.Unmarshal(b); err != nil {
		return pc, fmt.Errorf("%w: %v", ErrProof, err)
	}
	var x ProofExtra
	dec := json.NewDecoder(bytes.NewReader(p.ExtraData))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil || x.Format != ProofFormat {
		return pc, fmt.Errorf("%w: its extra data is not an %s", ErrProof, ProofFormat)
	}
	if x.Origin != origin {
		return pc, fmt.Errorf("%w: it is a proof of the log %q, not %q", ErrProof, x.Origin, origin)
	}
	verifiers := []note.Verifier{ed}
	if pq != nil {
		verifiers = append(verifiers, pq)
	}
	verifiers = append(verifiers, witnesses...)
	cp, _, n, err := log.ParseCheckpoint(p.Checkpoint, origin, ed, verifiers[1:]...)
	if err != nil {
		return pc, fmt.Errorf("%w: checkpoint: %v", ErrProof, err)
	}
	pc.Index, pc.Origin, pc.TreeSize, pc.Ed25519 = p.Index, origin, cp.Size, true
	pc.Witnesses, pc.Unverified = []string{}, []string{}
	for _, s := range n.Sigs {
		switch {
		case s.Name == ed.Name() && s.Hash == ed.KeyHash():
		case pq != nil && s.Name == pq.Name() && s.Hash == pq.KeyHash():
			pc.MLDSA44 = true
		default:
			pc.Witnesses = append(pc.Witnesses, s.Name)
		}
	}
	for _, s := range n.UnverifiedSigs {
		pc.Unverified = append(pc.Unverified, s.Name)
	}
	if pq != nil && !pc.MLDSA44 {
		return pc, fmt.Errorf("%w: the checkpoint lacks a valid ML-DSA-44 cosignature by the node", ErrProof)
	}
	if len(pc.Witnesses) < quorum {
		return pc, fmt.Errorf("%w: %d of the witnesses given cosigned the checkpoint, %d needed", ErrProof, len(pc.Witnesses), quorum)
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(x.Entry), hashes, cp.Hash); err != nil {
		return pc, fmt.Errorf("%w: entry %d is not in the tree of the checkpoint: %v", ErrProof, p.Index, err)
	}
	o := Opening{Salt: x.Salt, Event: x.Event}
	if !o.Matches(x.Entry) {
		return pc, fmt.Errorf("%w: the event does not match the entry's commitment", ErrProof)
	}
	if pc.Event, err = o.Decode(); err != nil {
		return pc, fmt.Errorf("%w: %v", ErrProof, err)
	}
	return pc, nil
}

// ProveEntry waits until entry i is in the tree and a published checkpoint
// covers it, then writes its proof file against that checkpoint.
func (l *Log) ProveEntry(ctx context.Context, i uint64) ([]byte, error) {
	if err := l.AwaitIntegrated(ctx, i+1); err != nil {
		return nil, err
	}
	for {
		raw, cp, err := l.Checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		if cp.Size > i {
			return l.Prove(ctx, i, raw)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("audit: no checkpoint covers entry %d yet: %w", i, ctx.Err())
		case <-time.After(l.cfg.CheckpointInterval / 2):
		}
	}
}
