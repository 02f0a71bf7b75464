package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// A lie a peer tells in its answer to a blob read.
type lie string

const (
	lieNone    lie = ""
	lieLong    lie = "longer than asked"     // the bytes asked for, then 1 MiB more
	lieShort   lie = "shorter than asked"    // the first half of them
	lieShifted lie = "other bytes at offset" // the bytes one further on
	lieEndless lie = "an endless body"       // bytes without end, none of them the blob's
	lieStatus  lie = "a wrong status"        // 206 with the right bytes
	lieError   lie = "a server error"        // 500 with a page of HTML
)

var allLies = []lie{lieLong, lieShort, lieShifted, lieEndless, lieStatus, lieError}

// lyingTransport stands in front of a node's peer link to one peer and
// changes that peer's answers to blob reads (path ends in endpoint) whose
// request matches as the current lie says: what the driver sees is what a
// host lying in that way would send over the link. It counts the bytes of
// endless bodies the node read.
type lyingTransport struct {
	base     http.RoundTripper
	endpoint string
	match    func(req map[string]any) bool

	mu      sync.Mutex
	current lie
	lied    int            // answers changed
	endless []*endlessBody // the endless answers given
}

func (l *lyingTransport) set(x lie) {
	l.mu.Lock()
	l.current, l.lied, l.endless = x, 0, nil
	l.mu.Unlock()
}

func (l *lyingTransport) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lied
}

// overread names the endless answers of which the node read more than it
// asked for, or, where it asked for the whole blob, more than whole; and
// forgets them.
func (l *lyingTransport) overread(whole int64) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.endless {
		if n := e.n.Load(); (e.asked >= 0 && n > e.asked) || (e.asked < 0 && n > whole) {
			out = append(out, fmt.Sprintf("%s: %d bytes read, %d asked for", e.name, n, e.asked))
		}
	}
	l.endless = nil
	return out
}

func (l *lyingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/"+l.endpoint) || resp.StatusCode != http.StatusOK || req.GetBody == nil {
		return resp, err
	}
	body, _ := req.GetBody()
	var asked map[string]any
	if json.NewDecoder(body).Decode(&asked) != nil || !l.match(asked) {
		return resp, nil
	}
	l.mu.Lock()
	x := l.current
	if x != lieNone {
		l.lied++
	}
	l.mu.Unlock()
	if x == lieNone {
		return resp, nil
	}
	real, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var out io.Reader
	switch x {
	case lieLong:
		out = io.MultiReader(bytes.NewReader(real), bytes.NewReader(bytes.Repeat([]byte{0xee}, 1<<20)))
	case lieShort:
		out = bytes.NewReader(real[:len(real)/2])
	case lieShifted:
		out = bytes.NewReader(append(real[1:], 0))
	case lieEndless:
		name, _ := asked["name"].(string)
		length, _ := asked["length"].(float64)
		e := &endlessBody{name: name, asked: int64(length)}
		l.mu.Lock()
		l.endless = append(l.endless, e)
		l.mu.Unlock()
		out = e
	case lieStatus:
		resp.StatusCode, resp.Status = http.StatusPartialContent, "206 Partial Content"
		out = bytes.NewReader(real)
	case lieError:
		resp.StatusCode, resp.Status = http.StatusInternalServerError, "500 Internal Server Error"
		out = strings.NewReader("<html><body>upstream timed out</body></html>")
	}
	resp.Body, resp.ContentLength = io.NopCloser(out), -1
	resp.Header.Del("Content-Length")
	return resp, nil
}

// endlessBody yields 0xee without end, counting what is read.
type endlessBody struct {
	name  string
	asked int64 // the length asked for
	n     atomic.Int64
}

func (e *endlessBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xee
	}
	e.n.Add(int64(len(p)))
	return len(p), nil
}

// lieThrough makes n's peer link to peer id go through l from now on: the
// client is replaced whole, before anyone holds it, so that no call races
// with the change.
func lieThrough(t *testing.T, n *Node, id string, l *lyingTransport) {
	t.Helper()
	p, ok := n.peer(id)
	if !ok {
		t.Fatalf("no peer %s", id)
	}
	c, err := n.peerClient(p)
	if err != nil {
		t.Fatal(err)
	}
	l.base = c.Transport
	n.ally.mu.Lock()
	n.ally.clients[p.Card.NodeID+"/"+p.Card.TLSPin] = &http.Client{Timeout: c.Timeout, Transport: l}
	n.ally.mu.Unlock()
}

// TestLyingHost: the host of a hosted site is outside input. Whatever it
// answers to a read of one shard (more bytes than asked, fewer, other
// bytes, bytes without end, a wrong status), a GET, a read at an offset
// and a scrub take it as damage to, or unavailability of, that one shard,
// named with the site: the object is served from the others, the node
// reads no more of an endless answer than it asked for (of a blob read to
// its end, no more than a header and a block), and nothing is written to or
// removed from any site because of it.
func TestLyingHost(t *testing.T) {
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	ctx := context.Background()
	hostDir := mkHostingDir(t)
	changeConfig(t, lux.Node, func(c *Config) {
		c.Alliance.Hosting = &HostingConfig{Path: hostDir, Jurisdiction: "BEL", Provider: "lux-gov-dc", Control: "LUX", Accredited: "NATO SECRET"}
	})
	trust(t, est, lux)
	trust(t, lux, est)
	liar := &lyingTransport{endpoint: federation.EndpointHostedGet, match: func(q map[string]any) bool {
		name, _ := q["name"].(string)
		return strings.HasPrefix(name, "s/") || strings.HasPrefix(name, "m/")
	}}
	lieThrough(t, est.Node, lux.Config.Node.ID, liar)
	if _, err := lux.Host(lux.As(ctx, "admin"), HostRequest{Peer: "EST", Quota: "64MiB"}); err != nil {
		t.Fatal(err)
	}
	if err := est.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Driver: "peer", Peer: "LUX"}); err != nil {
		t.Fatal(err)
	}
	// Every site the engine reads, of whatever driver, is read through
	// the guard, which holds each Get to its length (site.Limited).
	for _, s := range est.Engine.Sites() {
		if _, ok := s.Store.(*site.Guarded); !ok {
			t.Errorf("site %s is a %T, not read through site.Guarded", s.ID, s.Store)
		}
	}
	// One shard in BEL (the hosted site), one in EST: either serves.
	if err := est.AddVault(VaultConfig{Name: "hosted", Erasure: "1+1", Survive: "jurisdictions=1", Jurisdictions: []string{"BEL", "EST"}}); err != nil {
		t.Fatal(err)
	}
	officer := est.As(ctx, "officer")
	// put stores body under a key whose data shard (the one a GET reads
	// first) is on the hosted site, so that every GET asks the liar.
	put := func(name string, body []byte) string {
		t.Helper()
		for i := range 40 {
			key := name + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if _, err := est.Engine.Put(officer, "hosted", key, bytes.NewReader(body), vault.PutOptions{Size: int64(len(body)), Label: "NATO RESTRICTED"}); err != nil {
				t.Fatal(err)
			}
			locs, err := est.Engine.Locate(officer, "hosted", key, manifest.ID{})
			if err != nil {
				t.Fatal(err)
			}
			if locs[0].Site == "lux-hosted" && locs[0].Inline == (len(body) < 64<<10) {
				return key
			}
		}
		t.Fatal("placement never put a data shard on the hosted site")
		return ""
	}
	small, large := make([]byte, 3000), make([]byte, 3<<20+777)
	rand.Read(small)
	rand.Read(large)
	smallKey, largeKey := put("small", small), put("large", large)
	locs, err := est.Engine.Locate(officer, "hosted", largeKey, manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	largeBlob := locs[0].Blob
	hostRoot := filepath.Join(hostDir, est.Config.Node.ID)
	blobs := func() map[string][]byte { return objectBlobs(t, est.Node, hostRoot) }
	before := blobs()
	if len(before) == 0 {
		t.Fatal("no blobs")
	}

	get := func(key string, off, length int64) ([]byte, []vault.Problem, error) {
		r, err := est.Engine.Get(officer, "hosted", key, vault.GetOptions{Offset: off, Length: length})
		if err != nil {
			return nil, nil, err
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		return b, r.Problems(), err
	}
	for _, x := range allLies {
		t.Run(string(x), func(t *testing.T) {
			liar.set(x)
			defer liar.set(lieNone)
			defer est.Engine.SetSiteDown("lux-hosted", 0)
			// The driver itself passes on no more than it was asked for.
			rc, err := est.hostedSiteOf(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Peer: lux.Config.Node.ID}).Get(ctx, largeBlob, 1000, 5000)
			if err == nil {
				n, _ := io.Copy(io.Discard, io.LimitReader(rc, 4<<20))
				rc.Close()
				if n > 5000 {
					t.Errorf("the driver passed on %d bytes for the 5000 asked", n)
				}
			}
			liar.overread(0)
			for _, c := range []struct {
				what        string
				key         string
				want        []byte
				off, length int64
			}{
				{"GET inline", smallKey, small, 0, -1},
				{"GET", largeKey, large, 0, -1},
				{"GET at an offset", largeKey, large[1<<20+5 : 2<<20+17], 1<<20 + 5, 1<<20 + 12},
			} {
				got, problems, err := get(c.key, c.off, c.length)
				if err != nil || !bytes.Equal(got, c.want) {
					t.Fatalf("%s: %d bytes, %v; want the object served from the other shard", c.what, len(got), err)
				}
				if liar.count() == 0 {
					t.Fatalf("%s: the host was not asked", c.what)
				}
				if x == lieLong {
					// Cut to what was asked, the answer is the blob's.
					if len(problems) != 0 {
						t.Errorf("%s: problems %v for an answer longer than asked", c.what, problems)
					}
					continue
				}
				if len(problems) == 0 || problems[0].Site != "lux-hosted" || problems[0].Shard != 0 {
					t.Fatalf("%s: problems %v; want shard 0 on lux-hosted", c.what, problems)
				}
				for _, p := range problems {
					if p.Site != "lux-hosted" {
						t.Errorf("%s: a problem on another site: %v", c.what, p)
					}
				}
				if x == lieStatus || x == lieError {
					if e := problems[0].Err.Error(); !strings.Contains(e, "hosted site lux-hosted") || !errors.Is(problems[0].Err, site.ErrUnavailable) || len(e) > 1000 {
						t.Errorf("%s: %.2000s; want the hosted site named, unavailable, in a few words", c.what, e)
					}
				}
				// A GET reads an inline copy's header, then one block.
				for _, o := range liar.overread(64 << 10) {
					t.Errorf("%s: %s", c.what, o)
				}
			}
			rep, err := est.Keeper().Scrub(vault.AsSystem(ctx), housekeeping.ScrubOptions{Vaults: []string{"hosted"}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lost != 0 || len(rep.LostVersions) != 0 {
				t.Errorf("scrub: %+v; nothing is lost", rep)
			}
			if x != lieLong && rep.AtRisk == 0 {
				t.Errorf("scrub: %+v; want the lied-about shards found wanting", rep)
			}
			// A scrub reads a shard blob to its end, a block at a time, and
			// an inline copy as a GET does: its header, then the block (it
			// read the copy whole, up to what a copy may hold, 16 MiB and
			// more, before the eighteenth pass).
			for _, o := range liar.overread(1<<20 + 64<<10) {
				t.Errorf("scrub: %s", o)
			}
			t.Logf("scrub: %+v", rep)
			sameBlobs(t, before, blobs())
		})
	}
	// Told the truth again, everything is whole.
	rep, err := est.Keeper().Scrub(vault.AsSystem(ctx), housekeeping.ScrubOptions{Vaults: []string{"hosted"}})
	if err != nil || rep.AtRisk != 0 {
		t.Fatalf("scrub of the truth: %+v, %v", rep, err)
	}
}

// objectBlobs reads every shard blob and manifest copy on n's sites: those
// of hosted sites from the host's disk (not through the liar), the others
// through their drivers.
func objectBlobs(t *testing.T, n *Node, hostRoot string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, s := range n.Engine.Sites() {
		if s.ID == "lux-hosted" {
			for name, b := range storeFiles(t, hostRoot) {
				if strings.HasPrefix(name, "s/") || strings.HasPrefix(name, "m/") {
					out[s.ID+":"+name] = b
				}
			}
			continue
		}
		for _, prefix := range []string{"s/", "m/"} {
			err := s.Store.List(t.Context(), prefix, func(i site.Info) error {
				b, err := readBlob(t.Context(), s.Store, i.Name, 64<<20)
				out[s.ID+":"+i.Name] = b
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// sameBlobs reports whether two readings of the sites' blobs agree,
// naming the differences.
func sameBlobs(t *testing.T, before, after map[string][]byte) bool {
	t.Helper()
	same := true
	for name, b := range before {
		if a, ok := after[name]; !ok {
			t.Errorf("%s removed", name)
			same = false
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s changed", name)
			same = false
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s written", name)
			same = false
		}
	}
	return same
}

// TestLyingOwner: an ally reading what an owner shares with it reads the
// owner's shard blobs through the owner (peerBlobs). Whatever the owner
// answers to a read of one shard, the ally's GET and its read at an
// offset take it as damage to, or unavailability of, that shard, named
// with its site: the object is served from the other shards, and the ally
// reads no more of an endless answer than it asked for.
func TestLyingOwner(t *testing.T) {
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	ctx := context.Background()
	trust(t, est, lux)
	trust(t, lux, est)
	small, large := make([]byte, 3000), make([]byte, 3<<20+777)
	rand.Read(small)
	rand.Read(large)
	// The blob of shard 0 (the first a read asks for) of each object, and
	// its site: the owner lies about those.
	lied := map[[2]string]bool{}
	liedSites := map[string]bool{}
	for key, body := range map[string][]byte{"2026/small": small, "2026/large": large} {
		if _, err := est.Engine.Put(est.As(ctx, "officer"), "registry", key, bytes.NewReader(body), vault.PutOptions{Size: int64(len(body)), Label: "NATO SECRET//REL TO EST, LUX"}); err != nil {
			t.Fatal(err)
		}
		locs, err := est.Engine.Locate(est.As(ctx, "officer"), "registry", key, manifest.ID{})
		if err != nil {
			t.Fatal(err)
		}
		lied[[2]string{locs[0].Site, locs[0].Blob}] = true
		liedSites[locs[0].Site] = true
	}
	if _, err := est.Grant(est.As(ctx, "admin"), GrantRequest{Scope: "registry/2026/", To: "LUX", Level: "read", Ceiling: "NATO SECRET", Expires: "180d"}); err != nil {
		t.Fatal(err)
	}
	liar := &lyingTransport{endpoint: federation.EndpointBlob, match: func(q map[string]any) bool {
		s, _ := q["site"].(string)
		name, _ := q["name"].(string)
		return lied[[2]string{s, name}]
	}}
	lieThrough(t, lux.Node, est.Config.Node.ID, liar)
	before := objectBlobs(t, est.Node, "")
	officer := lux.As(ctx, "officer")
	for _, x := range allLies {
		t.Run(string(x), func(t *testing.T) {
			liar.set(x)
			defer liar.set(lieNone)
			for _, c := range []struct {
				what        string
				key         string
				want        []byte
				off, length int64
			}{
				{"GET inline", "2026/small", small, 0, -1},
				{"GET", "2026/large", large, 0, -1},
				{"GET at an offset", "2026/large", large[1<<20+5 : 2<<20+17], 1<<20 + 5, 1<<20 + 12},
			} {
				r, err := alliedVaults{lux.Node}.AlliedGet(officer, "est--registry", c.key, vault.GetOptions{Offset: c.off, Length: c.length})
				if err != nil {
					t.Fatalf("%s: %v", c.what, err)
				}
				got, err := io.ReadAll(r)
				problems := r.Problems()
				r.Close()
				if err != nil || !bytes.Equal(got, c.want) {
					t.Fatalf("%s: %d bytes, %v; want the object served from the other shards", c.what, len(got), err)
				}
				if liar.count() == 0 {
					t.Fatalf("%s: the owner was not asked", c.what)
				}
				for _, o := range liar.overread(64 << 10) {
					t.Errorf("%s: %s", c.what, o)
				}
				if x == lieLong {
					if len(problems) != 0 {
						t.Errorf("%s: problems %v for an answer longer than asked", c.what, problems)
					}
					continue
				}
				if len(problems) == 0 {
					t.Fatalf("%s: no problem reported", c.what)
				}
				for _, p := range problems {
					if p.Shard != 0 || !liedSites[p.Site] {
						t.Errorf("%s: a problem with a shard the owner told the truth about: %v", c.what, p)
					}
				}
				if x == lieStatus || x == lieError {
					if e := problems[0].Err.Error(); !strings.Contains(e, "site "+problems[0].Site) || !errors.Is(problems[0].Err, site.ErrUnavailable) || len(e) > 1000 {
						t.Errorf("%s: %.2000s; want the owner's site named, unavailable, in a few words", c.what, e)
					}
				}
			}
		})
	}
	sameBlobs(t, before, objectBlobs(t, est.Node, ""))
}

// TestPeerText: what a peer's refusal says, when it is not the protocol's
// JSON, reaches errors and logs short and printable.
func TestPeerText(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"text", []byte("  bad gateway\n"), "bad gateway"},
		{"long text", bytes.Repeat([]byte("x"), 300), strings.Repeat("x", maxPeerText) + "… (300 bytes)"},
		{"binary", bytes.Repeat([]byte{0xee, 0x01}, 32<<10), "an answer of 65536 bytes, not text"},
		{"an escape", []byte("ok\x1b[2Jcleared"), "ok\uFFFD[2Jcleared"},
	} {
		if got := peerText(c.in); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func FuzzPeerText(f *testing.F) {
	f.Add([]byte("bad gateway"))
	f.Add([]byte("\x1b[31mred\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := peerText(b)
		if len(s) > 4*maxPeerText+40 {
			t.Fatalf("%d bytes kept", len(s))
		}
		for _, r := range s {
			if !unicode.IsPrint(r) {
				t.Fatalf("%q kept", r)
			}
		}
	})
}

// TestPeerRefusal: a refusal in the protocol's JSON is a peer's text as
// much as any other body. Before, only a body that was not the JSON went
// through peerText: a peer's JSON error went whole into the node's errors
// and logs (64 KiB, a newline to forge a log line, terminal escapes), and
// its code as well.
func TestPeerRefusal(t *testing.T) {
	escapes, _ := json.Marshal(federation.PeerError{Error: strings.Repeat("\x1b[2J\x1b]0;owned\x07", 4<<10), Code: "not_found"})
	forged, _ := json.Marshal(federation.PeerError{Error: "no such blob\nlevel=INFO msg=\"all sites verified\"", Code: "not_found"})
	long, _ := json.Marshal(federation.PeerError{Error: strings.Repeat("y", 60<<10), Code: strings.Repeat("z", 300)})
	badCode, _ := json.Marshal(federation.PeerError{Error: "refused", Code: "not_found\x1b[2J"})
	for _, c := range []struct {
		name      string
		in        []byte
		msg, code string
	}{
		{"the protocol's", []byte(`{"error":"no such blob","code":"not_found"}`), "no such blob", "not_found"},
		{"escapes", escapes, fmt.Sprintf("an answer of %d bytes, not text", 4<<10*len("\x1b[2J\x1b]0;owned\x07")), "not_found"},
		{"a forged log line", forged, `no such blob level=INFO msg="all sites verified"`, "not_found"},
		{"long", long, strings.Repeat("y", maxPeerText) + fmt.Sprintf("… (%d bytes)", 60<<10), ""},
		{"a code not a token", badCode, "refused", ""},
		{"not JSON", []byte("<html>bad gateway</html>"), "<html>bad gateway</html>", ""},
	} {
		msg, code := peerRefusal(c.in)
		if msg != c.msg || code != c.code {
			t.Errorf("%s: %q, %q; want %q, %q", c.name, msg, code, c.msg, c.code)
		}
	}
}

func FuzzPeerRefusal(f *testing.F) {
	f.Add([]byte(`{"error":"no such blob","code":"not_found"}`))
	f.Add([]byte(`{"error":"\u001b[2J\nx","code":"\u0007"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, code := peerRefusal(b)
		if len(msg) > 4*maxPeerText+40 || len(code) > maxPeerCode {
			t.Fatalf("%d and %d bytes kept", len(msg), len(code))
		}
		for _, r := range msg + code {
			if !unicode.IsPrint(r) {
				t.Fatalf("%q kept", r)
			}
		}
	})
}
