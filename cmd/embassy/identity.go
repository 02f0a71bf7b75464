package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/node"
)

type identityKeyJSON struct {
	PublicKey   string `json:"public_key"`
	Fingerprint string `json:"fingerprint"`
}

type identityJSON struct {
	NodeID   string          `json:"node_id"`
	Ed25519  identityKeyJSON `json:"ed25519"`
	MLDSA44  identityKeyJSON `json:"ml_dsa_44"`
	Verified bool            `json:"verified"`
	// Previous are the identities this one replaced (fingerprints of their
	// Ed25519 keys), oldest first.
	Previous []string `json:"previous"`
}

func (a *app) identityCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "identity",
		Short: "Show the node's identity: its public signing keys and their fingerprints",
		Long: `Show the node identity: the Ed25519 and ML-DSA-44 public keys everything the
node signs is verified with (descriptors, manifests, label bindings), and their
fingerprints. The identity does not change when the root key is rotated; it is
replaced only by 'embassy identity replace', which two custodians approve.

On a node whose root key is split among custodians, give --unseal to verify
what is shown; without it the keys are read from identity.json as they are,
and the output says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := a.readIdentity(cmd.Context())
			if err != nil {
				return err
			}
			if !out.Verified {
				fmt.Fprintln(a.stderr, "note: unverified: read from identity.json without the root key (give --unseal SHARE:KEY to verify)")
			}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "node %s\n", out.NodeID)
			fmt.Fprintf(a.stdout, "ed25519    %s  %s\n", out.Ed25519.Fingerprint, out.Ed25519.PublicKey)
			fmt.Fprintf(a.stdout, "ml-dsa-44  %s  (the key itself: --json, or 'embassy identity export')\n", out.MLDSA44.Fingerprint)
			for _, p := range out.Previous {
				fmt.Fprintf(a.stdout, "replaced   %s\n", p)
			}
			return nil
		},
	}
	var outPath string
	export := &cobra.Command{
		Use:   "export",
		Short: "Write the node's public identity file (node.pub) for others to pin",
		Long: `Write the node's public identity: both public keys, signed by the identity
itself, so that whoever pins the file can check it came from the node. Allies,
witnesses and site operators pin node.pub; it stays valid across root key
rotations.

  embassy identity export > node.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			b, err := n.Keys().Identity().ExportPublic()
			if err != nil {
				return err
			}
			if outPath == "" || outPath == "-" {
				_, err = a.stdout.Write(b)
				return err
			}
			return os.WriteFile(outPath, b, 0o644)
		},
	}
	export.Flags().StringVarP(&outPath, "out", "o", "", "write to this file instead of standard output")
	replace := &cobra.Command{
		Use:   "replace",
		Short: "Replace the node identity (two custodians approve); writes a transition statement",
		Long: `Replace the node identity with a new key pair. This is a two-person operation
(identity.replace): it becomes a request, and once two custodians approve, the
node makes a new identity, signs a transition statement with the old and the
new key (identity-transition-TIME.txt in the node directory, also kept in
identity.json and so in the descriptor on every site), and signs everything
new with the new key. What the old identity signed still verifies. Hand the
statement and the new node.pub ('embassy identity export') to whoever pinned
the old one; they check it with 'embassy identity verify-transition'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			path, err := n.ReplaceIdentity(n.As(cmd.Context(), a.principal))
			if err != nil {
				return explain(err)
			}
			if a.json {
				return a.printJSON(map[string]string{"statement": path})
			}
			fmt.Fprintf(a.stdout, "identity replaced; transition statement in %s\n", path)
			return nil
		},
	}
	var pinned string
	verify := &cobra.Command{
		Use:   "verify-transition STATEMENT [--pub OLD-node.pub]",
		Short: "Check a transition statement: both signatures, and that it replaces the identity you pinned",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			tr, err := custody.ParseTransition(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if pinned != "" {
				pb, err := os.ReadFile(pinned)
				if err != nil {
					return err
				}
				node, p, err := custody.ParsePublic(pb)
				if err != nil {
					return fmt.Errorf("%s: %w", pinned, err)
				}
				if node != tr.NodeID || !p.Equal(tr.Old) {
					return fmt.Errorf("the statement replaces identity %s of node %s, not the one pinned in %s (%s of node %s)", tr.Old.Ed25519Fingerprint(), tr.NodeID, pinned, p.Ed25519Fingerprint(), node)
				}
			}
			if a.json {
				return a.printJSON(map[string]any{"node_id": tr.NodeID, "at": tr.At, "old": publicJSON(tr.NodeID, tr.Old, true).Ed25519, "new": publicJSON(tr.NodeID, tr.New, true).Ed25519,
					"old_ml_dsa_44": publicJSON(tr.NodeID, tr.Old, true).MLDSA44, "new_ml_dsa_44": publicJSON(tr.NodeID, tr.New, true).MLDSA44})
			}
			fmt.Fprintf(a.stdout, "valid: node %s replaced identity %s by %s at %s\n", tr.NodeID, tr.Old.Ed25519Fingerprint(), tr.New.Ed25519Fingerprint(), tr.At.Format("2006-01-02T15:04:05Z07:00"))
			if pinned == "" {
				fmt.Fprintln(a.stdout, "(give --pub with the node.pub you pinned to check that it is the identity replaced)")
			}
			return nil
		},
	}
	verify.Flags().StringVar(&pinned, "pub", "", "the node.pub you pinned: the statement must replace that identity")
	c.AddCommand(export, replace, verify)
	return c
}

func publicJSON(nodeID string, p custody.PublicIdentity, verified bool) identityJSON {
	return identityJSON{
		NodeID:   nodeID,
		Ed25519:  identityKeyJSON{PublicKey: base64.StdEncoding.EncodeToString(p.Ed25519), Fingerprint: p.Ed25519Fingerprint()},
		MLDSA44:  identityKeyJSON{PublicKey: base64.StdEncoding.EncodeToString(p.MLDSA44.Bytes()), Fingerprint: p.MLDSAFingerprint()},
		Verified: verified,
		Previous: []string{},
	}
}

// readIdentity reads the identity through the unsealed node (verified) or,
// on a sealed node without --unseal, from identity.json as it is.
func (a *app) readIdentity(ctx context.Context) (identityJSON, error) {
	n, err := node.Open(ctx, a.dir, node.NewLogger(node.LogConfig{Level: "warn"}, a.stderr))
	if err != nil {
		return identityJSON{}, err
	}
	if n.Sealed() && len(a.unseal) == 0 {
		n.Close()
		b, err := os.ReadFile(filepath.Join(a.dir, custody.IdentityFile))
		if err != nil {
			return identityJSON{}, err
		}
		id, pub, err := custody.ReadPublicIdentity(b)
		if err != nil {
			return identityJSON{}, err
		}
		return publicJSON(id, pub, false), nil
	}
	n.Close()
	if n, err = a.open(ctx); err != nil {
		return identityJSON{}, err
	}
	defer n.Close()
	id := n.Keys().Identity()
	out := publicJSON(id.NodeID, id.Public(), true)
	for _, p := range id.Previous {
		out.Previous = append(out.Previous, p.Ed25519Fingerprint())
	}
	return out, nil
}
