package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func (a *app) vaultCmd() *cobra.Command {
	c := &cobra.Command{Use: "vault", Short: "Manage vaults (S3 buckets) and their placement policies"}
	c.AddCommand(a.vaultCreateCmd(), a.vaultLsCmd(), a.vaultRmCmd(), a.vaultPolicyCmd())
	return c
}

func (a *app) vaultCreateCmd() *cobra.Command {
	var v node.VaultConfig
	var jurisdictions string
	c := &cobra.Command{
		Use:   "create NAME --erasure K+M --survive LOSSES",
		Short: "Create a vault with a placement policy",
		Long: `Create a vault. --erasure k+m codes every stripe into k data and m parity
shards. --survive names the losses every object must survive, each on its own:
sites=N, providers=N, jurisdictions=N, controls=N (every provider under N
countries' law), comma-separated. --outside-home also demands that the data
survive the loss of the owner's whole jurisdiction.

A policy the sites cannot keep is refused, with the constraint and sites named.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v.Name = args[0]
			if jurisdictions != "" {
				for j := range strings.SplitSeq(jurisdictions, ",") {
					v.Jurisdictions = append(v.Jurisdictions, strings.TrimSpace(j))
				}
			}
			if a.node != "" {
				return a.remoteVaultCreate(cmd, v)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.AddVault(v); err != nil {
				return explain(err)
			}
			vv, _ := n.Engine.Vault(v.Name)
			if a.json {
				// As stored: with its creation time.
				for _, c := range n.Config.Vaults {
					if c.Name == v.Name {
						return a.printJSON(c)
					}
				}
			}
			fmt.Fprintf(a.stdout, "vault %s created: %d+%d, survives %s%s\n", v.Name, vv.Policy.K, vv.Policy.M, vv.Policy.Survive,
				map[bool]string{true: " and the loss of " + vv.Owner, false: ""}[v.OutsideHome])
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&v.Erasure, "erasure", "4+2", "k data + m parity shards")
	f.StringVar(&v.Survive, "survive", "", "losses to survive, e.g. jurisdictions=1,providers=1 (default sites=m)")
	f.BoolVar(&v.OutsideHome, "outside-home", false, "survive the loss of the owner's whole jurisdiction")
	f.StringVar(&jurisdictions, "jurisdictions", "", "only place shards in these jurisdictions (comma-separated)")
	f.StringVar(&v.Owner, "owner", "", "owning nation (default: the node's)")
	f.StringVar(&v.StripeSize, "stripe-size", "", "plaintext bytes per stripe (default 1MiB)")
	f.StringVar(&v.DefaultLabel, "default-label", "", "label of objects put without one, e.g. \"NATO RESTRICTED\"")
	return c
}

func (a *app) vaultLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List vaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remoteVaultLs(cmd)
			}
			c, err := a.readConfig(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(nonNil(c.Vaults))
			}
			return a.printVaults(c.Vaults, c.Node.Nation)
		},
	}
}

// printVaults prints vaults as a table, with their policies as seen from
// nation.
func (a *app) printVaults(vs []node.VaultConfig, nation string) error {
	w := a.table()
	fmt.Fprintln(w, "NAME\tOWNER\tERASURE\tSURVIVES\tOUTSIDE HOME\tJURISDICTIONS")
	for _, v := range vs {
		p, _ := v.Policy(nation)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\n", v.Name, p.Home, v.Erasure, p.Survive, v.OutsideHome, dash(strings.Join(v.Jurisdictions, ",")))
	}
	return w.Flush()
}
