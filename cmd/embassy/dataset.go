package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/catalog"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

func (a *app) datasetCmd() *cobra.Command {
	c := &cobra.Command{Use: "dataset", Short: "Describe the datasets the node offers in its DCAT-AP 3 catalogue",
		Long: `A dataset is the objects of a vault under a key prefix (VAULT or VAULT/PREFIX).
Its description (title, description, keywords, themes, spatial and temporal
coverage, media types) and its label make up one entry of the node's data
catalogue, which 'embassy catalog' searches and allied nodes read: an entry is
shown only to those its label releases it to. Descriptions are kept in
node.yaml's catalog section, so they survive 'embassy recover'.
See docs/alliance.md.`}
	c.AddCommand(a.datasetDescribeCmd(), a.datasetLsCmd(), a.datasetRmCmd())
	return c
}

func (a *app) datasetDescribeCmd() *cobra.Command {
	var title, description, temporal, lbl string
	var keywords, themes, spatial, media []string
	c := &cobra.Command{
		Use:   "describe VAULT[/PREFIX] [--title T] [--description D] [--keyword K]… [--theme IRI]… [--spatial IRI]… [--temporal START/END] [--media-type T]… [--label L]",
		Short: "Describe a dataset, or change its description",
		Long: `Describe the objects of VAULT under PREFIX as one dataset of the catalogue, or
change its description: the flags given replace what the description holds,
the others keep their values; a flag given empty ('--keyword ""' for the
lists) clears it.

--theme takes an IRI or a code of the EU data-theme vocabulary (GOVE, ECON,
SOCI, …); --spatial an IRI or an ISO 3166-1 alpha-3 code (EST), expanded to
the EU country vocabulary. --temporal is START/END, each a year, a month, a
date or an RFC 3339 date-time, '..' for an open end (2020/.., 2026-01-01/2026-12-31).
--media-type is type/subtype (text/csv); each makes one distribution.

--label is the description's own label (default: the vault's default label):
the entry is shown to a principal that may read that label, and to an allied
node whose nation it releases to ("NATO RESTRICTED//REL TO EST, LUX"). The
principal must hold the operator role on the vault and be cleared for the
label. A description released to a nation other than the vault's owner, one
released to more nations, or a lower label needs two custodians.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := catalog.Describe{Dataset: args[0]}
			f := cmd.Flags()
			str := func(name string, v *string) *string {
				if f.Changed(name) {
					return v
				}
				return nil
			}
			list := func(name string, v *[]string) *[]string {
				if !f.Changed(name) {
					return nil
				}
				var out []string
				for _, s := range *v {
					if s = strings.TrimSpace(s); s != "" {
						out = append(out, s)
					}
				}
				return &out
			}
			q.Title, q.Description, q.Temporal, q.Label = str("title", &title), str("description", &description), str("temporal", &temporal), str("label", &lbl)
			q.Keywords, q.Themes, q.Spatial, q.MediaTypes = list("keyword", &keywords), list("theme", &themes), list("spatial", &spatial), list("media-type", &media)
			if _, _, err := catalog.ParseRef(q.Dataset); err != nil {
				return withHint(err, "name the dataset as VAULT or VAULT/PREFIX, e.g. registry/2026/")
			}
			var d catalog.Dataset
			if a.node != "" {
				ac, err := a.operator(cmd)
				if err != nil {
					return err
				}
				if err := a.call(cmd.Context(), ac, http.MethodPost, "v1/datasets", q, &d); err != nil {
					return datasetHint(err)
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				var res node.EditResult
				d, res, err = n.DescribeDataset(n.As(cmd.Context(), a.principal), q)
				if err != nil {
					if pe, ok := errors.AsType[*vault.PendingError](err); ok && !a.json {
						fmt.Fprintf(a.stdout, "request %s: waiting for %d custodian approval(s)\n", pe.RequestID, pe.Needed)
					}
					return datasetHint(explain(err))
				}
				if !res.Applied && !a.json {
					fmt.Fprintf(a.stdout, "dataset %s: unchanged\n", safeText(d.ID()))
					return nil
				}
			}
			if a.json {
				return a.printJSON(d)
			}
			fmt.Fprintf(a.stdout, "dataset %s described: %s (%s)\n", safeText(d.ID()), safeText(d.Title), safeText(d.Label))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&title, "title", "", "the dataset's title (dct:title)")
	f.StringVar(&description, "description", "", "what it holds (dct:description)")
	f.StringArrayVar(&keywords, "keyword", nil, "a keyword (dcat:keyword; repeat)")
	f.StringArrayVar(&themes, "theme", nil, "a theme IRI or EU data-theme code such as GOVE (dcat:theme; repeat)")
	f.StringArrayVar(&spatial, "spatial", nil, "a place IRI or country code such as EST (dct:spatial; repeat)")
	f.StringVar(&temporal, "temporal", "", "the period covered, START/END ('..' for an open end)")
	f.StringArrayVar(&media, "media-type", nil, "a media type of its objects, e.g. text/csv (repeat)")
	f.StringVar(&lbl, "label", "", "the description's label, e.g. \"NATO RESTRICTED//REL TO EST, LUX\" (default: the vault's default label)")
	return c
}

// datasetHint adds the next step to the errors a person makes describing
// a dataset.
func datasetHint(err error) error {
	switch {
	case errors.Is(err, node.ErrNoCatalogLabel):
		return withHint(err, "give --label, e.g. --label \"NATO UNCLASSIFIED//REL TO LUX\"")
	case errors.Is(err, node.ErrNoSuchDataset):
		return withHint(err, "list the descriptions with 'embassy dataset ls'")
	}
	return err
}

func (a *app) datasetLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the dataset descriptions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ds []catalog.Dataset
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodGet, "v1/datasets", nil, &ds); err != nil {
					return err
				}
			} else {
				c, err := a.readConfig(cmd.Context())
				if err != nil {
					return err
				}
				ds = c.Catalog.Datasets
			}
			if a.json {
				return a.printJSON(nonNil(ds))
			}
			w := a.table()
			fmt.Fprintln(w, "DATASET\tTITLE\tLABEL\tKEYWORDS\tMODIFIED")
			for _, d := range ds {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", safeText(d.ID()), safeText(d.Title), safeText(d.Label), dash(safeText(strings.Join(d.Keywords, ", "))), d.Modified.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
}

func (a *app) datasetRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm VAULT[/PREFIX]",
		Short: "Remove a dataset description (its objects stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				ac, err := a.operator(cmd)
				if err != nil {
					return err
				}
				if err := a.call(cmd.Context(), ac, http.MethodDelete, "v1/datasets?dataset="+url.QueryEscape(args[0]), nil, nil); err != nil {
					return datasetHint(err)
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if _, err := n.RemoveDataset(n.As(cmd.Context(), a.principal), args[0]); err != nil {
					return datasetHint(explain(err))
				}
			}
			fmt.Fprintf(a.stdout, "dataset %s: description removed; its objects stay\n", safeText(args[0]))
			return nil
		},
	}
}

func (a *app) catalogCmd() *cobra.Command {
	var peer string
	var local bool
	c := &cobra.Command{
		Use:   "catalog [--peer NODE|NATION | --local] [TERM…]",
		Short: "Search the data catalogues: this node's and its trusted peers'",
		Long: `Search the node's DCAT-AP 3 catalogue and those of its trusted peers, as
--principal may see them: here, the datasets of vaults it may read whose
description's label it may read; at a peer, what that peer releases to this
node's nation and has granted this node (level catalog or read), of which again
only what the principal may read. Every TERM must match, ignoring case,
somewhere in a dataset's identifier, title, description, keywords, themes,
places, media types or label; FIELD:TEXT looks in one field only (id, title,
description, keyword, theme, spatial, media, label, temporal). No terms lists
everything.

--peer searches one peer only (its node id, or its nation when one node of it
is trusted); --local this node only. A peer that cannot be reached is reported
on standard error; with --peer that is an error.

With --json it prints {"local": CATALOG, "peers": [{"peer", "nation",
"catalog": CATALOG, "error"}]}, each CATALOG the DCAT-AP 3 JSON-LD document
allies read (docs/alliance.md).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := catalog.ParseQuery(args)
			if err != nil {
				return withHint(err, "give plain words, or FIELD:TEXT with FIELD one of "+strings.Join(catalog.Fields, ", "))
			}
			if peer != "" && local {
				return errors.New("--peer and --local: give one or neither")
			}
			res, err := a.searchCatalogs(cmd, q, peer, !local)
			if err != nil {
				return err
			}
			failed := 0
			for _, pc := range res.Peers {
				if pc.Error != "" {
					failed++
					fmt.Fprintf(a.stderr, "peer %s (%s): %s\n", safeText(pc.Nation), safeText(pc.Peer), safeText(pc.Error))
				}
			}
			if a.json {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s\n", b)
			} else {
				w := a.table()
				fmt.Fprintln(w, "SOURCE\tDATASET\tTITLE\tLABEL\tKEYWORDS\tTEMPORAL")
				rows := 0
				row := func(source string, doc *catalog.Document) {
					if doc == nil {
						return
					}
					for _, ds := range doc.Datasets {
						rows++
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", safeText(source), safeText(ds.Identifier), safeText(ds.Title), safeText(ds.Label),
							dash(safeText(strings.Join(ds.Keywords, ", "))), dash(safeText(ds.Dataset().Temporal)))
					}
				}
				row("local", res.Local)
				for _, pc := range res.Peers {
					row(pc.Nation, pc.Catalog)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if rows == 0 && !q.Empty() {
					fmt.Fprintf(a.stderr, "no dataset matches %s\n", safeText(q.String()))
				}
			}
			if peer != "" && failed > 0 {
				return fmt.Errorf("peer %s did not answer", peer)
			}
			return nil
		},
	}
	c.Flags().StringVar(&peer, "peer", "", "search only this trusted peer's catalogue (its node id, or its nation)")
	c.Flags().BoolVar(&local, "local", false, "search only this node's catalogue")
	return c
}

// catalogResult is what 'catalog' found: this node's catalogue (unless
// --peer) and the peers'.
type catalogResult struct {
	Local *catalog.Document  `json:"local,omitempty"`
	Peers []node.PeerCatalog `json:"peers"`
}

// searchCatalogs searches this node's catalogue (unless peer names one
// peer) and, when peers is set, the trusted peers' (or the one named), as
// the CLI's principal: through the admin API with --node, else from the
// node directory.
func (a *app) searchCatalogs(cmd *cobra.Command, q catalog.Query, peer string, peers bool) (catalogResult, error) {
	res := catalogResult{Peers: []node.PeerCatalog{}}
	if a.node != "" {
		ac, err := a.operator(cmd)
		if err != nil {
			return res, err
		}
		if peer == "" {
			doc, err := a.remoteCatalog(cmd.Context(), ac, q)
			if err != nil {
				return res, err
			}
			res.Local = &doc
		}
		if peers {
			v := url.Values{}
			for _, t := range q.Terms() {
				v.Add("q", t)
			}
			if peer != "" {
				v.Set("peer", peer)
			}
			if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/catalog/peers?"+v.Encode(), nil, &res.Peers); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	n, err := a.open(cmd.Context())
	if err != nil {
		return res, err
	}
	defer n.Close()
	p := n.Principal(a.principal)
	if peer == "" {
		doc := n.CatalogFor(p, q)
		res.Local = &doc
	}
	if peers {
		pcs, err := n.SearchPeers(cmd.Context(), p, peer, q)
		if err != nil {
			return res, withHint(err, "list the trusted peers with 'embassy peer ls'")
		}
		res.Peers = pcs
	}
	return res, nil
}

// remoteCatalog fetches GET v1/catalog with the search terms.
func (a *app) remoteCatalog(ctx context.Context, ac *adminClient, q catalog.Query) (catalog.Document, error) {
	path := "v1/catalog"
	if !q.Empty() {
		v := url.Values{}
		for _, t := range q.Terms() {
			v.Add("q", t)
		}
		path += "?" + v.Encode()
	}
	var raw rawJSON
	if err := a.call(ctx, ac, http.MethodGet, path, nil, &raw); err != nil {
		return catalog.Document{}, err
	}
	return catalog.ParseDocument(raw)
}

// rawJSON keeps a JSON answer as it came.
type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}
