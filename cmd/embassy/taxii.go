package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
	"github.com/embassy-dev/embassy/vault"
)

func (a *app) taxiiCmd() *cobra.Command {
	c := &cobra.Command{Use: "taxii", Short: "Threat intelligence: TAXII 2.1 collections, sync with other TAXII servers, the TAXII index",
		Long: `A serving node answers TAXII 2.1 clients at /_embassy/taxii2/ on its S3 listener
(HTTP Basic: an S3 access key and its secret key; TLS unless on loopback). These
commands change the node directory, like 'vault create': run them while the node
is stopped. See docs/threat-intel.md.`}
	coll := &cobra.Command{Use: "collection", Short: "Manage TAXII collections (each lives in a vault)"}
	coll.AddCommand(a.taxiiCollCreateCmd(), a.taxiiCollLsCmd(), a.taxiiCollRmCmd())
	sync := &cobra.Command{Use: "sync", Short: "Keep a collection in step with a collection of another TAXII 2.1 server"}
	sync.AddCommand(a.taxiiSyncAddCmd(), a.taxiiSyncLsCmd(), a.taxiiSyncRmCmd(), a.taxiiSyncRunCmd())
	index := &cobra.Command{Use: "index", Short: "The TAXII index (taxii.db), a cache of the collections' vaults"}
	index.AddCommand(a.taxiiIndexRebuildCmd())
	c.AddCommand(coll, a.taxiiAddCmd(), sync, index)
	return c
}

// printEdit reports a configuration change made through ProposeConfig.
func (a *app) printEdit(res node.EditResult, err error, done string) error {
	if err != nil {
		if a.json && res.RequestID != "" {
			a.printJSON(res)
		}
		if pe, ok := errors.AsType[*vault.PendingError](err); ok {
			if !a.json {
				fmt.Fprintf(a.stdout, "request %s: waiting for %d custodian approval(s)\n", pe.RequestID, pe.Needed)
			}
		}
		return explain(err)
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "%s (node.yaml generation %d)\n", done, res.Generation)
	return nil
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (a *app) taxiiCollCreateCmd() *cobra.Command {
	var col taxii.CollectionConfig
	var community, amber string
	c := &cobra.Command{
		Use:   "create ALIAS --vault VAULT",
		Short: "Create a TAXII collection in a vault",
		Long: `Create a TAXII collection. Its objects are stored in --vault, each STIX object
version a versioned object under taxii2/<collection-id>/, labelled from its TLP
2.0 marking: CLEAR reaches every nation of the node's principals, GREEN the
--community (and --amber), AMBER the --amber peers, AMBER+STRICT the owner's
nationals only, RED only principals holding the category TLP: RED of the owner's
nation. An object without a TLP marking gets --default-tlp.

A collection whose --community or --amber names another nation shares threat
intelligence with it and needs two custodians (a request is made).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			col.Alias = args[0]
			col.Community, col.Amber = splitList(community), splitList(amber)
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if col.ID == "" {
				col.ID = taxii.NewCollectionID()
			}
			res, err := n.AddCollection(n.As(cmd.Context(), a.principal), col)
			return a.printEdit(res, err, fmt.Sprintf("collection %s created in vault %s: id %s, at %s%s/collections/%s/", col.Alias, col.Vault, col.ID, taxii.Prefix, taxii.APIRoot, col.ID))
		},
	}
	f := c.Flags()
	f.StringVar(&col.Vault, "vault", "", "the vault that holds the collection's objects (required)")
	f.StringVar(&col.ID, "id", "", "the collection's TAXII id, a UUID (default: a new one)")
	f.StringVar(&col.Title, "title", "", "title shown to TAXII clients (default: the alias)")
	f.StringVar(&col.Description, "description", "", "description shown to TAXII clients")
	f.StringVar(&col.Classification, "classification", "", "the label every object starts from, e.g. \"NATO RESTRICTED\" (default NATO UNCLASSIFIED)")
	f.StringVar(&community, "community", "", "nations TLP:GREEN reaches, comma-separated (e.g. LUX,FIN)")
	f.StringVar(&amber, "amber", "", "nations TLP:AMBER reaches, comma-separated")
	f.StringVar(&col.DefaultTLP, "default-tlp", "", "TLP of objects without a TLP marking: clear, green, amber, amber+strict or red (default amber+strict)")
	f.StringArrayVar(&col.Statements, "statement", nil, "a statement marking definition id the collection accepts (repeat)")
	f.BoolVar(&col.AllowUnknownMarkings, "allow-unknown-markings", false, "accept marking definitions the node does not know")
	c.MarkFlagRequired("vault")
	return c
}

func (a *app) taxiiCollLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List TAXII collections",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.readConfig(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(nonNil(c.TAXII.Collections))
			}
			w := a.table()
			fmt.Fprintln(w, "ALIAS\tID\tVAULT\tCOMMUNITY\tAMBER\tDEFAULT TLP\tCLASSIFICATION")
			for _, col := range c.TAXII.Collections {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(col.Alias), col.ID, col.Vault, dash(strings.Join(col.Community, ",")), dash(strings.Join(col.Amber, ",")),
					cmpOr(col.DefaultTLP, "amber+strict"), cmpOr(col.Classification, taxii.DefaultClassification))
			}
			return w.Flush()
		},
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (a *app) taxiiCollRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm COLLECTION",
		Short: "Remove a TAXII collection (its objects stay in its vault)",
		Long: `Remove a collection from the configuration. Its objects stay in its vault under
taxii2/<id>/: creating a collection with the same --id makes them visible again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.RemoveCollection(n.As(cmd.Context(), a.principal), args[0])
			return a.printEdit(res, err, "collection "+args[0]+" removed; its objects stay in its vault")
		},
	}
}

func (a *app) taxiiSyncAddCmd() *cobra.Command {
	var job taxii.SyncConfig
	c := &cobra.Command{
		Use:   "add NAME --collection COLLECTION --url URL --direction pull|push|both",
		Short: "Add a sync job with another TAXII 2.1 server",
		Long: `Add a sync job: the local --collection kept in step with the remote collection
at --url (https://HOST/…/collections/ID/) by pulling what it adds (written as the
local principal --as, whose roles, nation and clearance decide what is stored),
pushing what is added here (only what the local principal --recipient, which
stands for the remote side, may read; TLP:RED never), or both. A serving node
runs each job every --interval, with a cursor, retries and backoff; 'embassy
taxii sync run' runs them now.

The remote server's password is read from the file EMBASSY_TAXII_PASSWORD_FILE
names, or from EMBASSY_TAXII_PASSWORD, and kept in the authenticated node.yaml.
A job that pushes sends data away and needs two custodians.

--peer (sync with an allied embassy node over the alliance's peer channel) is
refused: this build has no peer channel; use that node's TAXII URL.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job.Name = args[0]
			pw, err := secretFrom("", "EMBASSY_TAXII_PASSWORD", "EMBASSY_TAXII_PASSWORD_FILE")
			if err != nil {
				return err
			}
			job.Password = pw
			if job.Peer != "" {
				return taxii.ErrNoPeerChannel
			}
			if job.User != "" && job.Password == "" {
				return withHint(errors.New("--user given without a password"), "put the remote server's password in a file and set EMBASSY_TAXII_PASSWORD_FILE to it")
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.AddSync(n.As(cmd.Context(), a.principal), job)
			return a.printEdit(res, err, fmt.Sprintf("sync job %s added: %s %s with %s", job.Name, job.Direction, job.Collection, job.URL))
		},
	}
	f := c.Flags()
	f.StringVar(&job.Collection, "collection", "", "the local collection (alias or id)")
	f.StringVar(&job.URL, "url", "", "the remote collection's URL, ending with '/'")
	f.StringVar(&job.Peer, "peer", "", "an allied embassy node (not available in this build)")
	f.StringVar(&job.Direction, "direction", "pull", "pull, push or both")
	f.StringVar(&job.User, "user", "", "the remote server's HTTP Basic user (for an embassy node: an access key)")
	f.StringVar(&job.As, "as", "", "the local principal pulled objects are written as")
	f.StringVar(&job.Recipient, "recipient", "", "the local principal standing for the remote side: only what it may read is pushed")
	f.StringVar(&job.Interval, "interval", "", "time between runs of a serving node (default 5m)")
	f.BoolVar(&job.AllowInsecure, "allow-insecure", false, "allow an http:// URL that is not loopback (the password crosses the network in the clear)")
	return c
}

func (a *app) taxiiSyncLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List sync jobs and where each has got to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			s, err := n.TAXII()
			if err != nil {
				return err
			}
			type row struct {
				taxii.SyncConfig
				Cursor taxii.SyncCursor `json:"cursor"`
			}
			rows := []row{}
			for _, j := range n.Config.TAXII.Sync {
				cur, err := s.SyncCursorOf(j.Name)
				if err != nil {
					return err
				}
				rows = append(rows, row{j, cur})
			}
			if a.json {
				return a.printJSON(rows)
			}
			w := a.table()
			fmt.Fprintln(w, "NAME\tCOLLECTION\tDIRECTION\tURL\tAS\tRECIPIENT\tPULLED UNTIL\tPUSHED UNTIL\tLAST RUN\tLAST ERROR")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Collection, r.Direction, r.URL, dash(r.As), dash(r.Recipient),
					dash(r.Cursor.PulledUntil), dash(r.Cursor.PushedUntil), dash(r.Cursor.LastRun), dash(safeText(r.Cursor.LastError)))
			}
			return w.Flush()
		},
	}
}

func (a *app) taxiiSyncRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a sync job",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.RemoveSync(n.As(cmd.Context(), a.principal), args[0])
			return a.printEdit(res, err, "sync job "+args[0]+" removed")
		},
	}
}

func (a *app) taxiiSyncRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run [NAME...]",
		Short: "Run sync jobs now (all of them without a name)",
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			names := args
			if len(names) == 0 {
				for _, j := range n.Config.TAXII.Sync {
					names = append(names, j.Name)
				}
			}
			type row struct {
				Name string `json:"name"`
				taxii.SyncResult
				Error string `json:"error,omitempty"`
			}
			rows := []row{}
			var firstErr error
			for _, name := range names {
				res, err := n.SyncTAXII(cmd.Context(), name)
				r := row{Name: name, SyncResult: res}
				if err != nil {
					r.Error = err.Error()
					firstErr = cmp.Or(firstErr, err)
				}
				rows = append(rows, r)
				if !a.json {
					fmt.Fprintf(a.stdout, "%s: pulled %d (refused %d), pushed %d (refused %d), withheld %d", name, res.Pulled, res.PullRefused, res.Pushed, res.PushRefused, res.Withheld)
					if err != nil {
						fmt.Fprintf(a.stdout, ": %s", safeText(err.Error()))
					}
					fmt.Fprintln(a.stdout)
				}
			}
			if a.json {
				a.printJSON(rows)
			}
			return firstErr
		},
	}
}

func (a *app) taxiiIndexRebuildCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild [COLLECTION]",
		Short: "Rebuild the TAXII index of a collection (all without one) from its vault",
		Long: `Rebuild the TAXII index (taxii.db: by date added, id and version, type) from the
collections' vaults, that is from the sites: every version under
taxii2/<collection-id>/, from the metadata stored with it. A serving node does
this by itself for a collection whose index is missing or was interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			st, err := n.RebuildTAXII(cmd.Context(), name)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(st)
			}
			keys := make([]string, 0, len(st))
			for k := range st {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(a.stdout, "collection %s: %d object versions indexed, %d skipped (not TAXII objects)\n", k, st[k].Indexed, st[k].Skipped)
			}
			return nil
		},
	}
}

func (a *app) taxiiAddCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "add COLLECTION FILE",
		Short: "Add the objects of a STIX bundle or TAXII envelope file to a collection",
		Long: `Add the objects of FILE (a STIX 2.1 bundle or a TAXII 2.1 envelope: JSON with
"objects") to a collection, as --principal, exactly as a TAXII client's Add
Objects: each object is checked on its own and labelled from its TLP marking;
one that is invalid, carries a marking the collection does not accept, or that
the principal may not write is refused with its reason, and the others are
stored. Exits 1 if any object was refused. FILE "-" reads standard input.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			var err error
			if args[1] == "-" {
				body, err = io.ReadAll(io.LimitReader(a.stdin, 256<<20))
			} else {
				body, err = os.ReadFile(args[1])
			}
			if err != nil {
				return err
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			st, err := n.AddTAXII(n.As(cmd.Context(), a.principal), args[0], body)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(st)
			} else {
				fmt.Fprintf(a.stdout, "%d of %d objects stored (status %s)\n", st.SuccessCount, st.TotalCount, st.ID)
				for _, f := range st.Failures {
					fmt.Fprintf(a.stdout, "refused %s: %s\n", dash(safeText(f.ID)), safeText(f.Message))
				}
			}
			if st.FailureCount > 0 {
				return fmt.Errorf("%d of %d objects refused", st.FailureCount, st.TotalCount)
			}
			return nil
		},
	}
}
