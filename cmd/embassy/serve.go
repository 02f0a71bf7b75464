package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
)

func (a *app) serveCmd() *cobra.Command {
	var dev bool
	var data, address, accessKey, secretKey, credFile string
	var extra []string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the S3 API",
		Long: `Serve the node's S3-compatible API (default 127.0.0.1:9000).

With --dev, a development node is created in --data (default ./embassy-dev, or
the --dir given) if none is there: six local directory sites in three jurisdictions on two
providers, new buckets coded 4+2 surviving the loss of any one jurisdiction,
and the root key in a local file, so the node starts unsealed. The endpoint and
credentials are printed.

Credentials come from s3.credentials in node.yaml, from --access-key with
the secret in the file EMBASSY_SECRET_KEY_FILE names (or in EMBASSY_ACCESS_KEY
and EMBASSY_SECRET_KEY), and from --credentials-file FILE, one
principal:access-key:secret-key a line, which lets tests act as several
principals. Secrets are never taken from the command line any more: the
deprecated --secret-key and --credential still work, with a warning.

A non-loopback --address needs TLS (s3.tls_cert and s3.tls_key in node.yaml)
unless s3.allow_insecure is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.warnSecretFlags(cmd, map[string]string{"secret-key": "EMBASSY_SECRET_KEY_FILE or EMBASSY_SECRET_KEY", "credential": "--credentials-file"})
			ctx := cmd.Context()
			dir := a.dir
			dirGiven := cmd.Flags().Changed("dir")
			if !dev && cmd.Flags().Changed("data") {
				return withHint(fmt.Errorf("--data names the directory of a --dev node"), "add --dev, or name a production node's directory with --dir")
			}
			if dev {
				dir = data
				if dirGiven {
					// --dir is the global way to name a node directory:
					// with --dev it names the development node's.
					if cmd.Flags().Changed("data") && filepath.Clean(a.dir) != filepath.Clean(data) {
						return fmt.Errorf("--dir %s and --data %s name two different directories for the --dev node; give one", a.dir, data)
					}
					dir = a.dir
				}
				created, err := node.InitDev(dir, node.DevOptions{})
				if err != nil {
					return err
				}
				if created {
					fmt.Fprintf(a.stdout, "created a development node in %s\n", dir)
				}
			}
			n, err := node.Open(ctx, dir, nil)
			if err != nil {
				return err
			}
			defer n.Close()
			if dev && !n.Config.Node.Dev {
				return withHint(fmt.Errorf("--dev: %s holds a node that is not a development node (node.dev is not set)", dir), "serve it without --dev: 'embassy serve --dir "+dir+"'")
			}
			var creds []s3.Credential
			generated := false
			if accessKey == "" {
				accessKey = os.Getenv("EMBASSY_ACCESS_KEY")
			}
			if secretKey, err = secretFrom(secretKey, "EMBASSY_SECRET_KEY", "EMBASSY_SECRET_KEY_FILE"); err != nil {
				return err
			}
			if (accessKey == "") != (secretKey == "") {
				return withHint(fmt.Errorf("an access key needs a secret key and the other way round"), "set --access-key (or EMBASSY_ACCESS_KEY) and EMBASSY_SECRET_KEY_FILE (or EMBASSY_SECRET_KEY)")
			}
			// Keys given here keep the rule node.yaml's do (s3.ValidAccessKey)
			// and may not repeat one another or node.yaml's.
			seen := map[string]string{}
			for _, c := range n.Config.S3.Credentials {
				seen[c.AccessKey] = "s3.credentials in node.yaml"
			}
			if accessKey != "" {
				if err := s3.ValidAccessKey(accessKey); err != nil {
					return fmt.Errorf("--access-key %q: %w", accessKey, err)
				}
				if err := s3.ValidSecretKey(secretKey); err != nil {
					return fmt.Errorf("--secret-key: %w", err)
				}
				if where, dup := seen[accessKey]; dup {
					return fmt.Errorf("--access-key %s is already in %s", accessKey, where)
				}
				seen[accessKey] = "--access-key"
				creds = append(creds, s3.Credential{AccessKey: accessKey, SecretKey: secretKey, Principal: "admin"})
			}
			var more []s3.Credential
			for _, e := range extra {
				parts := strings.SplitN(e, ":", 3)
				if len(parts) != 3 || parts[0] == "" {
					return fmt.Errorf("--credential %q: want principal:access-key:secret-key", e)
				}
				more = append(more, s3.Credential{Principal: parts[0], AccessKey: parts[1], SecretKey: parts[2]})
			}
			if credFile != "" {
				fc, err := readCredentialsFile(credFile)
				if err != nil {
					return fmt.Errorf("--credentials-file: %w", err)
				}
				more = append(more, fc...)
			}
			for _, c := range more {
				if err := s3.ValidAccessKey(c.AccessKey); err != nil {
					return fmt.Errorf("--credential %s:%s:…: access key: %w", c.Principal, c.AccessKey, err)
				}
				if err := s3.ValidSecretKey(c.SecretKey); err != nil {
					return fmt.Errorf("--credential %s:%s:…: secret key: %w", c.Principal, c.AccessKey, err)
				}
				if where, dup := seen[c.AccessKey]; dup {
					return fmt.Errorf("--credential %s:%s:…: access key %s is already in %s", c.Principal, c.AccessKey, c.AccessKey, where)
				}
				seen[c.AccessKey] = "--credential"
				creds = append(creds, c)
			}
			if len(creds) == 0 && len(n.Config.S3.Credentials) == 0 {
				if !dev {
					return withHint(fmt.Errorf("no S3 credentials configured"), "add s3.credentials to node.yaml, or pass --access-key with EMBASSY_SECRET_KEY_FILE")
				}
				creds = append(creds, node.RandomCredential("admin"))
				generated = true
			}
			// A generated secret is shown (nobody else knows it); secrets
			// given in files, the environment or node.yaml are not, since
			// the output of a service often lands in a shared log.
			shown := creds
			var configured []string
			for _, c := range n.Config.S3.Credentials {
				configured = append(configured, fmt.Sprintf("principal %s: access key %s (secret in node.yaml)", c.Principal, c.AccessKey))
			}
			return n.Serve(ctx, node.ServeOptions{Address: address, Credentials: creds, Ready: func(addr string, tls bool) {
				scheme := "http"
				if tls {
					scheme = "https"
				}
				// Before the banner, which whoever waits for the node watches for.
				unknown := func(principal, accessKey string) {
					if !slices.ContainsFunc(n.Config.Principals, func(p access.Principal) bool { return p.Name == principal }) {
						fmt.Fprintf(a.stderr, "embassy: warning: principal %s is not configured: its credential %s can do nothing until 'embassy principal add %s'\n", principal, accessKey, principal)
					}
				}
				for _, c := range creds {
					unknown(c.Principal, c.AccessKey)
				}
				for _, c := range n.Config.S3.Credentials {
					unknown(c.Principal, c.AccessKey)
				}
				fmt.Fprintf(a.stdout, "embassy node %s (%s) serving S3 at %s://%s\n", n.Config.Node.ID, n.Config.Node.Nation, scheme, addr)
				if dev {
					fmt.Fprintf(a.stdout, "DEV MODE: the root key is a local file in %s and the node is auto-unsealed; not for real data\n", dir)
				}
				if n.Sealed() {
					st := n.Status()
					fmt.Fprintf(a.stdout, "SEALED: the root key is split among custodians (%s); S3 requests are refused until %d of them run 'embassy unseal --node %s://%s --share FILE --key FILE'\n",
						st.Custody, st.Unseal.Threshold, scheme, addr)
				}
				for _, c := range shown {
					if generated {
						fmt.Fprintf(a.stdout, "  principal %s: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s\n", c.Principal, c.AccessKey, c.SecretKey)
					} else {
						fmt.Fprintf(a.stdout, "  principal %s: AWS_ACCESS_KEY_ID=%s (secret as given)\n", c.Principal, c.AccessKey)
					}
				}
				for _, c := range configured {
					fmt.Fprintf(a.stdout, "  %s\n", c)
				}
				if len(shown) > 0 && generated {
					fmt.Fprintf(a.stdout, "try: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s aws --endpoint-url %s://%s s3 mb s3://registry\n", shown[0].AccessKey, shown[0].SecretKey, scheme, addr)
				}
			}})
		},
	}
	f := c.Flags()
	f.BoolVar(&dev, "dev", false, "run a development node (created in --data, or --dir, if missing), auto-unsealed")
	f.StringVar(&data, "data", "embassy-dev", "data directory of the --dev node")
	f.StringVar(&address, "address", "", "listen address (default s3.address, or 127.0.0.1:9000)")
	f.StringVar(&accessKey, "access-key", "", "S3 access key of principal admin (env EMBASSY_ACCESS_KEY)")
	f.StringVar(&secretKey, "secret-key", "", "S3 secret key of principal admin (deprecated: use EMBASSY_SECRET_KEY_FILE or EMBASSY_SECRET_KEY)")
	f.StringArrayVar(&extra, "credential", nil, "another principal as principal:access-key:secret-key (deprecated: use --credentials-file)")
	f.StringVar(&credFile, "credentials-file", "", "a file of further credentials, one principal:access-key:secret-key a line")
	return c
}
