package main

import (
	"strconv"
	"strings"
	"unicode"
)

// safeText returns s as it may be printed on a terminal: unchanged when
// every rune is printable, otherwise quoted with escapes, so that text that
// came from outside (object keys) cannot forge lines or send escape
// sequences.
func safeText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
