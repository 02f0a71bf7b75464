package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/custody/shamir"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

func (a *app) recoverCmd() *cobra.Command {
	var fromDir, fromSite, fromPeer, peerFP, keyPath string
	var shares, paths []string
	var acceptStale bool
	c := &cobra.Command{
		Use:   "recover --dir NEW (--from-dir SITE-PATH | --from-site SITE.yaml | --from-peer ALLY.card) (--key ROOT.key | --share SHARE:KEY ...)",
		Short: "Rebuild a node on a fresh machine from any one site and the root key or T custodians' shares",
		Long: `Rebuild a destroyed node from the sites alone. Every site holds the node's
sealed descriptor (configuration, sites and credentials, vaults, policies,
principals, custody record). Given one site and the root key file, or the
shares of T custodians (each SHARE:KEY pair decrypted here), recover writes the
node directory (--dir, which must be new), rebuilds the index from every site it
can reach, and reports what it found. Then 'embassy serve' serves every object.

--site-path ID=PATH moves a directory site to where it is mounted on this machine.

--from-peer ALLY.card rebuilds the node from the replica an ally keeps of it
(grant level replicate, docs/alliance.md), after the node lost its directory and
every site it controls: the ally is reached on its peer listener with a key
derived from the root key, every replicated blob goes back to the site it came
from (a lost directory site is made anew where the descriptor puts it; an S3
site's bucket must exist), and the recovered audit log is checked to account for
every replicated version. --fingerprint checks the ally's card.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var from site.Site
			var err error
			switch {
			case fromPeer != "":
			case fromDir != "":
				from, err = dir.Open(fromDir)
			case fromSite != "":
				b, rerr := os.ReadFile(fromSite)
				if rerr != nil {
					return rerr
				}
				var sc node.SiteConfig
				if err := yaml.Unmarshal(b, &sc); err != nil {
					return fmt.Errorf("%s: %w", fromSite, err)
				}
				from, err = node.OpenSiteConfig(cmd.Context(), sc)
			default:
				return withHint(fmt.Errorf("name the site to recover from"), "pass --from-dir PATH for a directory site, --from-site SITE.yaml for any site, or --from-peer ALLY.card for an ally keeping a replica")
			}
			if err != nil {
				return err
			}
			if c, ok := from.(io.Closer); ok {
				// An S3 site's driver keeps its connections to the
				// provider open until closed.
				defer c.Close()
			}
			o := node.RecoverOptions{Dir: a.dir, From: from, SitePaths: map[string]string{}}
			for _, p := range paths {
				id, path, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--site-path %q: want ID=PATH", p)
				}
				o.SitePaths[id] = path
			}
			switch {
			case keyPath != "":
				root, err := custody.ReadKeyFile(keyPath)
				if err != nil {
					return err
				}
				o.RootKey = &root
			case len(shares) > 0:
				for _, spec := range shares {
					sp, kp, ok := strings.Cut(spec, ":")
					if !ok {
						return fmt.Errorf("--share %q: want SHARE-FILE:KEY-FILE", spec)
					}
					_, s, err := a.openShare(sp, kp)
					if err != nil {
						return err
					}
					o.Shares = append(o.Shares, s)
				}
			default:
				return withHint(fmt.Errorf("recovery needs the root key"), "pass --key ROOT.key, or --share SHARE:KEY for T custodians")
			}
			o.AcceptStale = acceptStale
			var n *node.Node
			var rep node.RecoverReport
			var pr *node.PeerRestoreReport
			if fromPeer != "" {
				card, rerr := os.ReadFile(fromPeer)
				if rerr != nil {
					return rerr
				}
				var p node.PeerRestoreReport
				n, rep, p, err = node.RecoverFromPeer(cmd.Context(), node.RecoverFromPeerOptions{RecoverOptions: o, Card: card, Fingerprint: peerFP})
				pr = &p
				if errors.Is(err, node.ErrFingerprint) {
					err = withHint(err, "do not trust this card: get the ally's card and its fingerprint from its operators again")
				}
			} else {
				n, rep, err = node.Recover(cmd.Context(), o)
			}
			for _, s := range o.Shares {
				clear(s)
			}
			if errors.Is(err, shamir.ErrNotEnoughShares) {
				return withHint(err, "nothing was written: give --share SHARE:KEY for as many custodians as the node's threshold")
			}
			if errors.Is(err, node.ErrStaleDescriptor) {
				return withHint(err, fmt.Sprintf("recover from a site that holds generation %d, or mount the sites not reached (--site-path ID=PATH); only if they are lost for good, pass --accept-stale to take generation %d", rep.LogGeneration, rep.Generation))
			}
			if err != nil {
				return err
			}
			defer n.Close()
			if a.json {
				out := map[string]any{"dir": a.dir, "node": n.Config.Node.ID, "descriptor": rep.Descriptor(), "rebuild": rep.Rebuild, "sites": rep.SiteStates,
					"witness_logs": rep.WitnessLogs}
				if rep.WitnessProblem != "" {
					out["witness_problem"] = rep.WitnessProblem
				}
				if pr != nil {
					out["peer"] = pr
				}
				return a.printJSON(out)
			}
			st := rep.Rebuild
			if pr != nil {
				fmt.Fprintf(a.stdout, "replica of node %s at %s (%s): %d blobs (%d bytes) written back to the sites, %d there already, %d of sites no longer configured; %d deletion records applied by the ally\n",
					pr.Owner, pr.Peer, pr.Nation, pr.Blobs, pr.Bytes, pr.Present, pr.Skipped, pr.Deletions)
				if pr.Refused > 0 {
					fmt.Fprintf(a.stdout, "  REFUSED: %d blobs the ally sent or listed other than the node's manifests give them, not written (first: %s)\n", pr.Refused, safeText(pr.RefusedBlobs[0]))
				}
				if pr.ShardsMissing > 0 {
					fmt.Fprintf(a.stdout, "  %d shard blobs a manifest places on its site are not at the ally: those versions are degraded until 'embassy scrub --repair' rebuilds them\n", pr.ShardsMissing)
				}
			}
			fmt.Fprintf(a.stdout, "node %s (%s) recovered into %s: %d sites, %d vaults\n", n.Config.Node.ID, n.Config.Node.Nation, a.dir, len(n.Config.Sites), len(n.Config.Vaults))
			fmt.Fprintf(a.stdout, "node descriptor: generation %d, the newest found (from %s)\n", rep.Generation, rep.Source)
			switch {
			case rep.LogProblem != "":
				fmt.Fprintf(a.stdout, "  not checked against the audit log: %s\n", safeText(rep.LogProblem))
			case rep.LogGeneration > rep.Generation:
				fmt.Fprintf(a.stdout, "  STALE: the audit log (site %s, %d entries) records generation %d; taken because of --accept-stale\n", rep.LogSite, rep.LogEntries, rep.LogGeneration)
			default:
				fmt.Fprintf(a.stdout, "  the newest the audit log records (site %s, %d entries: generation %d)\n", rep.LogSite, rep.LogEntries, rep.LogGeneration)
			}
			for _, s := range rep.Sites {
				if s.Problem != "" {
					fmt.Fprintf(a.stdout, "  descriptor on %s: %s\n", s.Site, s.Problem)
				}
			}
			fmt.Fprintf(a.stdout, "index rebuilt from %d sites: %d versions (%d delete markers)\n", st.Sites, st.Versions, st.Markers)
			for _, e := range st.SiteErrors {
				fmt.Fprintf(a.stdout, "  site not reachable: %s\n", safeText(e))
			}
			for _, u := range st.Unreadable {
				fmt.Fprintf(a.stdout, "  NOT RESTORED: %s\n", safeText(u))
			}
			listed := map[string]bool{}
			for _, e := range st.SiteErrors {
				id, _, _ := strings.Cut(e, ":")
				listed[id] = true
			}
			for _, s := range rep.SiteStates {
				if s.State != "ok" && !listed[s.ID] {
					fmt.Fprintf(a.stdout, "  site %s unavailable: %s\n", s.ID, s.Reason)
				}
			}
			switch {
			case rep.WitnessProblem != "":
				fmt.Fprintf(a.stdout, "witness memory NOT restored from the sites: %s\n", safeText(rep.WitnessProblem))
			case rep.WitnessLogs > 0:
				fmt.Fprintf(a.stdout, "witness memory: the latest checkpoints this node cosigned of %d logs, from the sites\n", rep.WitnessLogs)
			}
			if pr != nil {
				fmt.Fprintf(a.stdout, "audit log: all %d versions of the replicated scopes it records are back\n", pr.LogVersions)
				printLogRestart(a, pr.Log)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&fromDir, "from-dir", "", "a directory site to read the node descriptor from")
	f.StringVar(&fromSite, "from-site", "", "a YAML file describing the site to read the node descriptor from (as in node.yaml's sites)")
	f.StringVar(&fromPeer, "from-peer", "", "an ally's peer card: rebuild from the replica it keeps of this node")
	f.StringVar(&peerFP, "fingerprint", "", "with --from-peer: the ally card's fingerprint, as confirmed with its operators")
	f.StringVar(&keyPath, "key", "", "the node's root key file")
	f.StringArrayVar(&shares, "share", nil, "a custodian's SHARE-FILE:KEY-FILE (repeat for T custodians)")
	f.StringArrayVar(&paths, "site-path", nil, "ID=PATH: where a directory site is on this machine")
	f.BoolVar(&acceptStale, "accept-stale", false, "take the newest descriptor found even if the audit log records a newer generation (its sites are lost for good)")
	return c
}

// printLogRestart says what the peer witnesses held of the recovered log
// and whether a restart was recorded (docs/alliance.md, "Recover from an
// ally").
func printLogRestart(a *app, r node.LogRestartReport) {
	if r.Problem != "" {
		fmt.Fprintf(a.stdout, "audit log: the witnesses were not asked: %s\n", safeText(r.Problem))
	}
	if r.Entry == nil {
		fmt.Fprintf(a.stdout, "audit log: %d entries recovered; no peer witness that answered cosigned more\n", r.Recovered)
	} else {
		fmt.Fprintf(a.stdout, "audit log: %d entries recovered; the witnesses cosigned %d more, written after the ally's last pull: LOST, with every version and change they recorded\n", r.Recovered, r.Lost)
	}
	for _, w := range r.Witnesses {
		name := fmt.Sprintf("witness %s (peer %s)", w.Witness, w.Nation)
		switch {
		case w.Restarted:
			fmt.Fprintf(a.stdout, "  %s cosigned %d entries: it accepted the restart\n", name, w.Size)
		case w.Problem != "" && w.Size > r.Recovered:
			fmt.Fprintf(a.stdout, "  %s cosigned %d entries; it did not accept the restart: %s\n", name, w.Size, safeText(w.Problem))
		case w.Problem != "":
			fmt.Fprintf(a.stdout, "  %s: %s\n", name, safeText(w.Problem))
		default:
			fmt.Fprintf(a.stdout, "  %s cosigned %d entries: held by the recovered log\n", name, w.Size)
		}
	}
	if r.Entry != nil {
		fmt.Fprintf(a.stdout, "audit log: entry #%d (log.restart) records the loss; the log goes on from it\n", *r.Entry)
	}
}
