package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func (a *app) replicaCmd() *cobra.Command {
	c := &cobra.Command{Use: "replica", Short: "Replicas this node keeps for allies (grants of level replicate; docs/alliance.md)"}
	pull := &cobra.Command{
		Use:   "pull",
		Short: "Pull every replica this node keeps from its owner now (a serving node pulls every alliance.replicate_every)",
		Long: `For every trusted peer, ask for the grants of level replicate in force to this node and
pull each owner's changes from the cursor the last pull reached: the blobs of versions
written, the owner's signed deletion records, and, at the end, the owner's sealed
descriptor, site markers and audit log copy. Everything is kept as ciphertext in the vault
alliance.replica_vault names. A pull that stops half way goes on from its cursor next time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			reps, err := n.PullReplicas(cmd.Context(), node.ReplicaPullOptions{})
			if err != nil {
				return withHint(err, "name the vault that keeps allies' replicas: alliance.replica_vault ('embassy config edit')")
			}
			if a.json {
				return a.printJSON(reps)
			}
			failed := 0
			for _, r := range reps {
				if r.Error != "" {
					failed++
					fmt.Fprintf(a.stdout, "%s (%s) grant %s: FAILED at log entry %d: %s\n", r.Owner, r.Nation, r.Grant, r.Cursor, safeText(r.Error))
					continue
				}
				fmt.Fprintf(a.stdout, "%s (%s) grant %s: log entries %d to %d of %d: %d versions, %d deletions, %d blobs (%d bytes)\n",
					r.Owner, r.Nation, r.Grant, r.From, r.Cursor, r.LogSize, r.Versions, r.Deletions, r.Blobs, r.Bytes)
			}
			if len(reps) == 0 {
				fmt.Fprintln(a.stdout, "no peer grants this node a replica")
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d replica pulls failed", failed, len(reps))
			}
			return nil
		},
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the replicas this node keeps: owner, nation, sizes and counts (nothing of their content)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			rs, err := n.Replicas(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(rs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OWNER\tNATION\tBLOBS\tBYTES\tDELETIONS\tLOG\tPULLED")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.Owner, r.Nation, r.Blobs, r.Bytes, r.Deletions, r.LogSize, r.Pulled.Format("2006-01-02T15:04:05Z"))
			}
			return tw.Flush()
		},
	}
	c.AddCommand(pull, ls)
	return c
}
