// Package taxii is embassy's threat-intelligence exchange: a TAXII 2.1
// server and client over STIX 2.1 objects, with TLP 2.0 markings turned
// into confidentiality labels so that the one access decision (package
// access), the placement rules and the audit log apply to threat data as to
// everything else.
//
// # STIX
//
// [ParseObject] checks one STIX 2.1 object (spec_version, the id's form and
// type prefix, timestamps, the required properties of its type, the form of
// every reference) and decodes it with github.com/TcM1911/stix2, which checks
// the type of every property it knows. An object that fails is refused on
// its own, with a reason naming the property; the others of an envelope are
// stored. The bytes stored and served are the object as received (compacted),
// so no property and no marking is ever dropped.
//
// # TLP
//
// An object's markings (object_marking_refs and the marking_ref of every
// granular marking) decide its TLP level: the five TLP 2.0 marking
// definitions and the four of TLP 1.0 that STIX 2.1 defines, the most
// restrictive winning; statement markings a collection knows are accepted
// and do not change the level; an unknown marking is refused unless the
// collection allows it; no TLP marking gives the collection's default. The
// level becomes a label ([Mapping.Label]; the table is in
// docs/threat-intel.md): the collection's classification with a
// releasability list — every nation of the node for CLEAR, the collection's
// community and AMBER peers for GREEN, the AMBER peers for AMBER, none (the
// owner's nationals) for AMBER+STRICT — and for RED, no releasability and a
// RESTRICTIVE category "TLP: RED" that only principals named for it hold.
package taxii
