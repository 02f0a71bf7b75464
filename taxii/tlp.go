package taxii

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/embassy-dev/embassy/label"
)

// TLP is a Traffic Light Protocol level, ordered from least to most
// restrictive.
type TLP uint8

// The TLP 2.0 levels. TLPNone is the absence of a TLP marking.
const (
	TLPNone TLP = iota
	TLPClear
	TLPGreen
	TLPAmber
	TLPAmberStrict
	TLPRed
)

// String returns the level's name as TLP 2.0 writes it: CLEAR, GREEN,
// AMBER, AMBER+STRICT, RED.
func (t TLP) String() string {
	switch t {
	case TLPClear:
		return "CLEAR"
	case TLPGreen:
		return "GREEN"
	case TLPAmber:
		return "AMBER"
	case TLPAmberStrict:
		return "AMBER+STRICT"
	case TLPRed:
		return "RED"
	}
	return "none"
}

// ParseTLP parses a level name, ignoring case: clear, green, amber,
// amber+strict or red (white, TLP 1.0's name for clear, is accepted).
func ParseTLP(s string) (TLP, error) {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "TLP:")
	switch s {
	case "CLEAR", "WHITE":
		return TLPClear, nil
	case "GREEN":
		return TLPGreen, nil
	case "AMBER":
		return TLPAmber, nil
	case "AMBER+STRICT":
		return TLPAmberStrict, nil
	case "RED":
		return TLPRed, nil
	}
	return TLPNone, fmt.Errorf("unknown TLP level %q (want clear, green, amber, amber+strict or red)", s)
}

// The TLP 2.0 marking definitions (the STIX extension
// extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d defines them
// with these fixed ids).
const (
	TLP2Extension   = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
	TLP2Clear       = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
	TLP2Green       = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
	TLP2Amber       = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
	TLP2AmberStrict = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
	TLP2Red         = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
)

// The TLP 1.0 marking definitions STIX 2.1 itself defines (section
// 7.2.1.4), still the most common in feeds.
const (
	TLP1White = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
	TLP1Green = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
	TLP1Amber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
	TLP1Red   = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
)

// tlpMarkings maps every TLP marking definition to its level.
var tlpMarkings = map[string]TLP{
	TLP2Clear: TLPClear, TLP2Green: TLPGreen, TLP2Amber: TLPAmber, TLP2AmberStrict: TLPAmberStrict, TLP2Red: TLPRed,
	TLP1White: TLPClear, TLP1Green: TLPGreen, TLP1Amber: TLPAmber, TLP1Red: TLPRed,
}

// MarkingTLP returns the TLP level of a marking definition id, or TLPNone
// if it is not a TLP marking.
func MarkingTLP(id string) TLP { return tlpMarkings[id] }

// TLP2Marking returns the TLP 2.0 marking definition id of a level.
func TLP2Marking(t TLP) string {
	switch t {
	case TLPClear:
		return TLP2Clear
	case TLPGreen:
		return TLP2Green
	case TLPAmber:
		return TLP2Amber
	case TLPAmberStrict:
		return TLP2AmberStrict
	case TLPRed:
		return TLP2Red
	}
	return ""
}

// ErrMarking: an object carries a marking its collection does not accept.
var ErrMarking = errors.New("marking not accepted")

// Markings is what a collection accepts as markings.
type Markings struct {
	// Default is the level of an object without a TLP marking.
	Default TLP
	// Statements are marking definitions (statement markings, or any
	// other kind) the collection knows; they do not change the level.
	Statements []string
	// AllowUnknown accepts any other marking, which then does not change
	// the level either.
	AllowUnknown bool
}

// Level decides an object's TLP level from the marking definitions it
// refers to: the most restrictive TLP marking wins; known statements and,
// if allowed, unknown markings do not count; with no TLP marking, the
// default.
func (m Markings) Level(refs []string) (TLP, error) {
	level := TLPNone
	for _, id := range refs {
		if t := tlpMarkings[id]; t != TLPNone {
			level = max(level, t)
			continue
		}
		if slices.Contains(m.Statements, id) || m.AllowUnknown {
			continue
		}
		return TLPNone, fmt.Errorf("%w: %s is neither a TLP marking nor a statement this collection knows", ErrMarking, id)
	}
	if level == TLPNone {
		level = m.Default
	}
	if level == TLPNone {
		return TLPNone, fmt.Errorf("%w: the object has no TLP marking and the collection has no default", ErrMarking)
	}
	return level, nil
}

// TLPTag is the tag of the category that carries a label's TLP level:
// INFORMATIVE below RED, RESTRICTIVE for RED.
const TLPTag = "TLP"

// Mapping turns TLP levels into labels for one collection.
type Mapping struct {
	// Base gives the policy and classification (and any categories other
	// than releasability and TLP) of every label.
	Base label.Label
	// Community are the nations GREEN reaches; Amber those AMBER reaches
	// (GREEN reaches them too); Everyone those CLEAR reaches, besides the
	// other two: the nations of the node's principals.
	Community, Amber, Everyone []string
	// Registry resolves the base label's policy and its releasability tag.
	Registry *label.Registry
}

// Label returns the label of an object marked t, normalised.
func (m Mapping) Label(t TLP) (label.Label, error) {
	var rel []string
	switch t {
	case TLPClear:
		rel = union(m.Everyone, m.Community, m.Amber)
	case TLPGreen:
		rel = union(m.Community, m.Amber)
	case TLPAmber:
		rel = union(m.Amber)
	case TLPAmberStrict, TLPRed:
	default:
		return label.Label{}, fmt.Errorf("no label for TLP level %s", t)
	}
	l := m.Base
	l.Categories = slices.Clone(m.Base.Categories)
	if len(rel) > 0 {
		lv, err := m.Registry.LabelLevel(l)
		if err != nil {
			return label.Label{}, err
		}
		pol, _ := m.Registry.Policy(lv.Policy)
		tag := pol.Releasability
		if tag == "" {
			tag = "Releasable To"
		}
		l.Categories = append(l.Categories, label.Category{TagName: tag, Type: label.Permissive, Values: rel})
	}
	typ := label.Informative
	if t == TLPRed {
		typ = label.Restrictive
	}
	l.Categories = append(l.Categories, label.Category{TagName: TLPTag, Type: typ, Values: []string{t.String()}})
	return m.Registry.Normalize(l)
}

// CheckBase checks a collection's base label: it must resolve, and carry
// neither a releasability category nor a TLP one (the mapping adds those).
func CheckBase(reg *label.Registry, l label.Label) error {
	lv, err := reg.LabelLevel(l)
	if err != nil {
		return err
	}
	for _, c := range l.Categories {
		if c.Type == label.Permissive && reg.IsReleasability(lv.Policy, c.TagName) {
			return errors.New("the label carries a releasability list: the TLP level decides it")
		}
		if strings.EqualFold(c.TagName, TLPTag) {
			return errors.New("the label carries a TLP category: the TLP level decides it")
		}
	}
	return nil
}

// union returns the distinct upper-cased values of the lists, sorted.
func union(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, v := range l {
			v = strings.ToUpper(v)
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}
