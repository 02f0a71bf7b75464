package s3

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// A body of unknown length is cut off, with EntityTooLarge, one byte past
// the limit, and passes whole up to it.
func TestCappedReader(t *testing.T) {
	for _, tc := range []struct {
		size, limit int
		tooLarge    bool
	}{{10, 10, false}, {11, 10, true}, {0, 0, false}, {1, 0, true}, {100000, 99999, true}} {
		n, err := io.Copy(io.Discard, &cappedReader{r: bytes.NewReader(make([]byte, tc.size)), left: int64(tc.limit)})
		if got := errors.Is(err, errEntityTooLarge); got != tc.tooLarge || (!tc.tooLarge && (err != nil || n != int64(tc.size))) {
			t.Errorf("%d bytes, limit %d: read %d, %v", tc.size, tc.limit, n, err)
		}
		if n > int64(tc.limit)+1 {
			t.Errorf("%d bytes, limit %d: read %d, more than one past the limit", tc.size, tc.limit, n)
		}
	}
}
