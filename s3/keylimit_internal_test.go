package s3

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/custody"
)

// A write refused because a key reached its encryption limit is a 503
// that says an operator must rotate a key; which key, and the command,
// go to the log, not to the client.
func TestKeyLimitIsServiceUnavailable(t *testing.T) {
	err := fmt.Errorf("put registry/a: seal manifest: %w", &custody.SealLimitError{Key: custody.SealKey{ID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}, Limit: 1 << 32})
	ae := toAPI(err)
	if ae.Status != http.StatusServiceUnavailable || ae.Code != "ServiceUnavailable" {
		t.Fatalf("a key at its limit maps to %d %s, want 503 ServiceUnavailable", ae.Status, ae.Code)
	}
	if !strings.Contains(ae.Message, "rotated") || strings.Contains(ae.Message, "0102030405060708") {
		t.Errorf("message %q: want one that says a key must be rotated, without naming it", ae.Message)
	}
}
