package node

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/label"
)

// Gate says what a change to node.yaml needs. The table in
// docs/configuration.md ("What needs custodians") lists it field by field;
// it keeps the gate of the command that makes the same change.
type Gate int

const (
	// Free: applied at once.
	Free Gate = iota
	// Custodians: a two-person request (kind config.edit); refused on a
	// node without custodians, allowed with a warning on a dev node.
	Custodians
	// Refused: never through config edit; the message names the command.
	Refused
)

func (g Gate) String() string {
	return [...]string{"free", "custodians", "refused"}[g]
}

// MarshalJSON writes the gate's name.
func (g Gate) MarshalJSON() ([]byte, error) { return []byte(`"` + g.String() + `"`), nil }

// UnmarshalJSON reads a gate's name (a client of PUT v1/config).
func (g *Gate) UnmarshalJSON(b []byte) error {
	for i, name := range []string{"free", "custodians", "refused"} {
		if string(b) == `"`+name+`"` {
			*g = Gate(i)
			return nil
		}
	}
	return fmt.Errorf("unknown gate %s", b)
}

// Change is one difference between two configurations.
type Change struct {
	// Field is the node.yaml path, e.g. "principals[mallory].clearances".
	Field string `json:"field"`
	// Text says what changed, for people; it never holds secrets.
	Text string `json:"text"`
	Gate Gate   `json:"gate"`
	// Why says why the change is gated or refused.
	Why string `json:"why,omitempty"`
}

func hasAdminRole(p access.Principal) bool { return p.Administrative() }

// clearedAboveLevel reports whether p is cleared above level (text form;
// default NATO UNCLASSIFIED) in reg. Anything that cannot be compared
// counts as above.
func clearedAboveLevel(reg *label.Registry, level string, p access.Principal) bool {
	if level == "" {
		level = "NATO UNCLASSIFIED"
	}
	if reg == nil {
		return true
	}
	l, err := reg.ParseText(level)
	if err != nil {
		return true
	}
	limit, err := reg.LabelLevel(l)
	if err != nil {
		return true
	}
	for pol, lv := range p.Clearances {
		got, err := reg.Level(pol, lv)
		if err != nil || !reg.Dominates(limit, got) {
			return true
		}
	}
	return false
}

// ConfigChanges lists every difference from old to next, each with its
// gate. Gates are judged against old, the configuration in force: its
// label policies and its two_person.principal_level.
func ConfigChanges(old, next *Config) []Change {
	var out []Change
	add := func(field, text string, g Gate, why string) {
		out = append(out, Change{Field: field, Text: text, Gate: g, Why: why})
	}
	reg, _ := label.NewRegistry(old.Policies...)
	level := old.TwoPerson.PrincipalLevel

	// node
	if old.Node.ID != next.Node.ID {
		add("node.id", fmt.Sprintf("node.id %s → %s", old.Node.ID, next.Node.ID), Refused, "the node id names the node on every site and in every share; it never changes")
	}
	if old.Node.Nation != next.Node.Nation {
		add("node.nation", fmt.Sprintf("node.nation %s → %s", old.Node.Nation, next.Node.Nation), Refused, "the owning nation never changes (vaults name their owner)")
	}
	if old.Node.Dev != next.Node.Dev {
		if next.Node.Dev {
			add("node.dev", "node.dev turned on", Custodians, "a dev node lets principals it does not know act as cleared nationals and dangerous operations proceed without custodians")
		} else {
			add("node.dev", "node.dev turned off", Free, "")
		}
	}
	// index, keys, log
	for _, f := range fieldChanges("index", old.Index, next.Index) {
		add("index", f, Free, "")
	}
	if old.Keys != next.Keys {
		add("keys.root_key_file", fmt.Sprintf("keys.root_key_file %q → %q", old.Keys.RootKeyFile, next.Keys.RootKeyFile), Refused, "the root key's place is managed by init, 'custody resplit' and 'key rotate-root'")
	}
	for _, f := range fieldChanges("key_use", old.KeyUse, next.KeyUse) {
		// Never past NIST's bound (Validate): any value is within it.
		add("key_use", f, Free, "")
	}
	for _, f := range fieldChanges("log", old.Log, next.Log) {
		add("log", f, Free, "")
	}
	// s3
	for _, f := range []struct{ name, a, b string }{
		{"address", old.S3.Address, next.S3.Address}, {"region", old.S3.Region, next.S3.Region}, {"domain", old.S3.Domain, next.S3.Domain},
		{"tls_cert", old.S3.TLSCert, next.S3.TLSCert}, {"tls_key", old.S3.TLSKey, next.S3.TLSKey},
	} {
		if f.a != f.b {
			add("s3."+f.name, fmt.Sprintf("s3.%s %q → %q", f.name, f.a, f.b), Free, "")
		}
	}
	if old.Metrics.TokenFile != next.Metrics.TokenFile {
		add("metrics.token_file", fmt.Sprintf("metrics.token_file %q → %q", old.Metrics.TokenFile, next.Metrics.TokenFile), Free, "")
	}
	if old.Metrics.Address != next.Metrics.Address {
		add("metrics.address", fmt.Sprintf("metrics.address %q → %q", old.Metrics.Address, next.Metrics.Address), Free, "")
	}
	if old.S3.ListScan != next.S3.ListScan {
		add("s3.list_scan", fmt.Sprintf("s3.list_scan %d → %d", old.S3.ListScan, next.S3.ListScan), Free, "")
	}
	if old.S3.AllowInsecure != next.S3.AllowInsecure {
		if next.S3.AllowInsecure {
			add("s3.allow_insecure", "s3.allow_insecure turned on", Custodians, "S3 without TLS on a network listener exposes credentials and data")
		} else {
			add("s3.allow_insecure", "s3.allow_insecure turned off", Free, "")
		}
	}
	oldCreds := map[string]CredentialConfig{}
	for _, c := range old.S3.Credentials {
		oldCreds[c.AccessKey] = c
	}
	newPrincipal := map[string]access.Principal{}
	for _, p := range next.Principals {
		newPrincipal[p.Name] = p
	}
	for _, c := range next.S3.Credentials {
		o, ok := oldCreds[c.AccessKey]
		delete(oldCreds, c.AccessKey)
		if ok && o == c {
			continue
		}
		what := "added"
		if ok {
			what = "changed"
		}
		text := fmt.Sprintf("s3 credential %s of principal %s %s", c.AccessKey, c.Principal, what)
		if hasAdminRole(newPrincipal[c.Principal]) {
			add("s3.credentials", text, Custodians, "a credential of a principal with an administrative role")
		} else {
			add("s3.credentials", text, Free, "")
		}
	}
	for _, c := range slices.Sorted(maps.Keys(oldCreds)) {
		add("s3.credentials", fmt.Sprintf("s3 credential %s of principal %s removed", c, oldCreds[c].Principal), Free, "")
	}
	// vault_defaults, scrub
	for _, f := range fieldChanges("vault_defaults", old.VaultDefaults, next.VaultDefaults) {
		add("vault_defaults", f, Free, "")
	}
	for _, f := range fieldChanges("scrub", old.Scrub, next.Scrub) {
		add("scrub", f, Free, "")
	}
	// policies, two_person
	if !reflect.DeepEqual(old.Policies, next.Policies) {
		add("policies", "label policies changed", Custodians, "label policies decide who reads what")
	}
	if !reflect.DeepEqual(old.TwoPerson, next.TwoPerson) {
		add("two_person", "two_person settings changed", Custodians, "the two-person rule itself")
	}
	// audit
	// (A change of node.dev moves the default; its own gate covers that.)
	if !reflect.DeepEqual(old.Audit.FailClosed, next.Audit.FailClosed) {
		was, is := old.failClosed(), next.failClosed()
		switch {
		case was && !is:
			add("audit.fail_closed", "audit.fail_closed turned off", Custodians, "changes the audit log cannot record would then be made anyway")
		case !was && is:
			add("audit.fail_closed", "audit.fail_closed turned on", Free, "")
		default:
			add("audit.fail_closed", fmt.Sprintf("audit.fail_closed written out (%t, as before)", is), Free, "")
		}
	}
	// audit: witnesses of this node's log. Fewer witnesses, a lower quorum
	// or publishing without it weaken what allies can check.
	oldW := map[string]WitnessConfig{}
	for _, w := range old.Audit.Witnesses {
		oldW[w.Key] = w
	}
	for _, w := range next.Audit.Witnesses {
		o, ok := oldW[w.Key]
		delete(oldW, w.Key)
		switch {
		case !ok:
			add("audit.witnesses", fmt.Sprintf("witness %s added (%s)", witnessName(w.Key), w.URL), Free, "")
		case o.URL != w.URL:
			add("audit.witnesses", fmt.Sprintf("witness %s moved: %s → %s", witnessName(w.Key), o.URL, w.URL), Free, "")
		}
	}
	for _, w := range old.Audit.Witnesses {
		if _, gone := oldW[w.Key]; gone {
			add("audit.witnesses", fmt.Sprintf("witness %s removed", witnessName(w.Key)), Custodians, "fewer witnesses check the node's history")
		}
	}
	if oq, nq := old.witnessQuorum(), next.witnessQuorum(); oq != nq || old.Audit.Quorum != next.Audit.Quorum {
		gate, why := Free, ""
		if nq < oq {
			gate, why = Custodians, "fewer witnesses must cosign the node's history"
		}
		add("audit.quorum", fmt.Sprintf("audit.quorum %d → %d", oq, nq), gate, why)
	}
	if was, is := old.witnessFailOpen(), next.witnessFailOpen(); was != is || !reflect.DeepEqual(old.Audit.WitnessFailOpen, next.Audit.WitnessFailOpen) {
		gate, why := Free, ""
		if is && !was {
			gate, why = Custodians, "checkpoints would be published without the witnesses' quorum"
		}
		add("audit.witness_fail_open", fmt.Sprintf("audit.witness_fail_open %t → %t", was, is), gate, why)
	}
	// audit: copies of the log to the sites. A longer interval leaves the
	// newest entries on the node alone for longer.
	if was, is := old.copyInterval(), next.copyInterval(); was != is || !reflect.DeepEqual(old.Audit.CopyInterval, next.Audit.CopyInterval) {
		gate, why := Free, ""
		if is > was {
			gate, why = Custodians, "the sites would hold the log's newest entries later: a node lost in that window takes them with it"
		}
		add("audit.copy_interval", fmt.Sprintf("audit.copy_interval %s → %s", was, is), gate, why)
	}
	if !reflect.DeepEqual(old.Audit.Witnessed, next.Audit.Witnessed) {
		add("audit.witnessed", "the logs this node witnesses changed", Free, "")
	}
	// principals
	oldP := map[string]access.Principal{}
	for _, p := range old.Principals {
		oldP[p.Name] = p
	}
	for _, p := range next.Principals {
		o, ok := oldP[p.Name]
		delete(oldP, p.Name)
		field := "principals[" + p.Name + "]"
		switch {
		case !ok:
			text := "principal " + describePrincipal(p) + " added"
			switch {
			case hasAdminRole(p):
				add(field, text, Custodians, "an administrative role")
			case clearedAboveLevel(reg, level, p):
				add(field, text, Custodians, "cleared above the level that takes custodians (two_person.principal_level)")
			default:
				add(field, text, Free, "")
			}
		case !reflect.DeepEqual(o, p):
			text := "principal " + p.Name + " changed: " + describePrincipal(o) + " → " + describePrincipal(p)
			switch {
			case hasAdminRole(p) && !hasAdminRole(o):
				add(field, text, Custodians, "given an administrative role")
			case o.Nation != p.Nation:
				add(field, text, Custodians, "another nation")
			case gainsAccess(reg, o, p) && clearedAboveLevel(reg, level, p):
				add(field, text, Custodians, "cleared above the level that takes custodians, or given categories")
			default:
				add(field, text, Free, "")
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oldP)) {
		p := oldP[name]
		text := "principal " + name + " removed"
		if clearedAboveLevel(reg, level, p) {
			add("principals["+name+"]", text, Custodians, "cleared above the level that takes custodians (as 'principal rm')")
		} else {
			add("principals["+name+"]", text, Free, "")
		}
	}
	// sites
	oldS := map[string]SiteConfig{}
	for _, s := range old.Sites {
		oldS[s.ID] = s
	}
	for _, s := range next.Sites {
		o, ok := oldS[s.ID]
		delete(oldS, s.ID)
		field := "sites[" + s.ID + "]"
		if !ok {
			add(field, fmt.Sprintf("site %s added (%s, %s in %s, controlled from %s)", s.ID, s.Driver, s.Provider, s.Jurisdiction, s.Control), Free, "")
			continue
		}
		if o.Descriptor != s.Descriptor {
			add(field, fmt.Sprintf("site %s attributes changed (%s → %s)", s.ID, siteAttrs(o), siteAttrs(s)), Custodians, "placement proofs and accreditation rest on a site's attributes")
		}
		if o.Driver != s.Driver || o.Path != s.Path || !reflect.DeepEqual(o.S3, s.S3) {
			add(field, fmt.Sprintf("site %s storage changed (driver, path or s3 settings)", s.ID), Free, "")
		}
		if o.Draining != s.Draining {
			add(field+".draining", fmt.Sprintf("site %s draining %v → %v", s.ID, o.Draining, s.Draining), Free, "")
		}
	}
	for _, id := range slices.Sorted(maps.Keys(oldS)) {
		add("sites["+id+"]", "site "+id+" removed", Custodians, "removing a site loses the shards it holds (an empty site: 'embassy site rm')")
	}
	// vaults
	oldV := map[string]VaultConfig{}
	for _, v := range old.Vaults {
		oldV[v.Name] = v
	}
	for _, v := range next.Vaults {
		o, ok := oldV[v.Name]
		delete(oldV, v.Name)
		field := "vaults[" + v.Name + "]"
		if !ok {
			add(field, "vault "+v.Name+" added ("+v.Erasure+", survives "+cmpOr(v.Survive, "sites=m")+")", Free, "")
			continue
		}
		if why := weaker(old.Node.Nation, o, v); why != "" {
			add(field, "vault "+v.Name+" policy weakened: "+why, Custodians, "weakening a placement policy")
		} else if o.Erasure != v.Erasure || o.Survive != v.Survive || o.OutsideHome != v.OutsideHome || !slices.Equal(o.Jurisdictions, v.Jurisdictions) {
			add(field, "vault "+v.Name+" policy changed", Free, "")
		}
		if o.Owner != v.Owner {
			add(field+".owner", fmt.Sprintf("vault %s owner %q → %q", v.Name, o.Owner, v.Owner), Custodians, "the owner's nationals write the vault")
		}
		if o.DefaultLabel != v.DefaultLabel {
			if lowers(reg, o.DefaultLabel, v.DefaultLabel) {
				add(field+".default_label", fmt.Sprintf("vault %s default label %q → %q (lower)", v.Name, o.DefaultLabel, v.DefaultLabel), Custodians, "lowering a label")
			} else {
				add(field+".default_label", fmt.Sprintf("vault %s default label %q → %q", v.Name, o.DefaultLabel, v.DefaultLabel), Free, "")
			}
		}
		if o.Incarnation != v.Incarnation {
			add(field+".incarnation", fmt.Sprintf("vault %s incarnation %q → %q", v.Name, o.Incarnation, v.Incarnation), Refused, "the vault's keys are derived from it: another value makes its data unreadable")
		}
		if max(o.KeyGen, 1) != max(v.KeyGen, 1) {
			add(field+".key_gen", fmt.Sprintf("vault %s key_gen %d → %d", v.Name, o.KeyGen, v.KeyGen), Refused, "the vault key generation changes only with 'embassy key rotate'")
		}
		if !o.Created.Equal(v.Created) {
			add(field+".created", fmt.Sprintf("vault %s created time changed", v.Name), Free, "")
		}
		if o.StripeSize != v.StripeSize {
			add(field+".stripe_size", fmt.Sprintf("vault %s stripe_size %q → %q", v.Name, o.StripeSize, v.StripeSize), Free, "")
		}
		if !reflect.DeepEqual(o.ObjectLock, v.ObjectLock) {
			var nl ObjectLockConfig
			if v.ObjectLock != nil {
				nl = *v.ObjectLock
			}
			if why := lockWeaker(o.ObjectLock, nl); why != "" {
				add(field+".object_lock", "vault "+v.Name+" object lock weakened: "+why, Custodians, "shortening retention")
			} else {
				add(field+".object_lock", "vault "+v.Name+" object lock changed", Free, "")
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oldV)) {
		add("vaults["+name+"]", "vault "+name+" removed", Custodians, "deleting a vault (it must be empty)")
	}
	for _, ch := range taxiiChanges(old, next) {
		add(ch.Field, ch.Text, ch.Gate, ch.Why)
	}
	for _, ch := range catalogChanges(old, next) {
		add(ch.Field, ch.Text, ch.Gate, ch.Why)
	}
	for _, ch := range allianceChanges(old, next) {
		add(ch.Field, ch.Text, ch.Gate, ch.Why)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Gate > out[j].Gate })
	if out == nil {
		out = []Change{}
	}
	return out
}

// fieldChanges describes, field by field, how struct b differs from a:
// "log.level "info" → "debug"".
func fieldChanges(prefix string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.Field(i)
		if reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			continue
		}
		name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
		out = append(out, fmt.Sprintf("%s.%s %s → %s", prefix, name, shown(fa), shown(fb)))
	}
	return out
}

func shown(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "(unset)"
		}
		v = v.Elem()
	}
	if m, ok := v.Interface().(interface{ MarshalYAML() (any, error) }); ok {
		if x, err := m.MarshalYAML(); err == nil {
			return fmt.Sprintf("%q", fmt.Sprint(x))
		}
	}
	if v.Kind() == reflect.String {
		return fmt.Sprintf("%q", v.String())
	}
	return fmt.Sprint(v.Interface())
}

func siteAttrs(s SiteConfig) string {
	return fmt.Sprintf("%s/%s/%s/%s/%s/%s", s.Jurisdiction, s.Provider, s.Control, s.Operator, cmpOr(s.Accredited, "-"), cmpOr(string(s.Connectivity), "online"))
}

// gainsAccess reports whether p may read something o could not: a higher
// or new clearance, or a new category value. What cannot be compared
// counts as a gain.
func gainsAccess(reg *label.Registry, o, p access.Principal) bool {
	for pol, lv := range p.Clearances {
		was, ok := o.Clearances[pol]
		if !ok {
			return true
		}
		if was == lv {
			continue
		}
		if reg == nil {
			return true
		}
		a, err1 := reg.Level(pol, was)
		b, err2 := reg.Level(pol, lv)
		if err1 != nil || err2 != nil || !reg.Dominates(a, b) {
			return true
		}
	}
	for tag, vals := range p.Categories {
		for _, v := range vals {
			if !slices.Contains(o.Categories[tag], v) {
				return true
			}
		}
	}
	return false
}

// lowers reports whether label b is not at least as high as label a.
func lowers(reg *label.Registry, a, b string) bool {
	if a == "" {
		return false
	}
	if b == "" || reg == nil {
		return true
	}
	la, err1 := reg.ParseText(a)
	lb, err2 := reg.ParseText(b)
	if err1 != nil || err2 != nil {
		return true
	}
	va, err1 := reg.LabelLevel(la)
	vb, err2 := reg.LabelLevel(lb)
	return err1 != nil || err2 != nil || !reg.Dominates(vb, va)
}

// witnessName is the name in a witness's verifier key.
func witnessName(vkey string) string {
	name, _, _ := strings.Cut(vkey, "+")
	return name
}
