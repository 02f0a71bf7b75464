package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/node"
)

func (a *app) auditProofCmd() *cobra.Command {
	var version, out string
	c := &cobra.Command{
		Use:   "proof VAULT/KEY [--version ID] [--out FILE]",
		Short: "Write a proof file that an object version is on the audit log",
		Long: `Write a proof file (C2SP tlog-proof) for the newest audit log entry about
VAULT/KEY (about its version ID with --version): the entry, its Merkle
inclusion proof and a checkpoint signed by the node that covers it. The file
also holds the entry's opening (its salt and event), so it shows that one
event, in clear, to whoever holds it, and nothing of the log's other entries.

Anyone holding the node's public identity (node.pub, from 'embassy identity
export') checks it offline:

  embassy audit verify-proof FILE --key node.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vaultName, key, err := needKey(args[0])
			if err != nil {
				return err
			}
			id, err := parseVersion(version)
			if err != nil {
				return fmt.Errorf("--version: %w", err)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			p, e, err := n.AuditProof(cmd.Context(), vaultName, key, id)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = a.stdout.Write(p)
				return err
			}
			if err := os.WriteFile(out, p, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "proof of audit log entry #%d (%s) written to %s\n", e.Index, e.Kind, out)
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "the version (default: the newest entry about the key)")
	c.Flags().StringVarP(&out, "out", "o", "", "write to this file instead of standard output")
	return c
}

func (a *app) auditVerifyProofCmd() *cobra.Command {
	var keyFile string
	var witnesses []string
	var quorum int
	var noPQ bool
	c := &cobra.Command{
		Use:   "verify-proof FILE --key NODE.pub [--witness VKEY]... [--quorum N]",
		Short: "Check a proof file offline with the node's public key",
		Long: `Check a proof file from 'embassy audit proof' with only the node's public
identity (node.pub): the checkpoint's Ed25519 signature and its ML-DSA-44
cosignature by the node, the entry's inclusion in the checkpoint's tree, and
the event against the entry's commitment. It needs no node directory and no
network.

--witness takes a witness's verifier key (C2SP vkey, from 'embassy audit key'
on its node), or the file of an allied node's public identity (its node.pub,
from 'embassy identity export'): an ally that witnesses the log as a peer
cosigns with that identity. With --quorum N at least N of them must have
cosigned the checkpoint. A cosignature by a key given that does not verify
is refused; one by a key not given is listed as not checked. --no-ml-dsa accepts a
checkpoint without the ML-DSA-44 cosignature (as x/mod's note verifier
would).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return withHint(fmt.Errorf("--key is required"), "get the node's public identity with 'embassy identity export > node.pub' on the node, and pin it")
			}
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			nodeID, pub, err := custody.ParsePublic(kb)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			origin := audit.Origin(nodeID)
			ed, pq, err := audit.Verifiers(origin, pub)
			if err != nil {
				return err
			}
			var ws []note.Verifier
			for _, w := range witnesses {
				vkey, err := witnessKey(w)
				if err != nil {
					return err
				}
				v, err := fnote.NewVerifier(vkey)
				if err != nil {
					return fmt.Errorf("--witness %q: %w", w, err)
				}
				ws = append(ws, v)
			}
			if quorum > len(ws) {
				return fmt.Errorf("--quorum %d: only %d witnesses given", quorum, len(ws))
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var pqv note.Verifier = pq[0]
			if noPQ {
				pqv = nil
			}
			pc, err := audit.VerifyProof(b, origin, ed[0], pqv, ws, quorum)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if a.json {
				return a.printJSON(pc)
			}
			sigs := "Ed25519"
			if pc.MLDSA44 {
				sigs += " and ML-DSA-44"
			}
			fmt.Fprintf(a.stdout, "ok: entry #%d is in the audit log %s (checkpoint of %d entries, signed by the node with %s", pc.Index, origin, pc.TreeSize, sigs)
			if len(pc.Witnesses) > 0 {
				fmt.Fprintf(a.stdout, ", cosigned by %s", strings.Join(pc.Witnesses, ", "))
			}
			fmt.Fprintln(a.stdout, ")")
			fmt.Fprintln(a.stdout, formatAuditEntry(node.NewAuditEntry(pc.Index, pc.Event)))
			if len(pc.Unverified) > 0 {
				fmt.Fprintf(a.stdout, "not checked: signatures by %s (no key given for them)\n", safeText(strings.Join(pc.Unverified, ", ")))
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the node's public identity file (node.pub)")
	c.Flags().StringArrayVar(&witnesses, "witness", nil, "a witness's verifier key (C2SP vkey), or an allied node's node.pub file; repeat for each")
	c.Flags().IntVar(&quorum, "quorum", 0, "how many of the --witness keys must have cosigned")
	c.Flags().BoolVar(&noPQ, "no-ml-dsa", false, "accept a checkpoint without the node's ML-DSA-44 cosignature")
	return c
}

func (a *app) auditKeyCmd() *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "key [--key NODE.pub]",
		Short: "Print the verifier keys of the node's audit log checkpoints",
		Long: `Print the C2SP verifier keys (vkeys) of the audit log's checkpoints: the
log's origin, the Ed25519 signed-note key (what every C2SP verifier and witness
configures) and the ML-DSA-44 cosignature key; and the node's own key as a
witness of other logs (its cosignature/v1 key, for their audit.witnesses).
With --key they are computed
from a node.pub file alone; without, from the node directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var nodeID string
			var pub custody.PublicIdentity
			if keyFile != "" {
				kb, err := os.ReadFile(keyFile)
				if err != nil {
					return err
				}
				if nodeID, pub, err = custody.ParsePublic(kb); err != nil {
					return fmt.Errorf("--key %s: %w", keyFile, err)
				}
			} else {
				b, err := os.ReadFile(filepath.Join(a.dir, custody.IdentityFile))
				if err != nil {
					return withHint(err, "run it on the node (--dir), or give --key node.pub")
				}
				if nodeID, pub, err = custody.ReadPublicIdentity(b); err != nil {
					return err
				}
			}
			origin := audit.Origin(nodeID)
			ed, err := audit.VerifierKey(origin, pub)
			if err != nil {
				return err
			}
			out := struct {
				Origin  string `json:"origin"`
				Ed25519 string `json:"ed25519"`
				MLDSA44 string `json:"ml_dsa_44"`
				Witness string `json:"witness"`
			}{origin, ed, custody.MLDSAVerifierKey(origin, pub), custody.WitnessVerifierKey(audit.WitnessName(nodeID), pub)}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "origin     %s\ned25519    %s\nml-dsa-44  %s\nwitness    %s\n", out.Origin, out.Ed25519, out.MLDSA44, out.Witness)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "compute them from this node.pub file")
	return c
}

// witnessKey is the verifier key --witness names: a C2SP vkey as given,
// or, for the file of a node's public identity (node.pub), the key that
// node cosigns with as a witness (embassy-witness/NODE-ID).
func witnessKey(w string) (string, error) {
	w = strings.TrimSpace(w)
	fi, err := os.Stat(w)
	if err != nil || !fi.Mode().IsRegular() {
		return w, nil
	}
	b, err := os.ReadFile(w)
	if err != nil {
		return "", fmt.Errorf("--witness %s: %w", w, err)
	}
	id, pub, err := custody.ParsePublic(b)
	if err != nil {
		return "", fmt.Errorf("--witness %s: %w", w, err)
	}
	return custody.WitnessVerifierKey(audit.WitnessName(id), pub), nil
}
