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
			b, err := n.Keys.Identity().ExportPublic()
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
	c.AddCommand(export)
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
	id := n.Keys.Identity()
	out := publicJSON(id.NodeID, id.Public(), true)
	for _, p := range id.Previous {
		out.Previous = append(out.Previous, p.Ed25519Fingerprint())
	}
	return out, nil
}
