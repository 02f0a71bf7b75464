package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

func (a *app) siteCmd() *cobra.Command {
	c := &cobra.Command{Use: "site", Short: "Manage the sites that hold shards"}
	c.AddCommand(a.siteAddCmd(), a.siteLsCmd(), a.siteRmCmd(), a.siteDrainCmd())
	return c
}

func (a *app) siteAddCmd() *cobra.Command {
	var s node.SiteConfig
	var isolated bool
	var s3c s3site.Config
	var s3Secret string
	c := &cobra.Command{
		Use:   "add ID --driver dir --path DIR --jurisdiction CODE --provider NAME",
		Short: "Add a site",
		Long: `Add a site. --jurisdiction is where its data physically sits; --control is the
jurisdiction whose law controls the provider (default: the site's jurisdiction).
Both are ISO 3166-1 alpha-3 codes.

With --peer NATION the site is hosted by that trusted ally's node, reached over the peer
link: its jurisdiction, provider, control and accreditation are what the ally's card
states, and the survivability proof trusts that statement (docs/alliance.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.warnSecretFlags(cmd, map[string]string{"s3-secret-key": "EMBASSY_SITE_SECRET_KEY_FILE or EMBASSY_SITE_SECRET_KEY"})
			s.ID = args[0]
			if s.Peer != "" {
				// A hosted site: its attributes are its host's card's.
				s.Driver, s.Path = "peer", ""
			}
			if s.Control == "" && s.Driver != "peer" {
				s.Control = s.Jurisdiction
			}
			if isolated {
				s.Connectivity = site.Isolated
			}
			if s.Driver == "s3" {
				sec, err := secretFrom(s3Secret, "EMBASSY_SITE_SECRET_KEY", "EMBASSY_SITE_SECRET_KEY_FILE")
				if err != nil {
					return err
				}
				s3Secret = sec
				s3c.SecretKey = s3site.Secret(s3Secret)
				s.S3 = &s3c
			}
			if a.node != "" {
				// A relative path is the node's: under its directory.
				return a.remoteSiteAdd(cmd, s)
			}
			if s.Driver == "dir" && s.Path != "" && !filepath.IsAbs(s.Path) {
				abs, err := filepath.Abs(s.Path)
				if err != nil {
					return err
				}
				s.Path = abs
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.AddSite(s); err != nil {
				return err
			}
			for _, o := range n.Config.Sites {
				if o.ID == s.ID {
					s = o // as added: a hosted site's attributes are its host's card's
				}
			}
			s3c.CreateBucket = false // done; node.yaml does not keep it
			if a.json {
				return a.printJSON(s)
			}
			fmt.Fprintf(a.stdout, "site %s added: %s in %s, provider %s (controlled from %s)\n", s.ID, s.Driver, s.Jurisdiction, s.Provider, s.Control)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&s.Driver, "driver", "dir", "site driver: dir or s3 (--peer makes it peer)")
	f.StringVar(&s.Peer, "peer", "", "a site hosted by this trusted peer (nation or node id): jurisdiction, provider and control are its card's")
	f.StringVar(&s.Quota, "quota", "", "with --peer: the room the host agreed to, e.g. 10TiB (refused if the host grants less)")
	f.StringVar(&s.Path, "path", "", "directory for the dir driver")
	f.StringVar(&s.Jurisdiction, "jurisdiction", "", "where the data physically sits (ISO 3166-1 alpha-3)")
	f.StringVar(&s.Provider, "provider", "", "organisation providing the storage")
	f.StringVar(&s.Control, "control", "", "jurisdiction whose law controls the provider (default: --jurisdiction)")
	f.StringVar(&s.Operator, "operator", "", "who operates the site")
	f.StringVar(&s.Accredited, "accredited", "", "highest classification the site is accredited for, e.g. \"NATO SECRET\"")
	f.BoolVar(&isolated, "isolated", false, "reached only by offline transfer (never written synchronously)")
	f.StringVar(&s3c.Endpoint, "s3-endpoint", "", "s3 driver: host:port of the provider's S3 endpoint")
	f.StringVar(&s3c.Region, "s3-region", "", "s3 driver: the bucket's region")
	f.StringVar(&s3c.Bucket, "s3-bucket", "", "s3 driver: bucket")
	f.StringVar(&s3c.Prefix, "s3-prefix", "", "s3 driver: folder in the bucket for this site's blobs")
	f.StringVar(&s3c.AccessKey, "s3-access-key", "", "s3 driver: access key")
	f.StringVar(&s3Secret, "s3-secret-key", "", "s3 driver: secret key (deprecated: use EMBASSY_SITE_SECRET_KEY_FILE or EMBASSY_SITE_SECRET_KEY)")
	f.BoolVar(&s3c.Secure, "s3-tls", false, "s3 driver: use TLS (https)")
	f.BoolVar(&s3c.CreateBucket, "s3-create-bucket", false, "s3 driver: create the bucket if missing")
	return c
}

func (a *app) siteLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List sites and whether each is available",
		Long: `List the configured sites. Each site's marker is read to tell whether the
site is this node's: a site whose marker names another node or site, or that
has none, is unavailable (nothing on it is read, written or deleted), and
STATE says why. Without the node's key at hand (a root key split among
custodians) the markers' signatures are not checked, and the listing says
so. The node need not be stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remoteSiteLs(cmd)
			}
			c, err := a.readConfig(cmd.Context())
			if err != nil {
				return err
			}
			states, err := node.InspectSites(cmd.Context(), a.dir, 10*time.Second)
			if err != nil {
				return err
			}
			rows := make([]node.SiteInfo, len(c.Sites))
			unverified := false
			for i, s := range c.Sites {
				rows[i] = node.SiteInfo{SiteConfig: s, State: states[i].State, Reason: states[i].Reason, MarkerVerified: states[i].Verified}
				unverified = unverified || (!states[i].Verified && states[i].State == "ok")
			}
			if err := a.printSites(rows); err != nil {
				return err
			}
			if unverified && !a.json {
				fmt.Fprintln(a.stdout, "(marker signatures not verified: the root key is with the custodians)")
			}
			return nil
		},
	}
}

// printSites prints sites with their states, as JSON or a table.
func (a *app) printSites(rows []node.SiteInfo) error {
	if a.json {
		return a.printJSON(nonNil(rows))
	}
	w := a.table()
	fmt.Fprintln(w, "ID\tJURISDICTION\tPROVIDER\tCONTROL\tACCREDITED\tDRIVER\tPATH\tSTATE")
	for _, r := range rows {
		state := r.State
		if r.Draining {
			state += " (draining)"
		}
		if r.Reason != "" {
			state += ": " + r.Reason
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Jurisdiction, r.Provider, r.Control, dash(r.Accredited), r.Driver, dash(sitePlace(r.SiteConfig)), safeText(state))
	}
	return w.Flush()
}

// sitePlace is where a site keeps its blobs: a directory, or an S3
// endpoint, bucket and prefix.
func sitePlace(s node.SiteConfig) string {
	if s.Driver == "peer" {
		return "peer " + s.Peer
	}
	if s.S3 != nil {
		p := s.S3.Endpoint + "/" + s.S3.Bucket
		if pre := strings.Trim(s.S3.Prefix, "/"); pre != "" {
			p += "/" + pre
		}
		return p
	}
	return s.Path
}

func (a *app) siteRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID",
		Short: "Remove a site that holds no data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return a.remoteSiteRm(cmd, args[0])
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.RemoveSite(n.As(cmd.Context(), a.principal), args[0]); err != nil {
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "site %s removed\n", args[0])
			return nil
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
