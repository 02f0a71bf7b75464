package taxii_test

// The harness: a development node with a vault "intel" holding one
// collection "cti", principals of every role and a few nations, and its
// whole HTTP handler (S3, admin and TAXII on one listener) behind an
// httptest server on 127.0.0.1. Requests go through net/http as a TAXII
// client sends them.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
)

const collID = "3c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30"

// principals of the harness: name → (nation, node roles, intel roles,
// categories).
var harnessPrincipals = []access.Principal{
	{Name: "analyst", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"writer"}, Categories: map[string][]string{"TLP": {"RED"}}},
	{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "UNCLASSIFIED"}, Roles: []string{"writer"}},
	{Name: "reader", Nation: "EST", Clearances: map[string]string{"NATO": "UNCLASSIFIED"}, Roles: []string{"reader"}},
	{Name: "ops", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"operator"}, Categories: map[string][]string{"TLP": {"RED"}}},
	{Name: "aud", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"auditor"}},
	{Name: "lux", Nation: "LUX", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"reader"}, Categories: map[string][]string{"TLP": {"RED"}}},
	{Name: "fin", Nation: "FIN", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"reader"}},
	{Name: "usa", Nation: "USA", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"reader"}},
	{Name: "other", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, VaultRoles: map[string][]string{"other": {"writer"}}},
}

func secretOf(name string) string { return "secret-of-" + name + "-0123456789" }
func keyOf(name string) string    { return "AK" + strings.ToUpper(name) + "0000000000" }

type harness struct {
	t         testing.TB
	n         *node.Node
	dir       string
	srv       *httptest.Server
	url       string
	connState func(net.Conn, http.ConnState)

	mu     sync.Mutex
	failed []string
}

type harnessOptions struct {
	nation string
	edit   func(*node.Config)
	// connState, if set, is the server's http.Server.ConnState.
	connState func(net.Conn, http.ConnState)
}

func newHarness(t testing.TB, opts ...harnessOptions) *harness {
	t.Helper()
	var o harnessOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := node.InitDev(dir, node.DevOptions{Nation: o.nation}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, connState: o.connState}
	h.open()
	if err := h.n.AddVault(node.VaultConfig{Name: "intel", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.n.AddVault(node.VaultConfig{Name: "other", Erasure: "4+2"}); err != nil {
		t.Fatal(err)
	}
	c := *h.n.Config
	c.Principals = nil
	for _, p := range harnessPrincipals {
		if o.nation != "" && p.Nation == "EST" {
			p.Nation = o.nation
		}
		c.Principals = append(c.Principals, p)
		c.S3.Credentials = append(c.S3.Credentials, node.CredentialConfig{Principal: p.Name, AccessKey: keyOf(p.Name), SecretKey: secretOf(p.Name)})
	}
	c.TAXII.Collections = []taxii.CollectionConfig{{ID: collID, Alias: "cti", Title: "Incidents", Vault: "intel",
		Community: []string{"LUX", "FIN"}, Amber: []string{"LUX"}}}
	if o.edit != nil {
		o.edit(&c)
	}
	if err := h.n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	h.serve()
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, f := range h.failed {
			t.Errorf("server logged an error: %s", f)
		}
	})
	return h
}

func (h *harness) open() {
	n, err := node.Open(context.Background(), h.dir, slog.New(&errorRecorder{h: h}))
	if err != nil {
		h.t.Fatal(err)
	}
	h.n = n
	h.t.Cleanup(func() { n.Close() })
}

func (h *harness) serve() {
	h.srv = httptest.NewUnstartedServer(h.n.Handler())
	h.srv.Config.ConnState = h.connState
	h.srv.Start()
	h.t.Cleanup(h.srv.Close)
	h.url = h.srv.URL
}

// restart closes the node and opens it again (the same directory).
func (h *harness) restart(beforeOpen func()) {
	h.srv.Close()
	h.n.Close()
	if beforeOpen != nil {
		beforeOpen()
	}
	h.open()
	h.serve()
}

// errorRecorder keeps ERROR records, which fail the test.
type errorRecorder struct{ h *harness }

func (r *errorRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (r *errorRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	r.h.mu.Lock()
	r.h.failed = append(r.h.failed, b.String())
	r.h.mu.Unlock()
	return nil
}
func (r *errorRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *errorRecorder) WithGroup(string) slog.Handler      { return r }

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
}

// do sends a TAXII request as who ("" for no credentials).
func (h *harness) do(method, path, who string, body []byte, edit ...func(*http.Request)) resp {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Accept", taxii.MediaTAXII)
	if body != nil {
		req.Header.Set("Content-Type", taxii.MediaTAXII)
	}
	if who != "" {
		req.SetBasicAuth(keyOf(who), secretOf(who))
	}
	for _, e := range edit {
		e(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

const root = taxii.Prefix + taxii.APIRoot + "/"
const objectsPath = root + "collections/cti/objects/"

// post adds an envelope as who and returns the status.
func (h *harness) post(who string, env []byte) taxii.Status {
	h.t.Helper()
	r := h.do("POST", objectsPath, who, env)
	if r.status != http.StatusAccepted {
		h.t.Fatalf("POST as %s: %d %s", who, r.status, r.body)
	}
	var st taxii.Status
	r.json(h.t, &st)
	return st
}

type envelope struct {
	More    bool              `json:"more"`
	Next    string            `json:"next"`
	Objects []json.RawMessage `json:"objects"`
}

// ids returns the ids of the objects of an envelope, in order.
func (e envelope) ids() []string {
	var out []string
	for _, o := range e.Objects {
		var x struct {
			ID string `json:"id"`
		}
		json.Unmarshal(o, &x)
		out = append(out, x.ID)
	}
	return out
}

// get lists objects as who with a query.
func (h *harness) get(who, query string) (envelope, resp) {
	h.t.Helper()
	path := objectsPath
	if query != "" {
		path += "?" + query
	}
	r := h.do("GET", path, who, nil)
	var env envelope
	if r.status == http.StatusOK {
		r.json(h.t, &env)
	}
	return env, r
}

func readIncident(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/incident.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// objectsOf builds an envelope of objects.
func objectsOf(objs ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"objects": objs})
	return b
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}
