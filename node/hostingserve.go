package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
)

// The host's side of the hosted endpoints (federation/hosted.go). Every
// request works on the store of the node that made it: the caller is the
// peer whose pinned TLS key and signature the peer listener checked, and
// a peer this node has not agreed to host is refused before anything is
// read.

// hostedPutSigned returns what a hosted/put's signature covers: the JSON
// its Embassy-Hosted-Put header carries.
func hostedPutSigned(r *http.Request) ([]byte, error) {
	b, _, err := federation.ParseHostedPut(r.Header.Get(federation.HeaderHostedPut))
	return b, err
}

// hostedStore returns the store of the calling guest and its quota, or
// answers the refusal and returns nil.
func (n *Node) hostedStore(ctx context.Context, w http.ResponseWriter, caller Peer) (*guestStore, GuestConfig, int64) {
	g, ok := n.guest(caller.Card.NodeID)
	if !ok || g.Nation != caller.Card.Nation {
		n.Log.Warn("hosted-site request from a peer this node does not host: refused", "peer", caller.Card.NodeID, "nation", caller.Card.Nation)
		peerFail(w, http.StatusForbidden, federation.CodeNotHosted, fmt.Sprintf("%v: node %s has not agreed to host node %s of %s (its operators grant hosting with 'embassy host add')",
			errNotHosted, n.conf().Node.ID, caller.Card.NodeID, caller.Card.Nation))
		return nil, g, 0
	}
	quota, err := ParseBytes(g.Quota)
	if err != nil {
		peerFail(w, http.StatusServiceUnavailable, federation.CodeUnavailable, "this node's hosting configuration is damaged")
		return nil, g, 0
	}
	gs, err := n.guestStoreOf(ctx, g.Node)
	if err != nil {
		n.Log.Error("a guest's store cannot be read: nothing is read from or written to it until it is back", "peer", g.Node, "nation", g.Nation, "err", err)
		peerFail(w, http.StatusServiceUnavailable, federation.CodeUnavailable, fmt.Sprintf("the store node %s keeps for you cannot be reached now (its operators are told why in their log)", n.conf().Node.ID))
		return nil, g, 0
	}
	return gs, g, quota
}

// hostedFail answers a store's error.
func (n *Node) hostedFail(w http.ResponseWriter, g GuestConfig, err error) {
	switch {
	case errors.Is(err, site.ErrNotFound):
		peerFail(w, http.StatusNotFound, federation.CodeNotFound, "no such blob")
	case errors.Is(err, errQuota):
		peerFail(w, http.StatusInsufficientStorage, federation.CodeQuota, err.Error())
	case errors.As(err, new(bodySizeError)):
		peerFail(w, http.StatusBadRequest, federation.CodeSize, err.Error())
	case errors.Is(err, site.ErrFull):
		n.Log.Error("the hosting store is full", "peer", g.Node, "nation", g.Nation, "err", err)
		peerFail(w, http.StatusInsufficientStorage, federation.CodeQuota, fmt.Sprintf("node %s's hosting storage has no space left (its operators are told): refused, nothing of it was stored", n.conf().Node.ID))
	case errors.Is(err, site.ErrUnavailable):
		n.Log.Error("a guest's store cannot be read: nothing is read from or written to it until it is back", "peer", g.Node, "nation", g.Nation, "err", err)
		peerFail(w, http.StatusServiceUnavailable, federation.CodeUnavailable, fmt.Sprintf("the store node %s keeps for you cannot be reached now (its operators are told why in their log)", n.conf().Node.ID))
	default:
		n.Log.Warn("hosted-site request failed", "peer", g.Node, "err", err)
		peerFail(w, http.StatusBadRequest, "bad_request", "the request failed on the host")
	}
}

// bodySizeError: a hosted put's body was not of the size it declared.
type bodySizeError string

func (e bodySizeError) Error() string { return string(e) }

// quotaReader passes a put's bytes on while they fit: exactly size of
// them when the size was declared (reserved beforehand), or as many as
// the quota allows when it was not (reserved as they come). It never
// reads more than one byte past a declared size, and an error of its own
// (a body longer or shorter than declared, the quota passed) is kept in
// err, for the refusal to name.
type quotaReader struct {
	r        io.Reader
	gs       *guestStore
	size     int64 // declared, or -1
	quota    int64
	nation   string
	read     int64
	reserved int64
	err      error
}

func (q *quotaReader) Read(p []byte) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	if q.size >= 0 && int64(len(p)) > q.size-q.read+1 {
		p = p[:q.size-q.read+1]
	}
	k, err := q.r.Read(p)
	q.read += int64(k)
	if err != nil && err != io.EOF {
		// The connection broke (a guest gone, a host restarting): never
		// an end of the blob. Wrapped, so that no driver takes an
		// io.ErrUnexpectedEOF from the body for one.
		return k, fmt.Errorf("the blob's bytes stopped coming: %w", err)
	}
	if q.size >= 0 {
		if q.read > q.size {
			q.err = bodySizeError(fmt.Sprintf("the body goes on past the %d bytes the %s header declares: refused, nothing of it was stored", q.size, federation.HeaderHostedPut))
			return 0, q.err
		}
		if errors.Is(err, io.EOF) && q.read < q.size {
			q.err = bodySizeError(fmt.Sprintf("the body ended after %d of the %d bytes the %s header declares: refused, nothing of it was stored", q.read, q.size, federation.HeaderHostedPut))
			return 0, q.err
		}
		return k, err
	}
	if q.read > q.reserved {
		if rerr := q.gs.reserve(q.read-q.reserved, q.quota, q.nation); rerr != nil {
			q.err = rerr
			return 0, rerr
		}
		q.reserved = q.read
	}
	return k, err
}

// testHookHostedPutDone, if set (by tests), is called when a hosted put
// of a guest's blob is done with, its accounts settled, whatever its end.
var testHookHostedPutDone atomic.Pointer[func(guest, name string)]

func (n *Node) peerHostedPut(w http.ResponseWriter, r *http.Request, caller Peer, _ []byte) {
	_, p, err := federation.ParseHostedPut(r.Header.Get(federation.HeaderHostedPut))
	if err == nil {
		err = site.CheckName(p.Name)
	}
	if err != nil {
		peerFail(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if hook := testHookHostedPutDone.Load(); hook != nil {
		defer (*hook)(caller.Card.NodeID, p.Name)
	}
	gs, g, quota := n.hostedStore(r.Context(), w, caller)
	if gs == nil {
		return
	}
	// The signed header's size is the blob's: a body framed as another
	// size is refused before a byte of it is read, and a body of unknown
	// size framed by a Content-Length is held to it (and its quota
	// reserved at once).
	if p.Size >= 0 && r.ContentLength >= 0 && r.ContentLength != p.Size {
		n.Log.Warn("hosted write refused: its Content-Length is not its declared size", "peer", g.Node, "nation", g.Nation, "size", p.Size, "content_length", r.ContentLength)
		peerFail(w, http.StatusBadRequest, federation.CodeSize, fmt.Sprintf("the body's Content-Length is %d bytes, but the %s header declares a blob of %d: refused, nothing of it was read or stored", r.ContentLength, federation.HeaderHostedPut, p.Size))
		return
	}
	if p.Size < 0 && r.ContentLength >= 0 {
		p.Size = r.ContentLength
	}
	unlock := gs.lockName(p.Name)
	defer unlock()
	old := int64(-1)
	if i, err := gs.site.Stat(r.Context(), p.Name); err == nil {
		old = i.Size
	} else if !errors.Is(err, site.ErrNotFound) {
		n.hostedFail(w, g, err)
		return
	}
	q := &quotaReader{r: r.Body, gs: gs, size: p.Size, quota: quota, nation: g.Nation}
	if p.Size >= 0 {
		// The whole blob must fit before a byte of it is stored.
		if err := gs.reserve(p.Size, quota, g.Nation); err != nil {
			n.Log.Info("hosted write over quota refused", "peer", g.Node, "nation", g.Nation, "size", p.Size)
			n.hostedFail(w, g, err)
			return
		}
		q.reserved = p.Size
	}
	err = gs.site.Put(r.Context(), p.Name, q, p.Size)
	if err != nil && q.err != nil {
		// The body's own fault, not the store's: named as such.
		err = q.err
	}
	gs.mu.Lock()
	gs.reserved -= q.reserved
	if err == nil {
		gs.bytes += q.read - max(old, 0)
		if old < 0 {
			gs.blobs++
		}
	}
	gs.mu.Unlock()
	if err != nil {
		switch {
		case errors.Is(err, errQuota):
			n.Log.Info("hosted write over quota refused", "peer", g.Node, "nation", g.Nation, "size", p.Size)
		case errors.As(err, new(bodySizeError)):
			n.Log.Warn("hosted write refused: its body is not of its declared size", "peer", g.Node, "nation", g.Nation, "size", p.Size, "read", q.read)
		}
		n.hostedFail(w, g, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// hostedBlob reads a request naming one blob and finds the caller's
// store; on a nil store the answer has been written.
func (n *Node) hostedBlob(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) (federation.HostedBlob, *guestStore, GuestConfig) {
	q, err := federation.ParseHostedBlob(body)
	if err != nil {
		peerFail(w, http.StatusBadRequest, "bad_request", err.Error())
		return q, nil, GuestConfig{}
	}
	gs, g, _ := n.hostedStore(r.Context(), w, caller)
	return q, gs, g
}

func (n *Node) peerHostedGet(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, gs, g := n.hostedBlob(w, r, caller, body)
	if gs == nil {
		return
	}
	rc, err := gs.site.Get(r.Context(), q.Name, q.Offset, q.Length)
	if err != nil {
		n.hostedFail(w, g, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
}

func (n *Node) peerHostedStat(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, gs, g := n.hostedBlob(w, r, caller, body)
	if gs == nil {
		return
	}
	i, err := gs.site.Stat(r.Context(), q.Name)
	if err != nil {
		n.hostedFail(w, g, err)
		return
	}
	writeJSON(w, http.StatusOK, federation.HostedInfo{Name: i.Name, Size: i.Size, Modified: i.Modified.UnixNano()})
}

func (n *Node) peerHostedDelete(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, gs, g := n.hostedBlob(w, r, caller, body)
	if gs == nil {
		return
	}
	unlock := gs.lockName(q.Name)
	defer unlock()
	i, err := gs.site.Stat(r.Context(), q.Name)
	if errors.Is(err, site.ErrNotFound) {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	if err == nil {
		err = gs.site.Delete(r.Context(), q.Name)
	}
	if err != nil {
		n.hostedFail(w, g, err)
		return
	}
	gs.mu.Lock()
	gs.bytes -= i.Size
	gs.blobs--
	gs.mu.Unlock()
	writeJSON(w, http.StatusOK, struct{}{})
}

func (n *Node) peerHostedList(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, err := federation.ParseHostedList(body)
	if err != nil {
		peerFail(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	gs, g, _ := n.hostedStore(r.Context(), w, caller)
	if gs == nil {
		return
	}
	// Check the store answers before the answer starts.
	if err := gs.site.List(r.Context(), q.Prefix, func(site.Info) error { return errStopList }); err != nil && !errors.Is(err, errStopList) {
		n.hostedFail(w, g, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	var count int64
	err = gs.site.List(r.Context(), q.Prefix, func(i site.Info) error {
		count++
		return enc.Encode(federation.HostedInfo{Name: i.Name, Size: i.Size, Modified: i.Modified.UnixNano()})
	})
	if err != nil {
		// The missing end line tells the guest the listing was cut short.
		n.Log.Warn("hosted listing cut short", "peer", g.Node, "err", err)
		return
	}
	enc.Encode(federation.HostedListEnd{End: true, Count: count})
}

var errStopList = errors.New("stop")

func (n *Node) peerHostedUsage(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	if err := federation.ParseGrantsRequest(body); err != nil {
		peerFail(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	gs, _, quota := n.hostedStore(r.Context(), w, caller)
	if gs == nil {
		return
	}
	gs.mu.Lock()
	u := federation.HostedUsage{Bytes: gs.bytes, Blobs: gs.blobs, Quota: quota}
	gs.mu.Unlock()
	writeJSON(w, http.StatusOK, u)
}
