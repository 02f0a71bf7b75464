package catalog

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
)

// Limits on what a description may hold. They keep node.yaml, the node
// descriptor and every catalogue answer small whatever is typed.
const (
	MaxDatasets     = 1000
	MaxTitle        = 512
	MaxDescription  = 8 << 10
	MaxList         = 64  // keywords, themes, spatial, media types: each
	MaxKeyword      = 128 // bytes
	MaxIRI          = 2048
	MaxPrefix       = 1024
	maxMediaTypeLen = 255
)

// Config is the catalog section of node.yaml: the catalogue's own metadata
// and the dataset descriptions.
type Config struct {
	// Title of the catalogue (dct:title); default "embassy node ID (NATION)".
	Title string `yaml:"title,omitempty" json:"title,omitempty"`
	// Description of the catalogue (dct:description).
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Publisher is the organisation publishing it (dct:publisher, a
	// foaf:Agent); default the node's nation.
	Publisher Publisher `yaml:"publisher,omitempty" json:"publisher,omitzero"`
	// AccessURL is the base URL clients reach the node's S3 API at, e.g.
	// https://embassy.est.example: a distribution's dcat:accessURL is
	// AccessURL/VAULT/PREFIX. Without it the access URL is s3://VAULT/PREFIX.
	AccessURL string `yaml:"access_url,omitempty" json:"access_url,omitempty"`
	// Datasets are the descriptions, one per VAULT[/PREFIX].
	Datasets []Dataset `yaml:"datasets,omitempty" json:"datasets,omitempty"`
}

// Publisher is a catalogue's publisher.
type Publisher struct {
	// Name is the organisation's name (foaf:name).
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// URI identifies it, if it has one (the agent's @id).
	URI string `yaml:"uri,omitempty" json:"uri,omitempty"`
}

// Dataset describes the objects of a vault under a prefix.
type Dataset struct {
	// Vault and Prefix say which objects: those of Vault whose keys start
	// with Prefix ("" for the whole vault).
	Vault  string `yaml:"vault" json:"vault"`
	Prefix string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	// Title and Description are dct:title and dct:description.
	Title       string `yaml:"title" json:"title"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Keywords are dcat:keyword.
	Keywords []string `yaml:"keywords,omitempty,flow" json:"keywords,omitempty"`
	// Themes are dcat:theme IRIs (e.g. the EU data themes,
	// http://publications.europa.eu/resource/authority/data-theme/GOVE).
	Themes []string `yaml:"themes,omitempty" json:"themes,omitempty"`
	// Spatial are dct:spatial IRIs (e.g. the EU countries,
	// http://publications.europa.eu/resource/authority/country/EST).
	Spatial []string `yaml:"spatial,omitempty" json:"spatial,omitempty"`
	// Temporal is the period covered, START/END (see ParsePeriod).
	Temporal string `yaml:"temporal,omitempty" json:"temporal,omitempty"`
	// MediaTypes are the media types of the objects (one
	// dcat:Distribution each).
	MediaTypes []string `yaml:"media_types,omitempty,flow" json:"media_types,omitempty"`
	// Label is the confidentiality label of the description itself, in
	// text form: the entry is shown to a nation only when the label
	// releases to it, and to a principal only when it may read the label.
	Label string `yaml:"label" json:"label"`
	// Issued is when the dataset was first described (dct:issued),
	// Modified when its description last changed (dct:modified).
	Issued   time.Time `yaml:"issued,omitempty" json:"issued,omitzero"`
	Modified time.Time `yaml:"modified,omitempty" json:"modified,omitzero"`
}

// ID is the dataset's identifier: VAULT, or VAULT/PREFIX (dct:identifier).
func (d Dataset) ID() string { return Ref(d.Vault, d.Prefix) }

// Ref writes a vault and a prefix as one name, VAULT or VAULT/PREFIX.
func Ref(vault, prefix string) string {
	if prefix == "" {
		return vault
	}
	return vault + "/" + prefix
}

// ParseRef parses VAULT[/PREFIX], as 'dataset describe' takes it. The
// vault must be a valid vault name; the prefix is kept exactly as given
// (S3 prefixes need not end in "/").
func ParseRef(s string) (vault, prefix string, err error) {
	vault, prefix, _ = strings.Cut(s, "/")
	if err := validVault(vault); err != nil {
		return "", "", fmt.Errorf("dataset %q: %w", s, err)
	}
	if err := validPrefix(prefix); err != nil {
		return "", "", fmt.Errorf("dataset %q: %w", s, err)
	}
	return vault, prefix, nil
}

func validVault(v string) error {
	if v == "" {
		return errors.New("no vault: name it as VAULT or VAULT/PREFIX")
	}
	return manifest.ValidVault(v)
}

func validPrefix(p string) error {
	if len(p) > MaxPrefix {
		return fmt.Errorf("prefix: %d bytes is longer than %d", len(p), MaxPrefix)
	}
	if !utf8.ValidString(p) {
		return errors.New("prefix: not valid UTF-8")
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return fmt.Errorf("prefix: control character %U", r)
		}
	}
	return nil
}

// checkText checks a free text field: valid UTF-8, no control characters
// other than newline and tab in a description, within max bytes.
func checkText(field, s string, max int, multiline bool) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes is longer than %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return fmt.Errorf("%s: control character %U", field, r)
		}
	}
	return nil
}

// The EU Publications Office authority tables that short names expand to.
const (
	DataThemeBase = "http://publications.europa.eu/resource/authority/data-theme/"
	CountryBase   = "http://publications.europa.eu/resource/authority/country/"
	MediaTypeBase = "http://www.iana.org/assignments/media-types/"
)

var (
	themeCode   = regexp.MustCompile(`^[A-Z][A-Z_]{2,15}$`)
	countryCode = regexp.MustCompile(`^[A-Z]{3}$`)
)

// ParseTheme parses a --theme: an absolute IRI, or a code of the EU data
// theme vocabulary (GOVE, ECON, …) which it expands to that IRI.
func ParseTheme(s string) (string, error) {
	if themeCode.MatchString(s) {
		return DataThemeBase + s, nil
	}
	return parseIRI("theme", s)
}

// ParseSpatial parses a --spatial: an absolute IRI, or an ISO 3166-1
// alpha-3 code, which it expands to the EU country vocabulary's IRI.
func ParseSpatial(s string) (string, error) {
	if countryCode.MatchString(s) {
		return CountryBase + s, nil
	}
	return parseIRI("spatial", s)
}

// parseIRI checks an absolute IRI: a scheme, no spaces or control
// characters, within MaxIRI bytes.
func parseIRI(field, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%s: empty", field)
	}
	if len(s) > MaxIRI {
		return "", fmt.Errorf("%s: %d bytes is longer than %d", field, len(s), MaxIRI)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%s %q: not valid UTF-8", field, s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`<>"{}|\^`+"`", r) {
			return "", fmt.Errorf("%s %q: %q is not allowed in an IRI", field, s, r)
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque == "" && u.Host == "" && u.Path == "" {
		return "", fmt.Errorf("%s %q: not an absolute IRI (want e.g. http://publications.europa.eu/resource/authority/…)", field, s)
	}
	return s, nil
}

// ParseMediaType parses a --media-type: type/subtype, without parameters,
// returned in lower case.
func ParseMediaType(s string) (string, error) {
	if len(s) > maxMediaTypeLen {
		return "", fmt.Errorf("media type: %d bytes is longer than %d", len(s), maxMediaTypeLen)
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil {
		return "", fmt.Errorf("media type %q: %v", s, err)
	}
	if len(params) > 0 || strings.Contains(s, ";") {
		return "", fmt.Errorf("media type %q: parameters are not kept; give type/subtype", s)
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || typ == "*" || sub == "*" {
		return "", fmt.Errorf("media type %q: want type/subtype, e.g. text/csv", s)
	}
	return mt, nil
}

// ParseKeyword checks a --keyword.
func ParseKeyword(s string) (string, error) {
	k := strings.TrimSpace(s)
	if k == "" {
		return "", errors.New("keyword: empty")
	}
	if err := checkText("keyword", k, MaxKeyword, false); err != nil {
		return "", err
	}
	return k, nil
}

// Validate checks one description; labels are parsed with reg. Errors name
// the field.
func (d Dataset) Validate(reg *label.Registry) error {
	if err := validVault(d.Vault); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if err := validPrefix(d.Prefix); err != nil {
		return err
	}
	if strings.TrimSpace(d.Title) == "" {
		return errors.New("title: a dataset needs a title")
	}
	if err := checkText("title", d.Title, MaxTitle, false); err != nil {
		return err
	}
	if err := checkText("description", d.Description, MaxDescription, true); err != nil {
		return err
	}
	lists := []struct {
		field string
		vals  []string
		parse func(string) (string, error)
	}{
		{"keywords", d.Keywords, ParseKeyword},
		{"themes", d.Themes, func(s string) (string, error) { return parseIRI("theme", s) }},
		{"spatial", d.Spatial, func(s string) (string, error) { return parseIRI("spatial", s) }},
		{"media_types", d.MediaTypes, ParseMediaType},
	}
	for _, l := range lists {
		if len(l.vals) > MaxList {
			return fmt.Errorf("%s: %d values, at most %d", l.field, len(l.vals), MaxList)
		}
		for i, v := range l.vals {
			got, err := l.parse(v)
			if err != nil {
				return fmt.Errorf("%s[%d]: %w", l.field, i, err)
			}
			if got != v {
				return fmt.Errorf("%s[%d]: %q is not in its canonical form %q", l.field, i, v, got)
			}
			if slices.Contains(l.vals[:i], v) {
				return fmt.Errorf("%s[%d]: %q repeated", l.field, i, v)
			}
		}
	}
	if d.Temporal != "" {
		p, err := ParsePeriod(d.Temporal)
		if err != nil {
			return fmt.Errorf("temporal: %w", err)
		}
		if p.String() != d.Temporal {
			return fmt.Errorf("temporal: %q is not in its canonical form %q", d.Temporal, p.String())
		}
	}
	if d.Label == "" {
		return errors.New("label: a description needs a label (it decides who sees it)")
	}
	if reg != nil {
		l, err := reg.ParseText(d.Label)
		if err != nil {
			return fmt.Errorf("label: %w", err)
		}
		if l.String() != d.Label {
			return fmt.Errorf("label: %q is not in its canonical form %q", d.Label, l.String())
		}
	}
	if !d.Modified.IsZero() && d.Modified.Before(d.Issued) {
		return errors.New("modified: before issued")
	}
	return nil
}

// Validate checks the catalogue section; labels are parsed with reg.
func (c Config) Validate(reg *label.Registry) error {
	if err := checkText("title", c.Title, MaxTitle, false); err != nil {
		return err
	}
	if err := checkText("description", c.Description, MaxDescription, true); err != nil {
		return err
	}
	if err := checkText("publisher.name", c.Publisher.Name, MaxTitle, false); err != nil {
		return err
	}
	if c.Publisher.URI != "" {
		if _, err := parseIRI("publisher.uri", c.Publisher.URI); err != nil {
			return err
		}
	}
	if c.AccessURL != "" {
		u, err := url.Parse(c.AccessURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("access_url %q: want an http or https URL without query or fragment, e.g. https://embassy.est.example", c.AccessURL)
		}
	}
	if len(c.Datasets) > MaxDatasets {
		return fmt.Errorf("datasets: %d, at most %d", len(c.Datasets), MaxDatasets)
	}
	seen := map[string]bool{}
	for i, d := range c.Datasets {
		if err := d.Validate(reg); err != nil {
			return fmt.Errorf("datasets[%d] (%s): %w", i, d.ID(), err)
		}
		if seen[d.ID()] {
			return fmt.Errorf("datasets[%d]: %s is described twice", i, d.ID())
		}
		seen[d.ID()] = true
	}
	return nil
}

// Find returns the index of the description of VAULT[/PREFIX], or -1.
func (c Config) Find(vault, prefix string) int {
	return slices.IndexFunc(c.Datasets, func(d Dataset) bool { return d.Vault == vault && d.Prefix == prefix })
}
