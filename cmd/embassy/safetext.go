package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// safeText makes text that came from outside (object keys, metadata,
// labels, request summaries, error messages) safe to print on a terminal.
// Text made of printable characters is returned as it is. Anything else —
// a newline, a carriage return, a tab, an escape sequence, a bidirectional
// override, invalid UTF-8 — is printed Go-quoted (strconv.Quote: "a\nb"),
// so that a key cannot forge table rows, rewrite the line a custodian reads
// before signing, or drive the terminal. (Quoted output starts with a
// double quote; a printable name that itself starts with one is printed as
// it is.)
//
// It is the one helper for this: every place the CLI prints such text for
// a person goes through it (--json output is escaped by JSON itself).
func safeText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r == utf8.RuneError || !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// safeLines is safeText for each line of a message that has lines of its
// own (an error that lists several problems): its line breaks are kept,
// and every other unprintable character is quoted within its line.
func safeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = safeText(l)
	}
	return strings.Join(lines, "\n")
}
