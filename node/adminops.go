package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/s3/sigv4"
	"github.com/embassy-dev/embassy/vault"
)

// The operator endpoints that change a running node, and the jobs. Each is
// one implementation shared with the offline CLI: the handler calls the
// same Node method the offline command calls, acting as the principal whose
// credential signed the request, so the two-person rule, the validation and
// the access decisions are the ones offline. The role each needs is in
// opRoutes (and so in docs/admin-api.md's table).

// operatorRoles may call endpoints that change the node's operation.
var operatorRoles = []access.Role{access.RoleOperator}

// adminRoles may call endpoints that give access (principals).
var adminRoles = []access.Role{access.RoleAdmin}

var opRoutes = []adminRoute{
	{method: http.MethodGet, path: "v1/jobs", auth: authOperator, roles: readerRoles,
		doc: "jobs, newest first: `[Job]`", handle: (*Node).adminJobs},
	{method: http.MethodGet, path: "v1/jobs/{id}", auth: authOperator, roles: readerRoles,
		doc: "one job: `Job`, with its progress and, once ended, its result", handle: (*Node).adminJob},
	{method: http.MethodPost, path: "v1/jobs/{id}/cancel", auth: authOperator, roles: operatorRoles,
		doc: "cancel a queued or running job: `Job`", handle: (*Node).adminJobCancel},
	{method: http.MethodPut, path: "v1/jobs/{id}/rate", auth: authOperator, roles: operatorRoles,
		doc: "`{\"rate\": \"20MiB\"}`: change a running scrub's or drain's read rate limit (`\"0\"`: none): `Job`", handle: (*Node).adminJobRate},
	{method: http.MethodGet, path: "v1/sites", auth: authOperator, roles: readerRoles,
		doc: "sites and their state: `[SiteInfo]`", handle: (*Node).adminSites},
	{method: http.MethodPost, path: "v1/sites", auth: authOperator, roles: operatorRoles,
		doc: "add a site: `SiteConfig` (an s3 site's secret in `s3.secret_key`)", handle: (*Node).adminSiteAdd},
	{method: http.MethodDelete, path: "v1/sites/{id}", auth: authOperator, roles: operatorRoles,
		doc: "remove a site (one holding data takes two custodians)", handle: (*Node).adminSiteRemove},
	{method: http.MethodPost, path: "v1/sites/drain", auth: authOperator, roles: operatorRoles,
		doc: "`{\"sites\": SELECTOR}` (site=ID,provider=NAME,jurisdiction=CODE): drain, as a job: 202 `Job`", handle: (*Node).adminDrain},
	{method: http.MethodGet, path: "v1/config", auth: authOperator, roles: readerRoles,
		doc: "node.yaml in force, every secret replaced by a marker (`embassy-redacted:…`): `ConfigView`", handle: (*Node).adminConfigShow},
	{method: http.MethodPut, path: "v1/config", auth: authOperator, roles: adminRoles,
		doc: "`ConfigProposal`: propose a new node.yaml, as `embassy config edit` (markers keep their secrets): `ConfigEditAnswer` (applied, or the two-person request)", handle: (*Node).adminConfigPropose},
	{method: http.MethodGet, path: "v1/vaults", auth: authOperator, roles: readerRoles,
		doc: "vaults: `[VaultConfig]`", handle: (*Node).adminVaults},
	{method: http.MethodPost, path: "v1/vaults", auth: authOperator, roles: operatorRoles,
		doc: "create a vault: `VaultConfig`", handle: (*Node).adminVaultCreate},
	{method: http.MethodPut, path: "v1/vaults/{id}/policy", auth: authOperator, roles: operatorRoles,
		doc: "change a vault's policy: `PolicyChange` (weakening takes two custodians)", handle: (*Node).adminVaultPolicy},
	{method: http.MethodPost, path: "v1/vaults/{id}/rotate-key", auth: authOperator, roles: operatorRoles,
		doc: "`{\"resume\": BOOL}`: rotate the vault key (two custodians), or finish a rotation as a job: 202 `Job`", handle: (*Node).adminRotate},
	{method: http.MethodDelete, path: "v1/vaults/{id}", auth: authOperator, roles: operatorRoles,
		doc: "delete a vault with no current object, with its history, as `embassy vault rm` (two custodians): `{\"deleted\": NAME}`", handle: (*Node).adminVaultRemove},
	{method: http.MethodGet, path: "v1/principals", auth: authOperator, roles: readerRoles,
		doc: "principals: `[Principal]`", handle: (*Node).adminPrincipals},
	{method: http.MethodPost, path: "v1/principals", auth: authOperator, roles: adminRoles,
		doc: "add a principal: `Principal` (cleared above two_person.principal_level, or operator or admin, takes two custodians)", handle: (*Node).adminPrincipalAdd},
	{method: http.MethodDelete, path: "v1/principals/{id}", auth: authOperator, roles: adminRoles,
		doc: "remove a principal, as `embassy principal rm` (cleared above two_person.principal_level, or operator or admin, takes two custodians): `{\"removed\": NAME}`; its S3 credentials are refused from then on", handle: (*Node).adminPrincipalRemove},
	{method: http.MethodPost, path: "v1/relabel", auth: authOperator, roles: operatorRoles,
		doc: "`Relabel`: change an object version's label (lowering takes two custodians)", handle: (*Node).adminRelabel},
	{method: http.MethodPost, path: "v1/scrub", auth: authOperator, roles: operatorRoles,
		doc: "`ScrubRequest`: scrub (and repair) as a job: 202 `Job`", handle: (*Node).adminScrub},
	{method: http.MethodPost, path: "v1/drill", auth: authOperator, roles: operatorRoles,
		doc: "`DrillRequest`: a loss drill as a job: 202 `Job`", handle: (*Node).adminDrill},
	{method: http.MethodGet, path: "v1/debug/pprof/{id}", auth: authOperator, roles: operatorRoles,
		doc: "Go profiles (`net/http/pprof`): heap, goroutine, allocs, block, mutex, threadcreate, profile (`?seconds=N`), trace, cmdline, symbol, index", handle: (*Node).adminPprof},
	{method: http.MethodPost, path: "v1/index/rebuild", auth: authOperator, roles: operatorRoles,
		doc: "rebuild the index from the sites as a job: 202 `Job`", handle: (*Node).adminRebuild},
}

func init() { adminRoutes = append(adminRoutes, opRoutes...) }

// readSignedBody reads an operator request's body, checked against the
// payload hash the request was signed with.
func readSignedBody(r *http.Request, auth *sigv4.Auth) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(auth.Body(r.Body), maxAdminBody+1))
	if err != nil {
		if se, ok := errors.AsType[*sigv4.Error](err); ok {
			return nil, se
		}
		return nil, &sigv4.Error{Code: sigv4.IncompleteBody, Message: "reading the body: " + err.Error()}
	}
	if len(body) > maxAdminBody {
		return nil, &sigv4.Error{Code: sigv4.InvalidRequest, Message: fmt.Sprintf("the body is larger than %d bytes", maxAdminBody)}
	}
	return body, nil
}

// OpError is an operator endpoint's refusal: the error, and a code a
// client can act on.
type OpError struct {
	Error string `json:"error"`
	// Code is one of bad_request, not_found, conflict, denied,
	// approval_required, infeasible, blocked.
	Code string `json:"code"`
}

// opFail answers err with the status and code it calls for.
func opFail(w http.ResponseWriter, err error) {
	status, code := opStatus(err)
	writeJSON(w, status, OpError{Error: err.Error(), Code: code})
}

// opStatus is the status and code an operator endpoint answers err with.
func opStatus(err error) (int, string) {
	status, code := http.StatusBadRequest, "bad_request"
	var denied *access.DeniedError
	switch {
	case errors.Is(err, vault.ErrApprovalRequired):
		status, code = http.StatusConflict, "approval_required"
	case errors.As(err, &denied):
		status, code = http.StatusForbidden, "denied"
	case errors.Is(err, vault.ErrNoSuchVault), errors.Is(err, ErrNoSuchJob), errors.Is(err, vault.ErrNoSuchKey), errors.Is(err, vault.ErrNoSuchVersion), errors.Is(err, errNoSuchSite), errors.Is(err, errNoSuchPrincipal), errors.Is(err, errNoSuchProfile), errors.Is(err, errNoSuchPeer), errors.Is(err, errNoSuchGuest):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, placement.ErrInfeasible):
		status, code = http.StatusConflict, "infeasible"
	case errors.Is(err, ErrDrainBlocked):
		status, code = http.StatusConflict, "blocked"
	case errors.Is(err, ErrVaultExists), errors.Is(err, ErrJobFinished), errors.Is(err, ErrNotRated), errors.Is(err, errExists), errors.Is(err, ErrSealed):
		status, code = http.StatusConflict, "conflict"
	}
	return status, code
}

var (
	errNoSuchSite = errors.New("no such site")
	// errNoSuchPrincipal classes RemovePrincipal's "no principal NAME".
	errNoSuchPrincipal = errors.New("no such principal")
	errExists          = errors.New("already exists")
)

// tagged is err, classed as kind for opFail, with err's message unchanged:
// the node answers with the message the offline command prints.
type tagged struct{ err, kind error }

func (t tagged) Error() string   { return t.err.Error() }
func (t tagged) Unwrap() []error { return []error{t.err, t.kind} }

// decodeStrict decodes one JSON object into v: unknown fields, trailing
// data and a missing body are errors that name what was wrong.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("malformed request: the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed request: %w", err)
	}
	if dec.More() {
		return errors.New("malformed request: more than one JSON value")
	}
	return nil
}

// as returns a context acting as the calling principal.
func (c *adminCall) as(r *http.Request) context.Context {
	return vault.WithPrincipal(r.Context(), c.principal)
}

func (n *Node) adminJobs(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	js, err := n.Jobs()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, OpError{Error: err.Error(), Code: "internal"})
		return
	}
	writeJSON(w, http.StatusOK, js)
}

func (n *Node) adminJob(w http.ResponseWriter, r *http.Request, c *adminCall) {
	j, err := n.JobByID(c.id)
	if err != nil {
		opFail(w, err)
		return
	}
	// ?wait=DURATION (at most 30s) answers when the job ends or the time
	// passes, whichever is first: clients follow a job without polling
	// hard.
	if d, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil && d > 0 && !j.State.Finished() {
		ctx, cancel := context.WithTimeout(r.Context(), min(d, 30*time.Second))
		defer cancel()
		if jj, err := n.WaitJob(ctx, c.id); err == nil {
			j = jj
		} else if jj, err := n.JobByID(c.id); err == nil {
			j = jj
		}
	}
	writeJSON(w, http.StatusOK, j)
}

func (n *Node) adminJobCancel(w http.ResponseWriter, r *http.Request, c *adminCall) {
	j, err := n.CancelJob(c.id, c.principal.Name)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// SiteInfo is a site as the admin API lists it: its configuration
// (without secrets) and its state.
type SiteInfo struct {
	SiteConfig
	State          string `json:"state"`
	Reason         string `json:"reason,omitempty"`
	MarkerVerified bool   `json:"marker_verified"`
}

// SiteInfos lists the configured sites with their states.
func (n *Node) SiteInfos(ctx context.Context) []SiteInfo {
	n.mu.Lock()
	sites := append([]SiteConfig(nil), n.conf().Sites...)
	n.mu.Unlock()
	states := n.SiteStates(ctx, 10*time.Second)
	out := make([]SiteInfo, len(sites))
	for i, s := range sites {
		if s.S3 != nil {
			c := *s.S3
			c.SecretKey = ""
			s.S3 = &c
		}
		out[i] = SiteInfo{SiteConfig: s, State: "unknown"}
		for _, st := range states {
			if st.ID == s.ID {
				out[i].State, out[i].Reason, out[i].MarkerVerified = st.State, st.Reason, st.State == "ok"
			}
		}
	}
	return out
}

func (n *Node) adminSites(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	writeJSON(w, http.StatusOK, n.SiteInfos(r.Context()))
}

// ParseSiteRequest parses POST v1/sites.
func ParseSiteRequest(body []byte) (SiteConfig, error) {
	var s SiteConfig
	if err := decodeStrict(body, &s); err != nil {
		return s, err
	}
	if s.ID == "" {
		return s, errors.New("site: id is required")
	}
	if s.Control == "" {
		s.Control = s.Jurisdiction
	}
	return s, nil
}

func (n *Node) adminSiteAdd(w http.ResponseWriter, r *http.Request, c *adminCall) {
	s, err := ParseSiteRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	if err := n.AddSite(s); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			err = tagged{err, errExists}
		}
		opFail(w, err)
		return
	}
	for _, si := range n.SiteInfos(r.Context()) {
		if si.ID == s.ID {
			writeJSON(w, http.StatusCreated, si)
			return
		}
	}
	writeJSON(w, http.StatusCreated, s)
}

func (n *Node) adminSiteRemove(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if err := n.RemoveSite(c.as(r), c.id); err != nil {
		if strings.HasPrefix(err.Error(), "no site ") {
			err = tagged{err, errNoSuchSite}
		}
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": c.id})
}

// DrainRequest is POST v1/sites/drain's body.
type DrainRequest struct {
	// Sites selects the sites: site=ID, provider=NAME,
	// jurisdiction=CODE, control=CODE, comma-separated.
	Sites string `json:"sites"`
	// Rate limits reads, e.g. "50MiB" (per second); job rate changes it.
	Rate string `json:"rate,omitempty"`
}

// ParseDrainRequest parses POST v1/sites/drain.
func ParseDrainRequest(body []byte) (DrainRequest, error) {
	var d DrainRequest
	if err := decodeStrict(body, &d); err != nil {
		return d, err
	}
	if strings.TrimSpace(d.Sites) == "" {
		return d, errors.New("drain: name the sites (site=ID, provider=NAME or jurisdiction=CODE)")
	}
	if _, err := parseRate(d.Rate); err != nil {
		return d, fmt.Errorf("drain: %w", err)
	}
	return d, nil
}

// parseRate parses a rate limit ("50MiB", per second; "" or "0": none).
func parseRate(s string) (int64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	r, err := ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("rate: %w", err)
	}
	return int64(r), nil
}

// RateRequest is PUT v1/jobs/{id}/rate's body.
type RateRequest struct {
	// Rate is the new read limit, e.g. "20MiB" (per second); "0" for none.
	Rate string `json:"rate"`
}

// ParseRateRequest parses PUT v1/jobs/{id}/rate.
func ParseRateRequest(body []byte) (RateRequest, int64, error) {
	var q RateRequest
	if err := decodeStrict(body, &q); err != nil {
		return q, 0, err
	}
	if q.Rate == "" {
		return q, 0, errors.New("rate is required (\"0\" for no limit)")
	}
	r, err := parseRate(q.Rate)
	return q, r, err
}

func (n *Node) adminJobRate(w http.ResponseWriter, r *http.Request, c *adminCall) {
	_, rate, err := ParseRateRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	j, err := n.SetJobRate(c.id, rate, c.principal.Name)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// versionsTotal is the number of versions the node holds, for progress.
func (n *Node) versionsTotal(ctx context.Context) int64 {
	st, err := n.Index.Stats(ctx)
	if err != nil {
		return 0
	}
	return st.Versions
}

// StartDrain checks a drain and starts it as a job. A drain the remaining
// sites cannot take is refused before any job starts.
func (n *Node) StartDrain(ctx context.Context, ids []string, principal string, rate int64) (Job, error) {
	if err := n.Ready(); err != nil {
		return Job{}, err
	}
	// The sites are marked now, before the job is queued: every write
	// placed after the call returns avoids them.
	if err := n.markDraining(ctx, ids); err != nil {
		return Job{}, err
	}
	return n.StartRatedJob("drain", map[string]string{"sites": strings.Join(ids, ",")}, principal, rate, func(ctx context.Context, progress func(done, total int64), rate func() int64) (any, error) {
		total := n.versionsTotal(ctx)
		rep, err := n.drain(ctx, ids, func(r housekeeping.ScrubReport) { progress(int64(r.Versions), total) }, rate)
		return rep, err
	})
}

func (n *Node) adminDrain(w http.ResponseWriter, r *http.Request, c *adminCall) {
	d, err := ParseDrainRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	ids, err := n.SelectSites(d.Sites)
	if err != nil {
		opFail(w, err)
		return
	}
	rate, _ := parseRate(d.Rate)
	j, err := n.StartDrain(r.Context(), ids, c.principal.Name, rate)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

func (n *Node) adminVaults(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	n.mu.Lock()
	vs := append([]VaultConfig{}, n.conf().Vaults...)
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, vs)
}

// ParseVaultRequest parses POST v1/vaults.
func ParseVaultRequest(body []byte) (VaultConfig, error) {
	var v VaultConfig
	if err := decodeStrict(body, &v); err != nil {
		return v, err
	}
	if v.Name == "" {
		return v, errors.New("vault: name is required")
	}
	if v.KeyGen != 0 || v.Incarnation != "" || !v.Created.IsZero() {
		return v, errors.New("vault: key_gen, incarnation and created are the node's to set")
	}
	return v, nil
}

func (n *Node) adminVaultCreate(w http.ResponseWriter, r *http.Request, c *adminCall) {
	v, err := ParseVaultRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	if err := n.AddVault(v); err != nil {
		opFail(w, err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, vc := range n.conf().Vaults {
		if vc.Name == v.Name {
			writeJSON(w, http.StatusCreated, vc)
			return
		}
	}
}

// PolicyChange is PUT v1/vaults/{name}/policy's body: the settings
// given change, the others keep their values.
type PolicyChange struct {
	Erasure       *string   `json:"erasure,omitempty"`
	Survive       *string   `json:"survive,omitempty"`
	OutsideHome   *bool     `json:"outside_home,omitempty"`
	Jurisdictions *[]string `json:"jurisdictions,omitempty"`
}

// ParsePolicyChange parses PUT v1/vaults/{name}/policy.
func ParsePolicyChange(body []byte) (PolicyChange, error) {
	var p PolicyChange
	if err := decodeStrict(body, &p); err != nil {
		return p, err
	}
	if p.Erasure == nil && p.Survive == nil && p.OutsideHome == nil && p.Jurisdictions == nil {
		return p, errors.New("policy: no setting given (erasure, survive, outside_home, jurisdictions)")
	}
	return p, nil
}

// ChangePolicy applies a PolicyChange to vault name, acting as ctx's
// principal, and returns the vault's new configuration.
func (n *Node) ChangePolicy(ctx context.Context, name string, p PolicyChange) (VaultConfig, error) {
	var next VaultConfig
	found := false
	n.mu.Lock()
	for _, v := range n.conf().Vaults {
		if v.Name == name {
			next, found = v, true
		}
	}
	n.mu.Unlock()
	if !found {
		return next, fmt.Errorf("%w: %s", vault.ErrNoSuchVault, name)
	}
	if p.Erasure != nil {
		next.Erasure = *p.Erasure
	}
	if p.Survive != nil {
		next.Survive = *p.Survive
	}
	if p.OutsideHome != nil {
		next.OutsideHome = *p.OutsideHome
	}
	if p.Jurisdictions != nil {
		next.Jurisdictions = nil
		for _, j := range *p.Jurisdictions {
			if j = strings.TrimSpace(j); j != "" {
				next.Jurisdictions = append(next.Jurisdictions, j)
			}
		}
	}
	if err := n.SetVaultPolicy(ctx, name, next); err != nil {
		return next, err
	}
	return next, nil
}

func (n *Node) adminVaultPolicy(w http.ResponseWriter, r *http.Request, c *adminCall) {
	p, err := ParsePolicyChange(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	v, err := n.ChangePolicy(c.as(r), c.id, p)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// RotateRequest is POST v1/vaults/{name}/rotate-key's body.
type RotateRequest struct {
	Resume bool `json:"resume"`
}

// ParseRotateRequest parses POST v1/vaults/{name}/rotate-key; an empty
// body starts a rotation.
func ParseRotateRequest(body []byte) (RotateRequest, error) {
	var q RotateRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return q, nil
	}
	return q, decodeStrict(body, &q)
}

func (n *Node) adminRotate(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := ParseRotateRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	name := c.id
	if _, err := n.Engine.Vault(name); err != nil {
		opFail(w, err)
		return
	}
	run := func(ctx context.Context, progress func(done, total int64)) (any, error) {
		return n.ResumeRotation(ctx, name)
	}
	if !q.Resume {
		// The two-person rule is asked now, so that the caller learns at
		// once that custodians must approve; approved, the rotation runs
		// when the last approval arrives (as offline).
		if err := n.Require(c.as(r), vault.Operation{Kind: "vault.rotate-key", Summary: "rotate the key of vault " + name, Params: map[string]string{"vault": name}}); err != nil {
			opFail(w, err)
			return
		}
		run = func(ctx context.Context, progress func(done, total int64)) (any, error) {
			return n.rotateVaultKey(ctx, name)
		}
	}
	j, err := n.StartJob("key-rotate", map[string]string{"vault": name, "resume": strconv.FormatBool(q.Resume)}, c.principal.Name, run)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

func (n *Node) adminPrincipals(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	n.mu.Lock()
	ps := append([]access.Principal{}, n.conf().Principals...)
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, ps)
}

// ParsePrincipalRequest parses POST v1/principals.
func ParsePrincipalRequest(body []byte) (access.Principal, error) {
	var p access.Principal
	if err := decodeStrict(body, &p); err != nil {
		return p, err
	}
	if p.Name == "" {
		return p, errors.New("principal: name is required")
	}
	return p, nil
}

func (n *Node) adminPrincipalAdd(w http.ResponseWriter, r *http.Request, c *adminCall) {
	p, err := ParsePrincipalRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	if err := n.AddPrincipal(c.as(r), p); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			err = tagged{err, errExists}
		}
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (n *Node) adminPrincipalRemove(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if err := n.RemovePrincipal(c.as(r), c.id); err != nil {
		if strings.HasPrefix(err.Error(), "no principal ") {
			err = tagged{err, errNoSuchPrincipal}
		}
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": c.id})
}

func (n *Node) adminVaultRemove(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if err := n.DeleteVault(c.as(r), c.id); err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": c.id})
}

// Relabel is POST v1/relabel's body.
type Relabel struct {
	Vault   string `json:"vault"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"` // default: the latest
	Label   string `json:"label"`
}

// RelabelResult is what a relabel answers.
type RelabelResult struct {
	Vault   string `json:"vault"`
	Key     string `json:"key"`
	Version string `json:"version"`
	Label   string `json:"label"`
}

// ParseRelabel parses POST v1/relabel.
func ParseRelabel(body []byte) (Relabel, manifest.ID, error) {
	var q Relabel
	if err := decodeStrict(body, &q); err != nil {
		return q, manifest.ID{}, err
	}
	if q.Vault == "" || q.Key == "" || q.Label == "" {
		return q, manifest.ID{}, errors.New("relabel: vault, key and label are required")
	}
	var id manifest.ID
	if q.Version != "" {
		var err error
		if id, err = manifest.ParseID(q.Version); err != nil {
			return q, id, fmt.Errorf("relabel: version %q: %w", q.Version, err)
		}
	}
	return q, id, nil
}

func (n *Node) adminRelabel(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, id, err := ParseRelabel(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	info, err := n.Engine.SetLabel(c.as(r), q.Vault, q.Key, id, q.Label)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, RelabelResult{Vault: info.Vault, Key: info.Key, Version: info.VersionID.String(), Label: info.Label})
}

// ScrubRequest is POST v1/scrub's body.
type ScrubRequest struct {
	Repair bool     `json:"repair"`
	Vaults []string `json:"vaults,omitempty"`
	// Rate limits reads, e.g. "50MiB" (per second).
	Rate string `json:"rate,omitempty"`
	// Deep also authenticates every stripe and checks every parity block
	// against the data coded again (housekeeping.ScrubOptions.Deep).
	Deep bool `json:"deep,omitempty"`
}

// ParseScrubRequest parses POST v1/scrub; an empty body scrubs
// everything without repairing.
func ParseScrubRequest(body []byte) (ScrubRequest, int64, error) {
	var q ScrubRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &q); err != nil {
			return q, 0, err
		}
	}
	var rate int64
	if q.Rate != "" {
		r, err := ParseSize(q.Rate)
		if err != nil {
			return q, 0, fmt.Errorf("scrub: rate: %w", err)
		}
		rate = int64(r)
	}
	return q, rate, nil
}

func (n *Node) adminScrub(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, rate, err := ParseScrubRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	for _, v := range q.Vaults {
		if _, err := n.Engine.Vault(v); err != nil {
			opFail(w, err)
			return
		}
	}
	params := map[string]string{"repair": strconv.FormatBool(q.Repair)}
	if len(q.Vaults) > 0 {
		params["vaults"] = strings.Join(q.Vaults, ",")
	}
	if q.Rate != "" {
		params["rate"] = q.Rate
	}
	if q.Deep {
		params["deep"] = "true"
	}
	j, err := n.StartRatedJob("scrub", params, c.principal.Name, rate, func(ctx context.Context, progress func(done, total int64), rate func() int64) (any, error) {
		total := n.versionsTotal(ctx)
		return n.Keeper().Scrub(ctx, housekeeping.ScrubOptions{Repair: q.Repair, Deep: q.Deep, Vaults: q.Vaults, RateNow: rate, Grace: n.conf().Scrub.GraceOr(),
			Progress: func(r housekeeping.ScrubReport) { progress(int64(r.Versions), total) }})
	})
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

// DrillRequest is POST v1/drill's body.
type DrillRequest struct {
	// Lose selects what is lost, as for a drain.
	Lose   string   `json:"lose"`
	Sample int      `json:"sample,omitempty"`
	Vaults []string `json:"vaults,omitempty"`
}

// ParseDrillRequest parses POST v1/drill.
func ParseDrillRequest(body []byte) (DrillRequest, error) {
	var q DrillRequest
	if err := decodeStrict(body, &q); err != nil {
		return q, err
	}
	if strings.TrimSpace(q.Lose) == "" {
		return q, errors.New("drill: lose is required (site=ID, provider=NAME, jurisdiction=CODE, control=CODE)")
	}
	if q.Sample < 0 {
		return q, errors.New("drill: sample must not be negative")
	}
	return q, nil
}

func (n *Node) adminDrill(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := ParseDrillRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	ids, err := n.SelectSites(q.Lose)
	if err != nil {
		opFail(w, err)
		return
	}
	lost := map[string]bool{}
	for _, id := range ids {
		lost[id] = true
	}
	params := map[string]string{"lose": q.Lose}
	if q.Sample > 0 {
		params["sample"] = strconv.Itoa(q.Sample)
	}
	j, err := n.StartJob("drill", params, c.principal.Name, func(ctx context.Context, progress func(done, total int64)) (any, error) {
		return n.Keeper().Drill(ctx, housekeeping.DrillOptions{Lost: lost, Sample: q.Sample, Vaults: q.Vaults,
			Progress: func(done, total int) { progress(int64(done), int64(total)) }})
	})
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

func (n *Node) adminRebuild(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if len(bytes.TrimSpace(c.body)) > 0 {
		var empty struct{}
		if err := decodeStrict(c.body, &empty); err != nil {
			opFail(w, err)
			return
		}
	}
	j, err := n.StartJob("index-rebuild", nil, c.principal.Name, func(ctx context.Context, progress func(done, total int64)) (any, error) {
		return n.Keeper().RebuildIndex(ctx, func(done, total int) { progress(int64(done), int64(total)) })
	})
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}
