package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/sitetest"
	"github.com/embassy-dev/embassy/vault"
)

// cutProxy forwards TCP connections to a listener, and can cut every
// connection it carries at once: the peer link of a host that restarts.
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, d)
			p.mu.Unlock()
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// changeConfig applies change to a node's configuration as the node's own
// commands do.
func changeConfig(t *testing.T, n *Node, change func(*Config)) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	cfg := *n.Config
	change(&cfg)
	if err := n.saveConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	n.setConfig(&cfg)
}

// mkHostingDir makes an empty hosting directory, as an operator does
// before hosting anyone (the node never makes it).
func mkHostingDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "hosted")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// storeFiles lists the files under a guest's store on the host, the
// temporary ones included, with their contents.
func storeFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil // a temporary file renamed or removed meanwhile
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHostedSite: LUX hosts a site of EST's. EST stores and reads back
// objects on it through its own engine; LUX keeps only ciphertext, counts
// it, refuses whatever would pass the quota whole, shows its operators
// sizes and counts only, and refuses a peer it does not host.
func TestHostedSite(t *testing.T) {
	est, lux, fin := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	ctx := context.Background()
	hostDir := mkHostingDir(t)
	proxy := newCutProxy(t, lux.conf().Alliance.Listen)
	changeConfig(t, lux.Node, func(c *Config) {
		c.Alliance.Endpoint = proxy.ln.Addr().String()
		c.Alliance.Hosting = &HostingConfig{Path: hostDir, Jurisdiction: "BEL", Provider: "lux-gov-dc", Control: "LUX", Accredited: "NATO SECRET"}
	})
	for _, pair := range [][2]*allyNode{{est, lux}, {lux, est}, {fin, lux}, {lux, fin}} {
		trust(t, pair[0], pair[1])
	}
	admin := func(n *allyNode) context.Context { return n.As(ctx, "admin") }

	// A hosted site needs the host's agreement first.
	if err := est.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Driver: "peer", Peer: "LUX"}); err == nil || !strings.Contains(err.Error(), "does not host this node") {
		t.Fatalf("hosted site before the host agreed: %v", err)
	}
	if _, err := lux.Host(admin(lux), HostRequest{Peer: "EST", Quota: "600KiB"}); err != nil {
		t.Fatal(err)
	}
	estID := est.Config.Node.ID
	root := filepath.Join(hostDir, estID)
	if _, err := os.Stat(filepath.Join(root, "node")); err != nil {
		t.Fatalf("the guest's store was not made: %v", err)
	}
	// Asking for more room than the host grants is refused, naming both.
	if err := est.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Driver: "peer", Peer: "LUX", Quota: "10TiB"}); err == nil || !strings.Contains(err.Error(), "up to 600 KiB, not the 10 TiB") {
		t.Fatalf("quota above the host's: %v", err)
	}
	// The site's attributes are the host's card's, not the guest's word.
	if err := est.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted", Jurisdiction: "EST"}, Driver: "peer", Peer: "LUX"}); err == nil || !strings.Contains(err.Error(), "what its host's card states") {
		t.Fatalf("a hosted site claiming another jurisdiction: %v", err)
	}
	if err := est.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Driver: "peer", Peer: "LUX", Quota: "600KiB"}); err != nil {
		t.Fatal(err)
	}
	sc := est.Config.Sites[len(est.Config.Sites)-1]
	if sc.Jurisdiction != "BEL" || sc.Provider != "lux-gov-dc" || sc.Control != "LUX" || sc.Accredited != "NATO SECRET" || sc.Peer != lux.Config.Node.ID {
		t.Fatalf("hosted site as added: %+v", sc)
	}
	// Its marker, signed by EST, is in the store: site identity holds.
	if b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(site.MarkerBlob))); err != nil || markerVerdict(est.Keys(), estID, "lux-hosted", b) != "" {
		t.Fatalf("marker on the host: %v %q", err, markerVerdict(est.Keys(), estID, "lux-hosted", b))
	}
	t.Run("the same host as two sites", func(t *testing.T) {
		err := est.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted-2"}, Driver: "peer", Peer: "LUX"})
		if err == nil || !strings.Contains(err.Error(), "hosts site lux-hosted already") {
			t.Fatalf("second site on one host: %v", err)
		}
	})

	// A vault whose placement must use the hosted site: one shard in BEL
	// (only LUX's hosting is there), one in EST.
	if err := est.AddVault(VaultConfig{Name: "hosted", Erasure: "1+1", Survive: "jurisdictions=1", Jurisdictions: []string{"BEL", "EST"}}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, body []byte) error {
		_, err := est.Engine.Put(est.As(ctx, "officer"), "hosted", key, bytes.NewReader(body), vault.PutOptions{Size: int64(len(body)), Label: "NATO RESTRICTED"})
		return err
	}
	get := func(key string) ([]byte, error) {
		r, err := est.Engine.Get(est.As(ctx, "officer"), "hosted", key, vault.GetOptions{Length: -1})
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	small, large := []byte("a hosted note for the register"), make([]byte, 200<<10)
	rand.Read(large)
	for key, body := range map[string][]byte{"2026/note.txt": small, "2026/census.bin": large} {
		if err := put(key, body); err != nil {
			t.Fatalf("put %s on the hosted site: %v", key, err)
		}
		if got, err := get(key); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %s back: %d bytes, %v", key, len(got), err)
		}
	}
	files := storeFiles(t, root)
	var held int64
	for name, b := range files {
		held += int64(len(b))
		for _, secret := range [][]byte{small, large[1000:1032], []byte("census"), []byte("2026/"), []byte("RESTRICTED")} {
			if bytes.Contains(b, secret) {
				t.Errorf("the host's file %s holds %q: hosts must see ciphertext only", name, secret)
			}
		}
	}
	if held < int64(len(large)) {
		t.Fatalf("the host holds %d bytes for a %d-byte object", held, len(large))
	}

	hostLs := func(t *testing.T) HostNation {
		t.Helper()
		rows, err := lux.HostUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Nation != "EST" {
			t.Fatalf("host ls: %+v", rows)
		}
		return rows[0]
	}
	// settled waits until host ls agrees with what the store holds on
	// disk (EST copies its audit log to every site, this one included, in
	// the background) and returns it.
	settled := func(t *testing.T) HostNation {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var bytes, blobs int64
			for name, b := range storeFiles(t, root) {
				if !strings.HasPrefix(name, ".tmp") {
					bytes += int64(len(b))
					blobs++
				}
			}
			r := hostLs(t)
			if r.SiteBytes == bytes && r.SiteBlobs == blobs {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("host ls says %+v; the store holds %d blobs, %d bytes", r, blobs, bytes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// objectFiles are the store's shards and manifests.
	objectFiles := func(t *testing.T) map[string]bool {
		out := map[string]bool{}
		for name := range storeFiles(t, root) {
			if strings.HasPrefix(name, "s/") || strings.HasPrefix(name, "m/") {
				out[name] = true
			}
		}
		return out
	}
	// restartHost forgets what LUX's node counted, as a restart does, once
	// no write of EST's is in flight on the store (a restart ends those).
	restartHost := func(t *testing.T) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			lux.host.mu.Lock()
			gs := lux.host.stores[estID]
			if gs == nil {
				lux.host.mu.Unlock()
				return
			}
			gs.mu.Lock()
			quiet := gs.reserved == 0 && len(gs.names) == 0
			if quiet {
				lux.host.stores = nil
			}
			gs.mu.Unlock()
			lux.host.mu.Unlock()
			if quiet {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("writes on the store never ended")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Run("host ls shows sizes and counts, no name or label", func(t *testing.T) {
		r := settled(t)
		if objects := len(objectFiles(t)); r.SiteBytes < int64(len(large)) || r.SiteBlobs < int64(objects) || r.Quota != 600<<10 || r.Nodes != 1 {
			t.Fatalf("host ls %+v; the store holds %d shards and manifests", r, objects)
		}
		b, _ := json.Marshal(r)
		for _, s := range []string{"note", "census", "2026", "RESTRICTED", "NATO", "hosted", estID} {
			if strings.Contains(string(b), s) {
				t.Errorf("host ls shows %q: %s", s, b)
			}
		}
	})

	t.Run("over quota the write is refused whole", func(t *testing.T) {
		before := objectFiles(t)
		huge := make([]byte, 700<<10)
		rand.Read(huge)
		err := put("2026/too-big.bin", huge)
		if !errors.Is(err, site.ErrFull) || !strings.Contains(err.Error(), "may keep 600 KiB on this node") {
			t.Fatalf("put past the quota: %v", err)
		}
		if _, err := get("2026/too-big.bin"); !errors.Is(err, vault.ErrNoSuchKey) {
			t.Fatalf("the refused object is visible: %v", err)
		}
		for name := range objectFiles(t) {
			if !before[name] {
				t.Errorf("the refused write left %s on the host", name)
			}
		}
		settled(t)
		// A blob of unknown size is counted as it comes, and refused as
		// soon as it passes the quota, leaving nothing.
		h := est.hostedSiteOf(sc)
		err = h.Put(ctx, "s/zz/unknown-size", bytes.NewReader(huge), -1)
		if !errors.Is(err, site.ErrFull) || !strings.Contains(err.Error(), "quota") {
			t.Fatalf("unknown-size put past the quota: %v", err)
		}
		if _, err := h.Stat(ctx, "s/zz/unknown-size"); !errors.Is(err, site.ErrNotFound) {
			t.Fatalf("the refused blob: %v", err)
		}
		for name := range objectFiles(t) {
			if !before[name] {
				t.Errorf("the refused unknown-size write left %s on the host", name)
			}
		}
		settled(t)
		est.Engine.SetSiteDown("lux-hosted", 0)
	})

	t.Run("the host restarts mid-write", func(t *testing.T) {
		h := est.hostedSiteOf(sc)
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- h.Put(ctx, "s/yy/interrupted", pr, 64<<10) }()
		half := make([]byte, 32<<10)
		rand.Read(half)
		if _, err := pw.Write(half); err != nil {
			t.Fatal(err)
		}
		// Wait until the host is writing the blob, then cut the link and
		// forget the host's state, as a restart does.
		deadline := time.Now().Add(30 * time.Second)
		for {
			tmp := 0
			for name := range storeFiles(t, root) {
				if strings.HasPrefix(name, ".tmp") {
					tmp++
				}
			}
			if tmp > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the host never started writing the blob")
			}
			time.Sleep(10 * time.Millisecond)
		}
		proxy.cut()
		pw.CloseWithError(errors.New("the guest's reader, after the cut"))
		if err := <-done; err == nil {
			t.Fatal("a put cut in the middle succeeded")
		}
		restartHost(t)
		if _, err := h.Stat(ctx, "s/yy/interrupted"); !errors.Is(err, site.ErrNotFound) {
			t.Fatalf("the half-written blob: %v", err)
		}
		settled(t)
		// The guest writes it again, whole.
		whole := append(half, make([]byte, 32<<10)...)
		if err := h.Put(ctx, "s/yy/interrupted", bytes.NewReader(whole), int64(len(whole))); err != nil {
			t.Fatal(err)
		}
		rc, err := h.Get(ctx, "s/yy/interrupted", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, whole) {
			t.Fatalf("read back %d bytes, wrote %d", len(got), len(whole))
		}
		if err := h.Delete(ctx, "s/yy/interrupted"); err != nil {
			t.Fatal(err)
		}
		settled(t)
	})

	t.Run("quota lowered below what the guest holds", func(t *testing.T) {
		if _, err := lux.Host(admin(lux), HostRequest{Peer: "EST", Quota: "1KiB"}); err != nil {
			t.Fatal(err)
		}
		if r := settled(t); r.Quota != 1<<10 || r.SiteBytes <= r.Quota {
			t.Fatalf("host ls after lowering the quota: %+v", r)
		}
		// Everything stays readable; new writes, however small, are
		// refused; deletes still work.
		if got, err := get("2026/census.bin"); err != nil || !bytes.Equal(got, large) {
			t.Fatalf("read after the quota was lowered: %v", err)
		}
		h := est.hostedSiteOf(sc)
		if err := h.Put(ctx, "s/xx/tiny", bytes.NewReader([]byte("x")), 1); !errors.Is(err, site.ErrFull) {
			t.Fatalf("a write under a quota already passed: %v", err)
		}
		if err := h.Put(ctx, "s/xx/tiny", bytes.NewReader(nil), 0); !errors.Is(err, site.ErrFull) {
			t.Fatalf("an empty write under a quota already passed: %v", err)
		}
		if _, err := lux.Host(admin(lux), HostRequest{Peer: "EST", Quota: "600KiB"}); err != nil {
			t.Fatal(err)
		}
		est.Engine.SetSiteDown("lux-hosted", 0)
	})

	t.Run("a peer that is not hosted is refused", func(t *testing.T) {
		// FIN and LUX trust each other, but LUX hosts nothing of FIN's.
		err := fin.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "lux-hosted"}, Driver: "peer", Peer: "LUX"})
		if err == nil || !strings.Contains(err.Error(), "does not host this node") {
			t.Fatalf("FIN adding a site on LUX: %v", err)
		}
		// Speaking the protocol directly changes nothing either: every
		// request is refused, and no store of FIN's appears.
		h := fin.hostedSiteOf(SiteConfig{Descriptor: site.Descriptor{ID: "sneak"}, Peer: lux.Config.Node.ID})
		var ue *site.UnavailableError
		if err := h.Put(ctx, "s/aa/x", bytes.NewReader([]byte("x")), 1); !errors.As(err, &ue) {
			t.Fatalf("FIN's put: %v", err)
		}
		if _, err := h.Get(ctx, site.MarkerBlob, 0, -1); !errors.As(err, &ue) {
			t.Fatalf("FIN's get: %v", err)
		}
		if err := h.List(ctx, "", func(site.Info) error { return nil }); !errors.As(err, &ue) {
			t.Fatalf("FIN's list: %v", err)
		}
		if err := h.Delete(ctx, site.MarkerBlob); !errors.As(err, &ue) {
			t.Fatalf("FIN's delete: %v", err)
		}
		if _, err := h.Stat(ctx, site.MarkerBlob); !errors.As(err, &ue) {
			t.Fatalf("FIN's stat: %v", err)
		}
		if _, err := h.Usage(ctx); !errors.As(err, &ue) {
			t.Fatalf("FIN's usage: %v", err)
		}
		if _, err := os.Stat(filepath.Join(hostDir, fin.Config.Node.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a store for FIN: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, filepath.FromSlash(site.MarkerBlob))); markerVerdict(est.Keys(), estID, "lux-hosted", b) != "" {
			t.Fatal("EST's marker changed")
		}
	})

	t.Run("a store that vanished is not recreated", func(t *testing.T) {
		aside := root + ".unmounted"
		if err := os.Rename(root, aside); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(aside, root)
		restartHost(t)
		h := est.hostedSiteOf(sc)
		if _, err := h.Stat(ctx, site.MarkerBlob); !errors.Is(err, site.ErrUnavailable) {
			t.Fatalf("stat on a vanished store: %v", err)
		}
		if err := h.Put(ctx, "s/aa/x", bytes.NewReader([]byte("x")), 1); !errors.Is(err, site.ErrUnavailable) {
			t.Fatalf("put on a vanished store: %v", err)
		}
		if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the store was recreated: %v", err)
		}
		rows, err := lux.HostUsage(ctx)
		if err != nil || len(rows) != 1 || rows[0].Unavailable != 1 {
			t.Fatalf("host ls with the store gone: %+v %v", rows, err)
		}
	})

	t.Run("host rm keeps a guest's data", func(t *testing.T) {
		if err := lux.Unhost(admin(lux), "EST"); err == nil || !strings.Contains(err.Error(), "they are its data") {
			t.Fatalf("host rm of a guest holding data: %v", err)
		}
		if _, ok := lux.guest(estID); !ok {
			t.Fatal("the guest went")
		}
	})
}

// TestHostedSiteConformance: the hosted-site driver, over a real peer link
// to a real host, passes the conformance suite every site driver passes.
func TestHostedSiteConformance(t *testing.T) {
	h := newHostingPair(t, "1GiB")
	lux, root := h.lux, h.root
	sitetest.Run(t, func(t *testing.T) site.Site {
		// Empty the store between cases, as a fresh site is.
		for _, top := range site.TopDirs() {
			ents, _ := os.ReadDir(filepath.Join(root, top))
			for _, e := range ents {
				os.RemoveAll(filepath.Join(root, top, e.Name()))
			}
		}
		files, _ := os.ReadDir(root)
		for _, f := range files {
			if !f.IsDir() {
				os.Remove(filepath.Join(root, f.Name()))
			}
		}
		lux.host.mu.Lock()
		lux.host.stores = nil
		lux.host.mu.Unlock()
		return h.site()
	})
}
