package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/embassy-dev/embassy/custody"
)

// Passphrases. A custodian key is protected by a passphrase unless its
// custodian chose otherwise. The passphrase comes from the file named by
// EMBASSY_PASSPHRASE_FILE (for automation: ceremonies scripted on an
// offline machine, tests), else it is asked on the terminal without echo.
// It is never a flag: the command line is visible to every user of the
// machine.

const passphraseEnv = "EMBASSY_PASSPHRASE_FILE"

// passphraseFrom reads a passphrase from the file env names, or asks on
// the terminal (twice when confirm is set).
func (a *app) passphraseFrom(env, prompt string, confirm bool) ([]byte, error) {
	if f := os.Getenv(env); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", env, f)
		}
		return b, nil
	}
	in, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, withHint(errors.New("a passphrase is needed and there is no terminal to ask it on"), "put it in a file readable only by you and name it in "+env)
	}
	fmt.Fprint(a.stderr, prompt)
	p, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(a.stderr, "again: ")
		q, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, q) {
			return nil, errors.New("the two passphrases differ")
		}
	}
	return p, nil
}

// readCustodianKey reads a custodian key file, asking for its passphrase
// if it has one.
func (a *app) readCustodianKey(path string) (*custody.CustodianKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := custody.OpenCustodianKey(b, func() ([]byte, error) {
		return a.passphraseFrom(passphraseEnv, fmt.Sprintf("passphrase of custodian key %s (%s): ", custody.KeyFileName(b), path), false)
	})
	if err != nil {
		if h, ok := errors.AsType[*hintError](err); ok {
			return nil, withHint(fmt.Errorf("%s: %w", path, h.err), h.hint)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
