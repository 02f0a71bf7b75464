// Package catalog owns the node's data catalogue: the descriptions of the
// datasets a node offers (set with 'embassy dataset describe', kept in the
// catalog section of node.yaml and so in the node descriptor on every site),
// their rendering as a W3C DCAT 3 / DCAT-AP 3 catalogue in JSON-LD, the view
// of that catalogue a nation or a principal may see (each entry carries a
// STANAG 4774 label; an entry is shown only where its label releases it),
// and searching it.
//
// The package holds no keys and does no I/O: the node gives it the
// configuration, the labels and the filter, and serves what it renders.
// docs/alliance.md ("Find what exists") describes the vocabulary, including
// the embassy: terms that carry the label's releasability.
package catalog
