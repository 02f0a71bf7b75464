package taxii

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/TcM1911/stix2"
)

// SpecVersion is the STIX version embassy stores.
const SpecVersion = "2.1"

// MaxObjectSize bounds one STIX object's JSON.
const MaxObjectSize = 1 << 20

// Object is one STIX 2.1 object that passed [ParseObject].
type Object struct {
	ID          string
	Type        string
	SpecVersion string
	// Created and Modified are zero when the object has none (cyber
	// observables, marking definitions have no modified).
	Created, Modified time.Time
	// Markings are the marking definitions the object refers to:
	// object_marking_refs, then the marking_ref of each granular marking,
	// each once.
	Markings []string
	// Raw is the object as received, compacted.
	Raw []byte
}

// Version is the object's STIX version: modified, else created, else the
// zero time (the object is then versioned by when it was added).
func (o *Object) Version() time.Time {
	if !o.Modified.IsZero() {
		return o.Modified
	}
	return o.Created
}

// InvalidError says why an object was refused: the property at fault (""
// for the object as a whole) and the rule it broke.
type InvalidError struct {
	Property string
	Reason   string
}

func (e *InvalidError) Error() string {
	if e.Property == "" {
		return "invalid STIX 2.1 object: " + e.Reason
	}
	return "invalid STIX 2.1 object: " + e.Property + ": " + e.Reason
}

// ErrInvalid is matched by every *InvalidError.
var ErrInvalid = errors.New("invalid STIX 2.1 object")

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(prop, format string, args ...any) error {
	return &InvalidError{Property: prop, Reason: fmt.Sprintf(format, args...)}
}

// kind is what part of STIX an object type belongs to.
type kind uint8

const (
	kindSDO kind = iota + 1 // domain objects: created and modified
	kindSRO                 // relationship objects: created and modified
	kindSMO                 // meta objects: their own rules
	kindSCO                 // cyber observables: no created, no modified
)

// typeRule is what STIX 2.1 requires of one object type.
type typeRule struct {
	kind     kind
	required []string
	// check applies the rules a list of required properties cannot say.
	check func(props map[string]json.RawMessage) error
}

// rules are the object types STIX 2.1 defines (sections 4 to 7).
var rules = map[string]typeRule{
	"attack-pattern":       {kind: kindSDO, required: []string{"name"}},
	"campaign":             {kind: kindSDO, required: []string{"name"}},
	"course-of-action":     {kind: kindSDO, required: []string{"name"}},
	"grouping":             {kind: kindSDO, required: []string{"context", "object_refs"}},
	"identity":             {kind: kindSDO, required: []string{"name"}},
	"incident":             {kind: kindSDO, required: []string{"name"}},
	"indicator":            {kind: kindSDO, required: []string{"pattern", "pattern_type", "valid_from"}, check: checkIndicator},
	"infrastructure":       {kind: kindSDO, required: []string{"name"}},
	"intrusion-set":        {kind: kindSDO, required: []string{"name"}},
	"location":             {kind: kindSDO, check: checkLocation},
	"malware":              {kind: kindSDO, required: []string{"is_family"}, check: checkMalware},
	"malware-analysis":     {kind: kindSDO, required: []string{"product"}, check: oneOf("result", "analysis_sco_refs")},
	"note":                 {kind: kindSDO, required: []string{"content", "object_refs"}},
	"observed-data":        {kind: kindSDO, required: []string{"first_observed", "last_observed", "number_observed"}, check: checkObservedData},
	"opinion":              {kind: kindSDO, required: []string{"opinion", "object_refs"}},
	"report":               {kind: kindSDO, required: []string{"name", "published", "object_refs"}},
	"threat-actor":         {kind: kindSDO, required: []string{"name"}},
	"tool":                 {kind: kindSDO, required: []string{"name"}},
	"vulnerability":        {kind: kindSDO, required: []string{"name"}},
	"relationship":         {kind: kindSRO, required: []string{"relationship_type", "source_ref", "target_ref"}, check: checkRelationship},
	"sighting":             {kind: kindSRO, required: []string{"sighting_of_ref"}},
	"marking-definition":   {kind: kindSMO, required: []string{"created"}, check: checkMarkingDefinition},
	"language-content":     {kind: kindSMO, required: []string{"created", "modified", "object_ref", "contents"}},
	"extension-definition": {kind: kindSMO, required: []string{"created", "modified", "created_by_ref", "name", "schema", "version", "extension_types"}},
	"artifact":             {kind: kindSCO, check: oneOf("payload_bin", "url")},
	"autonomous-system":    {kind: kindSCO, required: []string{"number"}},
	"directory":            {kind: kindSCO, required: []string{"path"}},
	"domain-name":          {kind: kindSCO, required: []string{"value"}},
	"email-addr":           {kind: kindSCO, required: []string{"value"}},
	"email-message":        {kind: kindSCO, required: []string{"is_multipart"}},
	"file":                 {kind: kindSCO, check: oneOf("hashes", "name")},
	"ipv4-addr":            {kind: kindSCO, required: []string{"value"}},
	"ipv6-addr":            {kind: kindSCO, required: []string{"value"}},
	"mac-addr":             {kind: kindSCO, required: []string{"value"}},
	"mutex":                {kind: kindSCO, required: []string{"name"}},
	"network-traffic":      {kind: kindSCO, required: []string{"protocols"}, check: oneOf("src_ref", "dst_ref")},
	"process":              {kind: kindSCO},
	"software":             {kind: kindSCO, required: []string{"name"}},
	"url":                  {kind: kindSCO, required: []string{"value"}},
	"user-account":         {kind: kindSCO},
	"windows-registry-key": {kind: kindSCO},
	"x509-certificate":     {kind: kindSCO},
}

// timestampProps are common timestamp properties checked for form
// wherever they appear at the top level of an object.
var timestampProps = []string{
	"created", "modified", "valid_from", "valid_until", "first_seen", "last_seen",
	"first_observed", "last_observed", "published", "analysis_started", "analysis_ended", "submitted",
}

// ParseObject checks one STIX 2.1 object and returns it, or an
// *InvalidError naming the property at fault.
func ParseObject(raw []byte) (obj *Object, err error) {
	if len(raw) > MaxObjectSize {
		return nil, invalid("", "%d bytes is more than the %d an object may have", len(raw), MaxObjectSize)
	}
	props, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	o := &Object{}
	if o.Type, err = stringProp(props, "type", true); err != nil {
		return nil, err
	}
	if err := validType(o.Type); err != nil {
		return nil, invalid("type", "%v", err)
	}
	if o.ID, err = stringProp(props, "id", true); err != nil {
		return nil, err
	}
	if t, err := identifierType(o.ID); err != nil {
		return nil, invalid("id", "%v", err)
	} else if t != o.Type {
		return nil, invalid("id", "%q does not start with the object's type %q", o.ID, o.Type+"--")
	}
	rule, known := rules[o.Type]
	if !known {
		// A type STIX does not define: a new object type from an
		// extension definition (new-sco ones are observables), or a
		// custom object, which STIX 2.1 still allows and versions like
		// a domain object.
		rule = typeRule{kind: kindSDO}
		if declaresNewSCO(props) {
			rule.kind = kindSCO
		}
	}
	sv, err := stringProp(props, "spec_version", rule.kind != kindSCO)
	if err != nil {
		return nil, err
	}
	switch sv {
	case SpecVersion:
	case "":
		sv = SpecVersion // an observable without spec_version is 2.1
	default:
		return nil, invalid("spec_version", "%q is not supported: embassy stores STIX 2.1", sv)
	}
	o.SpecVersion = sv
	for _, p := range timestampProps {
		if _, ok := props[p]; !ok {
			continue
		}
		if _, err := timestampProp(props, p, p == "created" || p == "modified"); err != nil {
			return nil, err
		}
	}
	switch rule.kind {
	case kindSDO, kindSRO:
		for _, p := range []string{"created", "modified"} {
			if _, ok := props[p]; !ok {
				return nil, invalid(p, "missing (a %s needs it)", map[kind]string{kindSDO: "domain object", kindSRO: "relationship object"}[rule.kind])
			}
		}
	case kindSCO:
		for _, p := range []string{"created", "modified"} {
			if _, ok := props[p]; ok {
				return nil, invalid(p, "a cyber observable has no %s", p)
			}
		}
	}
	if _, ok := props["created"]; ok {
		o.Created, _ = timestampProp(props, "created", true)
	}
	if _, ok := props["modified"]; ok {
		o.Modified, _ = timestampProp(props, "modified", true)
	}
	if !o.Created.IsZero() && !o.Modified.IsZero() && o.Modified.Before(o.Created) {
		return nil, invalid("modified", "earlier than created")
	}
	for _, p := range rule.required {
		if _, ok := props[p]; !ok {
			return nil, invalid(p, "missing (required of %s)", o.Type)
		}
	}
	if err := checkReferences(props); err != nil {
		return nil, err
	}
	if o.Markings, err = markings(props); err != nil {
		return nil, err
	}
	if rule.check != nil {
		if err := rule.check(props); err != nil {
			return nil, err
		}
	}
	if err := typedDecode(raw, o.ID); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, invalid("", "%v", err)
	}
	o.Raw = b.Bytes()
	return o, nil
}

// typedDecode decodes the object with github.com/TcM1911/stix2, which
// checks the JSON type of every property its structs know. The library is
// outside code parsing outside input: a panic in it refuses the object.
func typedDecode(raw []byte, id string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = invalid("", "the STIX decoder could not read it (%v)", r)
		}
	}()
	doc := make([]byte, 0, len(raw)+2)
	doc = append(append(append(doc, '['), raw...), ']')
	c, err := stix2.FromJSON(doc)
	if err != nil {
		reason := err.Error()
		reason = strings.TrimPrefix(reason, "bad json data: ")
		return invalid("", "%s", reason)
	}
	if c == nil || len(c.AllObjects()) != 1 || string(c.AllObjects()[0].GetID()) != id {
		return invalid("", "the STIX decoder did not accept it")
	}
	return nil
}

// topLevel decodes an object's top-level properties, refusing what is not
// a JSON object and a property given twice (decoders disagree on which
// one counts, so a second object_marking_refs could hide the first).
func topLevel(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid("", "not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalid("", "not a JSON object")
	}
	props := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("", "not JSON: %v", err)
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid(name, "not JSON: %v", err)
		}
		if _, dup := props[name]; dup {
			return nil, invalid(name, "given twice")
		}
		props[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid("", "not JSON: %v", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, invalid("", "more than one JSON value")
	}
	return props, nil
}

func stringProp(props map[string]json.RawMessage, name string, required bool) (string, error) {
	v, ok := props[name]
	if !ok {
		if required {
			return "", invalid(name, "missing")
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", invalid(name, "not a string")
	}
	return s, nil
}

// validType checks a type name: 3 to 250 characters of a-z, 0-9 and '-',
// starting with a letter, without "--" (the separator of identifiers).
func validType(t string) error {
	if len(t) < 3 || len(t) > 250 {
		return fmt.Errorf("%q: a type has 3 to 250 characters", t)
	}
	if t[0] < 'a' || t[0] > 'z' {
		return fmt.Errorf("%q: a type starts with a letter a-z", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%q: a type has only a-z, 0-9 and '-'", t)
		}
	}
	if strings.Contains(t, "--") {
		return fmt.Errorf("%q: a type has no \"--\"", t)
	}
	if strings.HasSuffix(t, "-") {
		return fmt.Errorf("%q: a type does not end with '-'", t)
	}
	return nil
}

// identifierType checks an identifier, TYPE--UUID with an RFC 4122 UUID in
// lower case, and returns its type.
func identifierType(id string) (string, error) {
	t, u, ok := strings.Cut(id, "--")
	if !ok {
		return "", fmt.Errorf("%q is not TYPE--UUID", id)
	}
	if err := validType(t); err != nil {
		return "", fmt.Errorf("%q: %v", id, err)
	}
	if err := validUUID(u); err != nil {
		return "", fmt.Errorf("%q: %v", id, err)
	}
	return t, nil
}

// ValidIdentifier reports whether id is a STIX identifier.
func ValidIdentifier(id string) bool {
	_, err := identifierType(id)
	return err == nil
}

func validUUID(u string) error {
	if len(u) != 36 {
		return fmt.Errorf("the UUID has %d characters, not 36", len(u))
	}
	for i := 0; i < 36; i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return errors.New("the UUID is not 8-4-4-4-12 hexadecimal digits")
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return errors.New("the UUID is not 8-4-4-4-12 lower-case hexadecimal digits")
			}
		}
	}
	// RFC 4122 variant: the first digit of the fourth group is 8, 9, a or b.
	switch u[19] {
	case '8', '9', 'a', 'b':
	default:
		return errors.New("the UUID is not of the RFC 4122 variant")
	}
	return nil
}

// ParseTimestamp parses a STIX timestamp: RFC 3339 in UTC with "Z", with
// or without a fraction of a second.
func ParseTimestamp(s string) (time.Time, error) {
	return parseTimestamp(s, 0)
}

func parseTimestamp(s string, minFraction int) (time.Time, error) {
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, fmt.Errorf("%q is not a UTC timestamp ending in Z", s)
	}
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, fmt.Errorf("%q is not YYYY-MM-DDTHH:MM:SS[.s+]Z", s)
	}
	frac := s[19 : len(s)-1]
	if frac != "" {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, fmt.Errorf("%q is not YYYY-MM-DDTHH:MM:SS[.s+]Z", s)
		}
		for _, c := range frac[1:] {
			if c < '0' || c > '9' {
				return time.Time{}, fmt.Errorf("%q is not YYYY-MM-DDTHH:MM:SS[.s+]Z", s)
			}
		}
	}
	if n := max(len(frac)-1, 0); n < minFraction {
		return time.Time{}, fmt.Errorf("%q: precision must be at least milliseconds (three digits after the seconds)", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a valid date and time", s)
	}
	return t, nil
}

func timestampProp(props map[string]json.RawMessage, name string, millis bool) (time.Time, error) {
	s, err := stringProp(props, name, true)
	if err != nil {
		return time.Time{}, err
	}
	minFrac := 0
	if millis {
		minFrac = 3
	}
	t, err := parseTimestamp(s, minFrac)
	if err != nil {
		return time.Time{}, invalid(name, "%v", err)
	}
	return t, nil
}

// checkReferences checks every top-level reference: a *_ref property holds
// an identifier, a *_refs property a non-empty list of them, and
// created_by_ref names an identity.
func checkReferences(props map[string]json.RawMessage) error {
	for _, name := range sortedKeys(props) {
		v := props[name]
		switch {
		case strings.HasSuffix(name, "_ref"):
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return invalid(name, "not a string identifier")
			}
			if _, err := identifierType(s); err != nil {
				return invalid(name, "%v", err)
			}
		case strings.HasSuffix(name, "_refs"):
			var ss []string
			if err := json.Unmarshal(v, &ss); err != nil {
				return invalid(name, "not a list of identifiers")
			}
			if len(ss) == 0 {
				return invalid(name, "an empty list")
			}
			for i, s := range ss {
				if _, err := identifierType(s); err != nil {
					return invalid(fmt.Sprintf("%s[%d]", name, i), "%v", err)
				}
			}
		}
	}
	if v, ok := props["created_by_ref"]; ok {
		var s string
		json.Unmarshal(v, &s)
		if !strings.HasPrefix(s, "identity--") {
			return invalid("created_by_ref", "%q is not an identity", s)
		}
	}
	return nil
}

// markings returns the marking definitions an object refers to and checks
// the form of its granular markings.
func markings(props map[string]json.RawMessage) ([]string, error) {
	var out []string
	if v, ok := props["object_marking_refs"]; ok {
		var ss []string
		json.Unmarshal(v, &ss) // checked by checkReferences
		for i, s := range ss {
			if !strings.HasPrefix(s, "marking-definition--") {
				return nil, invalid(fmt.Sprintf("object_marking_refs[%d]", i), "%q is not a marking definition", s)
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	v, ok := props["granular_markings"]
	if !ok {
		return out, nil
	}
	var gms []map[string]json.RawMessage
	if err := json.Unmarshal(v, &gms); err != nil {
		return nil, invalid("granular_markings", "not a list of granular markings")
	}
	if len(gms) == 0 {
		return nil, invalid("granular_markings", "an empty list")
	}
	for i, gm := range gms {
		prop := fmt.Sprintf("granular_markings[%d]", i)
		var sel []string
		if err := json.Unmarshal(gm["selectors"], &sel); err != nil || len(sel) == 0 {
			return nil, invalid(prop+".selectors", "missing or not a non-empty list of strings")
		}
		ref, hasRef := gm["marking_ref"]
		_, hasLang := gm["lang"]
		if hasRef == hasLang {
			return nil, invalid(prop, "needs exactly one of marking_ref and lang")
		}
		if hasRef {
			var s string
			if err := json.Unmarshal(ref, &s); err != nil {
				return nil, invalid(prop+".marking_ref", "not a string identifier")
			}
			if t, err := identifierType(s); err != nil {
				return nil, invalid(prop+".marking_ref", "%v", err)
			} else if t != "marking-definition" {
				return nil, invalid(prop+".marking_ref", "%q is not a marking definition", s)
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func oneOf(names ...string) func(map[string]json.RawMessage) error {
	return func(props map[string]json.RawMessage) error {
		for _, n := range names {
			if _, ok := props[n]; ok {
				return nil
			}
		}
		return invalid(names[0], "missing (needs one of %s)", strings.Join(names, ", "))
	}
}

func checkIndicator(props map[string]json.RawMessage) error {
	from, _ := timestampProp(props, "valid_from", false)
	if _, ok := props["valid_until"]; ok {
		until, _ := timestampProp(props, "valid_until", false)
		if !until.After(from) {
			return invalid("valid_until", "not later than valid_from")
		}
	}
	return nil
}

func checkLocation(props map[string]json.RawMessage) error {
	_, region := props["region"]
	_, country := props["country"]
	_, lat := props["latitude"]
	_, long := props["longitude"]
	if lat != long {
		return invalid("latitude", "latitude and longitude go together")
	}
	if !region && !country && !lat {
		return invalid("region", "missing (a location needs region, country, or latitude and longitude)")
	}
	return nil
}

func checkMalware(props map[string]json.RawMessage) error {
	var fam bool
	if err := json.Unmarshal(props["is_family"], &fam); err != nil {
		return invalid("is_family", "not a boolean")
	}
	if _, ok := props["name"]; fam && !ok {
		return invalid("name", "missing (required of a malware family)")
	}
	return nil
}

func checkObservedData(props map[string]json.RawMessage) error {
	first, _ := timestampProp(props, "first_observed", false)
	last, _ := timestampProp(props, "last_observed", false)
	if last.Before(first) {
		return invalid("last_observed", "earlier than first_observed")
	}
	var n int64
	if err := json.Unmarshal(props["number_observed"], &n); err != nil || n < 1 || n > 999999999 {
		return invalid("number_observed", "not an integer from 1 to 999999999")
	}
	return oneOf("object_refs", "objects")(props)
}

// notJoinable are the types a relationship cannot join: relationship and
// meta objects.
var notJoinable = map[string]bool{"relationship": true, "sighting": true, "marking-definition": true, "language-content": true, "extension-definition": true}

// checkRelationship refuses relationships whose ends are not domain
// objects or observables.
func checkRelationship(props map[string]json.RawMessage) error {
	for _, p := range []string{"source_ref", "target_ref"} {
		var s string
		json.Unmarshal(props[p], &s)
		t, _ := identifierType(s)
		if notJoinable[t] {
			return invalid(p, "%q: a relationship joins domain objects and observables, not a %s", s, t)
		}
	}
	return nil
}

// checkMarkingDefinition: a marking definition is either of the STIX 2.1
// form (definition_type and definition) or defined by an extension (TLP
// 2.0 is).
func checkMarkingDefinition(props map[string]json.RawMessage) error {
	_, dt := props["definition_type"]
	_, d := props["definition"]
	_, ext := props["extensions"]
	if dt != d {
		return invalid("definition", "definition_type and definition go together")
	}
	if !dt && !ext {
		return invalid("definition", "missing (a marking definition needs definition_type and definition, or extensions)")
	}
	if _, ok := props["modified"]; ok {
		return invalid("modified", "a marking definition is not versioned")
	}
	return nil
}

// declaresNewSCO reports whether an object's extensions declare it a new
// cyber-observable type.
func declaresNewSCO(props map[string]json.RawMessage) bool {
	var exts map[string]struct {
		ExtensionType string `json:"extension_type"`
	}
	if json.Unmarshal(props["extensions"], &exts) != nil {
		return false
	}
	for _, e := range exts {
		if e.ExtensionType == "new-sco" {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
