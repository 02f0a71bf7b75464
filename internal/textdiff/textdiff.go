// Package textdiff prints the line differences between two small texts in
// unified form, for people: 'embassy config edit' shows what an edit
// changes before it is authenticated.
package textdiff

import (
	"fmt"
	"strings"
)

// MaxLines bounds each text: past it, Unified says the texts differ
// without the lines (the comparison is quadratic).
const MaxLines = 10000

// Unified returns the differences between a and b as unified-diff hunks
// with context lines of context, headed by the two names; "" when the texts
// are equal. redact, if set, rewrites each line before it is shown.
func Unified(nameA, nameB, a, b string, context int, redact func(string) string) string {
	if a == b {
		return ""
	}
	if redact == nil {
		redact = func(s string) string { return s }
	}
	la, lb := lines(a), lines(b)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	if len(la) > MaxLines || len(lb) > MaxLines {
		out.WriteString("(too long to compare line by line)\n")
		return out.String()
	}
	ops := diff(la, lb)
	// Group into hunks: runs of changes with up to context equal lines
	// around them.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-context)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			j := end
			for j < len(ops) && ops[j].kind == ' ' && j-end < 2*context+1 {
				j++
			}
			if j < len(ops) && ops[j].kind != ' ' && j-end <= 2*context {
				end = j
				continue
			}
			end = min(len(ops), end+context)
			break
		}
		aStart, bStart, aLen, bLen := -1, -1, 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				if aStart < 0 {
					aStart = o.a
				}
				aLen++
			}
			if o.kind != '-' {
				if bStart < 0 {
					bStart = o.b
				}
				bLen++
			}
		}
		if aStart < 0 {
			aStart = ops[start].a
		}
		if bStart < 0 {
			bStart = ops[start].b
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", aStart+1, aLen, bStart+1, bLen)
		for _, o := range ops[start:end] {
			text := la
			idx := o.a
			if o.kind == '+' {
				text, idx = lb, o.b
			}
			fmt.Fprintf(&out, "%c%s\n", o.kind, redact(text[idx]))
		}
		i = end
	}
	return out.String()
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type op struct {
	kind byte // ' ', '-', '+'
	a, b int  // line indexes in a and b (the position for an insertion or deletion)
}

// diff returns the edit script from a longest common subsequence.
func diff(a, b []string) []op {
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', i, j})
			i++
		default:
			ops = append(ops, op{'+', i, j})
			j++
		}
	}
	return ops
}
