package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func (a *app) shareCmd() *cobra.Command {
	c := &cobra.Command{Use: "share", Short: "Share parts of vaults with allied nations: grant, list, revoke (docs/alliance.md)"}
	var q node.GrantRequest
	grant := &cobra.Command{
		Use:   "grant VAULT[/PREFIX] --to NATION --level catalog|read|replicate --ceiling LABEL --expires DUR",
		Short: "Share a vault, or the keys under a prefix, with a trusted peer's nation (above two_person.share_level: two custodians)",
		Long: `Make a grant, signed by this node, that lets the nation's trusted peer node see the
scope described (level catalog) or its principals read it through their own node (level
read). The owner checks every read against the grant, its own label rules and the ceiling:
principals of the grantee are trusted with clearances up to the ceiling only, and see only
objects whose label releases to their nation. --expires is a duration (180d, 12h). A ceiling
above two_person.share_level takes two custodians (share.grant).

Level replicate lets the nation's node keep a full encrypted copy of the scope, placed by its
own alliance.replica_vault, from which this node can be rebuilt ('embassy recover --from-peer');
it opens nothing of it. On a node with custodians it always takes two of them.

  embassy share grant registry/2026/ --to LUX --level read --ceiling "NATO SECRET" --expires 180d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q.Scope = args[0]
			var g node.GrantInfo
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodPost, "v1/shares", q, &g); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if g, err = n.Grant(n.As(cmd.Context(), a.principal), q); err != nil {
					return explain(err)
				}
			}
			if a.json {
				return a.printJSON(g)
			}
			fmt.Fprintf(a.stdout, "grant %s: %s to %s (node %s), level %s, up to %s, until %s\n", g.ID, g.Scope, g.To, g.Grantee, g.Level, g.Ceiling, g.Expires.Format("2006-01-02T15:04:05Z"))
			return nil
		},
	}
	grant.Flags().StringVar(&q.To, "to", "", "the grantee nation (ISO 3166-1 alpha-3)")
	grant.Flags().StringVar(&q.Peer, "peer", "", "the grantee node, when several peers of the nation are trusted")
	grant.Flags().StringVar(&q.Level, "level", "read", "catalog (the description only), read, or replicate (the grantee's node keeps an encrypted copy it cannot open)")
	grant.Flags().StringVar(&q.Ceiling, "ceiling", "", "the highest label the grantee's principals are trusted up to, e.g. \"NATO SECRET\"")
	grant.Flags().StringVar(&q.Expires, "expires", "", "how long the grant lasts: 180d, 12h")
	list := func(cmd *cobra.Command) ([]node.GrantInfo, error) {
		if a.node != "" {
			ac, err := a.operator(cmd)
			if err != nil {
				return nil, err
			}
			var gs []node.GrantInfo
			return gs, a.call(cmd.Context(), ac, http.MethodGet, "v1/shares", nil, &gs)
		}
		n, err := a.open(cmd.Context())
		if err != nil {
			return nil, err
		}
		defer n.Close()
		return n.Grants(), nil
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the grants this node made: active, expired or revoked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gs, err := list(cmd)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(gs)
			}
			w := a.table()
			fmt.Fprintln(w, "ID\tSCOPE\tTO\tLEVEL\tCEILING\tEXPIRES\tSTATE")
			for _, g := range gs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Scope, g.To, g.Level, g.Ceiling, g.Expires.Format("2006-01-02"), g.State)
			}
			return w.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a grant at once: no data key is released under it from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodPost, "v1/shares/"+args[0]+"/revoke", nil, nil); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if err := n.RevokeGrant(n.As(cmd.Context(), a.principal), args[0]); err != nil {
					return withHint(err, "list the grants with 'embassy share ls'")
				}
			}
			fmt.Fprintf(a.stdout, "grant %s revoked\n", args[0])
			return nil
		},
	}
	odrl := &cobra.Command{
		Use:   "odrl ID",
		Short: "Print a grant's terms as an ODRL Agreement (JSON-LD), for dataspace connectors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				ac, err := a.operator(cmd)
				if err != nil {
					return err
				}
				var doc any
				if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/shares/"+args[0]+"/odrl", nil, &doc); err != nil {
					return err
				}
				return a.printJSON(doc)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			b, err := n.GrantODRL(args[0])
			if err != nil {
				return withHint(err, "list the grants with 'embassy share ls'")
			}
			_, err = fmt.Fprintln(a.stdout, strings.TrimSpace(string(b)))
			return err
		},
	}
	c.AddCommand(grant, ls, revoke, odrl)
	return c
}
