package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

func (a *app) peerCmd() *cobra.Command {
	c := &cobra.Command{Use: "peer", Short: "Allied nodes this node trusts: cards, fingerprints, the peer link (docs/alliance.md)"}
	var out string
	card := &cobra.Command{
		Use:   "card",
		Short: "Print the node's peer card, signed by its identity, for allied nodes to add",
		Long: `Print the node's peer card: node id, nation, the peer endpoint (alliance.endpoint, or
alliance.listen), the identity public keys (Ed25519 and ML-DSA-44), the HPKE recipient key
(MLKEM768-X25519) allies wrap shared data keys to, and the pin of the peer listener's TLS key,
signed by the node identity. The card's fingerprint goes to standard error: read it to the
peer's operators over another channel (a call, a letter); they give it to 'embassy peer add'.

  embassy peer card > est.card`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var info node.PeerCardInfo
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodGet, "v1/alliance/card", nil, &info); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				b, err := n.PeerCard()
				if err != nil {
					return withHint(err, "set alliance.listen in node.yaml ('embassy config edit') to the peer listener's host:port")
				}
				c, err := federation.ParseCard(b)
				if err != nil {
					return err
				}
				info = node.PeerCardInfo{Card: string(b), Fingerprint: c.Fingerprint}
			}
			if out != "" && out != "-" {
				if err := os.WriteFile(out, []byte(info.Card), 0o644); err != nil {
					return err
				}
			} else if _, err := fmt.Fprint(a.stdout, info.Card); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "fingerprint %s\n", info.Fingerprint)
			return nil
		},
	}
	card.Flags().StringVarP(&out, "out", "o", "", "write the card to this file instead of standard output")
	var fingerprint string
	add := &cobra.Command{
		Use:   "add CARD --fingerprint SHA256:…",
		Short: "Trust an allied node by its card, once its fingerprint is confirmed out of band (two custodians on a node with custodians)",
		Long: `Trust the node whose card is in the file CARD. --fingerprint is the fingerprint the
peer's operators read to you over another channel: a card that does not match it, or whose
signature does not verify, is refused. On a node with custodians this is a two-person
operation (peer.add). From then on the peer's node is accepted on the peer listener, and this
node reaches it at the card's endpoint, checking its TLS key against the card.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fingerprint == "" {
				return withHint(errors.New("--fingerprint is required"), "ask the peer's operators for the fingerprint 'embassy peer card' printed, over a channel other than the one the card came by")
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if a.node != "" {
				ac, err := a.operator(cmd)
				if err != nil {
					return err
				}
				var p node.PeerInfo
				if err := a.call(cmd.Context(), ac, http.MethodPost, "v1/peers", node.PeerAddRequest{Card: string(b), Fingerprint: fingerprint}, &p); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "peer %s (%s) at %s trusted\n", p.Node, p.Nation, p.Endpoint)
				return nil
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			c, err := n.AddPeer(n.As(cmd.Context(), a.principal), b, fingerprint)
			if err != nil {
				if errors.Is(err, node.ErrFingerprint) || errors.Is(err, federation.ErrCard) {
					return withHint(err, "do not trust this card: get the card and its fingerprint from the peer's operators again")
				}
				return explain(err)
			}
			fmt.Fprintf(a.stdout, "peer %s (%s) at %s trusted\n", c.NodeID, c.Nation, c.Endpoint)
			return nil
		},
	}
	add.Flags().StringVar(&fingerprint, "fingerprint", "", "the card's fingerprint, confirmed with the peer's operators out of band")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the trusted peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []node.PeerInfo
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodGet, "v1/peers", nil, &ps); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				ps = n.PeerInfos()
			}
			if a.json {
				return a.printJSON(ps)
			}
			w := a.table()
			fmt.Fprintln(w, "NODE\tNATION\tENDPOINT\tFINGERPRINT\tADDED")
			for _, p := range ps {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Node, p.Nation, p.Endpoint, p.Fingerprint, p.Added.Format("2006-01-02"))
			}
			return w.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NODE",
		Short: "Stop trusting a peer: its connections are refused and grants to it release nothing more",
		Long: `Stop trusting the peer NODE: its TLS connections are refused from then on, grants to
it release nothing more, and the two nodes no longer witness each other's audit logs. A
peer that witnesses this node's log (the default) is one witness fewer of the node's
history, so on a node with custodians removing it is a two-person operation (peer.remove),
as removing one of audit.witnesses is; a peer opted out of witnessing (witness: false) is
removed at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				if err := a.callNode(cmd, http.MethodDelete, "v1/peers/"+args[0], nil, nil); err != nil {
					return err
				}
			} else {
				n, err := a.open(cmd.Context())
				if err != nil {
					return err
				}
				defer n.Close()
				if err := n.RemovePeer(n.As(cmd.Context(), a.principal), args[0]); err != nil {
					if errors.Is(err, vault.ErrApprovalRequired) {
						return explain(err)
					}
					return withHint(err, "list the peers with 'embassy peer ls'")
				}
			}
			fmt.Fprintf(a.stdout, "peer %s removed\n", args[0])
			return nil
		},
	}
	c.AddCommand(card, add, ls, rm)
	return c
}
