package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what 'embassy version' reports: the module version, the
// commit the binary was built from and the Go toolchain, as the Go linker
// recorded them (runtime/debug.ReadBuildInfo).
type buildVersion struct {
	Version    string `json:"version"`               // module version, "(devel)" for a build in a checkout
	Commit     string `json:"commit,omitempty"`      // vcs.revision
	CommitTime string `json:"commit_time,omitempty"` // vcs.time, RFC 3339
	Modified   bool   `json:"modified"`              // the checkout had uncommitted changes
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"` // GOOS/GOARCH
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line 'embassy version' and 'embassy --version' print.
func (v buildVersion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "embassy %s", v.Version)
	if v.Commit != "" {
		fmt.Fprintf(&b, " commit %s", v.Commit)
		if v.Modified {
			b.WriteString(" (modified)")
		}
		if v.CommitTime != "" {
			fmt.Fprintf(&b, " of %s", v.CommitTime)
		}
	}
	fmt.Fprintf(&b, ", %s %s", v.GoVersion, v.Platform)
	return b.String()
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go toolchain this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := readBuildVersion()
			if a.json {
				return a.printJSON(v)
			}
			fmt.Fprintln(a.stdout, v)
			return nil
		},
	}
}
