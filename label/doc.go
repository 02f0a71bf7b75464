// Package label owns confidentiality labels and their binding to data.
//
// A [Label] follows NATO STANAG 4774 (ADatP-4774, "Confidentiality Metadata
// Label Syntax"): a policy identifier, a classification within that policy,
// an optional privacy mark, and categories that are PERMISSIVE (the reader
// needs one listed value; releasability lists are of this kind), RESTRICTIVE
// (the reader needs every listed value) or INFORMATIVE (no effect on access).
//
// The package owns three encodings of a label, all of which round-trip:
//
//   - the 4774 XML form ([ParseXML], [Label.XML]);
//   - a compact text form for people and headers ([ParseText], [Label.String]),
//     such as "NATO SECRET//REL TO EST, LUX, USA";
//   - a canonical JSON form for signing ([Label.Canonical], [Label.Digest]),
//     which is RFC 8785 (JCS) output for every valid label.
//
// A [Registry] holds the classification policies a node knows ([NATO] is
// built in; national policies come from configuration as [Policy] values): it
// orders levels, resolves aliases such as "NATO SECRET", answers dominance
// questions across configured equivalences, and normalises labels.
//
// A [Binding] ties a label to data in the manner of STANAG 4778
// (ADatP-4778, "Metadata Binding Mechanism"): a label, references to the data
// with their digests, and a detached signature over canonical bytes. Keys stay
// outside this package, behind the [Signer] and [Verifier] interfaces.
//
// Every parser here takes input from outside the node: sizes are capped (see
// [MaxXMLSize] and friends) and errors name what was wrong.
package label
