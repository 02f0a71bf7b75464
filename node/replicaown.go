package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// A site's own blobs, brought back from an ally on evidence the node can
// check (RecoverFromPeer's second walk). What the ally lists of them, and
// the sizes it lists, are its word: an ally, or a replica damaged or
// restored from an old backup, could list a shard blob at any size and
// have recovery write that much and wait for it at 1 MB/s. So a manifest
// copy is verified with the node's keys before it is written, and is
// written at the size its manifest gives it on its site (its envelope and
// the inline blocks placed there); the shard blobs come with it: those its
// manifest places on that site, asked for by name, at the size the
// manifest gives, refused if sent longer or shorter. A shard blob the ally
// lists is not taken as listed.

// maxRefusedListed bounds the refused blobs a report names.
const maxRefusedListed = 100

// maxMarkerBlob bounds a site marker (site.maxMarker: two ids and a
// signature).
const maxMarkerBlob = 16 << 10

// maxCopyTimed bounds the size a manifest copy's call is given time for
// (recoveryWithin), whatever the ally lists: its envelope (at most
// manifest.MaxEnvelope) and the blocks of an inline version the site holds.
const maxCopyTimed = 1 << 30

// peerRestore brings a site's own blobs back from an ally.
type peerRestore struct {
	keys manifest.Keys // verify and open the node's manifest copies
	open func(federation.BlobRef) (io.ReadCloser, error)
	pr   *PeerRestoreReport
}

// refuse counts ref as refused, naming it and why in the report.
func (r *peerRestore) refuse(ref federation.BlobRef, err error) {
	r.pr.Refused++
	if len(r.pr.RefusedBlobs) < maxRefusedListed {
		r.pr.RefusedBlobs = append(r.pr.RefusedBlobs, fmt.Sprintf("%s of site %s: %v", ref.Name, ref.Site, err))
	}
}

// restoreOwn brings back a blob of site s the ally listed (ref): a manifest
// copy with the shard blobs it places there, or a site marker. A shard blob
// listed is left to its manifest copy; another name is refused.
func (r *peerRestore) restoreOwn(ctx context.Context, s site.Site, ref federation.BlobRef) error {
	switch {
	case strings.HasPrefix(ref.Name, manifest.ShardPrefix):
		return nil // brought back with the manifest copy that names it
	case ref.Name == federation.BlobMarker:
		if ref.Size > maxMarkerBlob {
			r.refuse(ref, fmt.Errorf("%w: listed at %d bytes, more than the %d a site marker may have", errBlobRefused, ref.Size, maxMarkerBlob))
			return nil
		}
		stored, err := restoreBlob(ctx, s, ref.Name, func() error { return copyListed(ctx, s, ref, r.open) })
		return r.count(ref, ref.Size)(stored, err)
	}
	id, ok := manifest.ParseBlobName(ref.Name)
	if !ok {
		r.refuse(ref, fmt.Errorf("%w: not a manifest copy, a shard blob or a site marker: no site holds such a blob from a replica", errBlobRefused))
		return nil
	}
	var m *manifest.Manifest
	var size int64
	stored, err := restoreBlob(ctx, s, ref.Name, func() error {
		var err error
		m, size, err = r.copyManifest(ctx, s, ref, id)
		return err
	})
	if counted := r.count(ref, size)(stored, err); err != nil {
		return counted // refused (nil) or failed
	}
	if !stored {
		// The site holds a copy already (an earlier attempt wrote it):
		// its manifest, if it verifies, says which shard blobs belong
		// there.
		env, err := vault.ReadEnvelope(ctx, s, ref.Name)
		if err == nil {
			m, err = manifest.Open(env, r.keys)
		}
		if err == nil && m.Version != id {
			err = fmt.Errorf("it holds version %s", m.Version)
		}
		if err != nil {
			r.refuse(ref, fmt.Errorf("%w: the site's own copy, kept, does not verify (%v): the shard blobs it would name are not brought back", errBlobRefused, err))
			return nil
		}
	}
	return r.restoreShards(ctx, s, ref.Site, m)
}

// count returns a function that counts the outcome of restoreBlob for ref
// (size bytes) in the report, returning any error but a refusal.
func (r *peerRestore) count(ref federation.BlobRef, size int64) func(bool, error) error {
	return func(stored bool, err error) error {
		switch {
		case errors.Is(err, errBlobRefused):
			r.refuse(ref, err)
		case err != nil:
			return err
		case stored:
			r.pr.Blobs++
			r.pr.Bytes += size
		default:
			r.pr.Present++
		}
		return nil
	}
}

// copyManifest copies manifest copy ref (of version id) from the ally to
// site s, if its envelope verifies with the node's keys and is of version
// id, at the size its manifest gives it on its site: the envelope, then a
// block of each inline part for every shard placed there. It returns the
// manifest and the size written; errBlobRefused if the copy is not that.
func (r *peerRestore) copyManifest(ctx context.Context, s site.Site, ref federation.BlobRef, id manifest.ID) (*manifest.Manifest, int64, error) {
	ask := ref
	ask.Size = min(ref.Size, maxCopyTimed)
	rc, err := r.open(ask)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	short := func(err error, got int) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the ally sent %d bytes, cut inside the copy's envelope", errBlobRefused, got)
		}
		return err
	}
	head := make([]byte, manifest.HeaderSize)
	if n, err := io.ReadFull(rc, head); err != nil {
		return nil, 0, short(err, n)
	}
	n, err := manifest.EnvelopeLen(head)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errBlobRefused, err)
	}
	env := make([]byte, n)
	copy(env, head)
	if got, err := io.ReadFull(rc, env[len(head):]); err != nil {
		return nil, 0, short(err, len(head)+got)
	}
	m, err := manifest.Open(env, r.keys)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: the copy does not verify with the node's keys: %v", errBlobRefused, err)
	}
	if m.Version != id {
		return nil, 0, fmt.Errorf("%w: the copy holds version %s, not the %s its name says", errBlobRefused, m.Version, id)
	}
	size := int64(n) + inlineHeld(m, ref.Site)
	if err := putExact(ctx, s, ref.Name, io.MultiReader(bytes.NewReader(env), rc), size, "its manifest gives the copy"); err != nil {
		return nil, 0, err
	}
	return m, size, nil
}

// inlineHeld is the length of the blocks a manifest copy on site sid holds
// after its envelope: for each inline part, one block (a one-stripe shard
// blob) for every shard placed there.
func inlineHeld(m *manifest.Manifest, sid string) int64 {
	var n int64
	for _, p := range m.Parts {
		if !p.Inline {
			continue
		}
		for _, ps := range p.Sites {
			if ps == sid {
				n += vault.ShardBlobSize(m, p)
			}
		}
	}
	return n
}

// restoreShards brings back from the ally the shard blobs manifest m
// places on site sid (s), by name, at the size m gives; one the ally does
// not hold is counted missing (the version is degraded there; a scrub
// repairs it from the other shards).
func (r *peerRestore) restoreShards(ctx context.Context, s site.Site, sid string, m *manifest.Manifest) error {
	for _, p := range m.Parts {
		if p.Inline {
			continue
		}
		size := vault.ShardBlobSize(m, p)
		for i, ps := range p.Sites {
			if ps != sid {
				continue
			}
			ref := federation.BlobRef{Site: sid, Name: manifest.ShardBlobName(p.Blob, i), Size: size}
			stored, err := restoreBlob(ctx, s, ref.Name, func() error {
				rc, err := r.open(ref)
				if err != nil {
					return err
				}
				defer rc.Close()
				return putExact(ctx, s, ref.Name, rc, size, "its manifest gives the shard blob")
			})
			if pe, ok := errors.AsType[*PeerError](err); ok && pe.Status == http.StatusNotFound {
				r.pr.ShardsMissing++
				continue
			}
			if err := r.count(ref, size)(stored, err); err != nil {
				return fmt.Errorf("shard blob %s (version %s): %w", ref.Name, m.Version, err)
			}
		}
	}
	return nil
}
