package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func (a *app) initCmd() *cobra.Command {
	var nation string
	c := &cobra.Command{
		Use:   "init --nation CODE",
		Short: "Create a node: configuration and root key",
		Long: `Create a node directory (--dir) holding node.yaml and a local root key file.

The local root key file holds the whole root key; keep the node directory on
storage only the node's operators can read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := node.Init(a.dir, node.InitOptions{Nation: nation})
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]string{"dir": a.dir, "node_id": c.Node.ID, "nation": c.Node.Nation})
			}
			fmt.Fprintf(a.stdout, "node %s for %s created in %s\n", c.Node.ID, c.Node.Nation, a.dir)
			fmt.Fprintf(a.stdout, "next: add sites with 'embassy site add', then 'embassy vault create'\n")
			return nil
		},
	}
	c.Flags().StringVar(&nation, "nation", "", "owning nation, ISO 3166-1 alpha-3 (e.g. EST)")
	c.MarkFlagRequired("nation")
	return c
}
