// Package interop runs third-party conformance suites against a real
// embassy node: TestS3Conformance runs the core subset of ceph/s3-tests
// (see docs/s3.md, "Conformance") and fails below the pass count in
// testdata/s3-tests-floor. It needs Debian's python3 packages and the
// suite (.ci/run installs both); elsewhere it skips, loudly, without them.
package interop
