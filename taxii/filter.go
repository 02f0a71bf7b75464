package taxii

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Page sizes: a request without limit gets DefaultLimit objects, and none
// gets more than MaxLimit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxMatchValues bounds the values of one match filter.
const maxMatchValues = 100

// Filter is the query of a TAXII request (section 3.4 of TAXII 2.1).
type Filter struct {
	// AddedAfter keeps objects added after it (zero: all).
	AddedAfter time.Time
	// Limit is the page size asked for, bounded by MaxLimit.
	Limit int
	// Next continues a listing (the next of the previous page).
	Next string
	// IDs and Types keep objects of these ids and types (none: all).
	IDs, Types []string
	// Version selects versions; the zero value means "last".
	Version VersionFilter
	// SpecVersions keeps objects of these STIX versions (none: the latest
	// of each object, which is 2.1 for everything embassy stores).
	SpecVersions []string
}

// VersionFilter is match[version]: any of the newest, the oldest, every
// version, and versions at given times.
type VersionFilter struct {
	All, First, Last bool
	Times            []time.Time
}

// IsZero reports whether no match[version] was given.
func (v VersionFilter) IsZero() bool {
	return !v.All && !v.First && !v.Last && len(v.Times) == 0
}

// effective is the filter with its default: last.
func (v VersionFilter) effective() VersionFilter {
	if v.IsZero() {
		return VersionFilter{Last: true}
	}
	return v
}

// ErrFilter: a request's query is not a valid TAXII filter. Answer 400
// with the error's text.
var ErrFilter = errors.New("invalid filter")

// Parameters a request may carry, by endpoint.
const (
	paramAddedAfter = 1 << iota
	paramLimit
	paramNext
	paramID
	paramType
	paramVersion
	paramSpecVersion
)

var paramNames = []struct {
	bit  int
	name string
}{
	{paramAddedAfter, "added_after"}, {paramLimit, "limit"}, {paramNext, "next"}, {paramID, "match[id]"},
	{paramType, "match[type]"}, {paramVersion, "match[version]"}, {paramSpecVersion, "match[spec_version]"},
}

// ParseFilter decodes a query. allowed says which parameters the endpoint
// takes (a set of param* bits): a match[...] filter it does not take, or
// that TAXII does not define, is refused rather than ignored, since a
// client relying on it would get what it did not ask for. Other unknown
// parameters are ignored.
func ParseFilter(q url.Values, allowed int) (Filter, error) {
	fail := func(format string, args ...any) (Filter, error) {
		return Filter{}, fmt.Errorf("%w: %s", ErrFilter, fmt.Sprintf(format, args...))
	}
	f := Filter{Limit: DefaultLimit}
	for name := range q {
		known := false
		for _, p := range paramNames {
			if p.name == name {
				known = true
				if allowed&p.bit == 0 {
					return fail("%s is not supported by this endpoint", name)
				}
			}
		}
		if !known && strings.HasPrefix(name, "match[") {
			return fail("%s is not a filter embassy supports (match[id], match[type], match[version], match[spec_version])", name)
		}
	}
	one := func(name string) (string, bool, error) {
		vs, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(vs) != 1 {
			return "", false, fmt.Errorf("%w: %s given %d times", ErrFilter, name, len(vs))
		}
		return vs[0], true, nil
	}
	if s, ok, err := one("added_after"); err != nil {
		return Filter{}, err
	} else if ok {
		t, err := ParseTimestamp(s)
		if err != nil {
			return fail("added_after: %v", err)
		}
		f.AddedAfter = t
	}
	if s, ok, err := one("limit"); err != nil {
		return Filter{}, err
	} else if ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fail("limit: %q is not a non-negative integer", s)
		}
		if n > 0 {
			f.Limit = min(n, MaxLimit)
		}
	}
	if s, ok, err := one("next"); err != nil {
		return Filter{}, err
	} else if ok {
		if s == "" || len(s) > 1024 {
			return fail("next: empty or longer than 1024 characters")
		}
		f.Next = s
	}
	values := func(name string) ([]string, error) {
		var out []string
		for _, v := range q[name] {
			for s := range strings.SplitSeq(v, ",") {
				s = strings.TrimSpace(s)
				if s == "" {
					return nil, fmt.Errorf("%w: %s: an empty value", ErrFilter, name)
				}
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		if len(out) > maxMatchValues {
			return nil, fmt.Errorf("%w: %s: more than %d values", ErrFilter, name, maxMatchValues)
		}
		return out, nil
	}
	var err error
	if f.IDs, err = values("match[id]"); err != nil {
		return Filter{}, err
	}
	for _, id := range f.IDs {
		if !ValidIdentifier(id) {
			return fail("match[id]: %q is not a STIX identifier (TYPE--UUID)", id)
		}
	}
	if f.Types, err = values("match[type]"); err != nil {
		return Filter{}, err
	}
	for _, t := range f.Types {
		if err := validType(t); err != nil {
			return fail("match[type]: %v", err)
		}
	}
	vs, err := values("match[version]")
	if err != nil {
		return Filter{}, err
	}
	for _, v := range vs {
		switch v {
		case "all":
			f.Version.All = true
		case "first":
			f.Version.First = true
		case "last":
			f.Version.Last = true
		default:
			t, err := ParseTimestamp(v)
			if err != nil {
				return fail("match[version]: %q is not first, last, all or a timestamp", v)
			}
			f.Version.Times = append(f.Version.Times, t)
		}
	}
	if f.SpecVersions, err = values("match[spec_version]"); err != nil {
		return Filter{}, err
	}
	for _, v := range f.SpecVersions {
		if v != "2.0" && v != "2.1" {
			return fail("match[spec_version]: %q is not 2.0 or 2.1", v)
		}
	}
	return f, nil
}
