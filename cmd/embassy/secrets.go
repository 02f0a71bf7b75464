package main

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/s3"
)

// Secrets on the command line are visible to every user of the machine
// (ps, /proc/PID/cmdline) and stay in shell histories. Commands take them
// from a file or the environment; the flags that took them are kept for one
// release, deprecated: cobra prints the warning when one is used.

// secretFrom returns a secret from, in order: the deprecated flag's value,
// the file the variable fileEnv names, the variable env.
func secretFrom(flagValue, env, fileEnv string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if f := os.Getenv(fileEnv); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", fileEnv, err)
		}
		s := string(bytes.TrimRight(b, "\r\n"))
		if s == "" {
			return "", fmt.Errorf("%s: %s is empty", fileEnv, f)
		}
		return s, nil
	}
	return os.Getenv(env), nil
}

// warnSecretFlags warns, on standard error, of each deprecated flag of
// cmd that carried a secret in this run; instead maps the flag to what
// replaces it.
func (a *app) warnSecretFlags(cmd *cobra.Command, instead map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(instead)) {
		if cmd.Flags().Changed(name) {
			fmt.Fprintf(a.stderr, "embassy: warning: --%s is deprecated: a secret on the command line is visible to every user of this machine (ps); use %s (the flag goes in the next release)\n", name, instead[name])
		}
	}
}

// readCredentialsFile reads S3 credentials, one principal:access-key:secret-key
// a line (blank lines and # comments ignored).
func readCredentialsFile(path string) ([]s3.Credential, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []s3.Credential
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("%s:%d: want principal:access-key:secret-key", path, n)
		}
		out = append(out, s3.Credential{Principal: parts[0], AccessKey: parts[1], SecretKey: parts[2]})
	}
	return out, sc.Err()
}
