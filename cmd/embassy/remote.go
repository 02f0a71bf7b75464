package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

// With --node URL (or EMBASSY_NODE) the operator commands talk to the
// running node through its admin API (/_embassy/v1/…), signed with an
// operator's S3 credential, instead of opening the node directory: the
// node serves on while its sites, vaults, policies and principals change,
// and long operations run in it as jobs. Without --node they open the
// directory (--dir) of a stopped node, as before.

// remoteCommands are the commands that work against a running node; the
// custodian commands (status, unseal, request ls, approve, reject) always
// do, --node naming the node.
var remoteCommands = map[string]bool{
	"site add": true, "site ls": true, "site rm": true, "site drain": true,
	"vault create": true, "vault ls": true, "vault set-policy": true, "vault rm": true,
	"principal add": true, "principal ls": true, "principal rm": true, "config show": true, "config edit": true,
	"relabel": true, "key rotate": true, "scrub": true, "drill": true, "index rebuild": true,
	"job ls": true, "job show": true, "job cancel": true, "job rate": true,
	"dataset describe": true, "dataset ls": true, "dataset rm": true, "catalog": true,
	"peer card": true, "peer add": true, "peer ls": true, "peer rm": true,
	"share grant": true, "share ls": true, "share revoke": true, "share odrl": true,
	"host add": true, "host ls": true, "host rm": true,
	"status": true, "unseal": true, "request ls": true, "approve": true, "reject": true,
	"version": true, "help": true, "completion": true,
}

// localOnly says why a command cannot work against a running node.
var localOnly = map[string]string{
	"init":            "it creates a node directory on this machine",
	"recover":         "it rebuilds a node directory on this machine from a site",
	"demo":            "it runs a throwaway node of its own",
	"custodian":       "custodian keys are made and kept on the custodian's own machine",
	"serve":           "it is the running node",
	"custody resplit": "it writes new share files into the node directory: stop the node and run it there",
	"key rotate-root": "it rewrites the node's keys in the node directory: stop the node and run it there",
	"config restore":  "it replaces node files in the node directory with the sites' copies: stop the node and run it there",
	"identity":        "it reads the node directory",
	"index compact":   "it replaces the index file, which the running node holds: stop the node and run it there",
}

// checkRemote refuses, when --node is given, a command that has no remote
// form, naming why, instead of opening the directory behind the running
// node's back.
func (a *app) checkRemote(cmd *cobra.Command) error {
	if a.node == "" {
		return nil
	}
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	if cmd == cmd.Root() || remoteCommands[path] || remoteCommands[strings.Fields(path)[0]] {
		return nil
	}
	why := ""
	for p, w := range localOnly {
		if path == p || strings.HasPrefix(path, p+" ") {
			why = w
		}
	}
	if why == "" {
		why = "it has no remote form yet: stop the node and run it on its directory"
		switch strings.Fields(path)[0] {
		case "put", "get", "ls", "stat", "rm", "versions":
			why = "objects are read and written through the S3 API (aws s3, rclone, restic) on the running node"
		}
	}
	return withHint(fmt.Errorf("'embassy %s' does not work against a running node (--node %s): %s", path, a.node, why),
		"drop --node (and unset EMBASSY_NODE) to run it on a stopped node's directory (--dir)")
}

// operatorCredentialFile reads EMBASSY_CREDENTIALS_FILE (lines of
// principal:access-key:secret-key, as serve --credentials-file): the line of
// --principal when it was given, else the first.
func (a *app) operatorCredentialFile(principalGiven bool) (string, string, error) {
	f := os.Getenv("EMBASSY_CREDENTIALS_FILE")
	if f == "" {
		return "", "", nil
	}
	creds, err := readCredentialsFile(f)
	if err != nil {
		return "", "", fmt.Errorf("EMBASSY_CREDENTIALS_FILE: %w", err)
	}
	for _, c := range creds {
		if !principalGiven || c.Principal == a.principal {
			return c.AccessKey, c.SecretKey, nil
		}
	}
	return "", "", fmt.Errorf("EMBASSY_CREDENTIALS_FILE %s has no credential of principal %s", f, a.principal)
}

// operator returns a client of the running node signing as an operator.
func (a *app) operator(cmd *cobra.Command) (*adminClient, error) {
	ac, err := a.newAdmin(a.node)
	if err != nil {
		return nil, err
	}
	ok, err := ac.asOperator()
	if err != nil {
		return nil, err
	}
	if !ok {
		given := cmd.Flags().Changed("principal") || os.Getenv("EMBASSY_PRINCIPAL") != ""
		ak, sk, err := a.operatorCredentialFile(given)
		if err != nil {
			return nil, err
		}
		if ak == "" {
			return nil, withHint(errors.New("--node needs an operator's S3 credential"),
				"set EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY_FILE (or EMBASSY_SECRET_KEY), or EMBASSY_CREDENTIALS_FILE, to a credential whose principal holds the operator role (admin for principal add and rm)")
		}
		ac.accessKey, ac.secretKey = ak, sk
		if r := os.Getenv("AWS_REGION"); r != "" {
			ac.region = r
		}
	}
	return ac, nil
}

// remoteError is a refusal by the running node, with its code.
type remoteError struct {
	msg, code string
	// body is the whole answer, for endpoints that say more with a
	// refusal (PUT v1/config: the changes and the request).
	body []byte
}

// Error is the node's message: for a refusal of the operation itself
// (a code of the admin API) the message the offline command gives, for
// anything else (authentication, transport) marked as the node's.
func (e *remoteError) Error() string {
	switch e.code {
	case "bad_request", "denied", "not_found", "approval_required", "infeasible", "blocked", "conflict":
		return e.msg
	}
	return "node: " + e.msg
}

// Is maps the node's codes to the errors offline commands return, so the
// same hints apply.
func (e *remoteError) Is(target error) bool {
	switch e.code {
	case "approval_required":
		return target == vault.ErrApprovalRequired
	case "not_found":
		return target == vault.ErrNoSuchVault && strings.Contains(e.msg, "vault")
	case "blocked":
		return target == node.ErrDrainBlocked
	}
	return false
}

// call sends an operator request and decodes the answer; a refusal is a
// *remoteError.
// callNode calls the running node's admin API as the operator whose
// credential the command was given: the remote half of a command that
// also works offline.
func (a *app) callNode(cmd *cobra.Command, method, path string, in, out any) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	return a.call(cmd.Context(), ac, method, path, in, out)
}

func (a *app) call(ctx context.Context, ac *adminClient, method, path string, in, out any) error {
	err := ac.do(ctx, method, path, in, out)
	if err != nil {
		return explain(err)
	}
	return nil
}

// startJob starts a job and follows it (unless --detach), returning it
// once it has ended.
func (a *app) startJob(cmd *cobra.Command, ac *adminClient, path string, in any, label string) (*node.Job, error) {
	var j node.Job
	if err := a.call(cmd.Context(), ac, http.MethodPost, path, in, &j); err != nil {
		return nil, err
	}
	if d, _ := cmd.Flags().GetBool("detach"); d {
		if a.json {
			return nil, a.printJSON(j)
		}
		fmt.Fprintf(a.stdout, "job %s started (%s); follow it with 'embassy --node %s job show %s --follow'\n", j.ID, j.Kind, ac.url, j.ID)
		return nil, nil
	}
	fmt.Fprintf(a.stderr, "job %s started (%s); Ctrl-C detaches, the job goes on\n", j.ID, j.Kind)
	return a.follow(cmd.Context(), ac, j, label)
}

// follow shows a job's progress until it ends: a bar on a terminal, JSON
// events on standard error with --json. Ctrl-C (ctx done) detaches: the
// job goes on in the node, and follow returns (nil, nil).
func (a *app) follow(ctx context.Context, ac *adminClient, j node.Job, label string) (*node.Job, error) {
	var p *progress
	finish := func() {
		if p != nil {
			p.finish()
		}
	}
	defer finish()
	enc := json.NewEncoder(a.stderr)
	last := node.JobProgress{Done: -1}
	for {
		if a.json && j.Progress != last {
			enc.Encode(jobEvent{Event: "progress", Job: j.ID, Kind: j.Kind, State: j.State, Progress: j.Progress})
			last = j.Progress
		}
		if !a.json && j.Progress.Total > 0 {
			if p == nil {
				p = a.startProgress(&progress{label: label, total: j.Progress.Total, count: true, start: time.Now()})
			}
			p.set(j.Progress.Done)
		}
		if j.State.Finished() {
			finish()
			if a.json {
				enc.Encode(jobEvent{Event: "end", Job: j.ID, Kind: j.Kind, State: j.State, Progress: j.Progress, Error: j.Error})
			}
			return &j, jobError(j)
		}
		select {
		case <-ctx.Done():
			finish()
			fmt.Fprintf(a.stderr, "\ndetached: job %s goes on in the node; follow it with 'embassy --node %s job show %s --follow', stop it with 'job cancel %s'\n", j.ID, ac.url, j.ID, j.ID)
			return nil, nil
		case <-time.After(500 * time.Millisecond):
		}
		var next node.Job
		if err := ac.do(ctx, http.MethodGet, "v1/jobs/"+url.PathEscape(j.ID)+"?wait=1s", nil, &next); err != nil {
			if ctx.Err() != nil {
				continue
			}
			return nil, err
		}
		j = next
	}
}

// jobEvent is one line of --json progress on standard error.
type jobEvent struct {
	Event    string           `json:"event"` // progress, end
	Job      string           `json:"job"`
	Kind     string           `json:"kind"`
	State    node.JobState    `json:"state"`
	Progress node.JobProgress `json:"progress"`
	Error    string           `json:"error,omitempty"`
}

// jobError is the error a job ended with, if it did not end done.
func jobError(j node.Job) error {
	switch j.State {
	case node.JobDone:
		return nil
	case node.JobCancelled:
		return fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Error)
	}
	return fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Error)
}

// result decodes a finished job's report into v.
func result(j *node.Job, v any) error {
	if len(j.Result) == 0 {
		return fmt.Errorf("job %s ended without a report", j.ID)
	}
	return json.Unmarshal(j.Result, v)
}

// detachFlag adds --detach to a command that starts a job.
func detachFlag(c *cobra.Command) {
	c.Flags().Bool("detach", false, "with --node: start the job and return at once, printing its id")
}

func (a *app) remoteSiteAdd(cmd *cobra.Command, s node.SiteConfig) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var m map[string]any
	json.Unmarshal(body, &m)
	if s.S3 != nil {
		// The secret redacts itself when marshalled: put it back.
		if err := refuseInsecure(ac.url); err != nil {
			return withHint(errors.New("refusing to send an s3 site's secret key over plain http to a node not on this machine"), "use the node's https:// address")
		}
		if s3m, ok := m["s3"].(map[string]any); ok {
			s3m["secret_key"] = string(s.S3.SecretKey)
		}
	}
	var si node.SiteInfo
	if err := a.call(cmd.Context(), ac, http.MethodPost, "v1/sites", m, &si); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(si.SiteConfig)
	}
	fmt.Fprintf(a.stdout, "site %s added: %s in %s, provider %s (controlled from %s)\n", si.ID, si.Driver, si.Jurisdiction, si.Provider, si.Control)
	return nil
}

func (a *app) remoteSiteLs(cmd *cobra.Command) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	var rows []node.SiteInfo
	if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/sites", nil, &rows); err != nil {
		return err
	}
	return a.printSites(rows)
}

func (a *app) remoteSiteRm(cmd *cobra.Command, id string) error {
	if err := a.callNode(cmd, http.MethodDelete, "v1/sites/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "site %s removed\n", id)
	return nil
}

func (a *app) remoteDrain(cmd *cobra.Command, q node.DrainRequest) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	start := time.Now()
	j, err := a.startJob(cmd, ac, "v1/sites/drain", q, "drain")
	if err != nil || j == nil {
		if errors.Is(err, node.ErrDrainBlocked) {
			return withHint(err, "add sites that can take the shards, or change the blocking vaults' policies")
		}
		return err
	}
	var rep node.DrainReport
	if err := result(j, &rep); err != nil {
		return err
	}
	return a.printDrain(rep.Sites, rep, time.Since(start))
}

func (a *app) remoteScrub(cmd *cobra.Command, q node.ScrubRequest) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	j, err := a.startJob(cmd, ac, "v1/scrub", q, "scrub")
	if err != nil || j == nil {
		return err
	}
	var r housekeeping.ScrubReport
	if err := result(j, &r); err != nil {
		return err
	}
	return a.printScrubResult(r, q.Repair)
}

func (a *app) remoteDrill(cmd *cobra.Command, q node.DrillRequest) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	j, err := a.startJob(cmd, ac, "v1/drill", q, "drill")
	if err != nil || j == nil {
		return err
	}
	var r housekeeping.DrillReport
	if err := result(j, &r); err != nil {
		return err
	}
	return a.printDrill(q.Lose, r)
}

func (a *app) remoteRebuild(cmd *cobra.Command) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	j, err := a.startJob(cmd, ac, "v1/index/rebuild", nil, "rebuild")
	if err != nil || j == nil {
		return err
	}
	var st housekeeping.RebuildStats
	if err := result(j, &st); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(st)
	}
	printRebuild(a, st)
	return nil
}

func (a *app) remoteRotate(cmd *cobra.Command, name string, resume bool) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	j, err := a.startJob(cmd, ac, "v1/vaults/"+url.PathEscape(name)+"/rotate-key", node.RotateRequest{Resume: resume}, "rotate")
	if err != nil || j == nil {
		return err
	}
	var st vault.RewrapStats
	if err := result(j, &st); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(st)
	}
	printRewrap(a.stdout, st)
	return nil
}

// nation returns the running node's nation.
func (a *app) nation(ctx context.Context, ac *adminClient) (string, error) {
	var st node.Status
	if err := a.call(ctx, ac, http.MethodGet, "v1/status", nil, &st); err != nil {
		return "", err
	}
	return st.Nation, nil
}

func (a *app) remoteVaultCreate(cmd *cobra.Command, v node.VaultConfig) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	var got node.VaultConfig
	if err := a.call(cmd.Context(), ac, http.MethodPost, "v1/vaults", v, &got); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(got)
	}
	nation, err := a.nation(cmd.Context(), ac)
	if err != nil {
		return err
	}
	p, err := got.Policy(nation)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "vault %s created: %d+%d, survives %s%s\n", got.Name, p.K, p.M, p.Survive,
		map[bool]string{true: " and the loss of " + p.Home, false: ""}[got.OutsideHome])
	return nil
}

func (a *app) remoteVaultLs(cmd *cobra.Command) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	var vs []node.VaultConfig
	if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/vaults", nil, &vs); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(nonNil(vs))
	}
	nation, err := a.nation(cmd.Context(), ac)
	if err != nil {
		return err
	}
	return a.printVaults(vs, nation)
}

func (a *app) remoteSetPolicy(cmd *cobra.Command, name string, pc node.PolicyChange) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	var v node.VaultConfig
	if err := a.call(cmd.Context(), ac, http.MethodPut, "v1/vaults/"+url.PathEscape(name)+"/policy", pc, &v); err != nil {
		return err
	}
	nation, err := a.nation(cmd.Context(), ac)
	if err != nil {
		return err
	}
	p, _ := v.Policy(nation)
	fmt.Fprintf(a.stdout, "vault %s policy set: %d+%d, survives %s%s%s\n", name, p.K, p.M, p.Survive,
		map[bool]string{true: " and the loss of " + p.Home, false: ""}[p.OutsideHome],
		map[bool]string{true: ", only in " + strings.Join(p.Allowed, ","), false: ""}[len(p.Allowed) > 0])
	return nil
}

func (a *app) remotePrincipalAdd(cmd *cobra.Command, p access.Principal) error {
	if err := a.callNode(cmd, http.MethodPost, "v1/principals", p, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "principal %s added\n", p.Name)
	return nil
}

func (a *app) remotePrincipalRm(cmd *cobra.Command, name string) error {
	if err := a.callNode(cmd, http.MethodDelete, "v1/principals/"+url.PathEscape(name), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "principal %s removed\n", name)
	return nil
}

func (a *app) remoteVaultRm(cmd *cobra.Command, name string) error {
	if err := a.callNode(cmd, http.MethodDelete, "v1/vaults/"+url.PathEscape(name), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "vault %s deleted\n", name)
	return nil
}

func (a *app) remotePrincipalLs(cmd *cobra.Command) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	var ps []access.Principal
	if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/principals", nil, &ps); err != nil {
		return err
	}
	if a.json {
		out := []principalJSON{}
		for _, p := range ps {
			out = append(out, principalJSON{Principal: p, Roles: p.Roles})
		}
		return a.printJSON(out)
	}
	w := a.table()
	fmt.Fprintln(w, "NAME\tNATION\tCLEARANCES\tCATEGORIES\tROLES")
	for _, p := range ps {
		fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\n", p.Name, p.Nation, p.Clearances, p.Categories, p.RoleSummary())
	}
	return w.Flush()
}

func (a *app) remoteRelabel(cmd *cobra.Command, path, version, label string) error {
	vaultName, key, err := needKey(path)
	if err != nil {
		return err
	}
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	var r node.RelabelResult
	if err := a.call(cmd.Context(), ac, http.MethodPost, "v1/relabel", node.Relabel{Vault: vaultName, Key: key, Version: version, Label: label}, &r); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s version %s is now %s\n", safeText(r.Vault+"/"+r.Key), r.Version, safeText(r.Label))
	return nil
}

func (a *app) jobCmd() *cobra.Command {
	c := &cobra.Command{Use: "job", Short: "Long operations running in a node (--node): list, follow, cancel",
		Long: `A running node carries out drains, scrubs, drills, index rebuilds and key
rotations started with --node as jobs: they go on when the client that started
them disconnects or is interrupted (Ctrl-C detaches). A job that was running
when the node stopped is listed as interrupted; start it again and it carries on
where it stopped.`}
	need := func(cmd *cobra.Command) (*adminClient, error) {
		if a.node == "" {
			return nil, withHint(errors.New("jobs run in a running node"), "name it with --node URL (or EMBASSY_NODE)")
		}
		return a.operator(cmd)
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ac, err := need(cmd)
			if err != nil {
				return err
			}
			var js []node.Job
			if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/jobs", nil, &js); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(nonNil(js))
			}
			w := a.table()
			fmt.Fprintln(w, "ID\tKIND\tSTATE\tPROGRESS\tSTARTED BY\tCREATED\tPARAMETERS")
			for _, j := range js {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, j.State, progressText(j.Progress), safeText(j.Principal), j.Created.Format(time.RFC3339), safeText(paramsText(j.Params)))
			}
			return w.Flush()
		},
	}
	var followFlag bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a job: its state, progress and, once ended, its report",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := need(cmd)
			if err != nil {
				return err
			}
			var j node.Job
			if err := a.call(cmd.Context(), ac, http.MethodGet, "v1/jobs/"+url.PathEscape(args[0]), nil, &j); err != nil {
				return err
			}
			if followFlag && !j.State.Finished() {
				jj, err := a.follow(cmd.Context(), ac, j, j.Kind)
				if jj == nil {
					return err
				}
				j = *jj
			}
			if a.json {
				return a.printJSON(j)
			}
			fmt.Fprintf(a.stdout, "job %s: %s %s\n", j.ID, j.Kind, j.State)
			fmt.Fprintf(a.stdout, "  started by %s at %s; parameters: %s\n", safeText(j.Principal), j.Created.Format(time.RFC3339), dash(safeText(paramsText(j.Params))))
			fmt.Fprintf(a.stdout, "  progress: %s\n", progressText(j.Progress))
			if !j.Ended.IsZero() {
				fmt.Fprintf(a.stdout, "  ended %s\n", j.Ended.Format(time.RFC3339))
			}
			if j.Error != "" {
				fmt.Fprintf(a.stdout, "  error: %s\n", safeText(j.Error))
			}
			if len(j.Result) > 0 {
				fmt.Fprintf(a.stdout, "  report (as --json prints it):\n%s\n", indentJSON(j.Result))
			}
			return nil
		},
	}
	show.Flags().BoolVar(&followFlag, "follow", false, "follow the job's progress until it ends (Ctrl-C detaches)")
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running job (what it did stays done; it can be started again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := need(cmd)
			if err != nil {
				return err
			}
			var j node.Job
			if err := a.call(cmd.Context(), ac, http.MethodPost, "v1/jobs/"+url.PathEscape(args[0])+"/cancel", nil, &j); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(j)
			}
			fmt.Fprintf(a.stdout, "job %s: %s\n", j.ID, j.State)
			return nil
		},
	}
	rate := &cobra.Command{
		Use:   "rate ID RATE",
		Short: "Change a running scrub's or drain's read rate limit, e.g. 20MiB (per second; 0 for none)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := need(cmd)
			if err != nil {
				return err
			}
			var j node.Job
			if err := a.call(cmd.Context(), ac, http.MethodPut, "v1/jobs/"+url.PathEscape(args[0])+"/rate", node.RateRequest{Rate: args[1]}, &j); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(j)
			}
			limit := "no limit"
			if j.RateLimit > 0 {
				limit = human(j.RateLimit) + "/s"
			}
			fmt.Fprintf(a.stdout, "job %s: reads limited to %s\n", j.ID, limit)
			return nil
		},
	}
	c.AddCommand(ls, show, cancel, rate)
	return c
}

func progressText(p node.JobProgress) string {
	s := fmt.Sprintf("%d", p.Done)
	if p.Total > 0 {
		s += fmt.Sprintf("/%d", p.Total)
	}
	s += " " + cmpOr(p.Unit, "versions")
	if p.Rate > 0 {
		s += fmt.Sprintf(", %.1f/s", p.Rate)
	}
	if p.ETASeconds > 0 {
		s += ", ETA " + (time.Duration(p.ETASeconds * float64(time.Second))).Round(time.Second).String()
	}
	return s
}

func paramsText(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func indentJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.MarshalIndent(v, "    ", "  ")
	return "    " + string(out)
}
