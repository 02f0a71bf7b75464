package node

import (
	"fmt"
	"slices"
	"strings"

	"github.com/embassy-dev/embassy/catalog"
	"github.com/embassy-dev/embassy/label"
)

// catalogChanges lists the differences of the catalog section with their
// gates, as TAXII collections do: a description that becomes visible to
// more nations (a new one whose label releases it to nations other than
// its vault's owner, a label releasing it to more of them) or whose label
// is lowered needs custodians; the rest (titles, keywords, themes, removal,
// the catalogue's own title, description, publisher and access URL) does
// not.
func catalogChanges(old, next *Config) []Change {
	var out []Change
	add := func(field, text string, g Gate, why string) {
		out = append(out, Change{Field: field, Text: text, Gate: g, Why: why})
	}
	o, nx := old.Catalog, next.Catalog
	for _, f := range []struct{ name, a, b string }{
		{"title", o.Title, nx.Title}, {"description", o.Description, nx.Description},
		{"publisher.name", o.Publisher.Name, nx.Publisher.Name}, {"publisher.uri", o.Publisher.URI, nx.Publisher.URI},
		{"access_url", o.AccessURL, nx.AccessURL},
	} {
		if f.a != f.b {
			add("catalog."+f.name, fmt.Sprintf("catalog.%s %q → %q", f.name, f.a, f.b), Free, "")
		}
	}
	reg, _ := label.NewRegistry(old.Policies...)
	owner := func(c *Config, v string) string {
		for _, vc := range c.Vaults {
			if vc.Name == v {
				return cmpOr(vc.Owner, c.Node.Nation)
			}
		}
		return c.Node.Nation
	}
	// released returns the nations other than owner that text releases
	// to; ok is false when the label cannot be read under old's policies.
	released := func(text, owner string) ([]string, bool) {
		if reg == nil {
			return nil, false
		}
		l, err := reg.ParseText(text)
		if err != nil {
			return nil, false
		}
		return slices.DeleteFunc(catalog.Releasability(reg, l), func(n string) bool { return n == owner }), true
	}
	const whyWider = "publishes a dataset description to more nations"
	for _, d := range nx.Datasets {
		field := "catalog.datasets[" + d.ID() + "]"
		i := o.Find(d.Vault, d.Prefix)
		own := owner(next, d.Vault)
		if i < 0 {
			switch others, ok := released(d.Label, own); {
			case !ok:
				add(field, fmt.Sprintf("dataset %s described, labelled %s", d.ID(), d.Label), Custodians, whyWider+" (its label cannot be read under the policies in force)")
			case len(others) > 0:
				add(field, fmt.Sprintf("dataset %s described, released to %s (%s)", d.ID(), strings.Join(others, ", "), d.Label), Custodians, whyWider)
			default:
				add(field, fmt.Sprintf("dataset %s described, labelled %s", d.ID(), d.Label), Free, "")
			}
			continue
		}
		od := o.Datasets[i]
		if od.Label != d.Label {
			text := fmt.Sprintf("dataset %s label %q → %q", d.ID(), od.Label, d.Label)
			was, ok1 := released(od.Label, owner(old, od.Vault))
			is, ok2 := released(d.Label, own)
			switch more := newNations(was, is); {
			case lowers(reg, od.Label, d.Label):
				add(field+".label", text, Custodians, "lowering a label")
			case !ok1 || !ok2:
				add(field+".label", text, Custodians, whyWider+" (a label cannot be read under the policies in force)")
			case len(more) > 0:
				add(field+".label", text+" (released to "+strings.Join(more, ", ")+" as well)", Custodians, whyWider)
			default:
				add(field+".label", text, Free, "")
			}
		}
		a, b := od, d
		a.Label, b.Label = "", ""
		a.Issued, a.Modified = b.Issued, b.Modified // times are said below
		for _, f := range fieldChanges(field, a, b) {
			add(field, f, Free, "")
		}
		if !od.Issued.Equal(d.Issued) || !od.Modified.Equal(d.Modified) {
			if len(fieldChanges(field, a, b)) == 0 && od.Label == d.Label {
				add(field, fmt.Sprintf("dataset %s times changed", d.ID()), Free, "")
			}
		}
	}
	for _, d := range o.Datasets {
		if nx.Find(d.Vault, d.Prefix) < 0 {
			add("catalog.datasets["+d.ID()+"]", "dataset "+d.ID()+" description removed (its objects stay)", Free, "")
		}
	}
	return out
}
