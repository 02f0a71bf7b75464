package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

func (a *app) vaultRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a vault with no current object, with its history (two custodians must approve)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return a.remoteVaultRm(cmd, args[0])
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.DeleteVault(n.As(cmd.Context(), a.principal), args[0]); err != nil {
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "vault %s deleted\n", args[0])
			return nil
		},
	}
}

func (a *app) vaultPolicyCmd() *cobra.Command {
	var flags node.VaultConfig
	var jurisdictions string
	c := &cobra.Command{
		Use:   "set-policy NAME [--erasure K+M] [--survive LOSSES] [--outside-home[=false]] [--jurisdictions A,B]",
		Short: "Change a vault's placement policy (weakening it takes two custodians)",
		Long: `Change the settings of a vault's placement policy named by the flags given;
the others keep their current values. --outside-home=false drops the demand
that the data survive the loss of the owner's jurisdiction, and
--jurisdictions '' lets shards go anywhere.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("erasure") && !f.Changed("survive") && !f.Changed("outside-home") && !f.Changed("jurisdictions") {
				return withHint(fmt.Errorf("vault %s: no policy setting given", args[0]), "name what changes with --erasure, --survive, --outside-home or --jurisdictions")
			}
			if a.node != "" {
				var pc node.PolicyChange
				if f.Changed("erasure") {
					pc.Erasure = &flags.Erasure
				}
				if f.Changed("survive") {
					pc.Survive = &flags.Survive
				}
				if f.Changed("outside-home") {
					pc.OutsideHome = &flags.OutsideHome
				}
				if f.Changed("jurisdictions") {
					js := strings.Split(jurisdictions, ",")
					pc.Jurisdictions = &js
				}
				return a.remoteSetPolicy(cmd, args[0], pc)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			var next node.VaultConfig
			found := false
			for _, v := range n.Config.Vaults {
				if v.Name == args[0] {
					next, found = v, true
				}
			}
			if !found {
				return explain(fmt.Errorf("%w: %s", vault.ErrNoSuchVault, args[0]))
			}
			if f.Changed("erasure") {
				next.Erasure = flags.Erasure
			}
			if f.Changed("survive") {
				next.Survive = flags.Survive
			}
			if f.Changed("outside-home") {
				next.OutsideHome = flags.OutsideHome
			}
			if f.Changed("jurisdictions") {
				next.Jurisdictions = nil
				for j := range strings.SplitSeq(jurisdictions, ",") {
					if j = strings.TrimSpace(j); j != "" {
						next.Jurisdictions = append(next.Jurisdictions, j)
					}
				}
			}
			if err := n.SetVaultPolicy(n.As(cmd.Context(), a.principal), args[0], next); err != nil {
				return explain(err)
			}
			p, _ := next.Policy(n.Config.Node.Nation)
			fmt.Fprintf(a.stdout, "vault %s policy set: %d+%d, survives %s%s%s\n", args[0], p.K, p.M, p.Survive,
				map[bool]string{true: " and the loss of " + p.Home, false: ""}[p.OutsideHome],
				map[bool]string{true: ", only in " + strings.Join(p.Allowed, ","), false: ""}[len(p.Allowed) > 0])
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&flags.Erasure, "erasure", "", "k data + m parity shards (default: unchanged)")
	f.StringVar(&flags.Survive, "survive", "", "losses to survive, e.g. jurisdictions=1,sites=1 (default: unchanged; '' for sites=m)")
	f.BoolVar(&flags.OutsideHome, "outside-home", false, "survive the loss of the owner's jurisdiction (default: unchanged)")
	f.StringVar(&jurisdictions, "jurisdictions", "", "allowed jurisdictions, comma-separated (default: unchanged; '' for anywhere)")
	return c
}

func (a *app) keyCmd() *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Key rotation"}
	var resume bool
	rot := &cobra.Command{
		Use:   "rotate VAULT",
		Short: "Rotate a vault's key: re-wrap every data key, without rewriting data (two custodians must approve)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return a.remoteRotate(cmd, args[0], resume)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			ctx := n.As(cmd.Context(), a.principal)
			rotate := n.RotateVaultKey
			if resume {
				rotate = n.ResumeRotation
			}
			st, err := rotate(ctx, args[0])
			if err != nil {
				return explain(err)
			}
			if a.json {
				return a.printJSON(st)
			}
			printRewrap(a.stdout, st)
			return nil
		},
	}
	rot.Flags().BoolVar(&resume, "resume", false, "finish an interrupted rotation")
	detachFlag(rot)
	var resumeRoot bool
	root := &cobra.Command{
		Use:   "rotate-root",
		Short: "Rotate the node's root key: every manifest is rewritten and custodians get new shares (two custodians must approve)",
		Long: `Replace the root key and every key derived from it. The new root is split among
the same custodians (new share files in the node directory; the old shares stop
working) or written to the local key file. The old root stays sealed under the
new one until every manifest is rewritten, so an interrupted rotation resumes
with --resume after the node is unsealed with the NEW shares.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			ctx := n.As(cmd.Context(), a.principal)
			var dir string
			var st vault.RewrapStats
			if resumeRoot {
				st, err = n.ResumeRootRotation(ctx)
			} else {
				dir, st, err = n.RotateRootKey(ctx)
			}
			if err != nil {
				return explain(err)
			}
			if a.json {
				return a.printJSON(map[string]any{"shares": dir, "rewrap": st})
			}
			fmt.Fprintf(a.stdout, "root key rotated: %d versions rewritten under the new keys\n", st.Rewrapped)
			if dir != "" {
				fmt.Fprintf(a.stdout, "hand each custodian their new share file from %s; the old shares no longer work\n", dir)
			}
			return nil
		},
	}
	root.Flags().BoolVar(&resumeRoot, "resume", false, "finish an interrupted root rotation")
	c.AddCommand(rot, root)
	return c
}

func (a *app) relabelCmd() *cobra.Command {
	var version string
	c := &cobra.Command{
		Use:   "relabel VAULT/KEY LABEL",
		Short: "Change an object version's label (lowering it takes two custodians)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return a.remoteRelabel(cmd, args[0], version, args[1])
			}
			ref, err := a.openObject(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			defer ref.n.Close()
			info, err := ref.n.Engine.SetLabel(ref.ctx, ref.vault, ref.key, ref.id, args[1])
			if err != nil {
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "%s version %s is now %s\n", safeText(ref.vault+"/"+ref.key), info.VersionID, safeText(info.Label))
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "a version id instead of the latest")
	return c
}

func (a *app) principalCmd() *cobra.Command {
	c := &cobra.Command{Use: "principal", Short: "People and services that use the node"}
	var p access.Principal
	var clearances, categories, roles, vaultRoles []string
	add := &cobra.Command{
		Use:   "add NAME --nation CODE --clearance POLICY:LEVEL",
		Short: "Add a principal (one cleared above two_person.principal_level, or an operator or admin, takes two custodians)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			p.Clearances, p.Categories = map[string]string{}, map[string][]string{}
			for _, c := range clearances {
				pol, lvl, ok := strings.Cut(c, ":")
				if !ok {
					return fmt.Errorf("--clearance %q: want POLICY:LEVEL, e.g. NATO:SECRET", c)
				}
				p.Clearances[pol] = lvl
			}
			for _, c := range categories {
				tag, vals, ok := strings.Cut(c, "=")
				if !ok {
					return fmt.Errorf("--category %q: want TAG=VALUE[,VALUE]", c)
				}
				p.Categories[tag] = strings.Split(vals, ",")
			}
			p.Roles = roles
			for _, vr := range vaultRoles {
				v, r, ok := strings.Cut(vr, ":")
				if !ok || v == "" {
					return fmt.Errorf("--vault-role %q: want VAULT:ROLE, e.g. registry:operator", vr)
				}
				if p.VaultRoles == nil {
					p.VaultRoles = map[string][]string{}
				}
				p.VaultRoles[v] = append(p.VaultRoles[v], r)
			}
			if a.node != "" {
				return a.remotePrincipalAdd(cmd, p)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.AddPrincipal(n.As(cmd.Context(), a.principal), p); err != nil {
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "principal %s added\n", p.Name)
			return nil
		},
	}
	add.Flags().StringVar(&p.Nation, "nation", "", "nationality, ISO 3166-1 alpha-3")
	add.Flags().StringArrayVar(&clearances, "clearance", nil, "POLICY:LEVEL, e.g. NATO:SECRET (repeatable)")
	add.Flags().StringArrayVar(&categories, "category", nil, "TAG=VALUE[,VALUE] held (repeatable)")
	add.Flags().StringArrayVar(&roles, "role", nil, "node-wide role: reader, writer, operator, admin or auditor (repeatable; none means reader and writer)")
	add.Flags().StringArrayVar(&vaultRoles, "vault-role", nil, "VAULT:ROLE, a role on one vault only (repeatable)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List principals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remotePrincipalLs(cmd)
			}
			c, err := a.readConfig(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				ps := []principalJSON{}
				for _, p := range c.Principals {
					ps = append(ps, principalJSON{Principal: p, Roles: p.Roles})
				}
				return a.printJSON(ps)
			}
			w := a.table()
			fmt.Fprintln(w, "NAME\tNATION\tCLEARANCES\tCATEGORIES\tROLES")
			for _, p := range c.Principals {
				fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\n", p.Name, p.Nation, p.Clearances, p.Categories, p.RoleSummary())
			}
			return w.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a principal (one cleared above two_person.principal_level takes two custodians)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return a.remotePrincipalRm(cmd, args[0])
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.RemovePrincipal(n.As(cmd.Context(), a.principal), args[0]); err != nil {
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "principal %s removed\n", args[0])
			return nil
		},
	}
	c.AddCommand(add, ls, rm)
	return c
}

// printRewrap prints a key rotation's outcome for a person.
func printRewrap(w io.Writer, st vault.RewrapStats) {
	fmt.Fprintf(w, "vault %s: key generation %d; %d versions re-wrapped, %d already current", st.Vault, st.KeyGen, st.Rewrapped, st.Already)
	if st.Deleted > 0 {
		fmt.Fprintf(w, ", %d deleted while the rotation ran (skipped)", st.Deleted)
	}
	fmt.Fprintln(w)
}
