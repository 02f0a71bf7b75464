// Package layering holds the test that keeps the project's packages
// layered: each imports only packages of the layers below its own
// (docs/design.md, "Parts and their dependencies"). It has no code.
package layering
