package node

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/embassy-dev/embassy/custody"
)

// What differs between the sites' copy of a node file and the local one,
// for the message that stops a node whose files do not verify. Secrets
// (S3 secret keys, share material) are never shown.

func configDifferences(sites, local []byte) []string {
	s, err := ParseConfig(sites)
	if err != nil {
		return []string{"the sites' copy does not parse either: " + err.Error()}
	}
	if local == nil {
		return []string{"the local file is missing"}
	}
	l, err := ParseConfig(local)
	if err != nil {
		return []string{"the local file does not parse: " + err.Error()}
	}
	var out []string
	for _, c := range ConfigChanges(s, l) {
		switch c.Gate {
		case Custodians:
			out = append(out, c.Text+" (needs custodians: "+c.Why+")")
		case Refused:
			out = append(out, c.Text+" (never allowed: "+c.Why+")")
		default:
			out = append(out, c.Text)
		}
	}
	if len(out) == 0 {
		out = append(out, "the same settings, written differently (comments, order or layout)")
	}
	return out
}

func custodyDifferences(sites, local []byte) []string {
	s, err := parseCustody(sites)
	if err != nil {
		return []string{"the sites' copy does not parse either: " + err.Error()}
	}
	if local == nil {
		return []string{"the local file is missing: the node would take its root key for a local file"}
	}
	l, err := parseCustody(local)
	if err != nil {
		return []string{"the local file does not parse: " + err.Error()}
	}
	var out []string
	if s.Set.ID != l.Set.ID {
		out = append(out, fmt.Sprintf("share set %s → %s", s.Set.ID, l.Set.ID))
	}
	if s.Set.Threshold != l.Set.Threshold || s.Set.Total != l.Set.Total {
		out = append(out, fmt.Sprintf("threshold %d of %d → %d of %d", s.Set.Threshold, s.Set.Total, l.Set.Threshold, l.Set.Total))
	}
	if s.Set.Commitment != l.Set.Commitment {
		out = append(out, "share set commitment changed")
	}
	sc := map[string]custody.CustodianPublic{}
	for _, c := range s.Custodians {
		sc[c.Name] = c
	}
	for _, c := range l.Custodians {
		o, ok := sc[c.Name]
		delete(sc, c.Name)
		switch {
		case !ok:
			out = append(out, "custodian "+c.Name+" added")
		case o.SignKey != c.SignKey:
			out = append(out, "custodian "+c.Name+"'s sign_key replaced (approvals would be checked against another key)")
		}
		if ok && o.Recipient != c.Recipient {
			out = append(out, "custodian "+c.Name+"'s recipient replaced (new shares would be sealed to another key)")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(sc)) {
		out = append(out, "custodian "+name+" removed")
	}
	if len(out) == 0 {
		out = append(out, "the same record, written differently")
	}
	return out
}

func requestsDifferences(sites, local []byte) []string {
	var s, l []*Request
	if err := json.Unmarshal(sites, &s); err != nil {
		return []string{"the sites' copy does not parse either: " + err.Error()}
	}
	if local == nil {
		return []string{"the local file is missing"}
	}
	if err := json.Unmarshal(local, &l); err != nil {
		return []string{"the local file does not parse: " + err.Error()}
	}
	sm := map[string]*Request{}
	for _, r := range s {
		sm[r.ID] = r
	}
	var out []string
	for _, r := range l {
		o, ok := sm[r.ID]
		delete(sm, r.ID)
		if !ok {
			out = append(out, fmt.Sprintf("request %s added (%s: %s)", r.ID, r.Op.Kind, r.Op.Summary))
			continue
		}
		var what []string
		if o.Status != r.Status {
			what = append(what, "status "+o.Status+" → "+r.Status)
		}
		if len(o.Approvals) != len(r.Approvals) {
			what = append(what, fmt.Sprintf("approvals %d → %d", len(o.Approvals), len(r.Approvals)))
		}
		if o.Needed != r.Needed {
			what = append(what, fmt.Sprintf("needed %d → %d", o.Needed, r.Needed))
		}
		if o.Digest != r.Digest || o.Op.Summary != r.Op.Summary || !maps.Equal(o.Op.Params, r.Op.Params) {
			what = append(what, "operation changed")
		}
		if len(what) > 0 {
			out = append(out, "request "+r.ID+": "+strings.Join(what, ", "))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(sm)) {
		out = append(out, "request "+id+" removed ("+sm[id].Op.Kind+")")
	}
	if len(out) == 0 {
		out = append(out, "the same requests, written differently")
	}
	return out
}
