package sitetest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// FIFOBound is how long [Unblocked] waits for an operation that a FIFO
// could block in open(2). An operation that does not block returns in
// microseconds; the bound only turns a hang into a failure.
const FIFOBound = 20 * time.Second

// MakeFIFO puts a FIFO at path (making its directory), as an intruder or a
// mistaken hand could in a directory site.
func MakeFIFO(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(dirOf(path), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return "."
}

// Unblocked runs op, what of the code under test may open the FIFOs at
// fifos, and returns op's result. An open of a FIFO for reading blocks
// until a writer opens it, out of any context's reach: if op has not
// returned within FIFOBound, Unblocked opens and closes each FIFO for
// writing, again and again until op returns (each lets a blocked open
// return, and the reads after it find the end), and fails the test naming
// what, so that the old code fails the test rather than hangs it.
func Unblocked[T any](t testing.TB, what string, fifos []string, op func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- op() }()
	timer := time.NewTimer(FIFOBound)
	defer timer.Stop()
	select {
	case v := <-done:
		return v
	case <-timer.C:
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		// O_RDWR never blocks on a FIFO, and counts as a writer.
		for _, p := range fifos {
			if f, err := os.OpenFile(p, os.O_RDWR, 0); err == nil {
				f.Close()
			}
		}
		select {
		case v := <-done:
			t.Fatalf("%s: blocked for more than %v (in open(2) of a FIFO at %v)", what, FIFOBound, fifos)
			return v
		case <-tick.C:
		}
	}
}
