package manifest

import (
	"strings"
	"testing"
)

func TestVaultNames(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing bool // ValidVault accepts it (a vault that exists keeps working)
		fresh    bool // ValidNewVault accepts it (a vault may be created)
	}{
		{"registry", true, true},
		{"a.b.c", true, true},
		{"vault-01", true, true},
		{"1.2.3.4.5", true, true},
		{"192.168.1.a", true, true},
		{"192.168.1.1", true, false},
		{"010.001.1.1", true, false},
		{"ab", false, false},
		{strings.Repeat("a", 64), false, false},
		{"Registry", false, false},
		{"bad_name", false, false},
		{"-vault", false, false},
		{"a..b", false, false},
		{"est--registry", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidVault(tc.name); (err == nil) != tc.existing {
				t.Errorf("ValidVault: %v, want ok=%v", err, tc.existing)
			}
			err := ValidNewVault(tc.name)
			if (err == nil) != tc.fresh {
				t.Errorf("ValidNewVault: %v, want ok=%v", err, tc.fresh)
			}
			if err != nil && !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %q", err, tc.name)
			}
		})
	}
}
