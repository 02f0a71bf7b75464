// Command embassy runs and operates an embassy node: a sovereign,
// encrypted, erasure-coded object store whose shards are spread over sites
// in several jurisdictions and providers.
//
// Run 'embassy demo' for a self-contained walk-through, or 'embassy help'.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// app holds what every subcommand shares.
type app struct {
	dir       string
	node      string // --node: a running node's URL
	principal string
	unseal    []string
	json      bool
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// hintError is an error with an obvious next step for the user.
type hintError struct {
	err  error
	hint string
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err, hint}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "embassy",
		Short: "A sovereign data embassy: encrypted, erasure-coded storage across jurisdictions",
		Long: `embassy keeps a nation's critical data alive through the loss of any data centre,
provider or whole country: objects are sealed, erasure-coded and spread over
sites in several jurisdictions, and only the owner holds the keys.

Start with 'embassy demo' for a walk-through on throwaway local sites.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readBuildVersion().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	def := os.Getenv("EMBASSY_DIR")
	if def == "" {
		def = "embassy-node"
	}
	root.PersistentFlags().StringVarP(&a.dir, "dir", "d", def, "node directory (env EMBASSY_DIR)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print results as JSON for scripts")
	defPrincipal := os.Getenv("EMBASSY_PRINCIPAL")
	if defPrincipal == "" {
		defPrincipal = "admin"
	}
	root.PersistentFlags().StringArrayVar(&a.unseal, "unseal", nil, "unseal a node directory offline with SHARE-FILE:KEY-FILE (repeat for each custodian)")
	root.PersistentFlags().StringVar(&a.principal, "principal", defPrincipal, "act as this principal (env EMBASSY_PRINCIPAL); access decisions use its nation and clearances")
	root.PersistentFlags().StringVar(&a.node, "node", os.Getenv("EMBASSY_NODE"), "URL of a running node: operator commands go through its admin API, signed with EMBASSY_ACCESS_KEY/EMBASSY_SECRET_KEY_FILE (env EMBASSY_NODE); custodian commands default to s3.address in --dir's node.yaml")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return a.checkRemote(cmd) }
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		a.initCmd(), a.siteCmd(), a.vaultCmd(), a.putCmd(), a.getCmd(), a.lsCmd(),
		a.statCmd(), a.rmCmd(), a.versionsCmd(), a.indexCmd(), a.demoCmd(), a.serveCmd(),
		a.custodianCmd(), a.custodyCmd(), a.keyCmd(), a.relabelCmd(), a.principalCmd(), a.recoverCmd(), a.scrubCmd(), a.drillCmd(), a.unsealCmd(), a.statusCmd(), a.requestCmd(), a.decideCmd(true), a.decideCmd(false), a.identityCmd(), a.configCmd(), a.auditCmd(), a.taxiiCmd(),
		a.versionCmd(), a.jobCmd(), a.peerCmd(), a.shareCmd(), a.replicaCmd(), a.hostCmd(),
	)
	root.AddCommand(a.datasetCmd(), a.catalogCmd())
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		msg := safeText(err.Error())
		if errors.Is(err, node.ErrNodeFile) {
			// The one error written over several lines (one per file and
			// difference); each line is made safe on its own.
			msg = safeLines(err.Error())
		}
		fmt.Fprintf(stderr, "embassy: error: %s\n", msg)
		if h, ok := errors.AsType[*hintError](err); ok {
			fmt.Fprintf(stderr, "hint: %s\n", h.hint)
		} else if errors.Is(err, node.ErrNodeFile) {
			fmt.Fprintf(stderr, "hint: see 'Node files that do not verify' in docs/operator-guide.md; on a node with custodians give 'config restore' and 'config edit' --unseal SHARE:KEY for enough of them\n")
		} else if errors.Is(err, node.ErrNotInitialized) {
			fmt.Fprintf(stderr, "hint: create a node with 'embassy init --nation EST --dir %s', or point --dir (EMBASSY_DIR) at one\n", a.dir)
		}
	}
	return err
}
