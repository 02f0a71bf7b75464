// Package e2e owns the end-to-end tests that drive a real `embassy serve
// --dev` process with the S3 clients people actually use: the AWS CLI,
// rclone, restic and Python's boto3.
//
// The package has no code of its own, only tests. TestMain builds the
// embassy binary once; every test starts its own development node on a free
// loopback port in a temporary directory, with debug logging, and stops it
// with SIGTERM when the test ends. When a test fails, the tail of the
// server's log is printed with the failure.
//
// A client that is not installed skips its test with a loud message, except
// under CI (the CI environment variable set), where a missing client is a
// failure: .ci/run installs them all from Debian packages (awscli, rclone,
// restic, python3-boto3). `go test -short` skips the package.
//
// TestPutFiveGiB, a 5 GiB single PUT and GET with the server's peak RSS
// asserted bounded, runs only with EMBASSY_E2E_5GIB=1: it needs about
// 7.6 GiB of disk under TMPDIR and minutes of both cores.
package e2e
