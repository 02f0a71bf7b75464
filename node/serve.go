package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

// s3Vaults adapts a Node to s3.Vaults.
type s3Vaults struct{ n *Node }

func (a s3Vaults) CreateVault(ctx context.Context, name string, o s3.VaultOptions) error {
	// A vault created over S3 belongs to the node's nation: only its
	// nationals may create one.
	if p, ok := vault.PrincipalFrom(ctx); !ok || p.Nation != a.n.conf().Node.Nation {
		return &access.DeniedError{Principal: p.Name, Reason: access.ReasonNation, Detail: "creating a vault on this node needs a national of " + a.n.conf().Node.Nation}
	}
	d := a.n.conf().VaultDefaults
	vc := VaultConfig{Name: name, Erasure: cmpOr(o.Erasure, cmpOr(d.Erasure, "4+2")), Survive: o.Survive, OutsideHome: o.OutsideHome || d.OutsideHome}
	if o.Erasure == "" && o.Survive == "" {
		vc.Survive = d.Survive
	}
	if o.ObjectLock {
		vc.ObjectLock = &ObjectLockConfig{}
	}
	err := a.n.AddVault(vc)
	if errors.Is(err, ErrVaultExists) {
		return fmt.Errorf("%w: %v", s3.ErrVaultExists, err)
	}
	return err
}

func (a s3Vaults) DeleteVault(ctx context.Context, name string) error {
	err := a.n.DeleteVault(ctx, name)
	if errors.Is(err, ErrVaultNotEmpty) {
		return fmt.Errorf("%w: %v", s3.ErrVaultNotEmpty, err)
	}
	return err
}

func vaultInfo(v VaultConfig) s3.VaultInfo {
	i := s3.VaultInfo{Name: v.Name, Created: v.Created}
	if l := v.ObjectLock; l != nil {
		i.Lock = s3.LockConfig{Enabled: true, Mode: l.Mode, Days: l.Days, Years: l.Years}
	}
	return i
}

func (a s3Vaults) VaultInfo(name string) (s3.VaultInfo, bool) {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	for _, v := range a.n.conf().Vaults {
		if v.Name == name {
			return vaultInfo(v), true
		}
	}
	return s3.VaultInfo{}, false
}

func (a s3Vaults) ListVaults() []s3.VaultInfo {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	out := make([]s3.VaultInfo, 0, len(a.n.conf().Vaults))
	for _, v := range a.n.conf().Vaults {
		out = append(out, vaultInfo(v))
	}
	return out
}

func (a s3Vaults) SetObjectLock(ctx context.Context, name string, c s3.LockConfig) error {
	return a.n.SetObjectLock(ctx, name, ObjectLockConfig{Mode: c.Mode, Days: c.Days, Years: c.Years})
}

// S3Handler returns the node's S3 front end.
func (n *Node) S3Handler(extra ...s3.Credential) (http.Handler, error) {
	creds := append([]s3.Credential(nil), extra...)
	for _, c := range n.conf().S3.Credentials {
		creds = append(creds, s3.Credential{AccessKey: c.AccessKey, SecretKey: c.SecretKey, Principal: c.Principal})
	}
	if len(creds) == 0 {
		return nil, errors.New("no S3 credentials configured (s3.credentials in node.yaml, or serve --access-key with EMBASSY_SECRET_KEY_FILE)")
	}
	return s3.New(s3.Config{Engine: n.Engine, Vaults: s3Vaults{n}, Credentials: creds, Region: n.conf().S3.Region, Domain: n.conf().S3.Domain, Logger: n.Log,
		Principal: n.Principal, Tokens: nodeTokens{n}, ListScan: n.conf().S3.ListScan, Observe: n.observeS3, Allied: alliedVaults{n}})
}

// nodeTokens seals listing tokens with the node's current keyring.
type nodeTokens struct{ n *Node }

func (t nodeTokens) SealToken(p []byte) ([]byte, error) { return t.n.Keys().SealToken(p) }
func (t nodeTokens) OpenToken(p []byte) ([]byte, error) { return t.n.Keys().OpenToken(p) }

// ServeOptions configure Serve.
type ServeOptions struct {
	// Address overrides s3.address.
	Address string
	// Credentials are added to those in the configuration.
	Credentials []s3.Credential
	// Limits bound slow and unauthenticated clients (default
	// httpguard.Defaults).
	Limits httpguard.Limits
	// Ready, if set, is called with the bound address once listening.
	Ready func(addr string, tls bool)
}

// Serve runs the S3 front end until ctx is done, then shuts down gracefully.
func (n *Node) Serve(ctx context.Context, o ServeOptions) error {
	addr := cmpOr(o.Address, cmpOr(n.conf().S3.Address, "127.0.0.1:9000"))
	useTLS := n.conf().S3.TLSCert != ""
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if !useTLS && !n.conf().S3.AllowInsecure && !isLoopback(host) {
		return fmt.Errorf("refusing to listen on %s without TLS: set s3.tls_cert and s3.tls_key, or s3.allow_insecure if something else encrypts the traffic", addr)
	}
	if n.Custody == nil {
		// Fail now, not on the first request, if credentials are missing.
		if _, err := n.S3Handler(o.Credentials...); err != nil {
			return err
		}
	}
	if _, err := n.metricsToken(); err != nil {
		return fmt.Errorf("metrics.token_file: %w", err)
	}
	// Every request is held to a minimum body rate, and requests not yet
	// authenticated are capped (internal/httpguard).
	h := httpguard.Wrap(n.Handler(o.Credentials...), o.Limits)
	srv := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    s3.MaxHeaderBytes,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(n.path(n.conf().S3.TLSCert), n.path(n.conf().S3.TLSKey))
		if err != nil {
			return fmt.Errorf("s3 TLS: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The peer listener (alliance.listen) is bound now, so that it is
	// listening when Ready is called; it serves once the node is unsealed.
	var pln net.Listener
	if pa := n.conf().Alliance.Listen; pa != "" {
		if pln, err = net.Listen("tcp", pa); err != nil {
			ln.Close()
			return fmt.Errorf("alliance.listen: %w", err)
		}
	}
	// Read before Ready: from then on the configuration can change
	// (through the admin API) while this goroutine goes on.
	ma := n.conf().Metrics.Address
	if o.Ready != nil {
		o.Ready(ln.Addr().String(), useTLS)
	}
	n.Log.InfoContext(ctx, "serving S3", "address", ln.Addr().String(), "tls", useTLS)
	// Serve returns only when everything it started has stopped: the
	// background loops and the servers' handlers write into the node
	// directory (a peer witness round keeps the cosignature it got in
	// audit/cosigned.json), and the caller closes the node, or removes
	// its directory, once Serve returned. Handlers still running when a
	// server's shutdown gives up (30 s, the peer link's 5 s) are the
	// exception.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	// One send at most from each server.
	errc := make(chan error, 3)
	var msrv *http.Server
	if ma != "" {
		mln, err := net.Listen("tcp", ma)
		if err != nil {
			ln.Close()
			if pln != nil {
				pln.Close()
			}
			return fmt.Errorf("metrics.address: %w", err)
		}
		admin := &adminServer{n: n, metricsOpen: true}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", n.metrics)
		mux.Handle("GET "+AdminPrefix+"metrics", admin)
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, BaseContext: func(net.Listener) context.Context { return ctx }}
		n.Log.InfoContext(ctx, "serving metrics (loopback only, no token)", "address", mln.Addr().String())
		wg.Go(func() {
			if err := msrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}
	if pln != nil {
		wg.Go(func() {
			// A sealed node holds no peer keys: it serves peers once
			// unsealed.
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for n.Ready() != nil {
				select {
				case <-ctx.Done():
					pln.Close()
					return
				case <-t.C:
				}
			}
			n.Log.InfoContext(ctx, "serving peers (mutual TLS, pinned to the peer cards)", "address", pln.Addr().String())
			wg.Go(func() { n.checkHostedStores(ctx) })
			if err := n.ServePeers(ctx, pln); err != nil {
				errc <- fmt.Errorf("peer listener: %w", err)
			}
		})
	}
	loops := append([]func(context.Context){n.runScrubs, n.runIndexMigration, n.runTAXIISync, n.runReplication, n.runPeerWitnessing}, n.serveLoops...)
	for _, loop := range loops {
		wg.Go(func() { loop(ctx) })
	}
	wg.Go(func() {
		if useTLS {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	})
	err = nil
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	stop()
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if msrv != nil {
		msrv.Shutdown(shut)
	}
	if serr := srv.Shutdown(shut); err == nil {
		err = serr
	}
	wg.Wait()
	return err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DevOptions configure a development node.
type DevOptions struct {
	Nation string // default EST
}

// devSites is the embedded default: six local sites in three
// jurisdictions on two providers.
var devSites = []site.Descriptor{
	{ID: "est-1", Jurisdiction: "EST", Provider: "gov-dc", Control: "EST", Operator: "dev", Accredited: "NATO COSMIC TOP SECRET"},
	{ID: "est-2", Jurisdiction: "EST", Provider: "cloudco", Control: "USA", Operator: "dev", Accredited: "NATO COSMIC TOP SECRET"},
	{ID: "lux-1", Jurisdiction: "LUX", Provider: "gov-dc", Control: "EST", Operator: "dev", Accredited: "NATO COSMIC TOP SECRET"},
	{ID: "lux-2", Jurisdiction: "LUX", Provider: "cloudco", Control: "USA", Operator: "dev", Accredited: "NATO COSMIC TOP SECRET"},
	{ID: "fin-1", Jurisdiction: "FIN", Provider: "gov-dc", Control: "EST", Operator: "dev", Accredited: "NATO COSMIC TOP SECRET"},
	{ID: "fin-2", Jurisdiction: "FIN", Provider: "cloudco", Control: "USA", Operator: "dev", Accredited: "NATO COSMIC TOP SECRET"},
}

// InitDev creates, if dirPath holds no node yet, a development node: six
// local directory sites in three jurisdictions on two providers, vaults
// defaulting to 4+2 surviving the loss of any one jurisdiction, and the
// root key in a local file (auto-unsealed). It reports whether it created
// the node.
func InitDev(dirPath string, o DevOptions) (bool, error) {
	if _, err := os.Stat(filepath.Join(dirPath, ConfigFile)); err == nil {
		return false, nil
	}
	c, err := Init(dirPath, InitOptions{Nation: cmpOr(o.Nation, "EST")})
	if err != nil {
		return false, err
	}
	keys, err := localKeysWithIdentity(dirPath)
	if err != nil {
		return false, err
	}
	// The sites live under the node directory, each with its marker.
	for _, d := range devSites {
		c.Sites = append(c.Sites, SiteConfig{Descriptor: d, Driver: "dir", Path: filepath.Join("sites", d.ID)})
		ds, err := dir.New(filepath.Join(dirPath, "sites", d.ID))
		if err != nil {
			return false, err
		}
		mk, err := encodeMarker(keys, c.Node.ID, d.ID)
		if err != nil {
			return false, err
		}
		if err := ds.Put(context.Background(), site.MarkerBlob, bytes.NewReader(mk), int64(len(mk))); err != nil {
			return false, err
		}
	}
	c.VaultDefaults = VaultDefaults{Erasure: "4+2", Survive: "jurisdictions=1"}
	c.Node.Dev = true
	return true, SaveConfig(dirPath, c)
}

// RandomCredential returns a fresh access key and secret.
func RandomCredential(principal string) s3.Credential {
	var a [10]byte
	var s [30]byte
	rand.Read(a[:])
	rand.Read(s[:])
	ak := strings.ToUpper(base64.RawStdEncoding.EncodeToString(a[:]))
	ak = strings.NewReplacer("+", "X", "/", "Y").Replace(ak)
	sk := strings.NewReplacer("+", "x", "/", "y").Replace(base64.RawStdEncoding.EncodeToString(s[:]))
	return s3.Credential{AccessKey: "EMB" + ak, SecretKey: sk, Principal: principal}
}
