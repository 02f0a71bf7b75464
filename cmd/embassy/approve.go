package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/node"
)

// What a custodian signs must be what they read. The node supplies a
// request's summary and digest; neither is taken on trust: approve and
// reject recompute the digest from the request's own fields and print every
// parameter (the custodians' key fingerprints of a resplit, the roles and
// categories of a principal), which the digest commits to, before signing.

// errDigestMismatch: the request's digest is not that of its fields.
var errDigestMismatch = errors.New("the request's digest does not match its parameters")

// describeRequest writes everything a custodian signs for request r on node
// nodeID, and returns errDigestMismatch if the digest the node gave is not
// the one its fields give.
func describeRequest(w io.Writer, nodeID string, r *node.Request) error {
	fmt.Fprintf(w, "request %s on node %s: %s\n", r.ID, nodeID, r.Op.Kind)
	fmt.Fprintf(w, "  requested by %s at %s; expires %s; needs %d approvals\n", dash(r.Requester), r.Created.UTC().Format(time.RFC3339), r.Expires.UTC().Format(time.RFC3339), r.Needed)
	fmt.Fprintf(w, "  the node's summary: %s\n", safeText(r.Op.Summary))
	fmt.Fprintln(w, "  parameters (what the operation acts on):")
	for _, k := range slices.Sorted(maps.Keys(r.Op.Params)) {
		writeParam(w, k, r.Op.Params[k])
	}
	want := r.ComputeDigest(nodeID)
	if want != r.Digest {
		fmt.Fprintf(w, "  digest: %s DOES NOT MATCH the parameters (%s)\n", r.Digest, want)
		return withHint(fmt.Errorf("%w: refusing to sign request %s", errDigestMismatch, r.ID),
			"the node, or its requests.json, changed the request after it was made, or is lying about it: do not approve; tell the other custodians")
	}
	fmt.Fprintf(w, "  digest: %s (recomputed from the above: matches)\n", r.Digest)
	return nil
}

// writeParam prints one parameter, unfolding the JSON ones.
func writeParam(w io.Writer, k, v string) {
	switch k {
	case "custodians":
		var cs []custody.CustodianPublic
		if json.Unmarshal([]byte(v), &cs) == nil {
			fmt.Fprintf(w, "    custodians (%d):\n", len(cs))
			for _, c := range cs {
				rfp, sfp, err := c.Fingerprints()
				if err != nil {
					fmt.Fprintf(w, "      %s: INVALID KEYS (%v)\n", c.Name, err)
					continue
				}
				fmt.Fprintf(w, "      %s: share key %s, signing key %s\n", safeText(c.Name), rfp, sfp)
			}
			return
		}
	case "principal":
		var p access.Principal
		if json.Unmarshal([]byte(v), &p) == nil && p.Nation != "" {
			var cl, cat []string
			for _, pol := range slices.Sorted(maps.Keys(p.Clearances)) {
				cl = append(cl, pol+" "+p.Clearances[pol])
			}
			for _, tag := range slices.Sorted(maps.Keys(p.Categories)) {
				cat = append(cat, tag+": "+strings.Join(p.Categories[tag], ", "))
			}
			fmt.Fprintf(w, "    principal: %s\n      nation: %s\n      clearances: %s\n      categories: %s\n      roles: %s\n",
				safeText(p.Name), p.Nation, noneIfEmpty(strings.Join(cl, "; ")), noneIfEmpty(strings.Join(cat, "; ")), p.RoleSummary())
			return
		}
	}
	fmt.Fprintf(w, "    %s: %q\n", k, v)
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
