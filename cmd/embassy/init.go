package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/node"
)

func (a *app) initCmd() *cobra.Command {
	var nation, sharesOut string
	var custodianFiles []string
	var threshold int
	c := &cobra.Command{
		Use:   "init --nation CODE",
		Short: "Create a node: configuration and root key",
		Long: `Create a node directory (--dir) holding node.yaml and a local root key file.

The local root key file holds the whole root key; keep the node directory on
storage only the node's operators can read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := node.InitOptions{Nation: nation, Threshold: threshold}
			type shareJSON struct {
				Custodian string `json:"custodian"`
				File      string `json:"file"`
			}
			shares := []shareJSON{}
			for _, f := range custodianFiles {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				cp, err := custody.ParseCustodianPublic(b)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				o.Custodians = append(o.Custodians, cp)
			}
			if len(o.Custodians) > 0 {
				if err := os.MkdirAll(sharesOut, 0o700); err != nil {
					return err
				}
				o.Share = func(name string, file []byte) error {
					p := filepath.Join(sharesOut, name+".share")
					if err := atomicfile.Write(p, file, 0o600); err != nil {
						return err
					}
					shares = append(shares, shareJSON{Custodian: name, File: p})
					if !a.json {
						fmt.Fprintf(a.stdout, "share for %s: %s\n", name, p)
					}
					return nil
				}
			}
			c, err := node.Init(a.dir, o)
			if err != nil {
				return err
			}
			if a.json {
				j := map[string]any{"dir": a.dir, "node_id": c.Node.ID, "nation": c.Node.Nation, "shares": shares}
				if len(o.Custodians) > 0 {
					j["threshold"] = threshold
				}
				return a.printJSON(j)
			}
			if len(o.Custodians) > 0 {
				fmt.Fprintf(a.stdout, "root key split %d of %d; hand each custodian their share file, then delete %s\n", threshold, len(o.Custodians), sharesOut)
			}
			fmt.Fprintf(a.stdout, "node %s for %s created in %s\n", c.Node.ID, c.Node.Nation, a.dir)
			fmt.Fprintf(a.stdout, "next: add sites with 'embassy site add', then 'embassy vault create'\n")
			return nil
		},
	}
	c.Flags().StringVar(&nation, "nation", "", "owning nation, ISO 3166-1 alpha-3 (e.g. EST)")
	c.Flags().StringArrayVar(&custodianFiles, "custodian", nil, "a custodian's public key file (NAME.pub from 'embassy custodian keygen'); repeat for each")
	c.Flags().IntVar(&threshold, "threshold", 2, "custodians needed to unseal the node")
	c.Flags().StringVar(&sharesOut, "shares-out", "shares", "directory for the custodians' sealed share files")
	c.MarkFlagRequired("nation")
	return c
}
