package node

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// TwoPersonConfig tunes the two-person rule.
type TwoPersonConfig struct {
	// Approvals is how many distinct custodians approve a dangerous
	// operation (default 2).
	Approvals int `yaml:"approvals,omitempty"`
	// PerOperation overrides Approvals for an operation kind (e.g.
	// "vault.delete": 3).
	PerOperation map[string]int `yaml:"per_operation,omitempty"`
	// TTL is how long a request waits for approvals (default 24h).
	TTL durationYAML `yaml:"ttl,omitempty"`
	// PrincipalLevel: adding a principal cleared above this label (text
	// form, e.g. "NATO CONFIDENTIAL") takes two custodians. Default: any
	// clearance above NATO UNCLASSIFIED.
	PrincipalLevel string `yaml:"principal_level,omitempty"`
	// ShareLevel: a share grant whose ceiling lies above this label (text
	// form) takes two custodians (share.grant). Default: any ceiling above
	// NATO UNCLASSIFIED.
	ShareLevel string `yaml:"share_level,omitempty"`
}

// OperationKinds are the kinds of dangerous operations, as requests and
// two_person.per_operation name them. Node.execute carries out each.
var OperationKinds = []string{
	"vault.delete", "vault.policy", "vault.object-lock", "vault.rotate-key", "site.remove", "object.delete", "object.retention",
	"object.relabel", "object.copy", "principal.add", "principal.remove", "custody.resplit", "root.rotate", "config.edit", "identity.replace",
	"peer.add", "peer.remove", "share.grant", "host.add",
}

func (tp TwoPersonConfig) validate() error {
	if tp.Approvals < 0 || tp.Approvals == 1 {
		return fmt.Errorf("approvals: %d: must be at least 2, the two-person rule (unset means 2)", tp.Approvals)
	}
	kinds := slices.Sorted(maps.Keys(tp.PerOperation))
	for _, k := range kinds {
		if !slices.Contains(OperationKinds, k) {
			return fmt.Errorf("per_operation: unknown operation kind %q (want one of %s)", k, strings.Join(OperationKinds, ", "))
		}
		if v := tp.PerOperation[k]; v < 2 {
			return fmt.Errorf("per_operation.%s: %d: must be at least 2, the two-person rule", k, v)
		}
	}
	if tp.TTL < 0 {
		return fmt.Errorf("ttl: %s is negative (unset means 24h)", time.Duration(tp.TTL))
	}
	return nil
}

// DeleteVault removes a vault that has no current object, with its
// history (noncurrent versions and delete markers) and its uploads in
// progress, as S3 clients expect of DeleteBucket once they have deleted
// every object. A version under retention or legal hold keeps the vault.
// It takes two custodians; the history goes when the request executes.
func (n *Node) DeleteVault(ctx context.Context, name string) error {
	if err := n.Ready(); err != nil {
		return err
	}
	if _, err := n.Engine.Vault(name); err != nil {
		return err
	}
	if err := n.Engine.CheckPurge(ctx, name); err != nil {
		return notEmpty(name, err)
	}
	if err := n.Require(ctx, vault.Operation{Kind: "vault.delete", Summary: "delete vault " + name, Params: map[string]string{"vault": name}}); err != nil {
		return err
	}
	return n.removeVault(ctx, name)
}

// weaker reports why policy b is weaker than a, or "".
func weaker(nation string, a, b VaultConfig) string {
	pa, err1 := a.Policy(nation)
	pb, err2 := b.Policy(nation)
	if err1 != nil || err2 != nil {
		return ""
	}
	switch {
	case pb.M < pa.M:
		return fmt.Sprintf("fewer parity shards (%d instead of %d)", pb.M, pa.M)
	case !pb.Survive.Covers(pa.Survive):
		return fmt.Sprintf("survives less (%s instead of %s)", pb.Survive, pa.Survive)
	case pa.OutsideHome && !pb.OutsideHome:
		return "no longer survives the loss of the home jurisdiction"
	case len(pa.Allowed) > 0 && (len(pb.Allowed) == 0 || slices.ContainsFunc(pb.Allowed, func(j string) bool { return !slices.Contains(pa.Allowed, j) })):
		return "allows jurisdictions it did not"
	}
	return ""
}

// SetVaultPolicy changes a vault's placement policy. A policy weaker than
// the current one takes two custodians; a stronger one applies at once if
// the sites can keep it. Existing objects keep their placement until scrub
// moves them.
func (n *Node) SetVaultPolicy(ctx context.Context, name string, next VaultConfig) error {
	var cur VaultConfig
	n.mu.Lock()
	for _, v := range n.conf().Vaults {
		if v.Name == name {
			cur = v
		}
	}
	n.mu.Unlock()
	if cur.Name == "" {
		return fmt.Errorf("%w: %s", vault.ErrNoSuchVault, name)
	}
	if why := weaker(n.conf().Node.Nation, cur, next); why != "" {
		err := n.Require(ctx, vault.Operation{Kind: "vault.policy", Summary: fmt.Sprintf("weaken the policy of vault %s: %s", name, why),
			Params: map[string]string{"vault": name, "erasure": next.Erasure, "survive": next.Survive, "outside_home": fmt.Sprint(next.OutsideHome), "jurisdictions": strings.Join(next.Jurisdictions, ",")}})
		if err != nil {
			return err
		}
	}
	return n.setPolicy(name, next)
}

func (n *Node) setPolicy(name string, next VaultConfig) error {
	return n.updateVault(name, func(v *VaultConfig) error {
		trial := *v
		trial.Erasure, trial.Survive, trial.OutsideHome, trial.Jurisdictions = next.Erasure, next.Survive, next.OutsideHome, next.Jurisdictions
		ev, err := n.vault(trial)
		if err != nil {
			return err
		}
		if err := n.Engine.SetVault(ev); err != nil {
			return err
		}
		*v = trial
		return nil
	})
}

// retentionDays is a default retention's length, roughly, for comparing
// two defaults.
func retentionDays(l ObjectLockConfig) int { return l.Days + 365*l.Years }

// lockWeaker reports why default retention next is weaker than cur, or "":
// removed, shorter, or COMPLIANCE turned into GOVERNANCE.
func lockWeaker(cur *ObjectLockConfig, next ObjectLockConfig) string {
	if cur == nil || cur.Mode == "" {
		return ""
	}
	switch {
	case next.Mode == "":
		return fmt.Sprintf("remove the default %s retention of %s", cur.Mode, lockPeriod(*cur))
	case cur.Mode == "COMPLIANCE" && next.Mode == "GOVERNANCE":
		return "turn the default COMPLIANCE retention into GOVERNANCE"
	case retentionDays(next) < retentionDays(*cur):
		return fmt.Sprintf("shorten the default %s retention from %s to %s", cur.Mode, lockPeriod(*cur), lockPeriod(next))
	}
	return ""
}

func lockPeriod(l ObjectLockConfig) string {
	if l.Years > 0 {
		return fmt.Sprintf("%d years", l.Years)
	}
	return fmt.Sprintf("%d days", l.Days)
}

// SetObjectLock sets a vault's object-lock default retention (S3
// PutObjectLockConfiguration). Removing or weakening an existing default
// takes two custodians (vault.object-lock): it decides how long every later
// version is kept.
func (n *Node) SetObjectLock(ctx context.Context, name string, next ObjectLockConfig) error {
	var cur *ObjectLockConfig
	found := false
	n.mu.Lock()
	for _, v := range n.conf().Vaults {
		if v.Name == name {
			cur, found = v.ObjectLock, true
		}
	}
	n.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: %s", vault.ErrNoSuchVault, name)
	}
	if why := lockWeaker(cur, next); why != "" {
		err := n.Require(ctx, vault.Operation{Kind: "vault.object-lock", Summary: fmt.Sprintf("%s of vault %s", why, name),
			Params: map[string]string{"vault": name, "mode": next.Mode, "days": strconv.Itoa(next.Days), "years": strconv.Itoa(next.Years)}})
		if err != nil {
			return err
		}
	}
	return n.setObjectLock(name, next)
}

func (n *Node) setObjectLock(name string, l ObjectLockConfig) error {
	return n.updateVault(name, func(v *VaultConfig) error {
		v.ObjectLock = &l
		return nil
	})
}

// RotateVaultKey starts a new generation of a vault's key and re-wraps every
// data key under it; it takes two custodians. ResumeRotation finishes an
// interrupted one.
func (n *Node) RotateVaultKey(ctx context.Context, name string) (vault.RewrapStats, error) {
	if err := n.Ready(); err != nil {
		return vault.RewrapStats{}, err
	}
	if _, err := n.Engine.Vault(name); err != nil {
		return vault.RewrapStats{}, err
	}
	if err := n.Require(ctx, vault.Operation{Kind: "vault.rotate-key", Summary: "rotate the key of vault " + name, Params: map[string]string{"vault": name}}); err != nil {
		return vault.RewrapStats{}, err
	}
	return n.rotateVaultKey(ctx, name)
}

func (n *Node) rotateVaultKey(ctx context.Context, name string) (vault.RewrapStats, error) {
	var gen int
	err := n.updateVault(name, func(v *VaultConfig) error {
		v.KeyGen = max(v.KeyGen, 1) + 1
		gen = v.KeyGen
		ev, err := n.vault(*v)
		if err != nil {
			return err
		}
		return n.Engine.SetVault(ev)
	})
	if err != nil {
		return vault.RewrapStats{}, err
	}
	if err := n.record(ctx, audit.Event{Kind: KindVaultKeyRotate, Actor: vault.Actor(ctx), Vault: name, Detail: map[string]string{"key_generation": fmt.Sprint(gen)}}); err != nil {
		return vault.RewrapStats{}, err
	}
	return n.Engine.RewrapVault(ctx, name, gen, nil)
}

// ResumeRotation re-wraps whatever an interrupted rotation left under an
// older generation of the vault key. It is safe to run at any time.
func (n *Node) ResumeRotation(ctx context.Context, name string) (vault.RewrapStats, error) {
	if err := n.Ready(); err != nil {
		return vault.RewrapStats{}, err
	}
	v, err := n.Engine.Vault(name)
	if err != nil {
		return vault.RewrapStats{}, err
	}
	return n.Engine.RewrapVault(ctx, name, max(v.KeyGen, 1), nil)
}

// removeSite removes a site from the configuration.
func (n *Node) removeSite(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	// (apply swaps the engine: only for a node that is not serving)
	c := *n.Config
	c.Sites = slices.DeleteFunc(slices.Clone(c.Sites), func(s SiteConfig) bool { return s.ID == id })
	if len(c.Sites) == len(n.conf().Sites) {
		return fmt.Errorf("no site %s", id)
	}
	return n.apply(&c)
}

// AddPrincipal adds a principal. One cleared above the configured level,
// or holding an administrative role (operator or admin, node-wide or on
// any vault), takes two custodians.
func (n *Node) AddPrincipal(ctx context.Context, p access.Principal) error {
	if err := p.Validate(n.Labels); err != nil {
		return err
	}
	if slices.ContainsFunc(n.conf().Principals, func(o access.Principal) bool { return o.Name == p.Name }) {
		return fmt.Errorf("principal %s already exists", p.Name)
	}
	b, _ := json.Marshal(p)
	if n.clearedAbove(p) || p.Administrative() {
		if err := n.Require(ctx, vault.Operation{Kind: "principal.add", Summary: "add principal " + describePrincipal(p),
			Params: map[string]string{"principal": string(b)}}); err != nil {
			return err
		}
	}
	return n.addPrincipal(string(b))
}

// describePrincipal says everything a principal is given, for a request's
// summary: nation, clearances, categories and roles.
func describePrincipal(p access.Principal) string {
	var cl, cat []string
	for _, pol := range slices.Sorted(maps.Keys(p.Clearances)) {
		cl = append(cl, pol+" "+p.Clearances[pol])
	}
	for _, tag := range slices.Sorted(maps.Keys(p.Categories)) {
		cat = append(cat, tag+": "+strings.Join(p.Categories[tag], ", "))
	}
	return fmt.Sprintf("%s (nation %s; clearances %s; categories %s; roles %s)", p.Name, p.Nation, orNone(strings.Join(cl, ", ")), orNone(strings.Join(cat, "; ")), p.RoleSummary())
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (n *Node) clearedAbove(p access.Principal) bool {
	level := n.conf().TwoPerson.PrincipalLevel
	if level == "" {
		level = "NATO UNCLASSIFIED"
	}
	l, err := n.Labels.ParseText(level)
	if err != nil {
		return true
	}
	limit, err := n.Labels.LabelLevel(l)
	if err != nil {
		return true
	}
	for pol, lv := range p.Clearances {
		got, err := n.Labels.Level(pol, lv)
		if err != nil || !n.Labels.Dominates(limit, got) {
			return true
		}
	}
	return false
}

func (n *Node) addPrincipal(js string) error {
	var p access.Principal
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := *n.Config
	c.Principals = append(slices.Clone(c.Principals), p)
	if err := n.saveConfig(&c); err != nil {
		return err
	}
	n.setConfig(&c)
	return nil
}

// ErrHoldsData: a site still holds shards; removing it loses redundancy
// until scrub repairs, so it takes two custodians.
var ErrHoldsData = errors.New("site holds data")

// Resplit replaces the node's custody: the root key is split afresh among
// custodians with threshold t, which takes two of the current custodians.
// The new share files are written to a directory in the node directory
// (returned) for the operators to hand out; earlier shares stop working.
func (n *Node) Resplit(ctx context.Context, custodians []custody.CustodianPublic, t int) (string, error) {
	if err := n.Ready(); err != nil {
		return "", err
	}
	if err := custody.ValidateCustodians(custodians); err != nil {
		return "", err
	}
	b, err := json.Marshal(custodians)
	if err != nil {
		return "", err
	}
	if n.Custody == nil {
		// Moving from a local root key file to custodians only adds protection.
		return n.resplit(string(b), fmt.Sprint(t))
	}
	var who []string
	for _, c := range custodians {
		rfp, sfp, _ := c.Fingerprints()
		who = append(who, fmt.Sprintf("%s (share key %s, signing key %s)", c.Name, rfp, sfp))
	}
	if err := n.Require(ctx, vault.Operation{Kind: "custody.resplit", Summary: fmt.Sprintf("re-split the root key %d of %d among %s", t, len(custodians), strings.Join(who, "; ")),
		Params: map[string]string{"custodians": string(b), "threshold": fmt.Sprint(t)}}); err != nil {
		return "", err
	}
	return n.resplit(string(b), fmt.Sprint(t))
}

func (n *Node) resplit(custodiansJSON, threshold string) (string, error) {
	var cs []custody.CustodianPublic
	if err := json.Unmarshal([]byte(custodiansJSON), &cs); err != nil {
		return "", err
	}
	t, err := strconv.Atoi(threshold)
	if err != nil {
		return "", err
	}
	rec, files, err := n.Keys().Resplit(n.conf().Node.ID, cs, t)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(n.Dir, "shares-"+time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for name, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, name+".share"), f); err != nil {
			return "", err
		}
	}
	// The new record replaces the old only once every share file is safe.
	if err := n.saveCustody(&rec); err != nil {
		return "", err
	}
	defer n.PublishDescriptor(context.Background())
	n.sealMu.Lock()
	n.Custody = &rec
	n.sealMu.Unlock()
	if n.conf().Keys.RootKeyFile != "" {
		// A node that had a local root key file now relies on custodians.
		os.Remove(n.path(n.conf().Keys.RootKeyFile))
		c := *n.Config
		c.Keys = KeysConfig{}
		if err := n.saveConfig(&c); err != nil {
			return dir, err
		}
		n.setConfig(&c)
	}
	n.Log.Info("root key re-split among custodians", "threshold", t, "custodians", len(cs), "shares", dir)
	return dir, nil
}

// RemovePrincipal removes a principal, with its S3 credentials in
// node.yaml. One cleared above the configured level, or administrative,
// takes two custodians, as adding one does.
func (n *Node) RemovePrincipal(ctx context.Context, name string) error {
	ps := n.conf().Principals
	i := slices.IndexFunc(ps, func(p access.Principal) bool { return p.Name == name })
	if i < 0 {
		return fmt.Errorf("no principal %s", name)
	}
	if p := ps[i]; n.clearedAbove(p) || p.Administrative() {
		if err := n.Require(ctx, vault.Operation{Kind: "principal.remove", Summary: "remove principal " + describePrincipal(p),
			Params: map[string]string{"principal": name}}); err != nil {
			return err
		}
	}
	return n.removePrincipal(name)
}

func (n *Node) removePrincipal(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := *n.Config
	c.Principals = slices.DeleteFunc(slices.Clone(c.Principals), func(p access.Principal) bool { return p.Name == name })
	if len(c.Principals) == len(n.conf().Principals) {
		return fmt.Errorf("no principal %s", name)
	}
	// Its S3 credentials go with it: kept, they would authenticate a
	// principal the node no longer knows.
	c.S3.Credentials = slices.DeleteFunc(slices.Clone(c.S3.Credentials), func(cr CredentialConfig) bool { return cr.Principal == name })
	if err := n.saveConfig(&c); err != nil {
		return err
	}
	n.setConfig(&c)
	// The S3 front end is rebuilt on its next request, without them.
	n.live.changed()
	return nil
}

// approvedCopy carries out a copy custodians approved (object.copy): the
// source version's bytes, content type and metadata as the request names
// them, under the requested label, with the destination vault's default
// retention if it has one.
func (n *Node) approvedCopy(ctx context.Context, p map[string]string) error {
	id, err := manifest.ParseID(p["src_version"])
	if err != nil {
		return fmt.Errorf("object.copy: src_version: %w", err)
	}
	r, err := n.Engine.Get(ctx, p["src_vault"], p["src_key"], vault.GetOptions{VersionID: id, Length: -1})
	if err != nil {
		return err
	}
	defer r.Close()
	info := r.Info()
	o := vault.PutOptions{Size: info.Size, ContentType: p["content_type"], Label: p["label"]}
	if o.ContentType == "" {
		o.ContentType = info.ContentType
	}
	if m := p["meta"]; m != "" {
		if err := json.Unmarshal([]byte(m), &o.Meta); err != nil {
			return fmt.Errorf("object.copy: meta: %w", err)
		}
	}
	for _, vc := range n.conf().Vaults {
		if l := vc.ObjectLock; vc.Name == p["dst_vault"] && l != nil && l.Mode != "" {
			o.Lock = &manifest.Lock{Mode: l.Mode, Until: time.Now().AddDate(l.Years, 0, l.Days).UTC()}
		}
	}
	h := md5.New()
	o.ETag = func() string { return "\"" + hex.EncodeToString(h.Sum(nil)) + "\"" }
	_, err = n.Engine.Put(ctx, p["dst_vault"], p["dst_key"], io.TeeReader(r, h), o)
	return err
}
