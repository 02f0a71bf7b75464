package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/label"
)

// MediaType is the media type of a rendered catalogue.
const MediaType = "application/ld+json"

// Vocabulary IRIs of the catalogue's @context.
const (
	DCAT = "http://www.w3.org/ns/dcat#"
	DCT  = "http://purl.org/dc/terms/"
	FOAF = "http://xmlns.com/foaf/0.1/"
	RDFS = "http://www.w3.org/2000/01/rdf-schema#"
	XSD  = "http://www.w3.org/2001/XMLSchema#"
	// Embassy is the namespace of embassy's own terms (docs/alliance.md):
	// embassy:label (the STANAG 4774 label in text form), embassy:owner
	// (the owning nation) and embassy:releasableTo (the nations the label
	// releases the entry to, ISO 3166-1 alpha-3).
	Embassy = "urn:embassy:catalog:"
)

// Context is the catalogue's inline JSON-LD @context: the prefixes of the
// vocabularies used. Nothing is fetched to read it.
type Context struct {
	DCAT    string `json:"dcat"`
	DCT     string `json:"dct"`
	FOAF    string `json:"foaf"`
	RDFS    string `json:"rdfs"`
	XSD     string `json:"xsd"`
	Embassy string `json:"embassy"`
}

// TheContext is the @context every catalogue carries.
var TheContext = Context{DCAT: DCAT, DCT: DCT, FOAF: FOAF, RDFS: RDFS, XSD: XSD, Embassy: Embassy}

// Document is a catalogue in JSON-LD (compacted with TheContext): a
// dcat:Catalog of dcat:Dataset entries.
type Document struct {
	Context     Context     `json:"@context"`
	ID          string      `json:"@id"`
	Type        string      `json:"@type"`
	Title       string      `json:"dct:title"`
	Description string      `json:"dct:description,omitempty"`
	Publisher   Agent       `json:"dct:publisher"`
	Datasets    []DatasetLD `json:"dcat:dataset"`
}

// Agent is a dct:publisher.
type Agent struct {
	ID   string `json:"@id,omitempty"`
	Type string `json:"@type"`
	Name string `json:"foaf:name"`
}

// IRI is a node reference: {"@id": IRI}.
type IRI struct {
	ID string `json:"@id"`
}

// Literal is a typed literal: {"@value": …, "@type": "xsd:…"}.
type Literal struct {
	Value string `json:"@value"`
	Type  string `json:"@type"`
}

// PeriodLD is a dct:PeriodOfTime.
type PeriodLD struct {
	Type  string   `json:"@type"`
	Start *Literal `json:"dcat:startDate,omitempty"`
	End   *Literal `json:"dcat:endDate,omitempty"`
}

// Distribution is a dcat:Distribution: where and in what form the data is
// reached.
type Distribution struct {
	Type      string `json:"@type"`
	AccessURL IRI    `json:"dcat:accessURL"`
	MediaType *IRI   `json:"dcat:mediaType,omitempty"`
}

// RightsStatement is a dct:RightsStatement: the label, for people.
type RightsStatement struct {
	Type  string `json:"@type"`
	Label string `json:"rdfs:label"`
}

// DatasetLD is one dcat:Dataset.
type DatasetLD struct {
	ID            string          `json:"@id"`
	Type          string          `json:"@type"`
	Identifier    string          `json:"dct:identifier"`
	Title         string          `json:"dct:title"`
	Description   string          `json:"dct:description,omitempty"`
	Keywords      []string        `json:"dcat:keyword,omitempty"`
	Themes        []IRI           `json:"dcat:theme,omitempty"`
	Spatial       []IRI           `json:"dct:spatial,omitempty"`
	Temporal      *PeriodLD       `json:"dct:temporal,omitempty"`
	Issued        *Literal        `json:"dct:issued,omitempty"`
	Modified      *Literal        `json:"dct:modified,omitempty"`
	Distributions []Distribution  `json:"dcat:distribution"`
	AccessRights  RightsStatement `json:"dct:accessRights"`
	Label         string          `json:"embassy:label"`
	Owner         string          `json:"embassy:owner"`
	ReleasableTo  []string        `json:"embassy:releasableTo"`
}

// Entry is a description ready to be rendered and filtered: the dataset,
// the nation owning its vault, its label parsed and normalised, and the URL
// its objects are reached at.
type Entry struct {
	Dataset
	Owner     string
	Label     label.Label
	AccessURL string
}

// Meta is what the catalogue says of itself.
type Meta struct {
	// NodeID and Nation name the node publishing it.
	NodeID, Nation string
	// Title, Description and Publisher as configured (defaults filled in
	// by Render).
	Title, Description string
	Publisher          Publisher
}

// CatalogIRI is the @id of the catalogue of node id.
func CatalogIRI(nodeID string) string { return "urn:embassy:" + url.PathEscape(nodeID) + ":catalog" }

// DatasetIRI is the @id of a dataset of node id.
func DatasetIRI(nodeID, id string) string {
	return "urn:embassy:" + url.PathEscape(nodeID) + ":dataset:" + escapePath(id)
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// AccessURL is where the objects of VAULT/PREFIX are reached: base/VAULT/
// PREFIX (path-style S3) when the node's catalog.access_url is set, else
// s3://VAULT/PREFIX.
func AccessURL(base, vault, prefix string) string {
	if base == "" {
		return "s3://" + vault + "/" + escapePath(prefix)
	}
	return strings.TrimSuffix(base, "/") + "/" + vault + "/" + escapePath(prefix)
}

// Releasability returns the nations l releases to: the values of its
// releasability categories, in label order (none for a label without one).
func Releasability(reg *label.Registry, l label.Label) []string {
	var out []string
	for _, c := range l.Categories {
		if c.Type == label.Permissive && reg.IsReleasability(l.Policy, c.TagName) {
			for _, v := range c.Values {
				if v = strings.ToUpper(v); !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// ReleasedTo returns a filter keeping the entries a node of nation may see
// in a catalogue: those the nation owns, and those whose label lists it in
// its releasability (every releasability category, as the access rule
// reads it). A label without releasability releases to no other nation.
func ReleasedTo(reg *label.Registry, nation string) func(Entry) bool {
	return func(e Entry) bool {
		if strings.EqualFold(e.Owner, nation) {
			return true
		}
		found := false
		for _, c := range e.Label.Categories {
			if c.Type != label.Permissive || !reg.IsReleasability(e.Label.Policy, c.TagName) {
				continue
			}
			if !slices.ContainsFunc(c.Values, func(v string) bool { return strings.EqualFold(v, nation) }) {
				return false
			}
			found = true
		}
		return found
	}
}

// Filter returns the entries keep keeps, in order.
func Filter(entries []Entry, keep func(Entry) bool) []Entry {
	out := []Entry{}
	for _, e := range entries {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// Render builds the catalogue of entries. reg resolves the labels'
// releasability.
func Render(reg *label.Registry, m Meta, entries []Entry) Document {
	doc := Document{
		Context:     TheContext,
		ID:          CatalogIRI(m.NodeID),
		Type:        "dcat:Catalog",
		Title:       m.Title,
		Description: m.Description,
		Publisher:   Agent{ID: m.Publisher.URI, Type: "foaf:Agent", Name: m.Publisher.Name},
		Datasets:    []DatasetLD{},
	}
	if doc.Title == "" {
		doc.Title = fmt.Sprintf("embassy node %s (%s)", m.NodeID, m.Nation)
	}
	if doc.Description == "" {
		doc.Description = fmt.Sprintf("Datasets held by %s's embassy node %s.", m.Nation, m.NodeID)
	}
	if doc.Publisher.Name == "" {
		doc.Publisher.Name = m.Nation
	}
	for _, e := range entries {
		doc.Datasets = append(doc.Datasets, renderDataset(reg, m.NodeID, e))
	}
	return doc
}

func renderDataset(reg *label.Registry, nodeID string, e Entry) DatasetLD {
	d := DatasetLD{
		ID:           DatasetIRI(nodeID, e.ID()),
		Type:         "dcat:Dataset",
		Identifier:   e.ID(),
		Title:        e.Title,
		Description:  e.Description,
		Keywords:     e.Keywords,
		AccessRights: RightsStatement{Type: "dct:RightsStatement", Label: e.Label.String()},
		Label:        e.Label.String(),
		Owner:        e.Owner,
		ReleasableTo: Releasability(reg, e.Label),
	}
	if d.ReleasableTo == nil {
		d.ReleasableTo = []string{}
	}
	for _, t := range e.Themes {
		d.Themes = append(d.Themes, IRI{t})
	}
	for _, s := range e.Spatial {
		d.Spatial = append(d.Spatial, IRI{s})
	}
	if p, err := ParsePeriod(e.Temporal); err == nil {
		d.Temporal = &PeriodLD{Type: "dct:PeriodOfTime"}
		if p.Start != nil {
			d.Temporal.Start = &Literal{p.Start.Text, p.Start.Type}
		}
		if p.End != nil {
			d.Temporal.End = &Literal{p.End.Text, p.End.Type}
		}
	}
	if !e.Issued.IsZero() {
		d.Issued = &Literal{e.Issued.UTC().Format(time.RFC3339), XSDDateTime}
	}
	if !e.Modified.IsZero() {
		d.Modified = &Literal{e.Modified.UTC().Format(time.RFC3339), XSDDateTime}
	}
	if len(e.MediaTypes) == 0 {
		d.Distributions = []Distribution{{Type: "dcat:Distribution", AccessURL: IRI{e.AccessURL}}}
	}
	for _, mt := range e.MediaTypes {
		d.Distributions = append(d.Distributions, Distribution{Type: "dcat:Distribution", AccessURL: IRI{e.AccessURL}, MediaType: &IRI{MediaTypeBase + mt}})
	}
	return d
}

// Marshal writes the document as indented JSON-LD.
func (d Document) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// MaxDocument caps the size of a catalogue ParseDocument reads.
const MaxDocument = 16 << 20

// ErrNotCatalog: a document is not an embassy catalogue (another @context,
// another shape). A peer that sends one runs something else.
var ErrNotCatalog = errors.New("not an embassy DCAT catalogue")

// ParseDocument reads a catalogue another embassy node rendered: JSON-LD
// compacted with TheContext exactly (it is never expanded against a remote
// context), within MaxDocument. Each dataset's identifier and label are
// checked; what is wrong is named.
func ParseDocument(b []byte) (Document, error) {
	var d Document
	if len(b) > MaxDocument {
		return d, fmt.Errorf("%w: %d bytes is more than %d", ErrNotCatalog, len(b), MaxDocument)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("%w: %v", ErrNotCatalog, err)
	}
	if dec.More() {
		return Document{}, fmt.Errorf("%w: more than one JSON value", ErrNotCatalog)
	}
	if d.Context != TheContext {
		return Document{}, fmt.Errorf("%w: its @context is not embassy's (%s)", ErrNotCatalog, Embassy)
	}
	if d.Type != "dcat:Catalog" {
		return Document{}, fmt.Errorf("%w: @type %q, want dcat:Catalog", ErrNotCatalog, d.Type)
	}
	if len(d.Datasets) > MaxDatasets {
		return Document{}, fmt.Errorf("%w: %d datasets, at most %d", ErrNotCatalog, len(d.Datasets), MaxDatasets)
	}
	for i, ds := range d.Datasets {
		if ds.Type != "dcat:Dataset" {
			return Document{}, fmt.Errorf("%w: dataset %d: @type %q, want dcat:Dataset", ErrNotCatalog, i, ds.Type)
		}
		if _, _, err := ParseRef(ds.Identifier); err != nil {
			return Document{}, fmt.Errorf("%w: dataset %d: dct:identifier: %v", ErrNotCatalog, i, err)
		}
		if _, err := label.ParseText(ds.Label); err != nil {
			return Document{}, fmt.Errorf("%w: dataset %s: embassy:label: %v", ErrNotCatalog, ds.Identifier, err)
		}
	}
	return d, nil
}

// Dataset returns the description a rendered dataset carries, for
// searching (Issued and Modified are not read back).
func (ds DatasetLD) Dataset() Dataset {
	vault, prefix, _ := ParseRef(ds.Identifier)
	d := Dataset{Vault: vault, Prefix: prefix, Title: ds.Title, Description: ds.Description, Keywords: ds.Keywords, Label: ds.Label}
	for _, t := range ds.Themes {
		d.Themes = append(d.Themes, t.ID)
	}
	for _, s := range ds.Spatial {
		d.Spatial = append(d.Spatial, s.ID)
	}
	if t := ds.Temporal; t != nil {
		p := Period{}
		if t.Start != nil {
			p.Start = &Bound{Text: t.Start.Value}
		}
		if t.End != nil {
			p.End = &Bound{Text: t.End.Value}
		}
		d.Temporal = p.String()
	}
	for _, dist := range ds.Distributions {
		if dist.MediaType != nil {
			d.MediaTypes = append(d.MediaTypes, strings.TrimPrefix(dist.MediaType.ID, MediaTypeBase))
		}
	}
	return d
}
