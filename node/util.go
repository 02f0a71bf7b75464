package node

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/embassy-dev/embassy/internal/atomicfile"
)

func writeFileAtomic(path string, b []byte) error { return atomicfile.Write(path, b, 0o600) }

// durationYAML is a time.Duration written as "24h" in YAML.
type durationYAML time.Duration

func (d durationYAML) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *durationYAML) UnmarshalYAML(value *yaml.Node) error {
	v, err := time.ParseDuration(value.Value)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: %w", value.Line, value.Value, err)
	}
	*d = durationYAML(v)
	return nil
}
