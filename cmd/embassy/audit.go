package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
)

func (a *app) auditCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the node's tamper-evident audit log",
		Long: `Every security-relevant change the node makes is on its audit log, an
append-only Merkle log in the C2SP formats, copied to every site and
optionally cosigned by allied witnesses (docs/audit.md).`,
	}
	c.AddCommand(a.auditLogCmd(), a.auditVerifyCmd(), a.auditProofCmd(), a.auditVerifyProofCmd(), a.auditKeyCmd())
	return c
}

func (a *app) auditLogCmd() *cobra.Command {
	var since, vault, kind, url string
	var limit int
	c := &cobra.Command{
		Use:   "log [--since TIME] [--vault NAME] [--kind KIND] [--limit N]",
		Short: "Show what happened, newest first",
		Long: `Show the audit log's events, newest first: writes, overwrites, deletes and
deletion records, lock, hold and label changes, configuration changes (sites,
vaults, policies, principals, credentials), two-person requests with every
decision, unsealing, key rotations, scrubs, drills and recoveries.

With --node it asks the running node, which needs an S3 credential whose
principal holds the auditor role (EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY).
Without, it opens the node directory, which takes its keys (a local root key,
or --unseal for enough custodians).

--kind takes a kind (object.put) or a family (object, request, evidence).
--since takes an RFC 3339 time or a duration back from now (24h).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := node.AuditQuery{Vault: vault, Kind: kind, Limit: limit}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return err
				}
				q.Since = t
			}
			var evs []node.AuditEntry
			if url != "" {
				ac, err := a.newAdmin(url)
				if err != nil {
					return err
				}
				if ok, err := ac.asOperator(); err != nil {
					return err
				} else if !ok {
					return withHint(errors.New("the audit log of a running node is for auditors"), "set EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY to the S3 credential of a principal with the auditor role")
				}
				v := urlValues(q)
				if err := ac.do(cmd.Context(), http.MethodGet, "v1/audit/log?"+v, nil, &evs); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if evs, err = n.AuditLogEvents(cmd.Context(), q); err != nil {
					return err
				}
			}
			if a.json {
				return a.printJSON(evs)
			}
			for _, e := range evs {
				fmt.Fprintln(a.stdout, formatAuditEntry(e))
			}
			if len(evs) == 0 {
				fmt.Fprintln(a.stdout, "no events")
			}
			return nil
		},
	}
	c.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339, or a duration back from now: 24h)")
	c.Flags().StringVar(&vault, "vault", "", "only events of this vault")
	c.Flags().StringVar(&kind, "kind", "", "only events of this kind or family (object.put, request)")
	c.Flags().IntVar(&limit, "limit", 1000, "at most this many events (the newest)")
	c.Flags().StringVar(&url, "node", "", "URL of the running node to ask (an auditor's credential)")
	return c
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (24h)", s)
	}
	return t, nil
}

func urlValues(q node.AuditQuery) string {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.Vault != "" {
		v.Set("vault", q.Vault)
	}
	if q.Kind != "" {
		v.Set("kind", q.Kind)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v.Encode()
}

// formatAuditEntry is one event on one line: time, index, kind, actor,
// object, outcome and details, each value made safe to print.
func formatAuditEntry(e node.AuditEntry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d %s by %s", e.At.Format(time.RFC3339), e.Index, e.Kind, safeText(e.Actor))
	if e.Vault != "" {
		fmt.Fprintf(&b, " %s", safeText(e.Vault))
		if e.Key != "" {
			fmt.Fprintf(&b, "/%s", safeText(e.Key))
		}
	}
	if !e.Version.IsZero() {
		fmt.Fprintf(&b, " version %s", e.Version)
		if e.Revision > 0 {
			fmt.Fprintf(&b, " revision %d", e.Revision)
		}
	}
	if e.Site != "" {
		fmt.Fprintf(&b, " site %s", safeText(e.Site))
	}
	if e.Outcome != "" {
		fmt.Fprintf(&b, " — %s", safeText(e.Outcome))
	}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, safeText(e.Detail[k]))
	}
	return b.String()
}

func (a *app) auditVerifyCmd() *cobra.Command {
	var url string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check the log's copies, the index and every site against the audit log",
		Long: `Check, from the sites, that every site's copy of the audit log is signed by
the node and is a prefix of the node's log (no split view), that its tiles and
entries make up the tree its checkpoint commits to; then that every version in
the index and every manifest on the sites is in the log at the revision the
log says, that nothing the log says exists is missing, and that no site holds
an older manifest revision or node descriptor than the log records; and it
asks every witness in audit.witnesses for the latest checkpoint of the log it
cosigned, which must be one of the log's tree (otherwise a split view was
shown to it).

It exits non-zero and names what is wrong. What is only not done yet (entries
not yet copied to every site, checkpoints not yet cosigned) is reported as the
window, not as a problem.

Without --node it opens the node directory (its keys: a local root key, or
--unseal). With --node it asks the running node (an auditor's credential).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep node.AuditReport
			if url != "" {
				ac, err := a.newAdmin(url)
				if err != nil {
					return err
				}
				if ok, err := ac.asOperator(); err != nil {
					return err
				} else if !ok {
					return withHint(errors.New("verifying a running node's audit log is for auditors"), "set EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY to the S3 credential of a principal with the auditor role")
				}
				if err := ac.do(cmd.Context(), http.MethodPost, "v1/audit/verify", nil, &rep); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if rep, err = n.VerifyAudit(cmd.Context()); err != nil {
					return err
				}
			}
			if a.json {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				printAuditReport(a, rep)
			}
			if !rep.OK {
				return withHint(fmt.Errorf("audit verify: %d problem(s) contradict the audit log", len(rep.Problems)), "each is named above; 'What audit verify reports' in docs/audit.md says what each means and what to do")
			}
			return nil
		},
	}
	c.Flags().StringVar(&url, "node", "", "URL of the running node to ask (an auditor's credential)")
	return c
}

func printAuditReport(a *app, r node.AuditReport) {
	fmt.Fprintf(a.stdout, "audit log %s: %d entries appended, %d in the tree, checkpoint at %d\n", r.Log.Origin, r.Log.Appended, r.Log.Integrated, r.Log.Checkpoint)
	if r.Log.CopyInterval != "" {
		fmt.Fprintf(a.stdout, "copied to the sites every %s (audit.copy_interval): a new entry is on every site that answers within about %s\n", r.Log.CopyInterval, r.Log.CopyWindow)
	}
	for _, c := range r.Log.Copies {
		state := "verified"
		switch {
		case c.Problem != "":
			state = safeText(c.Problem)
		case c.Behind > 0:
			state = fmt.Sprintf("verified, %d behind", c.Behind)
		}
		fmt.Fprintf(a.stdout, "  site %-12s %8d entries  %s\n", c.Site, c.Size, state)
	}
	for _, w := range r.Witnesses {
		state := "cosigned a checkpoint of the log"
		switch {
		case w.Problem != "":
			state = "SPLIT VIEW: " + w.Problem
		case w.Window != "":
			state = w.Window
		}
		name := w.Witness
		if strings.HasPrefix(w.URL, "peer ") {
			name += " (" + w.URL + ")"
		}
		fmt.Fprintf(a.stdout, "  witness %s %d entries  %s\n", safeText(name), w.Size, safeText(state))
	}
	fmt.Fprintf(a.stdout, "against the log: %d versions exist, %d deleted; %d in the index; %d manifest copies on the sites\n",
		r.State.Versions, r.State.Deleted, r.State.Indexed, r.State.Copies)
	for _, w := range r.Window {
		fmt.Fprintf(a.stdout, "window: %s\n", safeText(w))
	}
	for _, n := range r.State.Notes {
		fmt.Fprintf(a.stdout, "note: %s\n", safeText(n))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(a.stdout, "PROBLEM: %s\n", safeText(p))
	}
	if r.OK {
		fmt.Fprintln(a.stdout, "ok: nothing contradicts the audit log")
	}
}
