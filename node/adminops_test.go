package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/vault"

	"go.yaml.in/yaml/v3"
)

// opFixture is an admin fixture with an admin, a reader and a principal of
// another nation besides the operator, auditor and writer.
func newOpFixture(t *testing.T) *adminFixture {
	t.Helper()
	return newAdminFixture(t, func(c *Config) {
		c.Principals = append(c.Principals,
			access.Principal{Name: "boss", Nation: "EST", Roles: []string{"admin"}},
			access.Principal{Name: "viewer", Nation: "EST", Roles: []string{"reader"}},
			access.Principal{Name: "spy", Nation: "FRA"},
		)
		for _, p := range []string{"boss", "viewer", "spy"} {
			c.S3.Credentials = append(c.S3.Credentials, CredentialConfig{Principal: p, AccessKey: "AK" + strings.ToUpper(p), SecretKey: "secret-of-" + p})
		}
	})
}

// op sends an operator request with a JSON body, signed as who.
func (f *adminFixture) op(t *testing.T, method, path, who string, body any) adminResp {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(b))
	sum := sha256.Sum256(b)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AK" + strings.ToUpper(who), SecretAccessKey: "secret-of-" + who}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return f.send(t, req)
}

// nodeState is what an operator endpoint could change: node.yaml, the
// jobs and the requests.
func nodeState(t *testing.T, n *Node) string {
	t.Helper()
	y, _ := os.ReadFile(filepath.Join(n.Dir, ConfigFile))
	js, _ := n.Jobs()
	rs, _ := n.Requests()
	b, _ := json.Marshal(struct {
		Y  string
		J  []Job
		R  []*Request
		Dr []string
	}{string(y), js, rs, drainingSites(n)})
	return string(b)
}

func drainingSites(n *Node) []string {
	var out []string
	for _, s := range n.Engine.Sites() {
		if n.Engine.IsDraining(s.ID) {
			out = append(out, s.ID)
		}
	}
	return out
}

// opBodies are valid bodies for each operator route, for the refusal
// test: a refusal must not come from a malformed body.
func opBodies(dir string) map[string]any {
	return map[string]any{
		"POST v1/sites":                  map[string]any{"id": "swe-1", "jurisdiction": "SWE", "provider": "gov-dc", "driver": "dir", "path": filepath.Join(dir, "swe-1")},
		"POST v1/sites/drain":            DrainRequest{Sites: "site=est-2"},
		"POST v1/vaults":                 map[string]any{"name": "newvault", "erasure": "2+1"},
		"PUT v1/config":                  ConfigProposal{Body: "log:\n  level: debug\n"},
		"PUT v1/vaults/{id}/policy":      map[string]any{"survive": "jurisdictions=1,sites=2"},
		"POST v1/vaults/{id}/rotate-key": RotateRequest{},
		"POST v1/principals":             map[string]any{"name": "newbie", "nation": "EST"},
		"POST v1/relabel":                Relabel{Vault: "registry", Key: "k", Label: "NATO RESTRICTED"},
		"POST v1/scrub":                  ScrubRequest{Repair: true},
		"POST v1/drill":                  DrillRequest{Lose: "jurisdiction=EST"},
		"POST v1/index/rebuild":          nil,
		"POST v1/jobs/{id}/cancel":       nil,
		"PUT v1/jobs/{id}/rate":          RateRequest{Rate: "1MiB"},
		"DELETE v1/sites/{id}":           nil,
		"DELETE v1/vaults/{id}":          nil,
		"DELETE v1/principals/{id}":      nil,
		"POST v1/datasets":               map[string]any{"dataset": "registry/2026/", "title": "Register", "label": "NATO UNCLASSIFIED"},
		"DELETE v1/datasets":             nil,
		"POST v1/peers":                  PeerAddRequest{Card: "embassy peer card v1\n", Fingerprint: "SHA256:x"},
		"DELETE v1/peers/{id}":           nil,
		"POST v1/shares":                 GrantRequest{Scope: "registry/2026/", To: "LUX", Level: "read", Ceiling: "NATO RESTRICTED", Expires: "30d"},
		"POST v1/shares/{id}/revoke":     nil,
		"POST v1/host/guests":            HostRequest{Peer: "LUX", Quota: "1TiB"},
		"DELETE v1/host/guests/{id}":     nil,
	}
}

// TestOperatorRoutesRefuseTheUnentitled: every operator route has a role;
// a writer, a reader, a principal of another nation, an auditor (for what
// changes, and for what only operators read: the Go profiles) and an
// unsigned request are refused, and nothing changes.
func TestOperatorRoutesRefuseTheUnentitled(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	bodies := opBodies(t.TempDir())
	ids := map[string]string{"v1/debug/pprof/{id}": "heap", "v1/jobs/{id}": "j-000000000000", "v1/jobs/{id}/rate": "j-000000000000", "v1/jobs/{id}/cancel": "j-000000000000", "v1/sites/{id}": "est-2",
		"v1/vaults/{id}/policy": "registry", "v1/vaults/{id}/rotate-key": "registry", "v1/vaults/{id}": "registry", "v1/principals/{id}": "clerk",
		"v1/peers/{id}": "lux1", "v1/shares/{id}/revoke": "00112233445566778899aabbccddeeff", "v1/shares/{id}/odrl": "00112233445566778899aabbccddeeff",
		"v1/host/guests/{id}": "lux1"}
	for _, rt := range slices.Concat(opRoutes, datasetRoutes, allianceRoutes, hostingRoutes) {
		if rt.auth != authOperator || len(rt.roles) == 0 {
			t.Errorf("%s %s: no operator role", rt.method, rt.path)
			continue
		}
		path := "/_embassy/" + strings.ReplaceAll(rt.path, "{id}", ids[rt.path])
		if rt.method == http.MethodDelete && rt.path == "v1/datasets" {
			path += "?dataset=registry/2026/"
		}
		changes := rt.method != http.MethodGet
		if _, ok := bodies[rt.method+" "+rt.path]; changes && !ok {
			t.Errorf("%s %s: no body in opBodies: add one", rt.method, rt.path)
		}
		who := []string{"clerk", "viewer", "spy", "wrong"}
		if changes || !slices.Contains(rt.roles, access.RoleAuditor) {
			// An auditor reads the log, nothing else: not the Go
			// profiles, which show what the node is doing.
			who = append(who, "aud")
		}
		if rt.roles[0] == access.RoleAdmin {
			who = append(who, "ops")
		}
		for _, w := range who {
			before := nodeState(t, n)
			var r adminResp
			if w == "wrong" {
				req, _ := http.NewRequest(rt.method, f.srv.URL+path, nil)
				r = f.send(t, req)
			} else {
				r = f.op(t, rt.method, path, w, bodies[rt.method+" "+rt.path])
			}
			if r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
				t.Errorf("%s %s as %s: %d %s, want a refusal", rt.method, path, w, r.status, r.body)
			}
			if after := nodeState(t, n); after != before {
				t.Errorf("%s %s as %s changed the node:\n%s\n%s", rt.method, path, w, before, after)
			}
		}
	}
}

// waitJob follows a job through the API until it ends.
func (f *adminFixture) waitJob(t *testing.T, id string) Job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r := f.op(t, "GET", "/_embassy/v1/jobs/"+id+"?wait=5s", "aud", nil)
		if r.status != 200 {
			t.Fatalf("job %s: %d %s", id, r.status, r.body)
		}
		var j Job
		if err := json.Unmarshal([]byte(r.body), &j); err != nil {
			t.Fatal(err)
		}
		if j.State.Finished() {
			return j
		}
	}
	t.Fatalf("job %s did not end", id)
	return Job{}
}

func decodeJob(t *testing.T, r adminResp) Job {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("starting a job: %d %s", r.status, r.body)
	}
	var j Job
	if err := json.Unmarshal([]byte(r.body), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestOperatorRoutesWork: an operator changes the running node through the
// API, each change in force at once and the same as offline.
func TestOperatorRoutesWork(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	ctx := vault.WithPrincipal(t.Context(), access.Principal{Name: "clerk", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}})
	put := func(key string) {
		t.Helper()
		if _, err := n.Engine.Put(vault.AsSystem(ctx), "registry", key, strings.NewReader(strings.Repeat(key, 100)), vault.PutOptions{Size: 100}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b", "c"} {
		put(k)
	}
	sitesDir := t.TempDir()
	// A site added is in the running engine at once.
	r := f.op(t, "POST", "/_embassy/v1/sites", "ops", map[string]any{"id": "swe-1", "jurisdiction": "SWE", "provider": "gov-dc", "driver": "dir", "path": filepath.Join(sitesDir, "swe-1")})
	if r.status != 201 {
		t.Fatalf("site add: %d %s", r.status, r.body)
	}
	if _, ok := n.Engine.Site("swe-1"); !ok {
		t.Fatal("the added site is not in the running engine")
	}
	if r := f.op(t, "POST", "/_embassy/v1/sites", "ops", map[string]any{"id": "swe-1", "jurisdiction": "SWE", "provider": "gov-dc", "driver": "dir", "path": filepath.Join(sitesDir, "x")}); r.status != 409 {
		t.Errorf("the same site twice: %d %s", r.status, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/sites", "ops", `{"id": "swe-2", "jurisdiction": "SWE", "bogus": 1}`); r.status != 400 || !strings.Contains(r.body, "bogus") {
		t.Errorf("an unknown field: %d %s", r.status, r.body)
	}
	// A vault, and a policy raised.
	if r := f.op(t, "POST", "/_embassy/v1/vaults", "ops", map[string]any{"name": "maps", "erasure": "2+1"}); r.status != 201 {
		t.Fatalf("vault create: %d %s", r.status, r.body)
	}
	if _, err := n.Engine.Vault("maps"); err != nil {
		t.Fatal(err)
	}
	if r := f.op(t, "PUT", "/_embassy/v1/vaults/maps/policy", "ops", map[string]any{"erasure": "2+2"}); r.status != 200 {
		t.Fatalf("raise policy: %d %s", r.status, r.body)
	}
	if v, _ := n.Engine.Vault("maps"); v.Policy.M != 2 {
		t.Errorf("the raised policy is not in force: %+v", v.Policy)
	}
	// Weakening goes to the custodians.
	r = f.op(t, "PUT", "/_embassy/v1/vaults/maps/policy", "ops", map[string]any{"erasure": "2+1"})
	if r.status != 409 || !strings.Contains(r.body, "approval_required") {
		t.Errorf("weaken policy: %d %s", r.status, r.body)
	}
	if v, _ := n.Engine.Vault("maps"); v.Policy.M != 2 {
		t.Errorf("a weakened policy took effect without custodians: %+v", v.Policy)
	}
	// Principals are the admin's.
	if r := f.op(t, "POST", "/_embassy/v1/principals", "boss", map[string]any{"name": "newbie", "nation": "EST"}); r.status != 201 {
		t.Errorf("principal add: %d %s", r.status, r.body)
	}
	if p := n.Principal("newbie"); p.Nation != "EST" {
		t.Errorf("the principal is not in force: %+v", p)
	}
	// A scrub job.
	j := f.waitJob(t, decodeJob(t, f.op(t, "POST", "/_embassy/v1/scrub", "ops", ScrubRequest{})).ID)
	var sr struct {
		Versions int `json:"versions"`
	}
	json.Unmarshal(j.Result, &sr)
	if j.State != JobDone || j.Progress.Done != 3 || j.Principal != "ops" || sr.Versions != 3 {
		t.Errorf("scrub job: %+v %s", j, j.Result)
	}
	// A deep scrub reads what the plain one reads, once, and
	// authenticates every stripe of it.
	var plain, deep struct {
		BytesRead int64 `json:"bytes_read"`
		Stripes   int64 `json:"stripes_authenticated"`
	}
	json.Unmarshal(j.Result, &plain)
	j = f.waitJob(t, decodeJob(t, f.op(t, "POST", "/_embassy/v1/scrub", "ops", ScrubRequest{Deep: true})).ID)
	json.Unmarshal(j.Result, &deep)
	if j.State != JobDone || j.Params["deep"] != "true" || deep.BytesRead != plain.BytesRead || plain.Stripes != 0 || deep.Stripes < 3 {
		t.Errorf("deep scrub job: %+v %s; plain: %+v", j, j.Result, plain)
	}
	// A drain, while writes go on: no new write lands on the drained site.
	j = decodeJob(t, f.op(t, "POST", "/_embassy/v1/sites/drain", "ops", DrainRequest{Sites: "site=est-2"}))
	put("d")
	j = f.waitJob(t, j.ID)
	if j.State != JobDone {
		t.Fatalf("drain job: %+v", j)
	}
	var rep DrainReport
	if err := json.Unmarshal(j.Result, &rep); err != nil || rep.Remaining["est-2"] != 0 {
		t.Errorf("drain report: %v %s", err, j.Result)
	}
	loc, err := n.Engine.Locate(vault.AsSystem(ctx), "registry", "d", [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loc {
		if l.Site == "est-2" {
			t.Errorf("a write during the drain landed on the drained site: %+v", l)
		}
	}
	// Jobs are listed, newest first; a finished one cannot be cancelled.
	r = f.op(t, "GET", "/_embassy/v1/jobs", "aud", nil)
	var js []Job
	if err := json.Unmarshal([]byte(r.body), &js); err != nil || len(js) != 3 || js[0].Kind != "drain" || js[1].Kind != "scrub" || js[2].Kind != "scrub" {
		t.Errorf("jobs: %v %s", err, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/jobs/"+j.ID+"/cancel", "ops", nil); r.status != 409 {
		t.Errorf("cancel a finished job: %d %s", r.status, r.body)
	}
	if r := f.op(t, "GET", "/_embassy/v1/jobs/j-nonesuch", "ops", nil); r.status != 404 {
		t.Errorf("no such job: %d %s", r.status, r.body)
	}
	// The empty site goes, at once.
	if r := f.op(t, "DELETE", "/_embassy/v1/sites/est-2", "ops", nil); r.status != 200 {
		t.Errorf("site rm: %d %s", r.status, r.body)
	}
	if _, ok := n.Engine.Site("est-2"); ok {
		t.Error("the removed site is still in the running engine")
	}
}

// TestJobsSurviveARestart: a job running when the node stops is reported
// interrupted on the next start; it does not vanish.
func TestJobsSurviveARestart(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	started := make(chan struct{})
	j, err := n.StartJob("scrub", nil, "ops", func(ctx context.Context, progress func(done, total int64)) (any, error) {
		progress(1, 10)
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	got, _ := n.JobByID(j.ID)
	if got.State != JobRunning || got.Progress.Done != 1 || got.Progress.Total != 10 {
		t.Errorf("running: %+v", got)
	}
	n.Close()
	f.cn.n = f.cn.open(t)
	f.cn.unseal(t, "alice", "bob")
	got, err = f.cn.n.JobByID(j.ID)
	if err != nil || got.State != JobInterrupted || got.Error == "" {
		t.Errorf("after a restart: %+v %v", got, err)
	}
	// The interruption is on the audit log.
	evs, err := f.cn.n.AuditLogEvents(t.Context(), AuditQuery{Kind: KindJobEnd})
	if err != nil || len(evs) != 1 || evs[0].Detail["job"] != j.ID || evs[0].Detail["state"] != "interrupted" || !strings.HasPrefix(evs[0].Outcome, "interrupted: ") {
		t.Errorf("job.end of the interrupted job: %v %+v", err, evs)
	}
	// jobs.json is authenticated: a hand edit is refused.
	p := filepath.Join(f.cn.dir, JobsFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("interrupted"), []byte("done\u0000"), 1), 0o600)
	f.cn.n.Close()
	f.cn.n = f.cn.open(t)
	f.cn.unseal(t, "alice", "bob")
	if _, err := f.cn.n.Jobs(); err == nil {
		t.Error("a hand-edited jobs.json was accepted")
	}
}

// TestCancelJob: a running job is cancelled by an operator and says by
// whom.
func TestCancelJob(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	started := make(chan struct{})
	j, err := n.StartJob("drill", nil, "ops", func(ctx context.Context, progress func(done, total int64)) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	r := f.op(t, "POST", "/_embassy/v1/jobs/"+j.ID+"/cancel", "ops", nil)
	if r.status != 200 || !strings.Contains(r.body, `"state": "cancelled"`) || !strings.Contains(r.body, `"cancelled_by": "ops"`) {
		t.Errorf("cancel: %d %s", r.status, r.body)
	}
}

// TestBackgroundScrubIsAJob: the scrub a serving node runs every
// scrub.interval is a job, listed with the others.
func TestBackgroundScrubIsAJob(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	c := *n.Config
	iv := durationYAML(20 * time.Millisecond)
	c.Scrub.Interval = &iv
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.runScrubs(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(time.Minute)
	for {
		js, _ := n.Jobs()
		for _, j := range js {
			if j.Kind == "scrub" && j.Params["background"] == "true" && j.State == JobDone && j.Principal == "(background)" {
				// Deep unless scrub.deep is set false.
				if j.Params["deep"] != "true" {
					t.Errorf("the background scrub is not deep by default: %+v", j.Params)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background scrub job: %+v", js)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJobRateChangesWhileRunning: an operator changes a running job's rate
// limit; the job reads the new one at its next step.
func TestJobRateChangesWhileRunning(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	seen := make(chan int64, 10)
	next := make(chan struct{})
	j, err := n.StartRatedJob("scrub", nil, "ops", 1<<20, func(ctx context.Context, progress func(done, total int64), rate func() int64) (any, error) {
		seen <- rate()
		<-next
		seen <- rate()
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-seen; r != 1<<20 {
		t.Errorf("initial rate %d", r)
	}
	r := f.op(t, "PUT", "/_embassy/v1/jobs/"+j.ID+"/rate", "ops", RateRequest{Rate: "20MiB"})
	if r.status != 200 || !strings.Contains(r.body, `"rate_limit": 20971520`) {
		t.Errorf("set rate: %d %s", r.status, r.body)
	}
	if r := f.op(t, "PUT", "/_embassy/v1/jobs/"+j.ID+"/rate", "ops", RateRequest{Rate: "fast"}); r.status != 400 {
		t.Errorf("a bad rate: %d %s", r.status, r.body)
	}
	close(next)
	if r := <-seen; r != 20<<20 {
		t.Errorf("the job read rate %d after the change, want %d", r, 20<<20)
	}
	f.waitJob(t, j.ID)
	if r := f.op(t, "PUT", "/_embassy/v1/jobs/"+j.ID+"/rate", "ops", RateRequest{Rate: "1MiB"}); r.status != 409 {
		t.Errorf("rate of an ended job: %d %s", r.status, r.body)
	}
}

// TestJobOutcomesOnTheAuditLog: every job's end is on the audit log
// (job.end) with its state, who started it, who cancelled it, the error and
// its counts; a change of a job's rate is recorded with who made it.
func TestJobOutcomesOnTheAuditLog(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	ctx := vault.AsSystem(t.Context())
	for _, k := range []string{"a", "b"} {
		if _, err := n.Engine.Put(ctx, "registry", k, strings.NewReader(k), vault.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	done := f.waitJob(t, decodeJob(t, f.op(t, "POST", "/_embassy/v1/scrub", "ops", ScrubRequest{Rate: "1GiB"})).ID)
	failed, err := n.StartJob("drill", map[string]string{"lose": "site=est-1"}, "ops", func(ctx context.Context, progress func(done, total int64)) (any, error) {
		progress(1, 4)
		return nil, errors.New("the sites would not answer")
	})
	if err != nil {
		t.Fatal(err)
	}
	f.waitJob(t, failed.ID)
	started := make(chan struct{})
	running, err := n.StartRatedJob("scrub", nil, "ops", 0, func(ctx context.Context, progress func(done, total int64), rate func() int64) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if r := f.op(t, "PUT", "/_embassy/v1/jobs/"+running.ID+"/rate", "ops", RateRequest{Rate: "2MiB"}); r.status != 200 {
		t.Fatalf("rate: %d %s", r.status, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/jobs/"+running.ID+"/cancel", "boss", nil); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	evs, err := n.AuditLogEvents(t.Context(), AuditQuery{Kind: "job"})
	if err != nil {
		t.Fatal(err)
	}
	ends := map[string]AuditEntry{}
	var rates []AuditEntry
	for _, e := range evs {
		switch e.Kind {
		case KindJobEnd:
			ends[e.Detail["job"]] = e
		case KindJobRate:
			rates = append(rates, e)
		}
	}
	tests := []struct {
		name    string
		id      string
		want    map[string]string
		outcome string
	}{
		{"done", done.ID, map[string]string{"job_kind": "scrub", "state": "done", "principal": "ops", "done": "2", "total": "2", "param.rate": "1GiB", "result.versions": "2"}, ""},
		{"failed", failed.ID, map[string]string{"job_kind": "drill", "state": "failed", "done": "1", "total": "4", "param.lose": "site=est-1", "error": "the sites would not answer"}, "failed: the sites would not answer"},
		{"cancelled", running.ID, map[string]string{"job_kind": "scrub", "state": "cancelled", "principal": "ops", "cancelled_by": "boss"}, "cancelled: cancelled by boss"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := ends[tc.id]
			if !ok {
				t.Fatalf("no job.end for job %s among %d job events", tc.id, len(evs))
			}
			for k, v := range tc.want {
				if e.Detail[k] != v {
					t.Errorf("detail %s = %q, want %q (%v)", k, e.Detail[k], v, e.Detail)
				}
			}
			if e.Outcome != tc.outcome || e.Actor != "ops" {
				t.Errorf("outcome %q actor %q, want %q ops", e.Outcome, e.Actor, tc.outcome)
			}
		})
	}
	if len(rates) != 1 || rates[0].Actor != "ops" || rates[0].Detail["job"] != running.ID || rates[0].Detail["rate"] != "2097152" || rates[0].Detail["previous_rate"] != "0" {
		t.Errorf("job.rate events: %+v", rates)
	}
}

// TestScrubDeepDefault: scrub.deep is on unless set false, and a node.yaml
// that sets it false keeps it off.
func TestScrubDeepDefault(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want bool
	}{
		{"interval: 24h\n", true},
		{"deep: true\n", true},
		{"deep: false\n", false},
	} {
		var sc ScrubConfig
		if err := yaml.Unmarshal([]byte(c.yaml), &sc); err != nil {
			t.Fatal(err)
		}
		if got := sc.DeepOr(); got != c.want {
			t.Errorf("scrub %q: deep %v, want %v", c.yaml, got, c.want)
		}
		out, err := yaml.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		var back ScrubConfig
		if err := yaml.Unmarshal(out, &back); err != nil || back.DeepOr() != c.want {
			t.Errorf("scrub %q written as %q reads back deep %v (%v)", c.yaml, out, back.DeepOr(), err)
		}
	}
}
