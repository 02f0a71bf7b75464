package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site/dir"
)

// labelNode is an engine with labels and the access decision on, over six
// sites of which the two in LUX are accredited only for NATO RESTRICTED.
type labelNode struct {
	e    *Engine
	ix   *boltindex.Index
	dirs map[string]string
}

func newLabelNode(t testing.TB) *labelNode {
	t.Helper()
	root := t.TempDir()
	reg, err := label.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := custody.GenerateRootKey()
	keys, _ := custody.NewKeyring(rk)
	ix, err := boltindex.Open(filepath.Join(root, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	ln := &labelNode{ix: ix, dirs: map[string]string{}}
	var sites []Site
	for _, d := range topology {
		d.Accredited = "NATO SECRET"
		if d.Jurisdiction == "LUX" {
			d.Accredited = "NATO RESTRICTED"
		}
		p := filepath.Join(root, d.ID)
		ds, _ := dir.New(p)
		ln.dirs[d.ID] = p
		sites = append(sites, Site{Descriptor: d, Store: ds})
	}
	// Four sites in EST and FIN: 2+2 surviving one site keeps the policy
	// even without LUX.
	bk := keys.BindingKeys()
	e, err := New(Config{Keys: keys, Index: ix, Sites: sites, Labels: reg, Signer: bk, Verifier: bk, Decider: access.NewDecider(reg),
		Vaults: []Vault{{Name: "intel", Owner: "EST", StripeSize: testStripe, DefaultLabel: "NATO RESTRICTED",
			Policy: placement.Policy{K: 2, M: 2, Survive: placement.Loss{Sites: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	ln.e = e
	return ln
}

var (
	officer = access.Principal{Name: "officer", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}}
	ally    = access.Principal{Name: "ally", Nation: "USA", Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}}
	clerk   = access.Principal{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "RESTRICTED"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}}
	outside = access.Principal{Name: "outsider", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}}
	luxOK   = access.Principal{Name: "lux", Nation: "LUX", Clearances: map[string]string{"NATO": "SECRET"}, Categories: map[string][]string{"Compartment": {"ALPHA"}}}
)

const secretLabel = "NATO SECRET//REL TO EST, LUX//RESTRICTIVE Compartment: ALPHA"

func TestAccessDecisionOnEveryRead(t *testing.T) {
	ln := newLabelNode(t)
	ctx := t.Context()
	as := func(p access.Principal) context.Context { return WithPrincipal(ctx, p) }
	if _, err := ln.e.Put(as(officer), "intel", "report", bytes.NewReader([]byte("troop movements")), PutOptions{Size: 15, Label: secretLabel}); err != nil {
		t.Fatal(err)
	}
	ln.e.Put(as(officer), "intel", "public", bytes.NewReader([]byte("press release")), PutOptions{Size: 13, Label: "NATO UNCLASSIFIED//REL TO EST, LUX, USA"})

	cases := []struct {
		name   string
		p      access.Principal
		reason access.Reason
	}{
		{"wrong nation", ally, access.ReasonNation},
		{"low clearance", clerk, access.ReasonClearance},
		{"missing category", outside, access.ReasonRestrictive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := as(tc.p)
			checkDenied := func(op string, err error) {
				t.Helper()
				var d *access.DeniedError
				if !errors.As(err, &d) || d.Reason != tc.reason {
					t.Fatalf("%s: err = %v, want denial for reason %v", op, err, tc.reason)
				}
			}
			_, err := ln.e.Get(c, "intel", "report", GetOptions{Length: -1})
			checkDenied("get", err)
			_, err = ln.e.Stat(c, "intel", "report", manifest.ID{})
			checkDenied("stat", err)
			_, err = ln.e.Locate(c, "intel", "report", manifest.ID{})
			checkDenied("locate", err)
			_, err = ln.e.Delete(c, "intel", "report", DeleteOptions{})
			checkDenied("delete marker", err)
			page, _ := ln.e.List(c, "intel", index.ListOptions{})
			var keys []string
			for _, e := range page.Entries {
				keys = append(keys, e.Key)
			}
			if slices.Contains(keys, "report") {
				t.Fatalf("list shows the object the principal may not read: %v", keys)
			}
			vp, _ := ln.e.Versions(c, "intel", index.VersionOptions{})
			for _, v := range vp.Versions {
				if v.Key == "report" {
					t.Fatal("versions list shows the object the principal may not read")
				}
			}
		})
	}
	// The allowed principals read it, and everyone sees the public object.
	for _, p := range []access.Principal{officer, luxOK} {
		r, err := ln.e.Get(as(p), "intel", "report", GetOptions{Length: -1})
		if err != nil {
			t.Fatalf("%s refused: %v", p.Name, err)
		}
		r.Close()
	}
	page, _ := ln.e.List(as(ally), "intel", index.ListOptions{})
	if len(page.Entries) != 1 || page.Entries[0].Key != "public" {
		t.Fatalf("ally lists %+v, want only the public object", page.Entries)
	}
	// A request attributed to no one is refused.
	if _, err := ln.e.Get(ctx, "intel", "public", GetOptions{Length: -1}); !errors.Is(err, access.ErrDenied) {
		t.Fatalf("anonymous engine read: %v", err)
	}
}

func TestWriteAboveClearanceRefused(t *testing.T) {
	ln := newLabelNode(t)
	ctx := WithPrincipal(t.Context(), clerk)
	_, err := ln.e.Put(ctx, "intel", "x", bytes.NewReader([]byte("x")), PutOptions{Size: 1, Label: secretLabel})
	var d *access.DeniedError
	if !errors.As(err, &d) || d.Reason != access.ReasonClearance {
		t.Fatalf("clerk writing SECRET: %v", err)
	}
	if _, err := ln.e.Put(ctx, "intel", "x", bytes.NewReader([]byte("x")), PutOptions{Size: 1, Label: "NATO SUPERSECRET"}); !errors.Is(err, ErrInvalidLabel) {
		t.Fatalf("unknown level: %v", err)
	} else if strings.Count(err.Error(), "invalid label") != 1 || !strings.Contains(err.Error(), `unknown level "SUPERSECRET"`) {
		t.Errorf("unknown level: %q should say \"invalid label\" once and name the level", err)
	}
	// The vault's default label applies when none is given.
	info, err := ln.e.Put(ctx, "intel", "d", bytes.NewReader([]byte("x")), PutOptions{Size: 1})
	if err != nil || info.Label != "NATO RESTRICTED" {
		t.Fatalf("default label: %q, %v", info.Label, err)
	}
}

// A SECRET object never lands on a site accredited only for RESTRICTED.
func TestPlacementRespectsAccreditation(t *testing.T) {
	ln := newLabelNode(t)
	ctx := WithPrincipal(t.Context(), officer)
	for i, size := range []int{10, 5 * testStripe} {
		for j := range 20 {
			key := fmt.Sprintf("s/%d/%d", i, j)
			if _, err := ln.e.Put(ctx, "intel", key, bytes.NewReader(content(key, size)), PutOptions{Size: int64(size), Label: secretLabel}); err != nil {
				t.Fatal(err)
			}
			locs, _ := ln.e.Locate(ctx, "intel", key, manifest.ID{})
			for _, l := range locs {
				if l.Jurisdiction == "LUX" {
					t.Fatalf("%s: SECRET shard %d on %s, accredited only for RESTRICTED", key, l.Shard, l.Site)
				}
			}
		}
	}
	// RESTRICTED data may use the LUX sites.
	used := map[string]bool{}
	for j := range 40 {
		key := fmt.Sprintf("r/%d", j)
		ln.e.Put(ctx, "intel", key, bytes.NewReader([]byte("r")), PutOptions{Size: 1})
		locs, _ := ln.e.Locate(ctx, "intel", key, manifest.ID{})
		for _, l := range locs {
			used[l.Jurisdiction] = true
		}
	}
	if !used["LUX"] {
		t.Fatal("RESTRICTED objects never used the LUX sites")
	}
}

// A label binding whose signature was tampered with makes the read fail
// loudly, even though the manifest around it is validly signed.
func TestTamperedLabelBindingFailsRead(t *testing.T) {
	ln := newLabelNode(t)
	ctx := WithPrincipal(t.Context(), officer)
	info, err := ln.e.Put(ctx, "intel", "doc", bytes.NewReader([]byte("secret text")), PutOptions{Size: 11, Label: secretLabel})
	if err != nil {
		t.Fatal(err)
	}
	tamper := []struct {
		name string
		f    func(m *manifest.Manifest)
	}{
		{"signature flipped", func(m *manifest.Manifest) {
			b, _ := label.ParseBinding(m.LabelBinding)
			b.Signature[3] ^= 1
			m.LabelBinding, _ = b.MarshalJSON()
		}},
		{"label lowered in the manifest only", func(m *manifest.Manifest) { m.Label = "NATO UNCLASSIFIED//REL TO EST, LUX" }},
		{"binding from another object", func(m *manifest.Manifest) { m.Digest[0] ^= 1; m.Parts[0].Digest = m.Digest }},
		{"binding removed", func(m *manifest.Manifest) { m.LabelBinding = nil }},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ln.ix.Get(ctx, "intel", "doc", info.VersionID)
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Open(v.Envelope, ln.e.k())
			if err != nil {
				t.Fatal(err)
			}
			tc.f(m)
			// An attacker able to make the node sign a manifest (the
			// strongest case) still cannot forge the binding.
			env, err := manifest.Seal(m, ln.e.k())
			if err != nil {
				t.Fatal(err)
			}
			bad := v
			bad.Envelope = env
			bad.Label = m.Label
			ln.ix.Put(ctx, bad)
			defer ln.ix.Put(ctx, v)
			before := ln.e.Events.BindingErrors.Load()
			_, err = ln.e.Get(ctx, "intel", "doc", GetOptions{Length: -1})
			if !errors.Is(err, ErrLabelBinding) {
				t.Fatalf("read with %s: %v, want ErrLabelBinding", tc.name, err)
			}
			if ln.e.Events.BindingErrors.Load() == before {
				t.Fatal("binding failure not counted")
			}
		})
	}
	if _, err := ln.e.Get(ctx, "intel", "doc", GetOptions{Length: -1}); err != nil {
		t.Fatalf("genuine object unreadable after the test restored it: %v", err)
	}
}

// TestWidens: what counts as lowering a label (relabel, copy), owner
// included.
func TestWidens(t *testing.T) {
	ln := newLabelNode(t)
	cases := []struct {
		name          string
		oldOwner, old string
		newOwner, new string
		wantWiden     string // "" for not widening
	}{
		{"same label", "EST", secretLabel, "EST", secretLabel, ""},
		{"higher classification", "EST", secretLabel, "EST", "NATO COSMIC TOP SECRET//REL TO EST//RESTRICTIVE Compartment: ALPHA", ""},
		{"lower classification", "EST", secretLabel, "EST", "NATO RESTRICTED//REL TO EST, LUX//RESTRICTIVE Compartment: ALPHA", "classification"},
		{"one more nation", "EST", secretLabel, "EST", "NATO SECRET//REL TO EST, LUX, USA//RESTRICTIVE Compartment: ALPHA", "nation USA"},
		{"restrictive category dropped", "EST", secretLabel, "EST", "NATO SECRET//REL TO EST, LUX", "restrictive category Compartment"},
		{"REL TO added to a label without one", "EST", "NATO SECRET", "EST", "NATO SECRET//REL TO EST, LUX", "nation LUX"},
		{"REL TO removed narrows", "EST", "NATO SECRET//REL TO EST, LUX", "EST", "NATO SECRET", ""},
		{"REL TO only the owner is no wider", "EST", "NATO SECRET", "EST", "NATO SECRET//REL TO EST", ""},
		{"labelling an unlabelled object for nationals narrows", "EST", "", "EST", "NATO RESTRICTED", ""},
		{"labelling an unlabelled object with REL TO widens", "EST", "", "EST", "NATO RESTRICTED//REL TO EST, LUX", "nation LUX"},
		{"removing a label widens", "EST", "NATO RESTRICTED", "EST", "", "no label"},
		{"permissive value added", "EST", "NATO SECRET//PERMISSIVE Mission: A", "EST", "NATO SECRET//PERMISSIVE Mission: A, B", "permissive category Mission"},
		{"permissive category added narrows", "EST", "NATO SECRET", "EST", "NATO SECRET//PERMISSIVE Mission: A", ""},
		{"copy to another owner's vault", "EST", "NATO SECRET", "LUX", "NATO SECRET", "nation LUX"},
		{"copy to another owner already released", "EST", "NATO SECRET//REL TO EST, LUX", "LUX", "NATO SECRET//REL TO EST, LUX", ""},
		{"unlabelled copy to another owner", "EST", "", "LUX", "", "nation LUX"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			why, err := ln.e.Widens(tc.oldOwner, tc.old, tc.newOwner, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			if (why == "") != (tc.wantWiden == "") || !strings.Contains(why, tc.wantWiden) {
				t.Errorf("Widens = %q, want %q", why, tc.wantWiden)
			}
		})
	}
}

// Writing needs a known principal of the owning nation: no role stands in
// for the nationality, not even admin.
func TestWriteNeedsNation(t *testing.T) {
	ln := newLabelNode(t)
	cases := []struct {
		name string
		p    access.Principal
		ok   bool
	}{
		{"owner's national", officer, true},
		{"foreign national", ally, false},
		{"unknown name", access.Principal{Name: "stranger"}, false},
		{"foreign admin", access.Principal{Name: "ops", Nation: "USA", Clearances: map[string]string{"NATO": "SECRET"}, Roles: []string{"admin"}}, false},
	}
	for _, tc := range cases {
		ctx := WithPrincipal(t.Context(), tc.p)
		_, err := ln.e.Put(ctx, "intel", "w/"+tc.p.Name, bytes.NewReader([]byte("x")), PutOptions{Size: 1})
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, access.ErrDenied)) {
			t.Errorf("%s: put = %v, want allowed=%v", tc.name, err, tc.ok)
		}
		_, err = ln.e.Delete(ctx, "intel", "nothing-here", DeleteOptions{})
		if tc.ok != (err == nil) {
			t.Errorf("%s: delete marker = %v, want allowed=%v", tc.name, err, tc.ok)
		}
	}
}
