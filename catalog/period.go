package catalog

import (
	"fmt"
	"strings"
	"time"
)

// Period is a dataset's temporal coverage (dct:temporal, a
// dct:PeriodOfTime with dcat:startDate and dcat:endDate). Either end may be
// open, not both.
type Period struct {
	Start, End *Bound
}

// Bound is one end of a period as written: a year, a year and month, a
// date, or a date-time (RFC 3339, with its zone).
type Bound struct {
	// Text is the bound as written (date-times in UTC).
	Text string
	// Type is its XML Schema datatype: xsd:gYear, xsd:gYearMonth,
	// xsd:date or xsd:dateTime.
	Type string
	// first and after bound the instants the text covers: [first, after).
	first, after time.Time
}

// The XML Schema datatypes of bounds.
const (
	XSDGYear      = "xsd:gYear"
	XSDGYearMonth = "xsd:gYearMonth"
	XSDDate       = "xsd:date"
	XSDDateTime   = "xsd:dateTime"
)

const maxPeriod = 128

// ParsePeriod parses START/END, each a year (2020), a month (2020-06), a
// date (2020-06-30) or a date-time with a zone (2020-06-30T12:00:00Z); an
// open end is ".." or left empty ("2020/.." or "2020/"). The start may not
// come after the end.
func ParsePeriod(s string) (Period, error) {
	if len(s) > maxPeriod {
		return Period{}, fmt.Errorf("period: %d bytes is longer than %d", len(s), maxPeriod)
	}
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return Period{}, fmt.Errorf("period %q: want START/END, e.g. 2020-01-01/2025-12-31 (an open end is ..)", s)
	}
	var p Period
	var err error
	if p.Start, err = parseBound(a); err != nil {
		return Period{}, fmt.Errorf("period %q: start: %w", s, err)
	}
	if p.End, err = parseBound(b); err != nil {
		return Period{}, fmt.Errorf("period %q: end: %w", s, err)
	}
	if p.Start == nil && p.End == nil {
		return Period{}, fmt.Errorf("period %q: both ends are open; give a start, an end or both", s)
	}
	if p.Start != nil && p.End != nil && !p.Start.first.Before(p.End.after) {
		return Period{}, fmt.Errorf("period %q: the start is after the end", s)
	}
	return p, nil
}

// String writes the period as ParsePeriod reads it, open ends as "..".
func (p Period) String() string {
	t := func(b *Bound) string {
		if b == nil {
			return ".."
		}
		return b.Text
	}
	return t(p.Start) + "/" + t(p.End)
}

func parseBound(s string) (*Bound, error) {
	switch s {
	case "", "..":
		return nil, nil
	}
	layouts := []struct {
		layout, typ string
		next        func(time.Time) time.Time
	}{
		{"2006", XSDGYear, func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", XSDGYearMonth, func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", XSDDate, func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	}
	for _, l := range layouts {
		if len(s) != len(l.layout) {
			continue
		}
		t, err := time.Parse(l.layout, s)
		if err != nil || t.Year() < 1 {
			return nil, fmt.Errorf("%q: not a valid %s (%s)", s, l.typ, l.layout)
		}
		return &Bound{Text: s, Type: l.typ, first: t, after: l.next(t)}, nil
	}
	if strings.Contains(s, "T") {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("%q: not an RFC 3339 date-time with a zone (e.g. 2020-06-30T12:00:00Z)", s)
		}
		if t.Year() < 1 || t.Year() > 9999 {
			return nil, fmt.Errorf("%q: year out of range", s)
		}
		t = t.UTC()
		return &Bound{Text: t.Format(time.RFC3339Nano), Type: XSDDateTime, first: t, after: t.Add(time.Nanosecond)}, nil
	}
	return nil, fmt.Errorf("%q: want a year (2020), a month (2020-06), a date (2020-06-30) or a date-time (2020-06-30T12:00:00Z)", s)
}
