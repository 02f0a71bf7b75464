package httpguard

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineRecorder is a ResponseWriter that records the read deadlines set
// through its ResponseController.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set []time.Time
}

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// chunkReader returns at most chunk bytes a read.
type chunkReader struct {
	r     io.Reader
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.chunk)])
}

// TestRateDeadlineMovedInSteps: a body read fast, 4 KiB at a time, moves
// the connection's read deadline a few times, not at every read, and the
// deadline set is never earlier than the rate's (the grace, then the time
// of each read plus at most Slack); once the body is in, the deadline is
// cleared.
func TestRateDeadlineMovedInSteps(t *testing.T) {
	l := Limits{Grace: 30 * time.Second, MinRate: 64 << 10, Slack: 60 * time.Second}
	const size, chunk = 4 << 20, 4 << 10
	var reads int
	var got []byte
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Body.Read(buf)
			got = append(got, buf[:n]...)
			reads++
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
		}
	}), l)
	start := time.Now()
	body := bytes.Repeat([]byte{7}, size)
	req := httptest.NewRequest("PUT", "/x", &chunkReader{r: bytes.NewReader(body), chunk: chunk})
	h.ServeHTTP(rec, req)
	end := time.Now()

	if len(got) != size {
		t.Fatalf("read %d bytes, want %d", len(got), size)
	}
	if len(rec.set) < 3 {
		t.Fatalf("read deadlines set: %v; want the grace, at least one move, and the clearing", rec.set)
	}
	// The grace first; the clearing last.
	if d := rec.set[0]; d.Before(start.Add(l.Grace)) || d.After(end.Add(l.Grace)) {
		t.Errorf("first deadline %v, want the grace (%v) from the start", d, l.Grace)
	}
	if d := rec.set[len(rec.set)-1]; !d.IsZero() {
		t.Errorf("last deadline %v, want it cleared once the body is in", d)
	}
	// Every move is later than the one before, and no earlier than the
	// rate's deadline could be at the time: at least Slack ahead of the
	// start is all a fast body can have bought.
	moves := rec.set[1 : len(rec.set)-1]
	for i, d := range moves {
		if i > 0 && !d.After(moves[i-1]) {
			t.Errorf("deadline %d (%v) not after the one before (%v)", i, d, moves[i-1])
		}
		if d.Before(start.Add(l.Grace)) {
			t.Errorf("deadline %d (%v) before the grace's", i, d)
		}
	}
	// The deadline moves once the body has bought half a step more
	// (step: a second here): while a fast body saves up credit, at most
	// Slack of it, and then as the time passes; not at each read.
	step := time.Second
	elapsed := end.Sub(start)
	if most := int(2*l.Slack/step) + int(2*elapsed/step) + 2; len(moves) > most || len(moves) >= reads/4 {
		t.Errorf("the read deadline moved %d times in %d reads over %v; want at most %d", len(moves), reads, elapsed, most)
	}
	// What the body bought: Grace and a second of every 64 KiB read, up
	// to Slack ahead of its last read (after start).
	bought := start.Add(min(l.Grace+time.Duration(size)*time.Second/time.Duration(l.MinRate), l.Slack))
	if last := moves[len(moves)-1]; last.Before(bought) {
		t.Errorf("last deadline %v, before %v: earlier than the body bought", last, bought)
	}
}

// trickleReader returns a byte a read, every gap.
type trickleReader struct {
	left int
	gap  time.Duration
}

func (r *trickleReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.gap)
	r.left--
	p[0] = 1
	return 1, nil
}

// TestRateDeadlineNotMovedBehindTheRate: a body trickling a byte every 10
// ms, far below the rate, never moves the connection's read deadline past
// the grace (and the credit of its bytes) by more than a step: the reads
// the step lets through after the rate's deadline buy nothing. (This
// recorder does not cut the connection; a server does, at that deadline.)
func TestRateDeadlineNotMovedBehindTheRate(t *testing.T) {
	l := Limits{Grace: 50 * time.Millisecond, MinRate: 64 << 10, Slack: 200 * time.Millisecond}
	const bytes = 30 // 300 ms of trickle, six times the grace
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			t.Errorf("read: %v", err)
		}
	}), l)
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/x", &trickleReader{left: bytes, gap: 10 * time.Millisecond}))
	if len(rec.set) < 2 {
		t.Fatalf("read deadlines set: %v; want the grace and the clearing at least", rec.set)
	}
	grace := rec.set[0]
	step := l.Slack / 8
	most := grace.Add(step + bytes*time.Second/time.Duration(l.MinRate))
	for i, d := range rec.set[1 : len(rec.set)-1] {
		if d.After(most) {
			t.Errorf("deadline %d moved to %v after the grace; want at most %v (a step and the bytes' credit)", i+1, d.Sub(grace), most.Sub(grace))
		}
	}
}
