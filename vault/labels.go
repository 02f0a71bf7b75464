package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
)

// Access control in the engine: every interface (S3, CLI, federation)
// reaches objects through the engine, so the engine is where the one access
// decision (package access) is applied, and where labels are bound to the
// content they describe.

type principalKey struct{}

type systemKey struct{}

// WithPrincipal returns a context acting as principal p: reads are allowed
// only where p's clearance, nation and categories admit the object's label,
// and p cannot write a label above its own clearance.
func WithPrincipal(ctx context.Context, p access.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, &p)
}

// AsSystem returns a context for the node's own work (index rebuild,
// scrub, repair): no access decision is made. Interfaces never use it for a
// request.
func AsSystem(ctx context.Context) context.Context {
	return context.WithValue(ctx, systemKey{}, true)
}

// PrincipalFrom returns the principal a context acts as.
func PrincipalFrom(ctx context.Context) (access.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*access.Principal)
	if !ok {
		return access.Principal{}, false
	}
	return *p, true
}

// ErrNoPrincipal: the engine enforces access control and the request names
// no principal. Callers must attach one with WithPrincipal.
var ErrNoPrincipal = errors.New("no principal: the request is not attributed to anyone")

// ErrLabelBinding: an object's label binding failed verification; its
// label cannot be trusted and the object is not served. Report it: a site
// or the index has been tampered with or damaged.
var ErrLabelBinding = errors.New("label binding verification failed")

// ErrInvalidLabel: the label given on a put is malformed or unknown to the
// node's policies.
var ErrInvalidLabel = errors.New("invalid label")

// invalidLabel wraps a label package error in ErrInvalidLabel, without
// saying "invalid label" twice.
func invalidLabel(err error) error {
	return fmt.Errorf("%w: %s", ErrInvalidLabel, strings.TrimPrefix(err.Error(), ErrInvalidLabel.Error()+": "))
}

// labelOf parses an object's stored label text through the registry, with
// a cache: a node holds many objects under few labels.
func (e *Engine) labelOf(text string) (label.Label, error) {
	if v, ok := e.labelCache.Load(text); ok {
		return v.(label.Label), nil
	}
	l, err := e.labels.ParseText(text)
	if err != nil {
		return label.Label{}, err
	}
	if n := e.labelCacheN.Add(1); n > 10000 {
		e.labelCache.Clear()
		e.labelCacheN.Store(0)
	}
	e.labelCache.Store(text, l)
	return l, nil
}

// canRead applies the access decision to an object in vault v labelled
// text ("" for unlabelled objects, which only the owner's nationals read).
func (e *Engine) canRead(ctx context.Context, v Vault, text string) error {
	if e.decider == nil || ctx.Value(systemKey{}) != nil {
		return nil
	}
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: %w", access.ErrDenied, ErrNoPrincipal)
	}
	if text == "" {
		if p.Nation != v.Owner {
			return &access.DeniedError{Principal: p.Name, Reason: access.ReasonNation, Detail: "unlabelled object: readable only by nationals of " + v.Owner}
		}
		return nil
	}
	l, err := e.labelOf(text)
	if err != nil {
		return &access.DeniedError{Principal: p.Name, Reason: access.ReasonLabel, Detail: err.Error()}
	}
	return e.decider.CanRead(p, v.Owner, l)
}

// CanRead returns nil if the context's principal may read an object of
// vault vaultName labelled text ("" for unlabelled), by the decision every
// read makes, ErrNoSuchVault for a vault that does not exist, and an error
// wrapping access.ErrDenied otherwise. A front end that keeps its own
// listing (TAXII's secondary index) filters it with this; the read itself
// decides again, against the label in the manifest.
func (e *Engine) CanRead(ctx context.Context, vaultName, text string) error {
	v, err := e.Vault(vaultName)
	if err != nil {
		return err
	}
	return e.canRead(ctx, v, text)
}

// canWrite decides whether the context's principal may write into vault v
// (put, copy into, delete from, lock, relabel): only a principal of the
// owning nation may. No role stands in for the nationality (DESIGN.md §7),
// and a name no configuration knows (no nation) writes nothing. Which of
// those changes a principal may make is its roles' business, checked by
// the interface it came through.
func (e *Engine) canWrite(ctx context.Context, v Vault) error {
	if e.decider == nil || ctx.Value(systemKey{}) != nil {
		return nil
	}
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: %w", access.ErrDenied, ErrNoPrincipal)
	}
	if p.Nation != "" && p.Nation == v.Owner {
		return nil
	}
	return &access.DeniedError{Principal: p.Name, Reason: access.ReasonNation, Detail: "writing into vault " + v.Name + " needs a national of its owner " + v.Owner}
}

// CheckWrite returns nil if the context's principal may change vault
// vaultName (see canWrite), ErrNoSuchVault for a vault that does not exist,
// and an error wrapping access.ErrDenied otherwise.
func (e *Engine) CheckWrite(ctx context.Context, vaultName string) error {
	v, err := e.Vault(vaultName)
	if err != nil {
		return err
	}
	return e.canWrite(ctx, v)
}

// putLabel resolves the label of a put (given or the vault's default),
// checks that the principal may write it, and returns its canonical text.
func (e *Engine) putLabel(ctx context.Context, v Vault, given string) (string, *label.Label, error) {
	if err := e.canWrite(ctx, v); err != nil {
		return "", nil, err
	}
	text := given
	if text == "" {
		text = v.DefaultLabel
	}
	if text == "" || e.labels == nil {
		if given != "" {
			return "", nil, fmt.Errorf("%w: this node has no label policies", ErrInvalidLabel)
		}
		return "", nil, nil
	}
	l, err := e.labelOf(text)
	if err != nil {
		return "", nil, invalidLabel(err)
	}
	if e.decider != nil && ctx.Value(systemKey{}) == nil {
		p, ok := PrincipalFrom(ctx)
		if !ok {
			return "", nil, fmt.Errorf("%w: %w", access.ErrDenied, ErrNoPrincipal)
		}
		if err := e.decider.CanWriteLabel(p, l); err != nil {
			if errors.Is(err, access.ErrDenied) {
				return "", nil, err
			}
			return "", nil, invalidLabel(err)
		}
	}
	return l.String(), &l, nil
}

// accredited reports whether a site accredited for acc (label text, "" for
// unclassified only) may hold data labelled l.
func (e *Engine) accredited(acc string, l *label.Label) bool {
	if l == nil || e.labels == nil {
		return true
	}
	obj, err := e.labels.LabelLevel(*l)
	if err != nil {
		return false
	}
	if acc == "" {
		return obj.Rank == 0
	}
	sl, err := e.labelOf(acc)
	if err != nil {
		return false
	}
	siteLevel, err := e.labels.LabelLevel(sl)
	if err != nil {
		return false
	}
	return e.labels.Dominates(siteLevel, obj)
}

// objectURI names a version in label bindings. A key's unprintable
// characters (which a label field may not hold) are percent-encoded as
// their UTF-8 bytes; printable keys appear as they are, as they always
// have, so that bindings made before keep verifying.
func objectURI(vault, key string, id manifest.ID) string {
	var b strings.Builder
	b.WriteString("embassy:" + vault + "/")
	for _, r := range key {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		for _, c := range []byte(string(r)) {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	b.WriteString("?versionId=" + id.String())
	return b.String()
}

// bindLabel signs a binding of m's label to m's content (its BLAKE3 digest,
// or each part's for multipart objects) and stores it in m.
func (e *Engine) bindLabel(m *manifest.Manifest, l *label.Label) error {
	signer, _ := e.bindingKeys()
	if l == nil || signer == nil {
		return nil
	}
	b := label.Binding{Label: *l}
	uri := objectURI(m.Vault, m.Key, m.Version)
	if len(m.Digest) == 32 {
		// A single put: one digest of the whole content. A multipart
		// object, even of one part, has none and binds each part's.
		b.Data = []label.DataRef{{URI: uri, ContentType: m.ContentType, DigestAlg: label.DigestBLAKE3, Digest: m.Digest}}
	} else {
		for _, p := range m.Parts {
			b.Data = append(b.Data, label.DataRef{URI: fmt.Sprintf("%s&partNumber=%d", uri, p.Number), ContentType: m.ContentType, DigestAlg: label.DigestBLAKE3, Digest: p.Digest})
		}
	}
	if err := b.Sign(signer); err != nil {
		return fmt.Errorf("sign label binding: %w", err)
	}
	j, err := b.MarshalJSON()
	if err != nil {
		return err
	}
	m.LabelBinding = j
	return nil
}

// verifyBinding checks that m's label binding is signed by the node and
// binds m's label to m's content.
func (e *Engine) verifyBinding(m *manifest.Manifest) error {
	_, verifier := e.bindingKeys()
	if m.DeleteMarker || m.Label == "" || verifier == nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		e.Events.BindingErrors.Add(1)
		return fmt.Errorf("%s/%s version %s: %w: %s", m.Vault, m.Key, m.Version, ErrLabelBinding, fmt.Sprintf(format, args...))
	}
	if len(m.LabelBinding) == 0 {
		return fail("labelled object without a binding")
	}
	key := maphash.Bytes(bindingSeed, m.LabelBinding)
	if v, ok := e.bindingOK.Load(key); ok && bytes.Equal(v.(verifiedBinding).raw, m.LabelBinding) {
		return e.matchBinding(m, v.(verifiedBinding).b, fail)
	}
	b, err := label.ParseBinding(m.LabelBinding)
	if err != nil {
		return fail("%v", err)
	}
	if err := b.Verify(verifier); err != nil {
		return fail("%v", err)
	}
	if n := e.bindingN.Add(1); n > 10000 {
		e.bindingOK.Clear()
		e.bindingN.Store(0)
	}
	e.bindingOK.Store(key, verifiedBinding{raw: bytes.Clone(m.LabelBinding), b: b})
	return e.matchBinding(m, b, fail)
}

// verifiedBinding is a binding whose signature verified, with its exact
// bytes: a later binding is taken as verified only if identical.
type verifiedBinding struct {
	raw []byte
	b   label.Binding
}

var bindingSeed = maphash.MakeSeed()

func (e *Engine) matchBinding(m *manifest.Manifest, b label.Binding, fail func(string, ...any) error) error {
	l, err := e.labelOf(m.Label)
	if err != nil {
		return fail("label %q: %v", m.Label, err)
	}
	if !b.Label.Equal(l) {
		return fail("the manifest says %q but the signed binding says %q", m.Label, b.Label.String())
	}
	uri := objectURI(m.Vault, m.Key, m.Version)
	if len(m.Digest) == 32 {
		if err := b.CheckData(uri, label.DigestBLAKE3, m.Digest); err != nil {
			return fail("%v", err)
		}
		return nil
	}
	for _, p := range m.Parts {
		if err := b.CheckData(fmt.Sprintf("%s&partNumber=%d", uri, p.Number), label.DigestBLAKE3, p.Digest); err != nil {
			return fail("%v", err)
		}
	}
	return nil
}

// labelState is the engine's label machinery.
type labelState struct {
	labels      *label.Registry
	decider     *access.Decider
	signer      label.Signer
	verifier    label.Verifier
	labelCache  sync.Map
	labelCacheN atomic.Int64
	bindingOK   sync.Map
	bindingN    atomic.Int64
}

// Widens reports whether an object owned by newOwner and labelled newText
// may be read by someone who could not read it owned by oldOwner and
// labelled oldText (labels in text form, "" for none), and says how. Such a
// change — a relabel, or a copy (into a vault of another owner, too) —
// lowers the protection of the data, and takes two custodians. Widening is:
//
//   - more nations: the new owner, or a nation the new releasability list
//     names, that could not read before (adding REL TO to a label without
//     one, or labelling an unlabelled object with one, included);
//   - a lower classification, or none at all where there was one;
//   - fewer values of a restrictive category, or more values (or fewer
//     categories) of a permissive one.
//
// Labelling an unlabelled object for its owner's nationals alone narrows
// access (a clearance is then needed), and is not widening.
func (e *Engine) Widens(oldOwner, oldText, newOwner, newText string) (string, error) {
	if e.labels == nil {
		if oldOwner != newOwner {
			return fmt.Sprintf("nation %s could not read it before", newOwner), nil
		}
		return "", nil
	}
	var oldL, newL *label.Label
	var oldPol, newPol label.Level
	if oldText != "" {
		l, err := e.labelOf(oldText)
		if err != nil {
			return "", err
		}
		if oldPol, err = e.labels.LabelLevel(l); err != nil {
			return "", err
		}
		oldL = &l
	}
	if newText != "" {
		l, err := e.labelOf(newText)
		if err != nil {
			return "", invalidLabel(err)
		}
		if newPol, err = e.labels.LabelLevel(l); err != nil {
			return "", invalidLabel(err)
		}
		newL = &l
	}
	before := e.readerNations(oldOwner, oldL, oldPol.Policy)
	for _, n := range slices.Sorted(maps.Keys(e.readerNations(newOwner, newL, newPol.Policy))) {
		if !before[n] {
			return fmt.Sprintf("nation %s could not read it before", n), nil
		}
	}
	switch {
	case oldL == nil:
		return "", nil
	case newL == nil:
		return "it would carry no label (no clearance needed to read it)", nil
	case !e.labels.Dominates(newPol, oldPol):
		return fmt.Sprintf("its classification would go down from %s to %s", oldPol, newPol), nil
	}
	for _, co := range oldL.Categories {
		if co.Type == label.Permissive && e.labels.IsReleasability(oldPol.Policy, co.TagName) {
			continue
		}
		cn, ok := newL.Category(co.TagName)
		if co.Type == label.Permissive {
			if !ok {
				return fmt.Sprintf("permissive category %s would be dropped", co.TagName), nil
			}
			for _, v := range cn.Values {
				if !slices.Contains(co.Values, v) {
					return fmt.Sprintf("permissive category %s would gain %s", co.TagName, v), nil
				}
			}
			continue
		}
		if co.Type != label.Restrictive {
			continue
		}
		for _, v := range co.Values {
			if !ok || cn.Type != label.Restrictive || !slices.Contains(cn.Values, v) {
				return fmt.Sprintf("restrictive category %s would lose %s", co.TagName, v), nil
			}
		}
	}
	return "", nil
}

// readerNations is the set of nations whose principals the nation rule of
// the access decision admits to an object owned by owner and labelled l
// (nil: unlabelled) under policy: the owner, and the nations every
// permissive releasability category lists.
func (e *Engine) readerNations(owner string, l *label.Label, policy string) map[string]bool {
	out := map[string]bool{owner: true}
	if l == nil {
		return out
	}
	var rel map[string]bool
	for _, c := range l.Categories {
		if c.Type != label.Permissive || !e.labels.IsReleasability(policy, c.TagName) {
			continue
		}
		this := map[string]bool{}
		for _, v := range c.Values {
			if rel == nil || rel[strings.ToUpper(v)] {
				this[strings.ToUpper(v)] = true
			}
		}
		rel = this
	}
	maps.Copy(out, rel)
	return out
}
