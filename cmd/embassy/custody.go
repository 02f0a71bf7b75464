package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/node"
)

func (a *app) custodianCmd() *cobra.Command {
	c := &cobra.Command{Use: "custodian", Short: "Custodian keys: generate them on each custodian's own machine"}
	var out string
	var noPassphrase bool
	kg := &cobra.Command{
		Use:   "keygen NAME",
		Short: "Generate a custodian's key pair: NAME.key (private, keep offline) and NAME.pub (give to the node)",
		Long: `Generate a custodian key: a post-quantum hybrid key (MLKEM768-X25519) to which
the custodian's share of the root key is encrypted, and an Ed25519 key with which
the custodian signs approvals. Run it on the custodian's own machine; only
NAME.pub leaves it.

NAME.key is protected by a passphrase (Argon2id, then AES-256-GCM), asked twice
on the terminal or read from the file EMBASSY_PASSPHRASE_FILE names; at least
12 characters. --no-passphrase writes it unprotected.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kp, pp := filepath.Join(out, args[0]+".key"), filepath.Join(out, args[0]+".pub")
			if _, err := os.Stat(kp); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite a custodian key", kp)
			}
			k, err := custody.GenerateCustodian(args[0])
			if err != nil {
				return err
			}
			var priv []byte
			if noPassphrase {
				priv, err = k.MarshalPrivate()
			} else {
				var pass []byte
				if pass, err = a.passphraseFrom(passphraseEnv, "passphrase for "+kp+" (at least 12 characters): ", true); err != nil {
					return withHint(err, "or write the key without one: --no-passphrase")
				}
				priv, err = k.MarshalPrivateProtected(pass)
				clear(pass)
			}
			if err != nil {
				return err
			}
			pub, err := k.Public().MarshalPublic()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			if err := atomicfile.Write(kp, priv, 0o600); err != nil {
				return err
			}
			if err := atomicfile.Write(pp, pub, 0o644); err != nil {
				return err
			}
			protection := "protected by its passphrase"
			if noPassphrase {
				protection = "NOT protected by a passphrase"
			}
			fmt.Fprintf(a.stdout, "custodian %s: private key %s (%s; keep it offline), public key %s (give it to the node's operators)\n", args[0], kp, protection, pp)
			rfp, sfp, _ := k.Public().Fingerprints()
			fmt.Fprintf(a.stdout, "  share key %s\n  signing key %s\n", rfp, sfp)
			return nil
		},
	}
	kg.Flags().StringVar(&out, "out", ".", "directory for NAME.key and NAME.pub")
	kg.Flags().BoolVar(&noPassphrase, "no-passphrase", false, "write NAME.key without a passphrase (anyone who copies the file holds the key)")
	var clearPass bool
	pw := &cobra.Command{
		Use:   "passphrase KEY",
		Short: "Protect a custodian key file with a passphrase, or change its passphrase",
		Long: `Read the custodian key file KEY (asking its passphrase if it has one, from the
terminal or EMBASSY_PASSPHRASE_FILE) and write it back protected by a new
passphrase (asked twice on the terminal, or read from the file
EMBASSY_NEW_PASSPHRASE_FILE names). Key files from before keys were protected
are plain; this is how they get a passphrase.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			k, err := a.readCustodianKey(path)
			if err != nil {
				return err
			}
			var b []byte
			if clearPass {
				b, err = k.MarshalPrivate()
			} else {
				var pass []byte
				if pass, err = a.passphraseFrom("EMBASSY_NEW_PASSPHRASE_FILE", "new passphrase for "+path+" (at least 12 characters): ", true); err != nil {
					return err
				}
				b, err = k.MarshalPrivateProtected(pass)
				clear(pass)
			}
			if err != nil {
				return err
			}
			if err := atomicfile.Write(path, b, 0o600); err != nil {
				return err
			}
			if clearPass {
				fmt.Fprintf(a.stdout, "%s: custodian %s's key is NOT protected by a passphrase any more\n", path, k.Name())
			} else {
				fmt.Fprintf(a.stdout, "%s: custodian %s's key is protected by the new passphrase\n", path, k.Name())
			}
			return nil
		},
	}
	pw.Flags().BoolVar(&clearPass, "remove", false, "write the key back without a passphrase")
	c.AddCommand(kg, pw)
	return c
}

// adminClient talks to a running node's admin API: anonymously, as a
// custodian (requests signed with the custodian's key) or as an operator
// (AWS Signature V4 with an S3 credential).
type adminClient struct {
	url  string // the node, e.g. https://node.example:9000
	base string // url + /_embassy/
	hc   *http.Client
	// key signs custodian requests; node is the node's id they are bound
	// to ("" until known: GETs are then signed for any node).
	key  *custody.CustodianKey
	node string
	// accessKey and secretKey sign operator requests; region is the
	// node's.
	accessKey, secretKey, region string
}

// newAdmin returns a client of the running node at url or, when url is
// empty, at the address the node in --dir is configured to listen on.
func (a *app) newAdmin(url string) (*adminClient, error) {
	region := "us-east-1"
	if url == "" {
		var err error
		if url, err = defaultNodeURL(a.dir); err != nil {
			return nil, err
		}
	}
	if c, err := node.LoadConfig(a.dir); err == nil && c.S3.Region != "" {
		region = c.S3.Region
	}
	url = strings.TrimRight(url, "/")
	// The admin API never redirects: following one would send a signed
	// request, a share among them, wherever the answer points (a 307
	// keeps the body), plain http included.
	hc := &http.Client{Timeout: 2 * time.Minute, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		return fmt.Errorf("the node at %s redirects to %s: not followed", url, req.URL.Redacted())
	}}
	return &adminClient{url: url, base: url + node.AdminPrefix, hc: hc, region: region}, nil
}

// asCustodian makes c sign as the custodian holding k.
func (c *adminClient) asCustodian(k *custody.CustodianKey) *adminClient {
	c.key = k
	return c
}

// asOperator makes c sign with the S3 credential in the environment
// (EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY or EMBASSY_SECRET_KEY_FILE,
// else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), if there is one.
func (c *adminClient) asOperator() (bool, error) {
	ak, sk, err := operatorCredential()
	if err != nil || ak == "" {
		return false, err
	}
	c.accessKey, c.secretKey = ak, sk
	if r := os.Getenv("AWS_REGION"); r != "" {
		c.region = r
	}
	return true, nil
}

// operatorCredential reads an S3 credential from the environment.
func operatorCredential() (string, string, error) {
	ak, sk := os.Getenv("EMBASSY_ACCESS_KEY"), os.Getenv("EMBASSY_SECRET_KEY")
	if f := os.Getenv("EMBASSY_SECRET_KEY_FILE"); f != "" && sk == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", "", fmt.Errorf("EMBASSY_SECRET_KEY_FILE: %w", err)
		}
		sk = strings.TrimSpace(string(b))
	}
	if ak == "" {
		ak, sk = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	if ak != "" && sk == "" {
		return "", "", errors.New("an access key is set in the environment but no secret key (EMBASSY_SECRET_KEY or EMBASSY_SECRET_KEY_FILE)")
	}
	return ak, sk, nil
}

// defaultNodeURL is where the node in dir serves: s3.address from its
// node.yaml (an unspecified host such as 0.0.0.0 is reached on loopback),
// https when it has TLS; http://127.0.0.1:9000 when dir holds no node.
func defaultNodeURL(dir string) (string, error) {
	c, err := node.LoadConfig(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "http://127.0.0.1:9000", nil
	}
	if err != nil {
		return "", withHint(err, "name the running node with --node URL")
	}
	addr := c.S3.Address
	if addr == "" {
		addr = "127.0.0.1:9000"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", withHint(fmt.Errorf("s3.address %q in %s: %w", addr, filepath.Join(dir, node.ConfigFile), err), "name the running node with --node URL")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	scheme := "http"
	if c.S3.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// do sends a request to the admin API. Paths under v1/custody/ are signed
// as the custodian, other v1/ paths as the operator.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(path, "v1/custody/"):
		if c.key == nil {
			return errors.New("custodian endpoint without a custodian key")
		}
		nodeID := c.node
		if nodeID == "" {
			nodeID = "-"
		}
		node.SignCustodianRequest(req, nodeID, c.key.Name(), body, c.key.Sign, time.Now())
	case strings.HasPrefix(path, "v1/"):
		if c.accessKey == "" {
			return withHint(errors.New("this needs an operator's S3 credential"), "set EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY (or EMBASSY_SECRET_KEY_FILE) to a credential whose principal holds the operator role, or give a custodian's --key")
		}
		sum := sha256.Sum256(body)
		payload := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", payload)
		err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: c.accessKey, SecretAccessKey: c.secretKey}, req, payload, "s3", c.region, time.Now())
		if err != nil {
			return err
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return withHint(err, "is the node running? start it with 'embassy serve' and point --node at it")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if strings.HasPrefix(e.Error, "node files do not verify") {
				return remoteFilesError(e.Error)
			}
			return &remoteError{msg: e.Error, code: e.Code, body: b}
		}
		return fmt.Errorf("node: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// remoteFilesError is a running node's refusal to unseal because its node
// files do not verify: printed line by line, with the same hint as offline.
type remoteFilesError string

func (e remoteFilesError) Error() string        { return "node: " + string(e) }
func (e remoteFilesError) Is(target error) bool { return target == node.ErrNodeFile }

// custodianStatus learns the node's id and state as a custodian, and binds
// the client's later requests to that id.
func (c *adminClient) custodianStatus(ctx context.Context) (node.Status, error) {
	var st node.Status
	if err := c.do(ctx, http.MethodGet, "v1/custody/status", nil, &st); err != nil {
		return st, err
	}
	c.node = st.Node
	return st, nil
}

// refuseInsecure refuses to send a secret over plain http to a node that
// is not on this machine, or over anything but http and https.
func refuseInsecure(raw string) error {
	u, err := neturl.Parse(raw)
	if err != nil {
		return fmt.Errorf("--node %q: %w", raw, err)
	}
	switch u.Scheme { // url.Parse lowercases it: HTTP:// is http
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	default:
		return withHint(fmt.Errorf("--node %q: the node's address must start with https:// (or http:// on this machine)", raw), "use the node's https:// address (s3.tls_cert)")
	}
	return withHint(fmt.Errorf("refusing to send a share over plain http to %s, which is not on this machine", raw), "use the node's https:// address (s3.tls_cert), or run unseal on the node's own machine")
}

// openShare decrypts a share file with a custodian key.
func (a *app) openShare(sharePath, keyPath string) (string, []byte, error) {
	k, err := a.readCustodianKey(keyPath)
	if err != nil {
		return "", nil, err
	}
	return openShareWith(sharePath, k)
}

// openShareWith decrypts a share file with k, and returns the node id the
// file names and the encoded share.
func openShareWith(sharePath string, k *custody.CustodianKey) (string, []byte, error) {
	f, err := os.ReadFile(sharePath)
	if err != nil {
		return "", nil, err
	}
	hdr, share, err := k.OpenShare(f)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", sharePath, err)
	}
	return hdr.Node, share, nil
}

func (a *app) unsealCmd() *cobra.Command {
	var sharePath, keyPath string
	c := &cobra.Command{
		Use:   "unseal --share FILE --key FILE",
		Short: "Give one custodian's share to a sealed node",
		Long: `Decrypt this custodian's share file with their key, on this machine, and give
the share to the running node (--node), in a request signed with the same key.
The node id written in the share file must be the running node's, and a node not
on this machine is reached over TLS (https://) only. The node starts serving once
the threshold of custodians has unsealed it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := a.readCustodianKey(keyPath)
			if err != nil {
				return err
			}
			shareNode, share, err := openShareWith(sharePath, k)
			if err != nil {
				return err
			}
			defer clear(share)
			ac, err := a.newAdmin(a.node)
			if err != nil {
				return err
			}
			if err := refuseInsecure(ac.url); err != nil {
				return err
			}
			st, err := ac.asCustodian(k).custodianStatus(cmd.Context())
			if err != nil {
				return err
			}
			if st.Node != shareNode {
				return withHint(fmt.Errorf("%s is a share of node %s, but the node at %s is %s: not sent", sharePath, shareNode, ac.url, st.Node), "check --node and the share file")
			}
			var us node.UnsealStatus
			if err := ac.do(cmd.Context(), http.MethodPost, "v1/custody/unseal", map[string]string{"share": base64.StdEncoding.EncodeToString(share)}, &us); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(us)
			}
			if us.Sealed {
				fmt.Fprintf(a.stdout, "share accepted: %d of %d; the node is still sealed\n", us.Given, us.Threshold)
			} else {
				fmt.Fprintln(a.stdout, "the node is unsealed")
			}
			return nil
		},
	}
	c.Flags().StringVar(&sharePath, "share", "", "this custodian's share file")
	c.Flags().StringVar(&keyPath, "key", "", "this custodian's private key file")
	c.MarkFlagRequired("share")
	c.MarkFlagRequired("key")
	return c
}

func (a *app) statusCmd() *cobra.Command {
	var keyPath string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a running node's status: custody, sealed or not",
		Long: `Show a running node's status. Anonymously the node says only whether it is
sealed. A custodian (--key) or an operator (an S3 credential in
EMBASSY_ACCESS_KEY and EMBASSY_SECRET_KEY, whose principal holds the operator
or auditor role) sees the node id, nation, custody and unseal progress.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ac, err := a.newAdmin(a.node)
			if err != nil {
				return err
			}
			var st node.Status
			switch operator, err := ac.asOperator(); {
			case err != nil:
				return err
			case keyPath != "":
				k, err := a.readCustodianKey(keyPath)
				if err != nil {
					return err
				}
				if st, err = ac.asCustodian(k).custodianStatus(cmd.Context()); err != nil {
					return err
				}
			case operator:
				if err := ac.do(cmd.Context(), http.MethodGet, "v1/status", nil, &st); err != nil {
					return err
				}
			default:
				var ss node.SealedStatus
				if err := ac.do(cmd.Context(), http.MethodGet, "status", nil, &ss); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(ss)
				}
				state := "unsealed"
				if ss.Sealed {
					state = "SEALED"
				}
				fmt.Fprintf(a.stdout, "node at %s: %s\n", ac.url, state)
				fmt.Fprintln(a.stderr, "(a custodian's --key, or an operator's credential in EMBASSY_ACCESS_KEY/EMBASSY_SECRET_KEY, shows the node's id, custody and unseal progress)")
				return nil
			}
			if a.json {
				return a.printJSON(st)
			}
			state := "unsealed"
			if st.Unseal.Sealed {
				state = fmt.Sprintf("SEALED (%d of %d shares given)", st.Unseal.Given, st.Unseal.Threshold)
			}
			fmt.Fprintf(a.stdout, "node %s (%s): %s; custody: %s\n", st.Node, st.Nation, state, st.Custody)
			if st.Note != "" {
				fmt.Fprintln(a.stdout, st.Note)
			}
			if !st.Unseal.Sealed {
				fmt.Fprintf(a.stdout, "node descriptor: generation %d\n", st.Descriptor.Generation)
				if st.Descriptor.Behind != "" {
					fmt.Fprintf(a.stdout, "  NOT PUBLISHED: %s\n", st.Descriptor.Behind)
				}
			}
			a.printKeyUse(st.Keys)
			for _, s := range st.Sites {
				if s.State == "ok" {
					fmt.Fprintf(a.stdout, "site %s: ok\n", s.ID)
				} else {
					fmt.Fprintf(a.stdout, "site %s: UNAVAILABLE: %s\n", s.ID, s.Reason)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "a custodian's private key file: ask as that custodian")
	return c
}

func (a *app) requestCmd() *cobra.Command {
	var keyPath string
	c := &cobra.Command{Use: "request", Short: "Two-person requests awaiting custodians"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List requests",
		Long: `List a running node's two-person requests, as a custodian (--key) or as an
operator or auditor (an S3 credential in EMBASSY_ACCESS_KEY and
EMBASSY_SECRET_KEY).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ac, err := a.newAdmin(a.node)
			if err != nil {
				return err
			}
			path := "v1/requests"
			if keyPath != "" {
				k, err := a.readCustodianKey(keyPath)
				if err != nil {
					return err
				}
				ac.asCustodian(k)
				path = "v1/custody/requests"
			} else if _, err := ac.asOperator(); err != nil {
				return err
			}
			var rs []node.Request
			if err := ac.do(cmd.Context(), http.MethodGet, path, nil, &rs); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(rs)
			}
			w := a.table()
			fmt.Fprintln(w, "ID\tSTATUS\tAPPROVALS\tREQUESTER\tEXPIRES\tOPERATION")
			for _, r := range rs {
				fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.Status, len(r.Approvals), r.Needed, dash(safeText(r.Requester)), r.Expires.Format(time.RFC3339), safeText(r.Op.Summary))
			}
			return w.Flush()
		},
	}
	ls.Flags().StringVar(&keyPath, "key", "", "a custodian's private key file: ask as that custodian")
	c.AddCommand(ls)
	return c
}

func (a *app) decideCmd(approve bool) *cobra.Command {
	var keyPath, expectNode string
	var offline bool
	verb := "reject"
	if approve {
		verb = "approve"
	}
	long := `Sign an approval of a request with this custodian's key and send it to the node.
Before signing, every parameter of the request is printed (the key fingerprints
of custodians, the roles and categories of a principal) and the request's
digest is recomputed from them; a request whose digest does not match is
refused. The signature covers the node, the request id and the digest, so it
fits this request only: a changed request or a replayed signature is refused.
When the last approval needed arrives, the node carries the operation out. A
custodian cannot approve a request they made, nor decide one twice.`
	if !approve {
		long = `Sign a rejection of a request with this custodian's key and send it to the node.
One rejection ends the request at once: the operation is not carried out,
whatever approvals it had. As for approve, the request's parameters are printed
and its digest recomputed before signing; the signature covers the node, the
request id and the digest, so it fits this request only. A custodian cannot
decide a request they made.`
	}
	c := &cobra.Command{
		Use:   verb + " ID --key FILE",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a two-person request, signed with a custodian key",
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := a.readCustodianKey(keyPath)
			if err != nil {
				return err
			}
			if offline {
				return a.decideOffline(cmd.Context(), k, args[0], approve)
			}
			ac, err := a.newAdmin(a.node)
			if err != nil {
				return err
			}
			st, err := ac.asCustodian(k).custodianStatus(cmd.Context())
			if err != nil {
				return err
			}
			var rs []node.Request
			if err := ac.do(cmd.Context(), http.MethodGet, "v1/custody/requests", nil, &rs); err != nil {
				return err
			}
			var r *node.Request
			for i := range rs {
				if rs[i].ID == args[0] {
					r = &rs[i]
				}
			}
			if r == nil {
				return fmt.Errorf("no request %s on the node", args[0])
			}
			if expectNode != "" && expectNode != st.Node {
				return fmt.Errorf("the node at %s is %s, not %s (--node-id): refusing to sign", ac.url, st.Node, expectNode)
			}
			if err := describeRequest(a.stderr, st.Node, r); err != nil {
				return err
			}
			sig := k.Sign(node.ApprovalMessage(st.Node, r.ID, r.Digest, approve))
			var out node.Request
			if err := ac.do(cmd.Context(), http.MethodPost, "v1/custody/requests/"+r.ID+"/"+verb, map[string]string{"custodian": k.Name(), "signature": base64.StdEncoding.EncodeToString(sig)}, &out); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "request %s: %s (%d of %d approvals)", out.ID, out.Status, len(out.Approvals), out.Needed)
			if out.Result != "" {
				fmt.Fprintf(a.stdout, ": %s", safeText(out.Result))
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "this custodian's private key file")
	c.Flags().StringVar(&expectNode, "node-id", "", "refuse unless the node is this one (its id, from 'embassy status' or the share file)")
	c.Flags().BoolVar(&offline, "offline", false, "decide on the node directory (--dir) instead of a running node; carrying the operation out needs the node unsealed (--unseal)")
	c.MarkFlagRequired("key")
	return c
}

func (a *app) decideOffline(ctx context.Context, k *custody.CustodianKey, id string, approve bool) error {
	n, err := node.Open(ctx, a.dir, node.NewLogger(node.LogConfig{Level: "warn"}, a.stderr))
	if err != nil {
		return err
	}
	defer func() { n.Close() }()
	if n.Sealed() && len(a.unseal) > 0 {
		n.Close()
		if n, err = a.open(ctx); err != nil {
			return err
		}
	}
	rs, err := n.Requests()
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.ID == id {
			if err := describeRequest(a.stderr, n.Config.Node.ID, r); err != nil {
				return err
			}
			sig := k.Sign(node.ApprovalMessage(n.Config.Node.ID, r.ID, r.Digest, approve))
			out, err := n.Decide(ctx, id, k.Name(), approve, sig)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "request %s: %s (%d of %d approvals) %s\n", out.ID, out.Status, len(out.Approvals), out.Needed, safeText(out.Result))
			return nil
		}
	}
	return fmt.Errorf("no request %s in %s", id, a.dir)
}

func (a *app) custodyCmd() *cobra.Command {
	c := &cobra.Command{Use: "custody", Short: "The node's custody of its root key"}
	var files []string
	var threshold int
	rs := &cobra.Command{
		Use:   "resplit --custodian NAME.pub ... --threshold T",
		Short: "Split the root key afresh among custodians (replaces lost shares; adds or removes custodians)",
		Long: `Split the root key afresh among the given custodians. The node must be unsealed
(T existing shares), and two current custodians must approve. The new share
files are written into the node directory; every earlier share stops working.
On a node with a local root key file this moves it to custodians, and the key
file is deleted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pubs []custody.CustodianPublic
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				cp, err := custody.ParseCustodianPublic(b)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				pubs = append(pubs, cp)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			dir, err := n.Resplit(n.As(cmd.Context(), a.principal), pubs, threshold)
			if err != nil {
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "root key re-split %d of %d; new share files in %s\n", threshold, len(pubs), dir)
			return nil
		},
	}
	rs.Flags().StringArrayVar(&files, "custodian", nil, "a custodian's public key file; repeat for each")
	rs.Flags().IntVar(&threshold, "threshold", 2, "custodians needed to unseal")
	c.AddCommand(rs)
	return c
}

// printKeyUse prints each counted key's encryptions under random GCM
// nonces and the fraction of its limit.
func (a *app) printKeyUse(keys []custody.SealState) {
	for _, k := range keys {
		what := "manifest key " + k.KeyID
		if k.Vault != "" {
			name, _, _ := strings.Cut(k.Vault, "/")
			what = fmt.Sprintf("vault %s key generation %d (%s)", safeText(name), k.Generation, k.KeyID)
		}
		note := ""
		switch {
		case k.Seals >= k.Limit:
			note = "  AT THE LIMIT: rotate it with '" + k.Key().Rotation() + "'"
		case k.Fraction >= 0.25:
			note = "  rotate it soon with '" + k.Key().Rotation() + "'"
		}
		fmt.Fprintf(a.stdout, "%s: %d encryptions, %.4f%% of the limit %d%s\n", what, k.Seals, 100*k.Fraction, k.Limit, note)
	}
}
