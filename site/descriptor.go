package site

import (
	"fmt"
	"regexp"
)

// Connectivity says how a site is reached.
type Connectivity string

const (
	// Online sites are reachable on the network at all times.
	Online Connectivity = "online"
	// Isolated sites are reached by offline transfer (air gap). They are
	// never chosen for synchronous writes.
	Isolated Connectivity = "isolated"
)

// Descriptor holds a site's identity and attributes.
type Descriptor struct {
	// ID names the site within the node (e.g. "est-1").
	ID string `yaml:"id" json:"id"`
	// Jurisdiction is where the data physically sits, ISO 3166-1 alpha-3.
	Jurisdiction string `yaml:"jurisdiction" json:"jurisdiction"`
	// Provider names the organisation whose infrastructure holds the data.
	Provider string `yaml:"provider" json:"provider"`
	// Control is the jurisdiction whose law controls the provider (where
	// it is headquartered), ISO 3166-1 alpha-3. A provider can be
	// compelled or sanctioned there even for data it holds abroad.
	Control string `yaml:"control" json:"control"`
	// Operator names who runs the site.
	Operator string `yaml:"operator,omitempty" json:"operator,omitempty"`
	// Accredited is the highest classification the site is accredited
	// for, in label text form (e.g. "NATO SECRET"). Empty means
	// unclassified data only.
	Accredited string `yaml:"accredited,omitempty" json:"accredited,omitempty"`
	// Connectivity is online (default) or isolated.
	Connectivity Connectivity `yaml:"connectivity,omitempty" json:"connectivity,omitempty"`
}

var (
	idRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	countryRE = regexp.MustCompile(`^[A-Z]{3}$`)
)

// ValidID reports whether id is a valid site id.
func ValidID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("site id %q: must be 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", id)
	}
	return nil
}

// ValidCountry reports whether c looks like an ISO 3166-1 alpha-3 code.
func ValidCountry(c string) error {
	if !countryRE.MatchString(c) {
		return fmt.Errorf("%q is not an ISO 3166-1 alpha-3 country code (three capital letters, e.g. EST)", c)
	}
	return nil
}

// Validate checks the descriptor; errors name the field.
func (d Descriptor) Validate() error {
	if err := ValidID(d.ID); err != nil {
		return err
	}
	if err := ValidCountry(d.Jurisdiction); err != nil {
		return fmt.Errorf("site %s: jurisdiction: %w", d.ID, err)
	}
	if d.Provider == "" {
		return fmt.Errorf("site %s: provider: must be set", d.ID)
	}
	if err := ValidCountry(d.Control); err != nil {
		return fmt.Errorf("site %s: control: %w", d.ID, err)
	}
	switch d.Connectivity {
	case "", Online, Isolated:
	default:
		return fmt.Errorf("site %s: connectivity: %q is not online or isolated", d.ID, d.Connectivity)
	}
	return nil
}
