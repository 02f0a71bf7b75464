package node

import (
	"fmt"
	"slices"
	"strings"

	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/taxii"
)

// taxiiChanges lists the differences of the taxii section with their
// gates: sharing threat intelligence with more nations (a collection's
// community or AMBER peers, a lower default TLP level or classification),
// and sending it to another server (a sync job that pushes), need
// custodians; the rest does not.
func taxiiChanges(old, next *Config) []Change {
	var out []Change
	add := func(field, text string, g Gate, why string) {
		out = append(out, Change{Field: field, Text: text, Gate: g, Why: why})
	}
	o, nx := old.TAXII, next.TAXII
	reg, _ := label.NewRegistry(old.Policies...)
	if o.StatusRetention != nx.StatusRetention {
		add("taxii.status_retention", fmt.Sprintf("taxii.status_retention %q → %q", o.StatusRetention, nx.StatusRetention), Free, "")
	}
	if o.MaxContentLength != nx.MaxContentLength {
		add("taxii.max_content_length", fmt.Sprintf("taxii.max_content_length %d → %d", o.MaxContentLength, nx.MaxContentLength), Free, "")
	}
	const shareWhy = "shares threat intelligence with more nations"
	for _, c := range nx.Collections {
		field := "taxii.collections[" + c.Name() + "]"
		i := slices.IndexFunc(o.Collections, func(x taxii.CollectionConfig) bool { return x.ID == c.ID })
		if i < 0 {
			if others := foreign(next.Node.Nation, c.Community, c.Amber); len(others) > 0 {
				add(field, fmt.Sprintf("collection %s added in vault %s, shared with %s", c.Name(), c.Vault, strings.Join(others, ", ")), Custodians, shareWhy)
			} else {
				add(field, fmt.Sprintf("collection %s added in vault %s", c.Name(), c.Vault), Free, "")
			}
			continue
		}
		oc := o.Collections[i]
		var wider []string
		if more := newNations(oc.Community, c.Community); len(more) > 0 {
			wider = append(wider, "community gains "+strings.Join(more, ", "))
		}
		if more := newNations(oc.Amber, c.Amber); len(more) > 0 {
			wider = append(wider, "AMBER peers gain "+strings.Join(more, ", "))
		}
		od, _ := taxii.ParseTLP(cmpOr(oc.DefaultTLP, "amber+strict"))
		nd, _ := taxii.ParseTLP(cmpOr(c.DefaultTLP, "amber+strict"))
		if nd < od {
			wider = append(wider, fmt.Sprintf("default TLP lowered from %s to %s", od, nd))
		}
		if lowers(reg, cmpOr(oc.Classification, taxii.DefaultClassification), cmpOr(c.Classification, taxii.DefaultClassification)) {
			wider = append(wider, fmt.Sprintf("classification lowered from %s to %s", cmpOr(oc.Classification, taxii.DefaultClassification), c.Classification))
		}
		switch {
		case len(wider) > 0:
			add(field, "collection "+c.Name()+": "+strings.Join(wider, "; "), Custodians, shareWhy)
		case !slices.Equal(oc.Community, c.Community) || !slices.Equal(oc.Amber, c.Amber) || oc.DefaultTLP != c.DefaultTLP || oc.Classification != c.Classification:
			add(field, "collection "+c.Name()+": shared no more widely than before", Free, "")
		}
		for _, f := range fieldChanges(field, narrowCollection(oc), narrowCollection(c)) {
			add(field, f, Free, "")
		}
	}
	for _, c := range o.Collections {
		if !slices.ContainsFunc(nx.Collections, func(x taxii.CollectionConfig) bool { return x.ID == c.ID }) {
			add("taxii.collections["+c.Name()+"]", "collection "+c.Name()+" removed (its objects stay in vault "+c.Vault+")", Free, "")
		}
	}
	const pushWhy = "sends threat intelligence to another server"
	for _, s := range nx.Sync {
		field := "taxii.sync[" + s.Name + "]"
		i := slices.IndexFunc(o.Sync, func(x taxii.SyncConfig) bool { return x.Name == s.Name })
		if i < 0 {
			g, why := Free, ""
			if s.Pushes() {
				g, why = Custodians, pushWhy
			}
			add(field, fmt.Sprintf("sync job %s added: %s %s with %s", s.Name, s.Direction, s.Collection, s.URL), g, why)
			continue
		}
		os := o.Sync[i]
		if os == s {
			continue
		}
		g, why := Free, ""
		if s.Pushes() && (!os.Pushes() || os.URL != s.URL || os.Recipient != s.Recipient || os.Collection != s.Collection || s.AllowInsecure && !os.AllowInsecure) {
			g, why = Custodians, pushWhy
		}
		text := "sync job " + s.Name + " changed"
		if os.Password != s.Password {
			text += " (its password too)"
		}
		add(field, text, g, why)
	}
	for _, s := range o.Sync {
		if !slices.ContainsFunc(nx.Sync, func(x taxii.SyncConfig) bool { return x.Name == s.Name }) {
			add("taxii.sync["+s.Name+"]", "sync job "+s.Name+" removed", Free, "")
		}
	}
	return out
}

// narrowView is what fieldChanges compares of a collection: the fields
// whose changes need no custodians.
type narrowView struct {
	Alias                string   `yaml:"alias"`
	Title                string   `yaml:"title"`
	Description          string   `yaml:"description"`
	Vault                string   `yaml:"vault"`
	Statements           []string `yaml:"statements"`
	AllowUnknownMarkings bool     `yaml:"allow_unknown_markings"`
}

func narrowCollection(c taxii.CollectionConfig) narrowView {
	return narrowView{c.Alias, c.Title, c.Description, c.Vault, c.Statements, c.AllowUnknownMarkings}
}

// foreign returns the nations of the lists other than home.
func foreign(home string, lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, n := range l {
			if n != home && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// newNations returns the nations of b not in a.
func newNations(a, b []string) []string {
	var out []string
	for _, n := range b {
		if !slices.Contains(a, n) {
			out = append(out, n)
		}
	}
	return out
}
