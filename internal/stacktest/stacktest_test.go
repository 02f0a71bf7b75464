package stacktest

import (
	"runtime"
	"sync"
	"testing"
)

//go:noinline
func blockedIn(wg *sync.WaitGroup, entered chan<- struct{}) {
	close(entered)
	wg.Wait()
}

func TestHas(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	entered := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		blockedIn(&wg, entered)
	}()
	<-entered
	// blockedIn may not be in Wait yet: poll until it is.
	for !Has("stacktest.blockedIn(", "sync.(*WaitGroup).Wait(") {
		select {
		case <-done:
			t.Fatal("blockedIn returned before it was released")
		default:
			runtime.Gosched()
		}
	}
	for _, c := range []struct{ name, outer, inner string }{
		{"order reversed", "sync.(*WaitGroup).Wait(", "stacktest.blockedIn("},
		{"no such caller", "stacktest.notAFunction(", "sync.(*WaitGroup).Wait("},
		{"no such callee", "stacktest.blockedIn(", "stacktest.notAFunction("},
	} {
		if Has(c.outer, c.inner) {
			t.Errorf("%s: Has(%q, %q) = true", c.name, c.outer, c.inner)
		}
	}
	wg.Done()
	<-done
	if Has("stacktest.blockedIn(", "sync.(*WaitGroup).Wait(") {
		t.Error("Has still sees blockedIn waiting after it returned")
	}
}
