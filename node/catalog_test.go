package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/catalog"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

// newCatalogFixture is an admin fixture (a node with custodians) with
// principals for the catalogue: a cleared operator (curator), readers of
// EST cleared to RESTRICTED, and a FRA principal cleared to SECRET.
func newCatalogFixture(t *testing.T) *adminFixture {
	t.Helper()
	return newAdminFixture(t, func(c *Config) {
		c.Principals = append(c.Principals,
			access.Principal{Name: "curator", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"operator"}},
			access.Principal{Name: "reader", Nation: "EST", Clearances: map[string]string{"NATO": "RESTRICTED"}, Roles: []string{"reader"}},
			access.Principal{Name: "spy", Nation: "FRA", Clearances: map[string]string{"NATO": "SECRET"}},
		)
		for _, p := range []string{"curator", "reader", "spy"} {
			c.S3.Credentials = append(c.S3.Credentials, CredentialConfig{Principal: p, AccessKey: "AK" + strings.ToUpper(p), SecretKey: "secret-of-" + p})
		}
	})
}

func datasetIDs(doc catalog.Document) []string {
	var out []string
	for _, d := range doc.Datasets {
		out = append(out, d.Identifier)
	}
	return out
}

// describeApproved describes a dataset as the curator and, if custodians
// must approve, has alice and bob approve.
func describeApproved(t *testing.T, cn *custodyNode, q catalog.Describe) {
	t.Helper()
	_, _, err := cn.n.DescribeDataset(cn.n.As(t.Context(), "curator"), q)
	var pe *vault.PendingError
	if errors.As(err, &pe) {
		cn.decide(t, pe.RequestID, "alice", true)
		if _, err := cn.decide(t, pe.RequestID, "bob", true); err != nil {
			t.Fatalf("approving the description of %s: %v", q.Dataset, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("describe %s: %v", q.Dataset, err)
	}
}

func ptr[T any](v T) *T { return &v }

// logEvents reads the node's whole audit log.
func logEvents(t *testing.T, n *Node) []audit.Event {
	t.Helper()
	var evs []audit.Event
	if err := n.Audit().Events(t.Context(), 0, func(_ uint64, e audit.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestDescribeDatasetAuthorisation: through the real admin API, only an
// operator cleared for the label describes a dataset; a writer, a reader,
// an auditor, another nation's principal, an operator not cleared for the
// label and an unsigned client change nothing. A description released to
// another nation waits for two custodians.
func TestDescribeDatasetAuthorisation(t *testing.T) {
	f := newCatalogFixture(t)
	n := f.cn.n
	body := map[string]any{"dataset": "registry/2026/", "title": "Population register", "label": "NATO RESTRICTED", "keywords": []string{"population"}}
	for _, who := range []string{"clerk", "reader", "aud", "spy", "wrong"} {
		before := nodeState(t, n)
		var r adminResp
		if who == "wrong" {
			req, _ := http.NewRequest("POST", f.srv.URL+"/_embassy/v1/datasets", strings.NewReader(`{"dataset": "registry"}`))
			r = f.send(t, req)
		} else {
			r = f.op(t, "POST", "/_embassy/v1/datasets", who, body)
		}
		if r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Errorf("describe as %s: %d %s, want a refusal", who, r.status, r.body)
		}
		if after := nodeState(t, n); after != before {
			t.Errorf("describe as %s changed the node", who)
		}
	}
	// An operator without a clearance may not label what it could not
	// read; the refusal is on the audit log.
	before := nodeState(t, n)
	if r := f.op(t, "POST", "/_embassy/v1/datasets", "ops", body); r.status != http.StatusForbidden || !strings.Contains(r.body, "denied") {
		t.Errorf("describe by an uncleared operator: %d %s", r.status, r.body)
	}
	if nodeState(t, n) != before {
		t.Error("a refused describe changed the node")
	}
	// The cleared operator describes it.
	r := f.op(t, "POST", "/_embassy/v1/datasets", "curator", body)
	if r.status != 200 {
		t.Fatalf("describe as curator: %d %s", r.status, r.body)
	}
	if i := n.conf().Catalog.Find("registry", "2026/"); i < 0 || n.conf().Catalog.Datasets[i].Title != "Population register" {
		t.Fatalf("the description is not in force: %+v", n.conf().Catalog)
	}
	// Described again, the fields given change and the others stay.
	if r := f.op(t, "POST", "/_embassy/v1/datasets", "curator", map[string]any{"dataset": "registry/2026/", "description": "Monthly extracts."}); r.status != 200 {
		t.Fatalf("describe again: %d %s", r.status, r.body)
	}
	d := n.conf().Catalog.Datasets[n.conf().Catalog.Find("registry", "2026/")]
	if d.Description != "Monthly extracts." || d.Title != "Population register" || !slices.Equal(d.Keywords, []string{"population"}) || d.Modified.Before(d.Issued) {
		t.Errorf("after a second describe: %+v", d)
	}
	// Releasing a description to LUX takes two custodians.
	r = f.op(t, "POST", "/_embassy/v1/datasets", "curator", map[string]any{"dataset": "registry/shared/", "title": "Shared", "label": "NATO RESTRICTED//REL TO EST, LUX"})
	if r.status != http.StatusConflict || !strings.Contains(r.body, "approval_required") {
		t.Errorf("a description released to LUX: %d %s", r.status, r.body)
	}
	if n.conf().Catalog.Find("registry", "shared/") >= 0 {
		t.Error("a description released to LUX took effect without custodians")
	}
	// Bad input is named.
	for _, c := range []struct {
		body   any
		status int
		want   string
	}{
		{`{"dataset": "registry", "bogus": 1}`, 400, "bogus"},
		{map[string]any{"dataset": "nosuch", "title": "x", "label": "NATO UNCLASSIFIED"}, 404, "nosuch"},
		{map[string]any{"dataset": "registry/x", "title": "x"}, 400, "label"},
		{map[string]any{"dataset": "registry/x", "title": "x", "label": "NATO UNCLASSIFIED", "temporal": "2025/2020"}, 400, "the start is after the end"},
		{map[string]any{"dataset": "registry/x", "title": "x", "label": "NATO UNCLASSIFIED", "themes": []string{"not an IRI"}}, 400, "theme"},
	} {
		if r := f.op(t, "POST", "/_embassy/v1/datasets", "curator", c.body); r.status != c.status || !strings.Contains(r.body, c.want) {
			t.Errorf("describe %v: %d %s, want %d with %q", c.body, r.status, r.body, c.status, c.want)
		}
	}
	// Removal: refused to others, not found named, done by the curator.
	before = nodeState(t, n)
	if r := f.op(t, "DELETE", "/_embassy/v1/datasets?dataset=registry/2026/", "clerk", nil); r.status != http.StatusForbidden {
		t.Errorf("remove as clerk: %d %s", r.status, r.body)
	}
	if nodeState(t, n) != before {
		t.Error("a refused removal changed the node")
	}
	if r := f.op(t, "DELETE", "/_embassy/v1/datasets?dataset=registry/nosuch/", "curator", nil); r.status != 404 {
		t.Errorf("remove an unknown description: %d %s", r.status, r.body)
	}
	if r := f.op(t, "DELETE", "/_embassy/v1/datasets?dataset=registry/2026/", "curator", nil); r.status != 200 {
		t.Errorf("remove: %d %s", r.status, r.body)
	}
	if n.conf().Catalog.Find("registry", "2026/") >= 0 {
		t.Error("the description was not removed")
	}
	// Each describe and removal is on the audit log with who did it, the
	// refused one too.
	evs := logEvents(t, n)
	var seen []string
	for _, e := range evs {
		if e.Kind == KindDatasetDescribe || e.Kind == KindDatasetRemove {
			seen = append(seen, e.Kind+" "+e.Actor+" "+e.Detail["dataset"]+" "+strings.SplitN(e.Outcome, ":", 2)[0])
		}
	}
	for _, want := range []string{
		"dataset.describe ops registry/2026/ refused",
		"dataset.describe curator registry/2026/ ",
		"dataset.describe curator registry/shared/ pending",
		"dataset.remove curator registry/2026/ ",
	} {
		if !slices.Contains(seen, want) {
			t.Errorf("audit log lacks %q; it has %q", want, seen)
		}
	}
}

// TestCatalogRoute: GET /_embassy/v1/catalog answers JSON-LD listing only
// what the caller may read: a label without REL TO FRA is invisible to a
// FRA principal, one above a reader's clearance to that reader; an auditor
// (no reader role) and an unsigned client are refused.
func TestCatalogRoute(t *testing.T) {
	f := newCatalogFixture(t)
	for _, q := range []catalog.Describe{
		{Dataset: "registry/2026/", Title: ptr("Population register"), Label: ptr("NATO RESTRICTED")},
		{Dataset: "registry/lux/", Title: ptr("Shared with Luxembourg"), Label: ptr("NATO RESTRICTED//REL TO EST, LUX")},
		{Dataset: "registry/fra/", Title: ptr("Shared with France"), Label: ptr("NATO UNCLASSIFIED//REL TO FRA")},
		{Dataset: "registry/secret/", Title: ptr("Secret annex"), Label: ptr("NATO SECRET//REL TO LUX")},
	} {
		describeApproved(t, f.cn, q)
	}
	get := func(who, query string) (adminResp, []string) {
		t.Helper()
		r := f.op(t, "GET", "/_embassy/v1/catalog"+query, who, nil)
		if r.status != 200 {
			return r, nil
		}
		if ct := r.header.Get("Content-Type"); ct != catalog.MediaType {
			t.Errorf("Content-Type %q", ct)
		}
		doc, err := catalog.ParseDocument([]byte(r.body))
		if err != nil {
			t.Fatalf("%s's catalogue: %v\n%s", who, err, r.body)
		}
		return r, datasetIDs(doc)
	}
	for _, c := range []struct {
		who, query string
		want       []string
	}{
		{"curator", "", []string{"registry/2026/", "registry/lux/", "registry/fra/", "registry/secret/"}},
		{"reader", "", []string{"registry/2026/", "registry/lux/", "registry/fra/"}},
		{"spy", "", []string{"registry/fra/"}},
		{"curator", "?q=luxembourg", []string{"registry/lux/"}},
		{"curator", "?q=label:secret&q=annex", []string{"registry/secret/"}},
		{"reader", "?q=annex", nil},
	} {
		r, got := get(c.who, c.query)
		if r.status != 200 || !slices.Equal(got, c.want) {
			t.Errorf("%s%s: %d %q, want %q", c.who, c.query, r.status, got, c.want)
		}
		if c.who == "spy" && (strings.Contains(r.body, "Population") || strings.Contains(r.body, "Secret")) {
			t.Errorf("the FRA principal's catalogue mentions what is not released to FRA:\n%s", r.body)
		}
	}
	for _, who := range []string{"aud"} {
		if r, _ := get(who, ""); r.status != http.StatusForbidden {
			t.Errorf("catalogue as %s: %d %s", who, r.status, r.body)
		}
	}
	if r := f.anon(t, "GET", "/_embassy/v1/catalog", nil); r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
		t.Errorf("unsigned catalogue: %d %s", r.status, r.body)
	}
	if r, _ := get("curator", "?q=keyword:"); r.status != 400 {
		t.Errorf("a malformed search: %d %s", r.status, r.body)
	}
}

// TestPeerCatalog: over the peer link (mutual TLS pinned to the cards,
// signed requests), LUX's node sees in EST's catalogue only what EST
// releases to LUX and grants it: not a label without REL TO LUX, not a
// dataset outside the grant, not one above the grant's ceiling; a LUX
// principal sees of that only what it may read; FIN, whom EST does not
// trust, gets nothing; a revoked grant ends it; and a peer answering more
// than asked, or something else, is not believed.
func TestPeerCatalog(t *testing.T) {
	est, lux, fin := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	trust(t, est, lux)
	trust(t, lux, est)
	trust(t, fin, est)
	c := *est.Config
	c.Catalog.Datasets = nil
	at := time.Now()
	for _, q := range []catalog.Describe{
		{Dataset: "registry/shared/", Title: ptr("Shared with Luxembourg"), Keywords: ptr([]string{"population"}), Label: ptr("NATO RESTRICTED//REL TO EST, LUX")},
		{Dataset: "registry/shared/secret/", Title: ptr("Secret annex"), Label: ptr("NATO SECRET//REL TO LUX")},
		{Dataset: "registry/shared/national/", Title: ptr("For Estonians"), Label: ptr("NATO RESTRICTED")},
		{Dataset: "registry/other/", Title: ptr("Released, not granted"), Label: ptr("NATO RESTRICTED//REL TO LUX")},
		{Dataset: "registry/fin/", Title: ptr("Shared with Finland"), Label: ptr("NATO RESTRICTED//REL TO FIN")},
	} {
		d, err := q.Apply(est.Labels, catalog.Dataset{}, at)
		if err != nil {
			t.Fatal(err)
		}
		c.Catalog.Datasets = append(c.Catalog.Datasets, d)
	}
	if err := est.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	g, err := est.Grant(est.As(t.Context(), "admin"), GrantRequest{Scope: "registry/shared/", To: "LUX", Level: "catalog", Ceiling: "NATO RESTRICTED", Expires: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	search := func(n *allyNode, principal, peer string, terms ...string) []PeerCatalog {
		t.Helper()
		q, err := catalog.ParseQuery(terms)
		if err != nil {
			t.Fatal(err)
		}
		res, err := n.SearchPeers(t.Context(), n.Principal(principal), peer, q)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	ids := func(res []PeerCatalog) []string {
		t.Helper()
		if len(res) != 1 {
			t.Fatalf("%d peers answered, want 1: %+v", len(res), res)
		}
		if res[0].Error != "" {
			return []string{"error: " + res[0].Error}
		}
		return datasetIDs(*res[0].Catalog)
	}
	for _, c := range []struct {
		principal string
		terms     []string
		want      []string
	}{
		{"officer", nil, []string{"registry/shared/"}},
		{"clerk", nil, []string{"registry/shared/"}},
		{"intern", nil, nil}, // no clearance: reads nothing, sees nothing
		{"officer", []string{"population"}, []string{"registry/shared/"}},
		{"officer", []string{"annex"}, nil},
	} {
		if got := ids(search(lux, c.principal, "EST", c.terms...)); !slices.Equal(got, c.want) {
			t.Errorf("LUX %s searching EST's catalogue for %q: %q, want %q", c.principal, c.terms, got, c.want)
		}
	}
	// By node id too; an unknown peer is named.
	if got := ids(search(lux, "officer", est.Config.Node.ID)); !slices.Equal(got, []string{"registry/shared/"}) {
		t.Errorf("by node id: %q", got)
	}
	if _, err := lux.SearchPeers(t.Context(), lux.Principal("officer"), "USA", catalog.Query{}); !errors.Is(err, ErrNoPeer) {
		t.Errorf("an unknown peer: %v", err)
	}
	// FIN trusts EST, EST does not trust FIN: refused at the handshake.
	if got := ids(search(fin, "officer", "EST")); len(got) != 1 || !strings.HasPrefix(got[0], "error: ") {
		t.Errorf("FIN searching EST: %q, want a refusal", got)
	}
	// Each answer is on EST's log, to whom and how many entries.
	served := 0
	for _, e := range logEvents(t, est.Node) {
		if e.Kind == KindCatalogServe && e.Actor == "peer:LUX" {
			served++
		}
	}
	if served < 6 {
		t.Errorf("%d catalogue answers to LUX on EST's log, want at least 6", served)
	}
	// A revoked grant: the entry goes at once.
	if err := est.RevokeGrant(est.As(t.Context(), "admin"), g.ID); err != nil {
		t.Fatal(err)
	}
	if got := ids(search(lux, "officer", "EST")); got != nil {
		t.Errorf("after revocation: %q", got)
	}
	// A peer that answers more than was asked, or something that is not
	// a catalogue, is not believed.
	liar := func(ctx context.Context, endpoint string, in, out any) error {
		b, _ := est.CatalogForNation("EST", catalog.Query{}).Marshal()
		return json.Unmarshal(b, out)
	}
	q, _ := catalog.ParseQuery([]string{"luxembourg"})
	if doc, err := SearchPeerCatalog(t.Context(), liar, q); err != nil || !slices.Equal(datasetIDs(doc), []string{"registry/shared/"}) {
		t.Errorf("a peer answering everything: %q %v", datasetIDs(doc), err)
	}
	junk := func(ctx context.Context, endpoint string, in, out any) error {
		return json.Unmarshal([]byte(`{"@context": {"dcat": "http://example.org/"}, "@type": "dcat:Catalog"}`), out)
	}
	if _, err := SearchPeerCatalog(t.Context(), junk, catalog.Query{}); !errors.Is(err, catalog.ErrNotCatalog) {
		t.Errorf("a peer answering something else: %v", err)
	}
}

// TestCatalogForNation: the releasability filter alone (a grant narrows it
// further for a peer): a label without REL TO LUX is invisible to LUX.
func TestCatalogForNation(t *testing.T) {
	f := newCatalogFixture(t)
	n := f.cn.n
	for _, q := range []catalog.Describe{
		{Dataset: "registry/2026/", Title: ptr("Population register"), Label: ptr("NATO RESTRICTED")},
		{Dataset: "registry/lux/", Title: ptr("Shared with Luxembourg"), Label: ptr("NATO RESTRICTED//REL TO EST, LUX")},
		{Dataset: "registry/fin/", Title: ptr("Shared with Finland"), Label: ptr("NATO RESTRICTED//REL TO FIN")},
	} {
		describeApproved(t, f.cn, q)
	}
	for nation, want := range map[string][]string{
		"LUX": {"registry/lux/"},
		"FIN": {"registry/fin/"},
		"USA": nil,
		"EST": {"registry/2026/", "registry/lux/", "registry/fin/"},
	} {
		if got := datasetIDs(n.CatalogForNation(nation, catalog.Query{})); !slices.Equal(got, want) {
			t.Errorf("%s sees %q, want %q", nation, got, want)
		}
	}
}

// TestCatalogSurvivesRecover: dataset descriptions and the catalogue's own
// metadata are in the node descriptor, so a node recovered from one site
// and the custodians' shares serves the same catalogue.
func TestCatalogSurvivesRecover(t *testing.T) {
	f := newCatalogFixture(t)
	cn := f.cn
	describeApproved(t, cn, catalog.Describe{Dataset: "registry/lux/", Title: ptr("Shared with Luxembourg"), Keywords: ptr([]string{"population"}),
		Temporal: ptr("2026/.."), Label: ptr("NATO RESTRICTED//REL TO EST, LUX")})
	before, _ := cn.n.CatalogForNation("LUX", catalog.Query{}).Marshal()
	sitePath := cn.n.Config.Sites[4].Path
	shares := [][]byte{cn.share(t, "alice"), cn.share(t, "carol")}
	f.srv.Close()
	cn.n.Close()
	os.RemoveAll(cn.dir)
	from, err := dir.Open(sitePath)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := Recover(t.Context(), RecoverOptions{Dir: filepath.Join(t.TempDir(), "recovered"), From: from, Shares: shares})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	after, _ := r.CatalogForNation("LUX", catalog.Query{}).Marshal()
	if string(after) != string(before) || !strings.Contains(string(after), "Shared with Luxembourg") {
		t.Errorf("the catalogue after recovery:\n%s\nbefore:\n%s", after, before)
	}
}

// TestCatalogConfigChanges: which catalogue changes config edit (and so
// 'dataset describe') sends to the custodians.
func TestCatalogConfigChanges(t *testing.T) {
	base := func() *Config {
		c := validConfig()
		c.Vaults = []VaultConfig{{Name: "registry", Erasure: "4+2"}}
		c.Catalog.Datasets = []catalog.Dataset{{Vault: "registry", Prefix: "a/", Title: "A", Label: "NATO RESTRICTED//REL TO LUX"}}
		return c
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		gate Gate
	}{
		{"a description for the owner only", func(c *Config) {
			c.Catalog.Datasets = append(c.Catalog.Datasets, catalog.Dataset{Vault: "registry", Title: "B", Label: "NATO SECRET"})
		}, Free},
		{"a description released to the owner alone", func(c *Config) {
			c.Catalog.Datasets = append(c.Catalog.Datasets, catalog.Dataset{Vault: "registry", Title: "B", Label: "NATO SECRET//REL TO EST"})
		}, Free},
		{"a description released to FIN", func(c *Config) {
			c.Catalog.Datasets = append(c.Catalog.Datasets, catalog.Dataset{Vault: "registry", Title: "B", Label: "NATO SECRET//REL TO EST, FIN"})
		}, Custodians},
		{"released to more nations", func(c *Config) { c.Catalog.Datasets[0].Label = "NATO RESTRICTED//REL TO LUX, FIN" }, Custodians},
		{"released to fewer nations", func(c *Config) { c.Catalog.Datasets[0].Label = "NATO RESTRICTED" }, Free},
		{"a label lowered", func(c *Config) { c.Catalog.Datasets[0].Label = "NATO UNCLASSIFIED//REL TO LUX" }, Custodians},
		{"a label raised", func(c *Config) { c.Catalog.Datasets[0].Label = "NATO SECRET//REL TO LUX" }, Free},
		{"a title changed", func(c *Config) { c.Catalog.Datasets[0].Title = "AA" }, Free},
		{"keywords changed", func(c *Config) { c.Catalog.Datasets[0].Keywords = []string{"k"} }, Free},
		{"a description removed", func(c *Config) { c.Catalog.Datasets = nil }, Free},
		{"the catalogue's title", func(c *Config) { c.Catalog.Title = "Estonia's embassy" }, Free},
	} {
		next := base()
		c.edit(next)
		if err := next.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		chs := ConfigChanges(base(), next)
		if len(chs) == 0 {
			t.Errorf("%s: no change seen", c.name)
			continue
		}
		if chs[0].Gate != c.gate {
			t.Errorf("%s: %+v, want %s", c.name, chs, c.gate)
		}
	}
	// A hand-written description that does not validate is refused with
	// the field named.
	bad := base()
	bad.Catalog.Datasets[0].Label = ""
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "catalog.datasets[0] (registry/a/): label") {
		t.Errorf("a description without a label: %v", err)
	}
}

// TestCatalogOfARecreatedVault: descriptions of a vault deleted and made
// again under its name describe the old vault's data and are not shown.
func TestCatalogOfARecreatedVault(t *testing.T) {
	f := newCatalogFixture(t)
	n := f.cn.n
	describeApproved(t, f.cn, catalog.Describe{Dataset: "registry/2026/", Title: ptr("Population register"), Label: ptr("NATO RESTRICTED")})
	if got := datasetIDs(n.CatalogForNation("EST", catalog.Query{})); len(got) != 1 {
		t.Fatalf("before: %q", got)
	}
	// The vault as if deleted and created again later: a later creation
	// time (and a new incarnation).
	c := *n.Config
	c.Vaults = slices.Clone(c.Vaults)
	for i := range c.Vaults {
		if c.Vaults[i].Name == "registry" {
			c.Vaults[i].Created = c.Catalog.Datasets[0].Issued.Add(time.Hour)
		}
	}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	if got := datasetIDs(n.CatalogForNation("EST", catalog.Query{})); got != nil {
		t.Errorf("the description of the earlier vault is shown: %q", got)
	}
}
