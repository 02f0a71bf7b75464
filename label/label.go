package label

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Size limits for labels and their encodings. A label within these limits
// always fits the size caps of every encoding in this package, so whatever one
// parser accepts the others accept too.
const (
	// MaxXMLSize caps the XML form of a label accepted by ParseXML.
	MaxXMLSize = 64 << 10
	// MaxTextSize caps the text form accepted by ParseText.
	MaxTextSize = 64 << 10
	// MaxCategories caps the number of categories in one label.
	MaxCategories = 32
	// MaxValues caps the number of values in all categories of one label.
	MaxValues = 256
	// MaxFieldLen caps the length in bytes of one string field or value.
	MaxFieldLen = 1024
	// MaxLabelBytes caps the sum of the lengths of all strings in one label.
	MaxLabelBytes = 8 << 10
)

// CategoryType says how a category constrains access.
type CategoryType uint8

// The category types of STANAG 4774.
const (
	// Permissive: the reader must hold at least one of the listed values.
	// Releasability lists are permissive categories of nation codes.
	Permissive CategoryType = iota + 1
	// Restrictive: the reader must hold every listed value (caveats,
	// compartments).
	Restrictive
	// Informative: no effect on access.
	Informative
)

// String returns the type as written in XML: PERMISSIVE, RESTRICTIVE or
// INFORMATIVE.
func (t CategoryType) String() string {
	switch t {
	case Permissive:
		return "PERMISSIVE"
	case Restrictive:
		return "RESTRICTIVE"
	case Informative:
		return "INFORMATIVE"
	}
	return fmt.Sprintf("CategoryType(%d)", uint8(t))
}

// ParseCategoryType parses PERMISSIVE, RESTRICTIVE or INFORMATIVE, ignoring
// case.
func ParseCategoryType(s string) (CategoryType, error) {
	for _, t := range []CategoryType{Permissive, Restrictive, Informative} {
		if strings.EqualFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown category type %q (want PERMISSIVE, RESTRICTIVE or INFORMATIVE)", s)
}

// Category is one category of a label: a tag name, a type and one or more
// values.
type Category struct {
	TagName string
	Type    CategoryType
	Values  []string
}

// Label is a confidentiality label after STANAG 4774.
//
// The zero Label is not valid: Policy and Classification are required. A
// Label holds text as given; [Registry.Normalize] turns it into the canonical
// form of its policy (canonical level names, canonical releasability tag,
// upper-case nation codes).
type Label struct {
	// Policy identifies the security policy, e.g. "NATO".
	Policy string
	// PolicyURI optionally identifies the policy by URI.
	PolicyURI string
	// Classification is the level within the policy, e.g. "SECRET".
	Classification string
	// PrivacyMark is an optional marking with no effect on access.
	PrivacyMark string
	// Categories in the order they were written.
	Categories []Category
	// Created is when the label was made; zero if unknown.
	Created time.Time
	// ReviewAt is when the label should be reviewed; zero if none.
	ReviewAt time.Time
}

// Validate checks the label's structure without reference to any policy:
// required fields are present; every string is valid UTF-8, printable, has
// no leading or trailing space and fits [MaxFieldLen]; each category has a
// tag name, a known type and at least one value, with no value repeated; no
// two categories share a tag name; the [MaxCategories], [MaxValues] and
// [MaxLabelBytes] limits hold; and times fall within years 1 to 9999.
func (l Label) Validate() error {
	total := 0
	check := func(field, s string, required bool) error {
		total += len(s)
		if s == "" {
			if required {
				return fmt.Errorf("%s: missing", field)
			}
			return nil
		}
		if err := checkText(s); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		return nil
	}
	if err := check("policy", l.Policy, true); err != nil {
		return err
	}
	if err := check("policy uri", l.PolicyURI, false); err != nil {
		return err
	}
	if err := check("classification", l.Classification, true); err != nil {
		return err
	}
	if err := check("privacy mark", l.PrivacyMark, false); err != nil {
		return err
	}
	if len(l.Categories) > MaxCategories {
		return fmt.Errorf("categories: %d exceed the limit of %d", len(l.Categories), MaxCategories)
	}
	values := 0
	for i, c := range l.Categories {
		if err := check(fmt.Sprintf("category %d tag name", i+1), c.TagName, true); err != nil {
			return err
		}
		for _, d := range l.Categories[:i] {
			if d.TagName == c.TagName {
				return fmt.Errorf("category %q: appears twice", c.TagName)
			}
		}
		switch c.Type {
		case Permissive, Restrictive, Informative:
		default:
			return fmt.Errorf("category %q: unknown type %d", c.TagName, c.Type)
		}
		if len(c.Values) == 0 {
			return fmt.Errorf("category %q: no values", c.TagName)
		}
		values += len(c.Values)
		if values > MaxValues {
			return fmt.Errorf("categories: more than %d values in all", MaxValues)
		}
		for j, v := range c.Values {
			if err := check(fmt.Sprintf("category %q value %d", c.TagName, j+1), v, true); err != nil {
				return err
			}
			if slices.Contains(c.Values[:j], v) {
				return fmt.Errorf("category %q: value %q appears twice", c.TagName, v)
			}
		}
	}
	if total > MaxLabelBytes {
		return fmt.Errorf("label text totals %d bytes, over the limit of %d", total, MaxLabelBytes)
	}
	if err := checkTime(l.Created); err != nil {
		return fmt.Errorf("creation time: %w", err)
	}
	if err := checkTime(l.ReviewAt); err != nil {
		return fmt.Errorf("review time: %w", err)
	}
	return nil
}

// checkText reports whether s may appear in a label: valid UTF-8, printable
// (the only space allowed is U+0020, and not at either end), at most
// MaxFieldLen bytes.
func checkText(s string) error {
	if len(s) > MaxFieldLen {
		return fmt.Errorf("%d bytes, over the limit of %d", len(s), MaxFieldLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%q: contains the unprintable character %U", s, r)
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return fmt.Errorf("%q: leading or trailing space", s)
	}
	return nil
}

func checkTime(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("year %d outside 1 to 9999", y)
	}
	return nil
}

// Equal reports whether l and m hold the same fields, with categories and
// values in the same order and times at the same instant.
func (l Label) Equal(m Label) bool {
	if l.Policy != m.Policy || l.PolicyURI != m.PolicyURI ||
		l.Classification != m.Classification || l.PrivacyMark != m.PrivacyMark ||
		!l.Created.Equal(m.Created) || !l.ReviewAt.Equal(m.ReviewAt) ||
		len(l.Categories) != len(m.Categories) {
		return false
	}
	for i, c := range l.Categories {
		d := m.Categories[i]
		if c.TagName != d.TagName || c.Type != d.Type || !slices.Equal(c.Values, d.Values) {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of l.
func (l Label) Clone() Label {
	c := l
	if l.Categories != nil {
		c.Categories = make([]Category, len(l.Categories))
		for i, cat := range l.Categories {
			cat.Values = slices.Clone(cat.Values)
			c.Categories[i] = cat
		}
	}
	return c
}

// Category returns the category with the given tag name, if the label has
// one.
func (l Label) Category(tagName string) (Category, bool) {
	for _, c := range l.Categories {
		if c.TagName == tagName {
			return c, true
		}
	}
	return Category{}, false
}

// utc drops the location and monotonic reading of t, keeping the zero time
// zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

// formatTime is the one timestamp format of every encoding here.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTime accepts RFC 3339 and, as XML Schema allows, a dateTime without a
// zone, which it takes as UTC.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return utc(t), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return utc(t), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time", s)
}
