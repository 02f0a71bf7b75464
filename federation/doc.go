// Package federation owns what allied embassy nodes exchange: peer cards
// (a node's identity, nation, peer endpoint, HPKE recipient key and TLS pin,
// signed by its identity key), share grants (signed by the owner node, with
// their ODRL rendering), and the peer protocol's wire formats: the signed,
// replay-protected, versioned requests under /peer/v1/ and their bodies.
//
// It parses and checks; it holds no private key (signing is a function the
// node passes in, backed by package custody) and no state beyond a replay
// cache. The node package wires it to the listener, the engine and the S3
// front end.
package federation
