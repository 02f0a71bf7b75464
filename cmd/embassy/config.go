package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/internal/textdiff"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

func (a *app) configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Change node.yaml safely: show, edit, apply, restore"}
	c.AddCommand(a.configShowCmd(), a.configEditCmd(), a.configRestoreCmd())
	return c
}

var secretLine = regexp.MustCompile(`^(\s*-?\s*(?:secret_key|password):\s*).+$`)

// redactSecrets hides secret values in a line of node.yaml.
func redactSecrets(line string) string {
	return secretLine.ReplaceAllString(line, "${1}<redacted>")
}

func (a *app) configEditCmd() *cobra.Command {
	var applyPath string
	c := &cobra.Command{
		Use:   "edit [--apply FILE]",
		Short: "Edit node.yaml in $EDITOR (or apply FILE): validate, show the changes, authenticate",
		Long: `Open node.yaml in $EDITOR (default vi), then validate what was saved, show what
changed, and authenticate the new file as the next generation of node.yaml.
With --apply FILE, FILE is the proposed node.yaml and no editor is started.

A change that the equivalent command would put before custodians keeps that
gate (the table is in docs/configuration.md, "What needs custodians"): the
whole edit then becomes one two-person request (config.edit), applied when
enough custodians approve it; a node without custodians refuses it. Changes
that are never made this way (node.id, node.nation, keys, a vault's key_gen)
are refused with the command that makes them.

If node.yaml itself does not verify (a hand edit), the sites' copy is put in
force and the local file, kept as node.yaml.rejected-TIME, is where the edit
starts: this is how a hand edit is made legitimate.

An invalid file is refused with the line named; an edit that is refused is
kept (node.yaml.edit-*) so that nothing typed is lost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remoteConfigEdit(cmd, applyPath)
			}
			ctx := cmd.Context()
			n, err := a.openWith(ctx, node.OpenOptions{Restore: []string{node.ConfigFile}})
			if err != nil {
				return err
			}
			defer n.Close()
			cur, err := n.CurrentConfigBody()
			if err != nil {
				return err
			}
			start := cur
			if aside := n.SetAside[node.ConfigFile]; aside != "" {
				fmt.Fprintf(a.stderr, "node.yaml did not verify: the sites' copy is in force again, and the local file, kept as %s, is what this edit starts from\n", aside)
				if f, err := os.ReadFile(aside); err == nil {
					start = stripAuthenticator(f)
				}
			}
			return a.configEdit(ctx, cur, start, applyPath, a.dir, func(proposed []byte) (node.EditResult, error) {
				return n.ProposeConfig(n.As(ctx, a.principal), proposed)
			})
		},
	}
	c.Flags().StringVar(&applyPath, "apply", "", "propose this file as node.yaml instead of starting an editor")
	return c
}

// configEdit is 'config edit' offline and with --node: cur is node.yaml in
// force as the client sees it (redacted through the API), start what the
// editor opens, tmpDir where the edit is kept, and propose the node's
// ProposeConfig (offline) or PUT v1/config (--node).
func (a *app) configEdit(ctx context.Context, cur, start []byte, applyPath, tmpDir string, propose func([]byte) (node.EditResult, error)) error {
	var proposed []byte
	var kept string
	var err error
	if applyPath != "" {
		if proposed, err = os.ReadFile(applyPath); err != nil {
			return err
		}
		kept = applyPath
	} else {
		if proposed, kept, err = a.runEditor(ctx, tmpDir, start); err != nil {
			return err
		}
		if bytes.Equal(proposed, cur) {
			os.Remove(kept)
			fmt.Fprintln(a.stdout, "no changes")
			return nil
		}
	}
	proposed = stripAuthenticator(proposed)
	if d := textdiff.Unified("node.yaml (in force)", "node.yaml (proposed)", string(cur), string(proposed), 2, redactSecrets); d != "" && !a.json {
		fmt.Fprint(a.stdout, d)
	}
	res, err := propose(proposed)
	if !a.json {
		for _, ch := range res.Changes {
			switch ch.Gate {
			case node.Custodians:
				fmt.Fprintf(a.stdout, "change: %s [needs custodians: %s]\n", ch.Text, ch.Why)
			case node.Refused:
				fmt.Fprintf(a.stdout, "change: %s [refused: %s]\n", ch.Text, ch.Why)
			default:
				fmt.Fprintf(a.stdout, "change: %s\n", ch.Text)
			}
		}
	}
	if err != nil && a.json && res.RequestID != "" {
		a.printJSON(res)
	}
	if err != nil {
		if applyPath == "" && !errors.Is(err, vault.ErrApprovalRequired) {
			err = withHint(err, fmt.Sprintf("your edit is kept in %s; fix it and run 'embassy config edit --apply %s'", kept, kept))
		} else if applyPath == "" {
			os.Remove(kept)
		}
		return explain(err)
	}
	if applyPath == "" {
		os.Remove(kept)
	}
	if a.json {
		return a.printJSON(res)
	}
	switch {
	case res.Applied:
		fmt.Fprintf(a.stdout, "node.yaml updated: generation %d\n", res.Generation)
	default:
		fmt.Fprintln(a.stdout, "no changes")
	}
	return nil
}

// remoteConfigEdit is 'config edit' with --node: node.yaml is fetched
// redacted (GET v1/config), edited here, and proposed (PUT v1/config);
// the markers keep the secrets they name, a new secret is written in
// clear.
func (a *app) remoteConfigEdit(cmd *cobra.Command, applyPath string) error {
	ac, err := a.operator(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var v node.ConfigView
	if err := a.call(ctx, ac, http.MethodGet, "v1/config", nil, &v); err != nil {
		return err
	}
	base := v.Generation
	if applyPath != "" {
		// A file made earlier: proposed against whatever is in force.
		base = 0
	}
	return a.configEdit(ctx, []byte(v.Body), []byte(v.Body), applyPath, os.TempDir(), func(proposed []byte) (node.EditResult, error) {
		if err := plainSecrets(a.node, proposed); err != nil {
			return node.EditResult{}, err
		}
		var ans node.ConfigEditAnswer
		err := ac.do(ctx, http.MethodPut, "v1/config", node.ConfigProposal{Body: string(proposed), BaseGeneration: base}, &ans)
		if re, ok := errors.AsType[*remoteError](err); ok && len(re.body) > 0 {
			json.Unmarshal(re.body, &ans)
		}
		return ans.EditResult, err
	})
}

func (a *app) configShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print node.yaml in force, every secret replaced by a marker",
		Long: `Print node.yaml as in force (without its authenticator line), every secret —
S3 credentials' secret keys, S3 sites' secret keys, TAXII sync passwords —
replaced by a marker that names it (embassy-redacted:s3.credentials/ACCESS-KEY,
embassy-redacted:sites/ID/s3, embassy-redacted:taxii.sync/NAME). A file made
from it can be proposed with 'embassy config edit --apply FILE': each marker
keeps the secret it names, as long as it stays in its place (the same access
key, the same site endpoint, the same sync URL); a new secret is written in
clear. With --json: {"generation": N, "body": "..."}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v node.ConfigView
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodGet, "v1/config", nil, &v); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if v, err = n.ShowConfig(); err != nil {
					return err
				}
			}
			if a.json {
				return a.printJSON(v)
			}
			_, err := io.WriteString(a.stdout, v.Body)
			return err
		},
	}
}

// stripAuthenticator removes node.yaml's authenticator line, if any.
func stripAuthenticator(b []byte) []byte {
	trimmed := bytes.TrimSuffix(b, []byte("\n"))
	i := bytes.LastIndexByte(trimmed, '\n') + 1
	if bytes.HasPrefix(trimmed[i:], []byte("# embassy-authenticator:")) {
		return b[:i]
	}
	return b
}

// runEditor writes start to a private file in dir (the node directory
// offline, the temporary directory with --node), opens
// it in $EDITOR and returns what was saved and the file's path.
func (a *app) runEditor(ctx context.Context, dir string, start []byte) ([]byte, string, error) {
	f, err := os.CreateTemp(dir, "node.yaml.edit-*")
	if err != nil {
		return nil, "", err
	}
	path := f.Name()
	_, err = f.Write(start)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, "", err
	}
	editor := os.Getenv("EDITOR")
	if editor == "" {
		editor = "vi"
	}
	// $EDITOR may carry arguments ("code --wait"): the shell splits it.
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "sh", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, a.stderr, a.stderr
	if in, ok := a.stdin.(*os.File); ok {
		cmd.Stdin = in
	}
	if err := cmd.Run(); err != nil {
		return nil, path, withHint(fmt.Errorf("editor %q: %w", editor, err), fmt.Sprintf("your edit, if any, is in %s; apply it with 'embassy config edit --apply %s'", path, path))
	}
	b, err := os.ReadFile(path)
	return b, path, err
}

func (a *app) configRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore",
		Short: "Put back node files that do not verify, from the newest node descriptor on the sites",
		Long: `Verify node.yaml, custody.json, requests.json and identity.json as unsealing
does, and replace each that does not verify (a hand edit, a damaged or older
file, another node's) with its copy in the newest node descriptor on the
sites. Each replaced file is kept beside it as NAME.rejected-TIME. A node with
custodians needs --unseal for enough of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.openWith(cmd.Context(), node.OpenOptions{Restore: node.NodeFiles})
			if err != nil {
				return err
			}
			defer n.Close()
			if a.json {
				out := []map[string]string{}
				for _, f := range n.Restored {
					out = append(out, map[string]string{"file": f, "kept_as": n.SetAside[f]})
				}
				return a.printJSON(out)
			}
			if len(n.Restored) == 0 {
				fmt.Fprintln(a.stdout, "every node file verifies; nothing restored")
				return nil
			}
			for _, f := range n.Restored {
				kept := "(there was no local file)"
				if p := n.SetAside[f]; p != "" {
					kept = "the local file kept as " + filepath.Base(p)
				}
				fmt.Fprintf(a.stdout, "restored %s from the sites; %s\n", f, kept)
			}
			return nil
		},
	}
}

// plainSecrets refuses to send a proposal that carries a secret in clear
// (a new S3 secret key, a site's key, a sync password: kept secrets travel
// as markers) to a node reached by plain http on another host: the admin
// API signs requests but does not encrypt them, so the secret would cross
// the network readable by anyone on the path. Loopback (a node on this
// machine, or an SSH tunnel to it) and https are fine.
func plainSecrets(nodeURL string, proposed []byte) error {
	u, err := url.Parse(nodeURL)
	if err != nil || u.Scheme != "http" {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	where, err := node.ClearSecrets(proposed)
	if err != nil || len(where) == 0 {
		return nil // the node names what is wrong with the file
	}
	return withHint(fmt.Errorf("the proposal carries %s in clear, and --node %s is plain http to another host: the secret would cross the network unencrypted; nothing was sent", strings.Join(where, ", "), nodeURL),
		"reach the node over https (serve with TLS), or through an SSH tunnel to its loopback address (--node http://127.0.0.1:PORT), or edit node.yaml on the node itself")
}
