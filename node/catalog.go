package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/catalog"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/vault"
)

// The node's data catalogue (docs/alliance.md, "Find what exists"): the
// dataset descriptions live in node.yaml's catalog section, so they are
// authenticated with it, carried by the node descriptor to every site and
// brought back by 'embassy recover'. Each change goes through ProposeConfig
// (ConfigChanges says which need custodians) acting as the principal who
// asked, who must hold the operator role on the vault and be cleared for
// the description's label (and for the label it replaces); it is on the
// audit log as dataset.describe or dataset.remove, refusals too. The
// catalogue is rendered by package catalog as DCAT-AP 3 JSON-LD, filtered
// for whoever asks: a principal sees what it may read, a peer node what is
// released to its nation.

// Audit log event kinds of the catalogue.
const (
	KindDatasetDescribe = "dataset.describe"
	KindDatasetRemove   = "dataset.remove"
)

// ErrNoSuchDataset: no description of that VAULT[/PREFIX].
var ErrNoSuchDataset = errors.New("no such dataset description")

// ErrNoCatalogLabel: a new description needs a label and its vault has no
// default label.
var ErrNoCatalogLabel = errors.New("a dataset description needs a label")

// vaultConf returns the configuration of vault name in force.
func (n *Node) vaultConf(name string) (VaultConfig, bool) {
	c := n.conf()
	i := slices.IndexFunc(c.Vaults, func(v VaultConfig) bool { return v.Name == name })
	if i < 0 {
		return VaultConfig{}, false
	}
	return c.Vaults[i], true
}

// vaultOwner is the nation owning vault v.
func (n *Node) vaultOwner(v VaultConfig) string {
	return cmpOr(v.Owner, n.conf().Node.Nation)
}

// DescribeDataset creates or changes the description of a dataset, acting
// as ctx's principal: q's fields replace the description's (catalog.Describe).
// A new description without a label takes its vault's default label. It
// returns the description as it stands, and what the edit did: applied, or
// waiting for custodians (the error is then a *vault.PendingError).
func (n *Node) DescribeDataset(ctx context.Context, q catalog.Describe) (catalog.Dataset, EditResult, error) {
	d, res, err := n.describeDataset(ctx, q)
	n.recordDataset(ctx, KindDatasetDescribe, q.Dataset, d.Label, res, err)
	return d, res, err
}

func (n *Node) describeDataset(ctx context.Context, q catalog.Describe) (catalog.Dataset, EditResult, error) {
	if err := n.Ready(); err != nil {
		return catalog.Dataset{}, EditResult{}, err
	}
	vaultName, prefix, err := catalog.ParseRef(q.Dataset)
	if err != nil {
		return catalog.Dataset{}, EditResult{}, err
	}
	vc, ok := n.vaultConf(vaultName)
	if !ok {
		return catalog.Dataset{}, EditResult{}, fmt.Errorf("dataset %s: %w: %s", q.Dataset, vault.ErrNoSuchVault, vaultName)
	}
	owner := n.vaultOwner(vc)
	cur := n.conf().Catalog
	var old catalog.Dataset
	i := cur.Find(vaultName, prefix)
	if i >= 0 {
		old = cur.Datasets[i]
	}
	if err := n.mayChangeDataset(ctx, vaultName, owner, old.Label); err != nil {
		return catalog.Dataset{}, EditResult{}, err
	}
	if i < 0 && q.Label == nil {
		if vc.DefaultLabel == "" {
			return catalog.Dataset{}, EditResult{}, fmt.Errorf("dataset %s: %w, and vault %s has no default label: give one (--label, e.g. \"NATO UNCLASSIFIED//REL TO LUX\")", q.Dataset, ErrNoCatalogLabel, vaultName)
		}
		q.Label = &vc.DefaultLabel
	}
	d, err := q.Apply(n.Labels, old, time.Now())
	if err != nil {
		return catalog.Dataset{}, EditResult{}, fmt.Errorf("dataset %s: %w", q.Dataset, err)
	}
	if err := n.mayWriteLabel(ctx, d.Label); err != nil {
		return catalog.Dataset{}, EditResult{}, err
	}
	res, err := n.editConfig(ctx, func(c *Config) error {
		c.Catalog.Datasets = slices.Clone(c.Catalog.Datasets)
		if j := c.Catalog.Find(vaultName, prefix); j >= 0 {
			c.Catalog.Datasets[j] = d
		} else {
			c.Catalog.Datasets = append(c.Catalog.Datasets, d)
		}
		return nil
	})
	return d, res, err
}

// RemoveDataset removes the description of VAULT[/PREFIX], acting as ctx's
// principal. The objects are not touched.
func (n *Node) RemoveDataset(ctx context.Context, ref string) (EditResult, error) {
	lbl := ""
	res, err := func() (EditResult, error) {
		if err := n.Ready(); err != nil {
			return EditResult{}, err
		}
		vaultName, prefix, err := catalog.ParseRef(ref)
		if err != nil {
			return EditResult{}, err
		}
		cur := n.conf().Catalog
		i := cur.Find(vaultName, prefix)
		if i < 0 {
			return EditResult{}, fmt.Errorf("%w: %s", ErrNoSuchDataset, ref)
		}
		lbl = cur.Datasets[i].Label
		owner := n.conf().Node.Nation
		if vc, ok := n.vaultConf(vaultName); ok {
			owner = n.vaultOwner(vc)
		}
		if err := n.mayChangeDataset(ctx, vaultName, owner, lbl); err != nil {
			return EditResult{}, err
		}
		return n.editConfig(ctx, func(c *Config) error {
			j := c.Catalog.Find(vaultName, prefix)
			if j < 0 {
				return fmt.Errorf("%w: %s", ErrNoSuchDataset, ref)
			}
			c.Catalog.Datasets = slices.Delete(slices.Clone(c.Catalog.Datasets), j, j+1)
			return nil
		})
	}()
	n.recordDataset(ctx, KindDatasetRemove, ref, lbl, res, err)
	return res, err
}

// mayChangeDataset authorises a change to a description of vaultName: the
// principal holds the operator role on the vault, and may read the
// description it changes (labelled old; "" for a new one).
func (n *Node) mayChangeDataset(ctx context.Context, vaultName, owner, old string) error {
	p, ok := vault.PrincipalFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: %w", access.ErrDenied, vault.ErrNoPrincipal)
	}
	if !p.Can(vaultName, access.RoleOperator) {
		return access.NeedRole(p, vaultName, access.RoleOperator)
	}
	if old == "" {
		return nil
	}
	l, err := n.Labels.ParseText(old)
	if err != nil {
		return err
	}
	return access.NewDecider(n.Labels).CanRead(p, owner, l)
}

// mayWriteLabel checks that ctx's principal may give a description label
// text: nobody labels what they could not read themselves.
func (n *Node) mayWriteLabel(ctx context.Context, text string) error {
	p, ok := vault.PrincipalFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: %w", access.ErrDenied, vault.ErrNoPrincipal)
	}
	l, err := n.Labels.ParseText(text)
	if err != nil {
		return err
	}
	return access.NewDecider(n.Labels).CanWriteLabel(p, l)
}

// recordDataset puts a describe or remove on the audit log: applied,
// waiting for custodians, or refused (with why).
func (n *Node) recordDataset(ctx context.Context, kind, ref, lbl string, res EditResult, err error) {
	ev := audit.Event{Kind: kind, Actor: vault.Actor(ctx), Detail: map[string]string{"dataset": ref}}
	if v, _, perr := catalog.ParseRef(ref); perr == nil {
		ev.Vault = v
	}
	if lbl != "" {
		ev.Detail["label"] = lbl
	}
	var pe *vault.PendingError
	switch {
	case errors.As(err, &pe):
		ev.Outcome = "pending: two-person request " + pe.RequestID
	case err != nil:
		ev.Outcome = "refused: " + err.Error()
	case !res.Applied:
		ev.Outcome = "unchanged"
	default:
		ev.Detail["generation"] = fmt.Sprint(res.Generation)
	}
	n.recordBestEffort(ctx, ev)
}

// catalogEntries returns the descriptions ready to render, those of vaults
// that exist, with their owners, labels and access URLs. A description
// issued before its vault was created describes an earlier vault of that
// name, deleted since, and is left out, as is one whose label no longer
// parses (a policy removed).
func (n *Node) catalogEntries() []catalog.Entry {
	c := n.conf()
	var out []catalog.Entry
	for _, d := range c.Catalog.Datasets {
		vc, ok := n.vaultConf(d.Vault)
		if !ok || !vc.Created.IsZero() && d.Issued.Before(vc.Created) {
			continue
		}
		l, err := n.Labels.ParseText(d.Label)
		if err != nil {
			n.Log.Warn("catalogue: a description's label does not parse; left out", "dataset", d.ID(), "err", err)
			continue
		}
		out = append(out, catalog.Entry{Dataset: d, Owner: n.vaultOwner(vc), Label: l, AccessURL: catalog.AccessURL(c.Catalog.AccessURL, d.Vault, d.Prefix)})
	}
	return out
}

// catalogMeta is what the catalogue says of itself.
func (n *Node) catalogMeta() catalog.Meta {
	c := n.conf()
	return catalog.Meta{NodeID: c.Node.ID, Nation: c.Node.Nation, Title: c.Catalog.Title, Description: c.Catalog.Description, Publisher: c.Catalog.Publisher}
}

// Catalog renders the catalogue of the entries keep keeps (nil: all) that
// match q.
func (n *Node) Catalog(keep func(catalog.Entry) bool, q catalog.Query) catalog.Document {
	entries := catalog.Filter(n.catalogEntries(), func(e catalog.Entry) bool {
		return (keep == nil || keep(e)) && q.Match(e.Dataset)
	})
	return catalog.Render(n.Labels, n.catalogMeta(), entries)
}

// CatalogForNation is the catalogue a node of nation sees: the entries
// whose label releases to it (all, for the node's own nation's vaults'
// owner). The peer listener serves it (PeerCatalogHandler).
func (n *Node) CatalogForNation(nation string, q catalog.Query) catalog.Document {
	return n.Catalog(catalog.ReleasedTo(n.Labels, nation), q)
}

// CatalogFor is the catalogue principal p sees: the entries of vaults it
// holds the reader role on whose label it may read (the access rule of
// every read: clearance, nation, categories).
func (n *Node) CatalogFor(p access.Principal, q catalog.Query) catalog.Document {
	if n.Labels == nil {
		return n.Catalog(func(catalog.Entry) bool { return false }, q) // sealed: nothing can be judged
	}
	d := access.NewDecider(n.Labels)
	return n.Catalog(func(e catalog.Entry) bool {
		return p.Can(e.Vault, access.RoleReader) && d.CanRead(p, e.Owner, e.Label) == nil
	}, q)
}

// datasetRoutes and catalogRoutes are the catalogue's admin endpoints. The
// descriptions are operators' (TestOperatorRoutesRefuseTheUnentitled sends
// each as everyone else); the catalogue itself is for every principal with
// the reader role, each seeing what it may read (TestCatalogRoute).
var datasetRoutes = []adminRoute{
	{method: http.MethodGet, path: "v1/datasets", auth: authOperator, roles: readerRoles,
		doc: "dataset descriptions as configured: `[Dataset]`", handle: (*Node).adminDatasets},
	{method: http.MethodPost, path: "v1/datasets", auth: authOperator, roles: operatorRoles,
		doc: "`Describe`: describe a dataset, or change its description (one released to other nations takes two custodians): `Dataset`", handle: (*Node).adminDescribe},
	{method: http.MethodDelete, path: "v1/datasets", auth: authOperator, roles: operatorRoles,
		doc: "`?dataset=VAULT[/PREFIX]`: remove a dataset description (the objects stay)", handle: (*Node).adminDatasetRemove},
}

var catalogRoutes = []adminRoute{
	{method: http.MethodGet, path: "v1/catalog", auth: authOperator, roles: []access.Role{access.RoleReader},
		doc: "the DCAT-AP 3 catalogue (JSON-LD) of the datasets the caller may read; `q` search terms (repeat)", handle: (*Node).adminCatalog},
}

func init() { adminRoutes = append(append(adminRoutes, datasetRoutes...), catalogRoutes...) }

func (n *Node) adminDatasets(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	ds := n.conf().Catalog.Datasets
	if ds == nil {
		ds = []catalog.Dataset{}
	}
	writeJSON(w, http.StatusOK, ds)
}

// catalogFail answers a catalogue error: ErrNoSuchDataset is not_found,
// the rest as opFail.
func catalogFail(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNoSuchDataset) {
		writeJSON(w, http.StatusNotFound, OpError{Error: err.Error(), Code: "not_found"})
		return
	}
	opFail(w, err)
}

func (n *Node) adminDescribe(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := catalog.ParseDescribe(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	d, _, err := n.DescribeDataset(c.as(r), q)
	if err != nil {
		catalogFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (n *Node) adminDatasetRemove(w http.ResponseWriter, r *http.Request, c *adminCall) {
	ref := r.URL.Query().Get("dataset")
	if ref == "" {
		opFail(w, errors.New("name the dataset: ?dataset=VAULT[/PREFIX]"))
		return
	}
	if _, err := n.RemoveDataset(c.as(r), ref); err != nil {
		catalogFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": ref})
}

func (n *Node) adminCatalog(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := catalog.ParseQuery(r.URL.Query()["q"])
	if err != nil {
		opFail(w, err)
		return
	}
	writeCatalog(w, n.CatalogFor(c.principal, q))
}

func writeCatalog(w http.ResponseWriter, doc catalog.Document) {
	b, err := doc.Marshal()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, OpError{Error: err.Error(), Code: "internal"})
		return
	}
	w.Header().Set("Content-Type", catalog.MediaType)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// ServePeerCatalog answers an authenticated peer node of nation that asked
// for the catalogue with body (a catalog.PeerRequest; empty for
// everything): the entries whose label releases to its nation that keep
// keeps (nil: all of those), and the answer on the audit log (catalog.serve
// by peer:NATION). The peer listener's catalog endpoint calls it with the
// grants in force to the calling node (peerCatalog).
func (n *Node) ServePeerCatalog(w http.ResponseWriter, r *http.Request, nation string, keep func(catalog.Entry) bool, body []byte) {
	if !label.IsNationCode(nation) {
		writeJSON(w, http.StatusForbidden, OpError{Error: "access denied", Code: "denied"})
		return
	}
	if err := n.Ready(); err != nil {
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, OpError{Error: err.Error(), Code: "sealed"})
		return
	}
	q, err := catalog.ParsePeerRequest(body)
	if err != nil {
		opFail(w, err)
		return
	}
	released := catalog.ReleasedTo(n.Labels, nation)
	doc := n.Catalog(func(e catalog.Entry) bool { return released(e) && (keep == nil || keep(e)) }, q)
	n.recordBestEffort(r.Context(), audit.Event{Kind: KindCatalogServe, Actor: "peer:" + nation,
		Detail: map[string]string{"query": q.String(), "datasets": strconv.Itoa(len(doc.Datasets))}})
	writeCatalog(w, doc)
}

// PeerCall sends one request of the peer protocol to an allied node and
// decodes its answer into out: what the peer layer's client does.
type PeerCall func(ctx context.Context, endpoint string, in, out any) error

// PeerCatalogEndpoint is the catalogue's endpoint of the peer protocol
// (/peer/v1/catalog).
const PeerCatalogEndpoint = "catalog"

// SearchPeerCatalog asks an allied node for its catalogue through call and
// returns the entries that match q. The peer's answer is read strictly
// (catalog.ParseDocument) and searched again here: a peer is not trusted
// to have filtered it.
func SearchPeerCatalog(ctx context.Context, call PeerCall, q catalog.Query) (catalog.Document, error) {
	var raw json.RawMessage
	if err := call(ctx, PeerCatalogEndpoint, catalog.PeerRequest{Q: q.Terms()}, &raw); err != nil {
		return catalog.Document{}, err
	}
	doc, err := catalog.ParseDocument(raw)
	if err != nil {
		return catalog.Document{}, err
	}
	kept := doc.Datasets[:0]
	for _, ds := range doc.Datasets {
		if q.Match(ds.Dataset()) {
			kept = append(kept, ds)
		}
	}
	doc.Datasets = kept
	return doc, nil
}

// KindCatalogServe records a catalogue served to a peer node.
const KindCatalogServe = "catalog.serve"
