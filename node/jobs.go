package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/audit"
)

// Long operations (a drain, a scrub, a drill, an index rebuild, a key
// rotation) run in a serving node as jobs: started by an admin request,
// they outlive the client that started it (a closed terminal, a dropped
// connection, Ctrl-C), report their progress to whoever asks, and can be
// cancelled. At most MaxRunningJobs run at once; the others wait, queued.
//
// The jobs are kept in jobs.json in the node directory, authenticated like
// the other node files, and written at every change of state and at most
// every jobSaveEvery while one runs. A job that was queued or running when
// the node stopped (a crash, a restart) is reported on the next start as
// "interrupted", with the error saying so: it never silently vanishes. Each
// operation is resumable (a drain or a rotation carries on where it
// stopped when run again), so the operator starts it again.

// JobsFile keeps the node's jobs.
const JobsFile = "jobs.json"

// MaxRunningJobs bounds the jobs running at once.
const MaxRunningJobs = 2

// maxKeptJobs bounds the finished jobs kept.
const maxKeptJobs = 100

const jobSaveEvery = 5 * time.Second

// JobState is where a job is.
type JobState string

// Job states.
const (
	JobQueued      JobState = "queued"
	JobRunning     JobState = "running"
	JobDone        JobState = "done"
	JobFailed      JobState = "failed"
	JobCancelled   JobState = "cancelled"
	JobInterrupted JobState = "interrupted"
)

// Finished reports whether the job has ended.
func (s JobState) Finished() bool {
	return s != JobQueued && s != JobRunning
}

// JobProgress is how far a job is.
type JobProgress struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total"` // 0 when not known
	Unit  string `json:"unit"`  // "versions"
	// Rate is Done per second since the job started running.
	Rate float64 `json:"rate"`
	// ETASeconds is the time left at Rate, when Total is known.
	ETASeconds float64 `json:"eta_seconds"`
}

// Job is a long operation in the node.
type Job struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"` // drain, scrub, drill, index-rebuild, index-migrate, key-rotate
	Params    map[string]string `json:"params"`
	Principal string            `json:"principal"` // who started it
	State     JobState          `json:"state"`
	Created   time.Time         `json:"created"`
	Started   time.Time         `json:"started,omitzero"`
	Ended     time.Time         `json:"ended,omitzero"`
	Progress  JobProgress       `json:"progress"`
	// Result is the operation's report (as the offline command's --json
	// prints it) once the job is done, or as far as it got.
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// CancelledBy names who cancelled it.
	CancelledBy string `json:"cancelled_by,omitempty"`
	// RateLimit is the read rate a scrub or drain is held to, in bytes
	// per second (0: none); Rated says whether the job has one to change.
	RateLimit int64 `json:"rate_limit"`
	Rated     bool  `json:"rated"`
}

// RatedJobFunc is a JobFunc that reads, at each step, the rate limit the
// operator may change while it runs.
type RatedJobFunc func(ctx context.Context, progress func(done, total int64), rate func() int64) (any, error)

// JobFunc runs a job's operation; it reports progress with progress and
// returns its report.
type JobFunc func(ctx context.Context, progress func(done, total int64)) (any, error)

// ErrNoSuchJob: no job has this id.
var ErrNoSuchJob = errors.New("no such job")

// jobRun is a job and what runs it.
type jobRun struct {
	Job
	run    JobFunc
	rate   *atomic.Int64 // nil: the job has no rate limit to change
	cancel context.CancelFunc
	done   chan struct{}
	saved  time.Time
}

// jobTable is a node's jobs.
type jobTable struct {
	mu      sync.Mutex
	loaded  bool
	jobs    []*jobRun // oldest first
	slots   chan struct{}
	wg      sync.WaitGroup
	closing bool
}

type jobsFile struct {
	Jobs []Job `json:"jobs"`
}

// loadJobs reads jobs.json once, reporting what was queued or running as
// interrupted. Called with t.mu held.
func (n *Node) loadJobs() error {
	t := &n.jobTable
	if t.loaded {
		return nil
	}
	if t.slots == nil {
		t.slots = make(chan struct{}, MaxRunningJobs)
	}
	f, err := n.loadVerified(JobsFile)
	if err != nil {
		return err
	}
	t.loaded = true
	if f == nil {
		return nil
	}
	var jf jobsFile
	if err := json.Unmarshal(f.body, &jf); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNodeFile, JobsFile, err)
	}
	changed := false
	for _, j := range jf.Jobs {
		if !j.State.Finished() {
			j.State = JobInterrupted
			j.Ended = time.Now().UTC()
			j.Error = "the node stopped (a crash or a restart) while the job was " + "queued or running; it did not finish. Start it again: the operation carries on where it stopped"
			changed = true
			n.recordJobEnd(j)
		}
		if j.Params == nil {
			j.Params = map[string]string{}
		}
		t.jobs = append(t.jobs, &jobRun{Job: j})
	}
	if changed {
		return n.saveJobsLocked()
	}
	return nil
}

// saveJobsLocked writes jobs.json; t.mu is held.
func (n *Node) saveJobsLocked() error {
	t := &n.jobTable
	jf := jobsFile{Jobs: make([]Job, 0, len(t.jobs))}
	for _, j := range t.jobs {
		jf.Jobs = append(jf.Jobs, j.Job)
	}
	b, err := json.MarshalIndent(jf, "", "  ")
	if err != nil {
		return err
	}
	return n.saveNodeFile(JobsFile, append(b, '\n'))
}

// saveJobs writes jobs.json, logging a failure (the job goes on).
func (n *Node) saveJobs() {
	if err := n.saveJobsLocked(); err != nil {
		n.Log.Error("jobs: cannot write "+JobsFile, "err", err)
	}
}

// StartJob starts a job running fn, on behalf of principal, and returns
// it. The job runs until fn returns, it is cancelled or the node closes.
func (n *Node) StartJob(kind string, params map[string]string, principal string, fn JobFunc) (Job, error) {
	return n.startJob(kind, params, principal, fn, nil)
}

// StartRatedJob starts a job whose read rate (bytes per second, 0 for
// none) the operator can change while it runs (SetJobRate).
func (n *Node) StartRatedJob(kind string, params map[string]string, principal string, rate int64, fn RatedJobFunc) (Job, error) {
	lim := new(atomic.Int64)
	lim.Store(rate)
	return n.startJob(kind, params, principal, func(ctx context.Context, progress func(done, total int64)) (any, error) {
		return fn(ctx, progress, lim.Load)
	}, lim)
}

func (n *Node) startJob(kind string, params map[string]string, principal string, fn JobFunc, lim *atomic.Int64) (Job, error) {
	if err := n.Ready(); err != nil {
		return Job{}, err // a sealed node can neither run a job nor record it
	}
	t := &n.jobTable
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return Job{}, errors.New("the node is shutting down")
	}
	if err := n.loadJobs(); err != nil {
		return Job{}, err
	}
	var id [6]byte
	rand.Read(id[:])
	if params == nil {
		params = map[string]string{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &jobRun{Job: Job{ID: "j-" + hex.EncodeToString(id[:]), Kind: kind, Params: params, Principal: principal,
		State: JobQueued, Created: time.Now().UTC(), Progress: JobProgress{Unit: "versions"}}, run: fn, rate: lim, cancel: cancel, done: make(chan struct{})}
	if lim != nil {
		j.Rated, j.RateLimit = true, lim.Load()
	}
	t.jobs = append(t.jobs, j)
	n.pruneJobsLocked()
	n.saveJobs()
	t.wg.Add(1)
	go n.runJob(ctx, j)
	return j.Job, nil
}

// pruneJobsLocked drops the oldest finished jobs beyond maxKeptJobs.
func (n *Node) pruneJobsLocked() {
	t := &n.jobTable
	for len(t.jobs) > maxKeptJobs {
		i := slices.IndexFunc(t.jobs, func(j *jobRun) bool { return j.State.Finished() })
		if i < 0 {
			return
		}
		t.jobs = slices.Delete(t.jobs, i, i+1)
	}
}

func (n *Node) runJob(ctx context.Context, j *jobRun) {
	t := &n.jobTable
	defer t.wg.Done()
	defer close(j.done)
	defer j.cancel()
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		n.endJob(j, nil, ctx.Err())
		return
	}
	defer func() { <-t.slots }()
	t.mu.Lock()
	if j.State != JobQueued { // cancelled while it waited
		t.mu.Unlock()
		return
	}
	j.State, j.Started = JobRunning, time.Now().UTC()
	n.saveJobs()
	t.mu.Unlock()
	n.Log.Info("job started", "job", j.ID, "kind", j.Kind, "params", j.Params, "principal", j.Principal)
	progress := func(done, total int64) {
		t.mu.Lock()
		defer t.mu.Unlock()
		p := &j.Progress
		p.Done, p.Total = done, total
		if el := time.Since(j.Started).Seconds(); el > 0 {
			p.Rate = float64(done) / el
		}
		p.ETASeconds = 0
		if p.Total > 0 && p.Rate > 0 && p.Done < p.Total {
			p.ETASeconds = float64(p.Total-p.Done) / p.Rate
		}
		if time.Since(j.saved) >= jobSaveEvery {
			j.saved = time.Now()
			n.saveJobs()
		}
	}
	var res any
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("the job failed: %v", r)
			}
		}()
		res, err = j.run(ctx, progress)
	}()
	n.endJob(j, res, err)
}

// endJob records how a job ended, in jobs.json and on the audit log.
func (n *Node) endJob(j *jobRun, res any, err error) {
	t := &n.jobTable
	t.mu.Lock()
	if j.State.Finished() {
		t.mu.Unlock()
		return
	}
	j.Ended = time.Now().UTC()
	if res != nil {
		if b, merr := json.Marshal(res); merr == nil {
			j.Result = b
		}
	}
	switch {
	case err == nil:
		j.State = JobDone
		if j.Progress.Total > 0 {
			j.Progress.Done = max(j.Progress.Done, j.Progress.Total)
		}
		j.Progress.ETASeconds = 0
	case j.CancelledBy != "" && errors.Is(err, context.Canceled):
		j.State, j.Error = JobCancelled, "cancelled by "+j.CancelledBy
	case t.closing && errors.Is(err, context.Canceled):
		j.State, j.Error = JobInterrupted, "the node stopped while the job ran; start it again: the operation carries on where it stopped"
	default:
		j.State, j.Error = JobFailed, err.Error()
	}
	n.saveJobs()
	n.Log.Info("job ended", "job", j.ID, "kind", j.Kind, "state", j.State, "err", j.Error)
	ended := j.Job
	t.mu.Unlock()
	n.recordJobEnd(ended)
}

// Jobs returns the node's jobs, newest first.
func (n *Node) Jobs() ([]Job, error) {
	t := &n.jobTable
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := n.loadJobs(); err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(t.jobs))
	for i := len(t.jobs) - 1; i >= 0; i-- {
		out = append(out, t.jobs[i].Job)
	}
	return out, nil
}

// JobByID returns a job.
func (n *Node) JobByID(id string) (Job, error) {
	t := &n.jobTable
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := n.loadJobs(); err != nil {
		return Job{}, err
	}
	for _, j := range t.jobs {
		if j.ID == id {
			return j.Job, nil
		}
	}
	return Job{}, fmt.Errorf("%w: %s", ErrNoSuchJob, id)
}

// ErrJobFinished: the job has already ended.
var ErrJobFinished = errors.New("the job has already ended")

// CancelJob stops a queued or running job on behalf of principal. The
// operation stops at its next step; what it did stays done (every job's
// operation is resumable).
func (n *Node) CancelJob(id, principal string) (Job, error) {
	t := &n.jobTable
	t.mu.Lock()
	if err := n.loadJobs(); err != nil {
		t.mu.Unlock()
		return Job{}, err
	}
	var j *jobRun
	for _, x := range t.jobs {
		if x.ID == id {
			j = x
		}
	}
	switch {
	case j == nil:
		t.mu.Unlock()
		return Job{}, fmt.Errorf("%w: %s", ErrNoSuchJob, id)
	case j.State.Finished():
		st := j.State
		t.mu.Unlock()
		return j.Job, fmt.Errorf("job %s: %w (%s)", id, ErrJobFinished, st)
	}
	j.CancelledBy = principal
	var ended *Job
	if j.State == JobQueued {
		j.State, j.Ended, j.Error = JobCancelled, time.Now().UTC(), "cancelled by "+principal+" before it started"
		n.saveJobs()
		ended = new(j.Job)
	}
	cancel, done := j.cancel, j.done
	t.mu.Unlock()
	if ended != nil {
		n.recordJobEnd(*ended)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	return n.JobByID(id)
}

// WaitJob waits until the job ends or ctx is done, and returns it.
func (n *Node) WaitJob(ctx context.Context, id string) (Job, error) {
	t := &n.jobTable
	t.mu.Lock()
	var done chan struct{}
	for _, j := range t.jobs {
		if j.ID == id {
			done = j.done
		}
	}
	t.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return Job{}, ctx.Err()
		}
	}
	return n.JobByID(id)
}

// stopJobs cancels every job and waits for them (the node is closing):
// they are recorded as interrupted.
func (n *Node) stopJobs() {
	t := &n.jobTable
	t.mu.Lock()
	t.closing = true
	for _, j := range t.jobs {
		if j.cancel != nil {
			j.cancel()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// ErrNotRated: the job has no rate limit to change.
var ErrNotRated = errors.New("the job has no rate limit to change (only scrubs and drains have one)")

// SetJobRate changes a running or queued job's read rate limit, in bytes
// per second (0: none), on behalf of principal; it takes effect at the
// job's next read, and is recorded on the audit log (job.rate).
func (n *Node) SetJobRate(id string, rate int64, principal string) (Job, error) {
	t := &n.jobTable
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := n.loadJobs(); err != nil {
		return Job{}, err
	}
	for _, j := range t.jobs {
		if j.ID != id {
			continue
		}
		switch {
		case j.State.Finished():
			return j.Job, fmt.Errorf("job %s: %w (%s)", id, ErrJobFinished, j.State)
		case j.rate == nil:
			return j.Job, fmt.Errorf("job %s: %w", id, ErrNotRated)
		}
		old := j.rate.Swap(rate)
		j.RateLimit = rate
		n.saveJobs()
		n.recordBestEffort(context.Background(), audit.Event{Kind: KindJobRate, Actor: principal, Detail: map[string]string{
			"job": j.ID, "job_kind": j.Kind, "rate": strconv.FormatInt(rate, 10), "previous_rate": strconv.FormatInt(old, 10)}})
		return j.Job, nil
	}
	return Job{}, fmt.Errorf("%w: %s", ErrNoSuchJob, id)
}

// recordJobEnd records a job's outcome on the audit log (job.end): who
// started it, what it was asked, how it ended (done, failed, cancelled,
// interrupted, with the error and who cancelled it), how far it got, and
// the counts of its report. Best effort: the job has ended either way.
func (n *Node) recordJobEnd(j Job) {
	d := map[string]string{
		"job": j.ID, "job_kind": j.Kind, "state": string(j.State), "principal": j.Principal,
		"done": strconv.FormatInt(j.Progress.Done, 10), "total": strconv.FormatInt(j.Progress.Total, 10), "unit": j.Progress.Unit,
	}
	for _, k := range slices.Sorted(maps.Keys(j.Params)) {
		d["param."+k] = j.Params[k]
	}
	if !j.Started.IsZero() {
		d["started"] = j.Started.Format(time.RFC3339Nano)
		d["seconds"] = strconv.FormatFloat(j.Ended.Sub(j.Started).Seconds(), 'f', 3, 64)
	}
	if j.CancelledBy != "" {
		d["cancelled_by"] = j.CancelledBy
	}
	if j.Error != "" {
		d["error"] = j.Error
	}
	var res any
	if len(j.Result) > 0 && json.Unmarshal(j.Result, &res) == nil {
		for k, v := range audit.Details(res) {
			d["result."+k] = v
		}
	}
	ev := audit.Event{Kind: KindJobEnd, Actor: j.Principal, Detail: d}
	if j.State != JobDone {
		ev.Outcome = string(j.State) + ": " + j.Error
	}
	n.recordBestEffort(context.Background(), ev)
}
