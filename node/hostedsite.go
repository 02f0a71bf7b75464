package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
)

// Hosted sites, the guest's side (docs/alliance.md, "Host an ally's
// site"): a site whose blobs an allied node keeps for this one, reached
// over the peer link (driver "peer"). Its jurisdiction, provider, control
// and accreditation are what the host states on its card, and the
// survivability proof takes them as they are stated: the alliance's trust
// in the host's word, not a measurement. The driver is a site.Site like
// any other, so the site's marker, guard and every rule about deleting
// hold for it unchanged.

// hostedSite is the driver of a site hosted by peer node peer.
type hostedSite struct {
	n    *Node
	id   string // the site's id, for messages
	peer string // the host's node id
}

// hostedSiteOf returns the driver of a configured hosted site.
func (n *Node) hostedSiteOf(s SiteConfig) *hostedSite {
	return &hostedSite{n: n, id: s.ID, peer: s.Peer}
}

// hostName names the host for messages: its nation and node id.
func (h *hostedSite) hostName() string {
	if p, ok := h.n.peer(h.peer); ok {
		return p.Card.Nation + "'s node " + h.peer
	}
	return "node " + h.peer
}

// fail maps a refusal of the host, or a failure to reach it, to the site
// errors the engine acts on.
func (h *hostedSite) fail(what string, err error) error {
	var pe *PeerError
	switch {
	case errors.As(err, &pe) && pe.Code == federation.CodeNotFound:
		return fmt.Errorf("hosted site %s: %s: %w", h.id, what, site.ErrNotFound)
	case errors.As(err, &pe) && pe.Status == http.StatusInsufficientStorage:
		return fmt.Errorf("hosted site %s on %s: %s refused: %s: %w", h.id, h.hostName(), what, pe.Msg, site.ErrFull)
	case errors.As(err, &pe) && pe.Code == federation.CodeSize:
		return fmt.Errorf("hosted site %s on %s: %s refused: %s", h.id, h.hostName(), what, pe.Msg)
	case errors.As(err, &pe) && pe.Code == federation.CodeNotHosted:
		return &site.UnavailableError{Site: h.id, Reason: fmt.Sprintf("%s does not host this node (%s): its operators grant hosting with 'embassy host add'", h.hostName(), pe.Msg)}
	case errors.Is(err, errNoSuchPeer):
		return &site.UnavailableError{Site: h.id, Reason: fmt.Sprintf("node %s, its host, is not a trusted peer: add its card again ('embassy peer add')", h.peer)}
	case errors.As(err, &pe):
		return fmt.Errorf("hosted site %s on %s: %s: %s: %w", h.id, h.hostName(), what, pe.Msg, site.ErrUnavailable)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("hosted site %s on %s: %s: %w: %w", h.id, h.hostName(), what, site.ErrUnavailable, err)
}

func (h *hostedSite) call(ctx context.Context, endpoint string, in any) ([]byte, error) {
	rc, err := h.n.callPeerRaw(ctx, h.peer, endpoint, in)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", h.peer, err)
	}
	return b, nil
}

// sizedReader passes a put's bytes on to the transport and holds them to
// the size declared. When the declared bytes have all been read, it reads
// once more before it hands the last of them on: a reader that goes on
// past its size then fails the request before the host has the whole
// body the request declares (the transport would send the declared bytes,
// which the host stores, and only then find the rest). It remembers its
// reader's error and its own; the transport may still be reading when the
// host's answer has come, so that error is kept under a lock, never held
// while the reader reads.
type sizedReader struct {
	r    io.Reader
	size int64 // declared, or -1
	n    int64 // read so far (by the transport's one reading goroutine)

	mu  sync.Mutex
	err error // the reader's error, or one wrapping errPutSize
}

// errPutSize: a put's reader yielded more or fewer bytes than declared.
var errPutSize = errors.New("the reader did not yield the size declared")

func (s *sizedReader) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	return s.err
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if err := s.failed(); err != nil {
		return 0, err
	}
	if s.size >= 0 {
		rest := s.size - s.n
		if rest == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	k, err := s.r.Read(p)
	s.n += int64(k)
	switch {
	case err == io.EOF && s.size >= 0 && s.n < s.size:
		return 0, s.fail(fmt.Errorf("%w: it ended after %d of the %d bytes declared", errPutSize, s.n, s.size))
	case err != nil && err != io.EOF:
		return k, s.fail(err)
	case err == nil && s.size >= 0 && s.n == s.size:
		// The declared bytes are all read: the reader must end here.
		var one [1]byte
		m, perr := io.ReadAtLeast(s.r, one[:], 1)
		switch {
		case m > 0:
			return 0, s.fail(fmt.Errorf("%w: it yielded more than the %d bytes declared", errPutSize, s.size))
		case perr != io.EOF:
			return 0, s.fail(perr)
		}
		return k, io.EOF
	}
	return k, err
}

// failed returns the reader's error, or its own.
func (s *sizedReader) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Put implements site.Site: the blob streams to the host in one request.
func (h *hostedSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := site.CheckName(name); err != nil {
		return err
	}
	hdr, err := federation.EncodeHostedPut(federation.HostedPut{Name: name, Size: size})
	if err != nil {
		return err
	}
	signed, _, err := federation.ParseHostedPut(hdr)
	if err != nil {
		return err
	}
	p, ok := h.n.peer(h.peer)
	if !ok {
		return h.fail("put "+name, fmt.Errorf("%w: %s", errNoSuchPeer, h.peer))
	}
	c, err := h.n.peerClient(p)
	if err != nil {
		return h.fail("put "+name, err)
	}
	body := &sizedReader{r: r, size: size}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p.Card.Endpoint+federation.PathPrefix+federation.EndpointHostedPut, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		// Nothing is sent: the reader must have nothing either.
		if m, err := io.ReadAtLeast(r, make([]byte, 1), 1); m > 0 {
			return fmt.Errorf("hosted site %s: put %s: %w: it yielded more than the 0 bytes declared: nothing of it was stored", h.id, name, errPutSize)
		} else if err != io.EOF {
			return err
		}
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(federation.HeaderHostedPut, hdr)
	if err := federation.SignRequest(req, signed, h.n.conf().Node.ID, h.peer, h.n.now(), h.n.Keys().SignHybrid); err != nil {
		return err
	}
	resp, err := peerDo(c, req, h.peer)
	if rerr := body.failed(); rerr != nil {
		if resp != nil {
			resp.Body.Close()
		}
		if errors.Is(rerr, errPutSize) {
			return fmt.Errorf("hosted site %s: put %s: %w: refused before the host had all of it, nothing of it was stored", h.id, name, rerr)
		}
		return rerr
	}
	if err != nil {
		return h.fail("put "+name, fmt.Errorf("peer %s at %s: %w", h.peer, p.Card.Endpoint, err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		msg, code := peerRefusal(b)
		return h.fail("put "+name, &PeerError{Peer: h.peer, Status: resp.StatusCode, Code: code, Msg: msg})
	}
	return nil
}

// Get implements site.Site.
func (h *hostedSite) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := site.CheckName(name); err != nil {
		return nil, err
	}
	rc, err := h.n.callPeerRaw(ctx, h.peer, federation.EndpointHostedGet, federation.HostedBlob{Name: name, Offset: off, Length: length})
	if err != nil {
		return nil, h.fail("get "+name, err)
	}
	// What the host sends is outside input, and callers read what they
	// asked for into memory (the engine's sites are Guarded, which
	// limits too; prepareHostedSite reads through the driver itself).
	return site.Limited(rc, length), nil
}

// Stat implements site.Site.
func (h *hostedSite) Stat(ctx context.Context, name string) (site.Info, error) {
	if err := site.CheckName(name); err != nil {
		return site.Info{}, err
	}
	b, err := h.call(ctx, federation.EndpointHostedStat, federation.HostedBlob{Name: name})
	if err != nil {
		return site.Info{}, h.fail("stat "+name, err)
	}
	i, err := federation.ParseHostedInfo(b)
	if err != nil {
		return site.Info{}, fmt.Errorf("hosted site %s: stat %s: %w", h.id, name, err)
	}
	return site.Info{Name: i.Name, Size: i.Size, Modified: time.Unix(0, i.Modified)}, nil
}

// Delete implements site.Site.
func (h *hostedSite) Delete(ctx context.Context, name string) error {
	if err := site.CheckName(name); err != nil {
		return err
	}
	if _, err := h.call(ctx, federation.EndpointHostedDelete, federation.HostedBlob{Name: name}); err != nil {
		return h.fail("delete "+name, err)
	}
	return nil
}

// List implements site.Site. A listing the host cut short is an error,
// never taken as the whole.
func (h *hostedSite) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	rc, err := h.n.callPeerRaw(ctx, h.peer, federation.EndpointHostedList, federation.HostedList{Prefix: prefix})
	if err != nil {
		return h.fail("list "+prefix, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 8<<10), 8<<10)
	for sc.Scan() {
		i, end, err := federation.ParseHostedListLine(sc.Bytes())
		if err != nil {
			return fmt.Errorf("hosted site %s: list: %w", h.id, err)
		}
		if end {
			return nil
		}
		if !strings.HasPrefix(i.Name, prefix) {
			return fmt.Errorf("hosted site %s: list %q: the host listed %q", h.id, prefix, i.Name)
		}
		if err := fn(site.Info{Name: i.Name, Size: i.Size, Modified: time.Unix(0, i.Modified)}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return h.fail("list "+prefix, err)
	}
	return h.fail("list "+prefix, errors.New("the listing was cut short"))
}

// Usage asks the host what this node's store holds and its quota.
func (h *hostedSite) Usage(ctx context.Context) (federation.HostedUsage, error) {
	b, err := h.call(ctx, federation.EndpointHostedUsage, struct{}{})
	if err != nil {
		return federation.HostedUsage{}, h.fail("usage", err)
	}
	return federation.ParseHostedUsage(b)
}

// Space implements site.SpaceReporter: the quota is the store's size.
func (h *hostedSite) Space(ctx context.Context) (free, total int64, err error) {
	u, err := h.Usage(ctx)
	if err != nil {
		return 0, 0, err
	}
	return max(u.Quota-u.Bytes, 0), u.Quota, nil
}

// hostedSiteFromCard fills a new hosted site's attributes from its host's
// card: s.Peer may name the host by node id or by nation.
func (n *Node) hostedSiteFromCard(s *SiteConfig) error {
	p, err := n.resolvePeer(s.Peer)
	if err != nil {
		return fmt.Errorf("site %s: %w", s.ID, err)
	}
	h := p.Card.Hosting
	if h == nil {
		return fmt.Errorf("site %s: the card of %s's node %s offers no hosting (its operators set alliance.hosting and send a new card)", s.ID, p.Card.Nation, p.Card.NodeID)
	}
	for what, v := range map[string]string{"jurisdiction": s.Jurisdiction, "provider": s.Provider, "control": s.Control, "accredited": s.Accredited} {
		want := map[string]string{"jurisdiction": h.Jurisdiction, "provider": h.Provider, "control": h.Control, "accredited": h.Accredited}[what]
		if v != "" && v != want {
			return fmt.Errorf("site %s: --%s %q: a hosted site's %s is what its host's card states (%q)", s.ID, what, v, what, want)
		}
	}
	s.Peer = p.Card.NodeID
	s.Jurisdiction, s.Provider, s.Control, s.Accredited = h.Jurisdiction, h.Provider, h.Control, h.Accredited
	return nil
}

// checkHostedSite checks a hosted site's configuration against the host's
// card: the host is a trusted peer offering hosting, the site's attributes
// are the ones its card states, and it hosts no other site of this node
// (two sites on one host are one place, whatever their names).
func (c *Config) checkHostedSite(i int, s SiteConfig) error {
	if s.Peer == "" {
		return fmt.Errorf("sites[%d].peer: the peer driver needs the host's node id", i)
	}
	if s.Path != "" || s.S3 != nil {
		return fmt.Errorf("sites[%d]: a hosted site has no path or s3 settings", i)
	}
	if s.Quota != "" {
		if _, err := ParseBytes(s.Quota); err != nil {
			return fmt.Errorf("sites[%d].quota: %w", i, err)
		}
	}
	for j, o := range c.Sites[:i] {
		if o.Driver == "peer" && o.Peer == s.Peer {
			return fmt.Errorf("sites[%d]: node %s hosts site %s already (sites[%d]): two sites on one host are one place, and the survivability proof would count them as two", i, s.Peer, o.ID, j)
		}
	}
	var card *federation.Card
	for _, p := range c.Alliance.Peers {
		if pc, err := federation.ParseCard([]byte(p.Card)); err == nil && pc.NodeID == s.Peer {
			card = &pc
		}
	}
	if card == nil {
		return fmt.Errorf("sites[%d].peer: node %s, the host of site %s, is not a trusted peer (drain and remove the site before removing its host)", i, s.Peer, s.ID)
	}
	h := card.Hosting
	if h == nil {
		return fmt.Errorf("sites[%d].peer: the card of node %s offers no hosting", i, s.Peer)
	}
	if s.Jurisdiction != h.Jurisdiction || s.Provider != h.Provider || s.Control != h.Control || s.Accredited != h.Accredited {
		return fmt.Errorf("sites[%d]: site %s's jurisdiction, provider, control and accreditation (%s, %q, %s, %q) must be what its host's card states (%s, %q, %s, %q)",
			i, s.ID, s.Jurisdiction, s.Provider, s.Control, s.Accredited, h.Jurisdiction, h.Provider, h.Control, h.Accredited)
	}
	return nil
}

// prepareHostedSite checks that the host keeps nothing for this node but,
// at most, this very site's marker (a site removed and added again), and
// that it grants the quota asked for.
func (n *Node) prepareHostedSite(ctx context.Context, s SiteConfig) (site.Site, error) {
	h := n.hostedSiteOf(s)
	u, err := h.Usage(ctx)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", s.ID, err)
	}
	if s.Quota != "" {
		want, _ := ParseBytes(s.Quota)
		if u.Quota < want {
			return nil, fmt.Errorf("site %s: %s hosts this node up to %s, not the %s asked for: its operators raise it with 'embassy host add %s --quota %s', or add the site with --quota %s",
				s.ID, h.hostName(), FormatBytes(u.Quota), FormatBytes(want), n.conf().Node.Nation, strings.ReplaceAll(FormatBytes(want), " ", ""), strings.ReplaceAll(FormatBytes(u.Quota), " ", ""))
		}
	}
	b, err := readBlob(ctx, h, site.MarkerBlob, 64<<10)
	switch {
	case err == nil:
		if why := markerVerdict(n.Keys(), n.conf().Node.ID, s.ID, b); why != "" {
			return nil, fmt.Errorf("site %s: the store %s keeps for this node is already claimed: %s", s.ID, h.hostName(), strings.TrimPrefix(why, "its marker "))
		}
		return h, nil
	case !errors.Is(err, site.ErrNotFound):
		return nil, fmt.Errorf("site %s: %w", s.ID, err)
	}
	var found string
	stop := errors.New("stop")
	if err := h.List(ctx, "", func(i site.Info) error { found = i.Name; return stop }); err != nil && !errors.Is(err, stop) {
		return nil, fmt.Errorf("site %s: %w", s.ID, err)
	}
	if found != "" {
		return nil, fmt.Errorf("site %s: the store %s keeps for this node is not empty (it holds %s) and has no marker of this site: a site removed without its marker, or another site's: see 'embassy site ls'", s.ID, h.hostName(), found)
	}
	return h, nil
}

var _ site.SpaceReporter = (*hostedSite)(nil)
