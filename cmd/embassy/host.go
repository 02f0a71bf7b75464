package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func (a *app) hostCmd() *cobra.Command {
	c := &cobra.Command{Use: "host", Short: "Allies whose sites this node hosts: quotas, and what it holds for them (docs/alliance.md)"}
	var quota string
	add := &cobra.Command{
		Use:   "add PEER --quota SIZE",
		Short: "Host a trusted peer's site with a quota, or change its quota (two custodians on a node with custodians)",
		Long: `Agree to host a site of the trusted peer PEER (its nation, or its node id when this
node trusts several peers of that nation), with room for SIZE bytes (e.g. 10TiB). The peer's
store is made under alliance.hosting.path; the peer then adds the site with
'embassy site add ID --peer NATION'. Hosting a new peer or raising its quota is a
two-person operation (host.add) on a node with custodians; lowering it is not. A quota
lowered below what the peer holds keeps all of it: the peer's writes are refused until it
is under again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := node.HostRequest{Peer: args[0], Quota: quota}
			var info node.HostInfo
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodPost, "v1/host/guests", q, &info); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if info, err = n.Host(n.As(cmd.Context(), a.principal), q); err != nil {
					return explain(err)
				}
			}
			fmt.Fprintf(a.stdout, "node %s (%s) hosted, quota %s\n", info.Node, info.Nation, node.FormatBytes(info.Quota))
			return nil
		},
	}
	add.Flags().StringVar(&quota, "quota", "", "room the peer's site may take, e.g. 10TiB (B, KiB, MiB, GiB, TiB, PiB)")
	add.MarkFlagRequired("quota")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "Show, per guest nation, the sizes and counts of what this node holds for it",
		Long: `Show, per guest nation, what this node holds for it: the bytes and blobs of its
hosted sites against their quota, and the bytes and blobs of the replicas of its data. Sizes
and counts only: the host knows no object's name or label, and shows none.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rows []node.HostNation
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodGet, "v1/host", nil, &rows); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if rows, err = n.HostUsage(cmd.Context()); err != nil {
					return err
				}
			}
			if a.json {
				return a.printJSON(nonNil(rows))
			}
			w := a.table()
			fmt.Fprintln(w, "NATION\tNODES\tSITE BYTES\tSITE BLOBS\tQUOTA\tREPLICA BYTES\tREPLICA BLOBS")
			for _, r := range rows {
				quota := node.FormatBytes(r.Quota)
				if r.SiteBytes > r.Quota {
					quota += " (over)"
				}
				if r.Unavailable > 0 {
					quota += fmt.Sprintf(" (%d store unavailable)", r.Unavailable)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%d\n", r.Nation, r.Nodes, node.FormatBytes(r.SiteBytes), r.SiteBlobs, quota, node.FormatBytes(r.ReplicaBytes), r.ReplicaBlobs)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, r := range rows {
				for _, why := range r.Why {
					fmt.Fprintf(a.stderr, "warning: %s: %s\n", r.Nation, why)
				}
			}
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm PEER",
		Short: "Stop hosting a peer whose store is empty",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodDelete, "v1/host/guests/"+args[0], nil, nil); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if err := n.Unhost(n.As(cmd.Context(), a.principal), args[0]); err != nil {
					return withHint(err, "list what this node holds for its guests with 'embassy host ls'")
				}
			}
			fmt.Fprintf(a.stdout, "%s no longer hosted\n", args[0])
			return nil
		},
	}
	c.AddCommand(add, ls, rm)
	return c
}
