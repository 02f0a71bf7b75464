// Package stacktest lets a test see where the process's goroutines stand:
// a test that must prove a call waits (for a goroutine, a lock) holds the
// thing waited for and polls until the caller is seen blocked inside the
// wait, rather than sleeping and hoping.
package stacktest

import (
	"bytes"
	"runtime"
)

// Has reports whether some goroutine's stack holds inner, called (at any
// depth) from outer. inner and outer are substrings of the stack's
// function lines, such as "sync.(*WaitGroup).Wait(" and
// "/node.(*Node).Serve(": end them with "(" so that a function is not
// taken for another whose name it begins.
func Has(outer, inner string) bool {
	buf := make([]byte, 1<<20)
	for {
		k := runtime.Stack(buf, true)
		if k < len(buf) {
			buf = buf[:k]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if i := bytes.Index(g, []byte(inner)); i >= 0 && bytes.Contains(g[i:], []byte(outer)) {
			return true
		}
	}
	return false
}
