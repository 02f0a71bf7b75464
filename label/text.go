package label

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The compact text form, defined here and documented in docs/labels.md:
//
//	label    = head *( "//" segment )
//	head     = policy SP classification
//	segment  = "REL TO" SP list                   ; PERMISSIVE "Releasable To"
//	         / "PERMISSIVE" SP tag ":" SP list
//	         / "RESTRICTIVE" SP tag ":" SP list
//	         / "INFORMATIVE" SP tag ":" SP list
//	         / "PRIVACY" SP token                 ; privacy mark
//	         / "POLICY-URI" SP token
//	         / "CREATED" SP date-time             ; RFC 3339
//	         / "REVIEW" SP date-time
//	list     = token *( "," SP token )
//	token    = bare / quoted
//
// A bare token runs to the next separator and has its surrounding spaces
// trimmed; it may not contain / , : " or \ (a bare policy may not contain
// spaces either). Anything else is quoted as a Go string literal: "a/b".
// Keywords are matched ignoring case; categories keep the order written; the
// other segments may come in any order, each at most once.

// Text-form keywords.
const (
	kwRel         = "REL TO"
	kwPermissive  = "PERMISSIVE"
	kwRestrictive = "RESTRICTIVE"
	kwInformative = "INFORMATIVE"
	kwPrivacy     = "PRIVACY"
	kwPolicyURI   = "POLICY-URI"
	kwCreated     = "CREATED"
	kwReview      = "REVIEW"
)

// specials are the characters a bare token may not contain.
const specials = `/,:"\`

// String returns the label in the compact text form, for example
//
//	NATO SECRET//REL TO EST, LUX, USA//RESTRICTIVE Compartment: ALPHA
//
// A category tagged DefaultReleasabilityTag that is PERMISSIVE is written with
// the REL TO shorthand. For a valid label, ParseText(l.String()) equals l.
func (l Label) String() string {
	var b strings.Builder
	writeToken(&b, l.Policy, true)
	b.WriteByte(' ')
	writeToken(&b, l.Classification, false)
	for _, c := range l.Categories {
		b.WriteString("//")
		if c.Type == Permissive && c.TagName == DefaultReleasabilityTag {
			b.WriteString(kwRel)
			b.WriteByte(' ')
		} else {
			b.WriteString(c.Type.String())
			b.WriteByte(' ')
			writeToken(&b, c.TagName, false)
			b.WriteString(": ")
		}
		for i, v := range c.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			writeToken(&b, v, false)
		}
	}
	if l.PrivacyMark != "" {
		b.WriteString("//" + kwPrivacy + " ")
		writeToken(&b, l.PrivacyMark, false)
	}
	if l.PolicyURI != "" {
		b.WriteString("//" + kwPolicyURI + " ")
		writeToken(&b, l.PolicyURI, false)
	}
	if !l.Created.IsZero() {
		b.WriteString("//" + kwCreated + " " + formatTime(l.Created))
	}
	if !l.ReviewAt.IsZero() {
		b.WriteString("//" + kwReview + " " + formatTime(l.ReviewAt))
	}
	return b.String()
}

func writeToken(b *strings.Builder, s string, noSpace bool) {
	if needsQuote(s, noSpace) {
		b.WriteString(strconv.Quote(s))
		return
	}
	b.WriteString(s)
}

func needsQuote(s string, noSpace bool) bool {
	if s == "" || strings.ContainsAny(s, specials) || checkText(s) != nil {
		return true
	}
	return noSpace && strings.ContainsRune(s, ' ')
}

// ParseText parses the compact text form (see [Label.String]) and validates
// the label's structure. It does not resolve the policy: use
// [Registry.ParseText] for that.
func ParseText(s string) (Label, error) {
	l, err := parseText(s)
	if err != nil {
		return Label{}, fmt.Errorf("parse label text: %w", err)
	}
	return l, nil
}

func parseText(s string) (Label, error) {
	if len(s) > MaxTextSize {
		return Label{}, fmt.Errorf("%d bytes, over the limit of %d", len(s), MaxTextSize)
	}
	segs, err := splitSegments(s)
	if err != nil {
		return Label{}, err
	}
	var l Label
	if err := parseHead(segs[0], &l); err != nil {
		return Label{}, fmt.Errorf("head %q: %w", strings.TrimSpace(segs[0]), err)
	}
	seen := map[string]bool{}
	for _, seg := range segs[1:] {
		seg = strings.TrimSpace(seg)
		kw, rest, ok := keyword(seg)
		if !ok {
			return Label{}, fmt.Errorf("segment %q: unknown keyword (want REL TO, PERMISSIVE, RESTRICTIVE, INFORMATIVE, PRIVACY, POLICY-URI, CREATED or REVIEW)", seg)
		}
		if err := parseSegment(kw, rest, &l, seen); err != nil {
			return Label{}, fmt.Errorf("segment %q: %w", seg, err)
		}
	}
	if err := l.Validate(); err != nil {
		return Label{}, err
	}
	return l, nil
}

// splitSegments splits s at every "//" outside a quoted token.
func splitSegments(s string) ([]string, error) {
	var segs []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			end, err := quotedEnd(s, i)
			if err != nil {
				return nil, err
			}
			i = end - 1
		case '/':
			if i+1 < len(s) && s[i+1] == '/' {
				segs = append(segs, s[start:i])
				i++
				start = i + 1
			}
		}
		if len(segs) > 1+MaxCategories+4 {
			return nil, fmt.Errorf("more than %d segments", 1+MaxCategories+4)
		}
	}
	return append(segs, s[start:]), nil
}

// quotedEnd returns the index just past the quoted token starting at s[i].
func quotedEnd(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated quoted token")
}

// keyword splits a segment into its keyword and the rest.
func keyword(seg string) (kw, rest string, ok bool) {
	for _, kw := range []string{kwRel, kwPermissive, kwRestrictive, kwInformative, kwPrivacy, kwPolicyURI, kwCreated, kwReview} {
		if rest, ok := cutKeyword(seg, kw); ok {
			return kw, rest, true
		}
	}
	return "", "", false
}

// cutKeyword matches kw (whose words are separated by single spaces) at the
// start of seg, ignoring case and allowing runs of spaces, followed by a
// space.
func cutKeyword(seg, kw string) (string, bool) {
	for word := range strings.SplitSeq(kw, " ") {
		if len(seg) < len(word) || !strings.EqualFold(seg[:len(word)], word) {
			return "", false
		}
		seg = seg[len(word):]
		if trimmed := strings.TrimLeft(seg, " \t"); len(trimmed) == len(seg) {
			return "", false // the keyword must be followed by a space
		} else {
			seg = trimmed
		}
	}
	return seg, true
}

func parseHead(head string, l *Label) error {
	head = strings.TrimSpace(head)
	if head == "" {
		return errors.New("empty")
	}
	var rest string
	var err error
	if head[0] == '"' {
		l.Policy, rest, err = quoted(head)
		if err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return errors.New("policy: a space must follow the quoted policy")
		}
	} else {
		i := strings.IndexAny(head, " \t")
		if i < 0 {
			return errors.New("missing classification after the policy")
		}
		l.Policy, rest = head[:i], head[i:]
		if err := checkBare(l.Policy); err != nil {
			return fmt.Errorf("policy: %w", err)
		}
	}
	l.Classification, err = single(rest)
	if err != nil {
		return fmt.Errorf("classification: %w", err)
	}
	return nil
}

func parseSegment(kw, rest string, l *Label, seen map[string]bool) error {
	var err error
	switch kw {
	case kwRel:
		vals, err := list(rest)
		if err != nil {
			return err
		}
		l.Categories = append(l.Categories, Category{TagName: DefaultReleasabilityTag, Type: Permissive, Values: vals})
		return nil
	case kwPermissive, kwRestrictive, kwInformative:
		typ, _ := ParseCategoryType(kw)
		tag, after, err := tagToken(rest)
		if err != nil {
			return fmt.Errorf("tag name: %w", err)
		}
		vals, err := list(after)
		if err != nil {
			return err
		}
		l.Categories = append(l.Categories, Category{TagName: tag, Type: typ, Values: vals})
		return nil
	}
	if seen[kw] {
		return fmt.Errorf("%s given twice", kw)
	}
	seen[kw] = true
	switch kw {
	case kwPrivacy:
		l.PrivacyMark, err = single(rest)
	case kwPolicyURI:
		l.PolicyURI, err = single(rest)
	case kwCreated:
		l.Created, err = parseTime(strings.TrimSpace(rest))
	case kwReview:
		l.ReviewAt, err = parseTime(strings.TrimSpace(rest))
	}
	return err
}

// tagToken reads a category tag name up to its colon.
func tagToken(s string) (tag, rest string, err error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		tag, rest, err = quoted(s)
		if err != nil {
			return "", "", err
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return "", "", errors.New("missing ':' after the tag name")
		}
		return tag, rest[1:], nil
	}
	tag, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", errors.New("missing ':' after the tag name")
	}
	tag = strings.TrimSpace(tag)
	if err := checkBare(tag); err != nil {
		return "", "", err
	}
	return tag, rest, nil
}

// list reads a comma-separated list of tokens filling s.
func list(s string) ([]string, error) {
	var vals []string
	for {
		s = strings.TrimSpace(s)
		var v string
		if strings.HasPrefix(s, `"`) {
			var err error
			v, s, err = quoted(s)
			if err != nil {
				return nil, fmt.Errorf("value %d: %w", len(vals)+1, err)
			}
			s = strings.TrimSpace(s)
			if s != "" && s[0] != ',' {
				return nil, fmt.Errorf("value %d: unexpected %q after a quoted value", len(vals)+1, s)
			}
		} else {
			i := strings.IndexByte(s, ',')
			if i < 0 {
				i = len(s)
			}
			v = strings.TrimSpace(s[:i])
			if err := checkBare(v); err != nil {
				return nil, fmt.Errorf("value %d: %w", len(vals)+1, err)
			}
			s = s[i:]
		}
		vals = append(vals, v)
		if len(vals) > MaxValues {
			return nil, fmt.Errorf("more than %d values", MaxValues)
		}
		if s == "" {
			return vals, nil
		}
		s = s[1:] // the comma
	}
}

// single reads exactly one token filling s.
func single(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		v, rest, err := quoted(s)
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(rest) != "" {
			return "", fmt.Errorf("unexpected %q after a quoted token", rest)
		}
		return v, nil
	}
	if err := checkBare(s); err != nil {
		return "", err
	}
	return s, nil
}

// quoted reads the quoted token at the start of s.
func quoted(s string) (tok, rest string, err error) {
	end, err := quotedEnd(s, 0)
	if err != nil {
		return "", "", err
	}
	tok, err = strconv.Unquote(s[:end])
	if err != nil {
		return "", "", fmt.Errorf("bad quoted token %s", s[:end])
	}
	return tok, s[end:], nil
}

func checkBare(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if i := strings.IndexAny(s, specials); i >= 0 {
		return fmt.Errorf("%q: %q is only allowed in a quoted token", s, string(s[i]))
	}
	return nil
}
