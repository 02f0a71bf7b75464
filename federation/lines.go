package federation

import (
	"errors"
	"fmt"
	"strings"
)

// maxRecord bounds a card or a grant.
const maxRecord = 16 << 10

// parseLines reads "header\nkey value\n..." with exactly keys, in order,
// the last being the signature; body is every byte before the signature
// line.
func parseLines(b []byte, header string, keys []string) (map[string]string, []byte, error) {
	if len(b) > maxRecord {
		return nil, nil, fmt.Errorf("larger than %d bytes", maxRecord)
	}
	s := string(b)
	rest, ok := strings.CutPrefix(s, header)
	if !ok {
		return nil, nil, fmt.Errorf("does not start with %q", strings.TrimSpace(header))
	}
	fields := make(map[string]string, len(keys))
	var body []byte
	for i, key := range keys {
		line, after, ok := strings.Cut(rest, "\n")
		if !ok {
			return nil, nil, fmt.Errorf("line %q missing or unterminated", key)
		}
		v, ok := strings.CutPrefix(line, key+" ")
		if !ok || v == "" {
			return nil, nil, fmt.Errorf("want line %q, found %.60q", key, line)
		}
		if i == len(keys)-1 {
			body = b[:len(b)-len(rest)]
		}
		fields[key] = v
		rest = after
	}
	if rest != "" {
		return nil, nil, errors.New("trailing data after the signature")
	}
	return fields, body, nil
}
