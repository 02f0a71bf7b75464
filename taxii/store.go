package taxii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/vault"
)

// Media types of TAXII 2.1 and STIX 2.1.
const (
	MediaTAXII = "application/taxii+json;version=2.1"
	MediaSTIX  = "application/stix+json;version=2.1"
)

// Metadata every stored object version carries, from which the secondary
// index is rebuilt.
const (
	metaAdded       = "taxii-date-added"
	metaType        = "stix-type"
	metaSpecVersion = "stix-spec-version"
	metaVersion     = "stix-version"
	metaTLP         = "tlp"
)

// TokenSealer seals and opens the next tokens of listings, so that a
// client learns nothing from them (the node's keyring does it).
type TokenSealer interface {
	SealToken([]byte) ([]byte, error)
	OpenToken([]byte) ([]byte, error)
}

// StoreConfig configures a Store.
type StoreConfig struct {
	Engine   *vault.Engine
	Index    *Index
	Registry *label.Registry
	// Config returns the taxii section in force.
	Config func() *Config
	// Nations returns the nations of the node's principals, which
	// TLP:CLEAR reaches.
	Nations func() []string
	Tokens  TokenSealer
	Logger  *slog.Logger
	// Audit, if set, records every change (the node's audit log).
	Audit func(ctx context.Context, ev audit.Event) error
	// Workers bounds the objects of one request stored at once (default 8).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store keeps TAXII collections in vaults.
type Store struct {
	cfg StoreConfig
	e   *vault.Engine
	ix  *Index
	log *slog.Logger

	mu    sync.Mutex
	colls map[string]*collState
}

// collState is what the store tracks of one collection in memory.
type collState struct {
	// rw: requests hold it shared, a rebuild exclusively.
	rw sync.RWMutex

	mu sync.Mutex
	// ready: the index is built and last is known.
	ready bool
	// last is the last date added handed out (µs); inflight the dates of
	// writes not yet indexed, below which listings stop (the watermark):
	// a listing never passes a date a write in flight will fill, so a
	// cursor never skips an object added after it was handed out.
	last     int64
	inflight map[int64]int
	// claims serialise writes of the same object version.
	claims map[string]chan struct{}
}

// NewStore returns a Store.
func NewStore(cfg StoreConfig) *Store {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Nations == nil {
		cfg.Nations = func() []string { return nil }
	}
	return &Store{cfg: cfg, e: cfg.Engine, ix: cfg.Index, log: cfg.Logger, colls: map[string]*collState{}}
}

// Collection returns the collection an id or alias names.
func (s *Store) Collection(name string) (CollectionConfig, error) {
	col, ok := s.cfg.Config().Find(name)
	if !ok {
		return CollectionConfig{}, fmt.Errorf("%w: %s", ErrNoCollection, name)
	}
	return col, nil
}

func (s *Store) state(id string) *collState {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.colls[id]
	if cs == nil {
		cs = &collState{inflight: map[int64]int{}, claims: map[string]chan struct{}{}}
		s.colls[id] = cs
	}
	return cs
}

// open returns a collection's state with its lock shared, building its
// index first if it has never been built (a new node directory, a lost
// taxii.db, an interrupted rebuild). The caller must call cs.rw.RUnlock.
func (s *Store) open(ctx context.Context, col CollectionConfig) (*collState, error) {
	cs := s.state(col.ID)
	cs.rw.RLock()
	cs.mu.Lock()
	ready := cs.ready
	cs.mu.Unlock()
	if ready {
		return cs, nil
	}
	cs.rw.RUnlock()
	if !s.ix.Built(col.ID) {
		if _, err := s.Rebuild(ctx, col); err != nil {
			return nil, err
		}
	}
	cs.rw.RLock()
	cs.mu.Lock()
	if !cs.ready {
		cs.last = max(cs.last, s.ix.LastAdded(col.ID))
		cs.ready = true
	}
	cs.mu.Unlock()
	return cs, nil
}

// claimAdded hands out the next date added (µs), strictly increasing and
// never before now, and holds the watermark below it until release.
func (s *Store) claimAdded(cs *collState) int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	a := max(s.cfg.Now().UnixMicro(), cs.last+1)
	cs.last = a
	cs.inflight[a]++
	return a
}

func (cs *collState) release(a int64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.inflight[a]--; cs.inflight[a] <= 0 {
		delete(cs.inflight, a)
	}
}

// watermark returns the earliest date added of a write in flight, 0 if
// none.
func (cs *collState) watermark() int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var w int64
	for a := range cs.inflight {
		if w == 0 || a < w {
			w = a
		}
	}
	return w
}

// claim serialises writes of one object version; the returned function
// releases it.
func (cs *collState) claim(ctx context.Context, key string) (func(), error) {
	for {
		cs.mu.Lock()
		ch, busy := cs.claims[key]
		if !busy {
			ch = make(chan struct{})
			cs.claims[key] = ch
			cs.mu.Unlock()
			return func() {
				cs.mu.Lock()
				delete(cs.claims, key)
				cs.mu.Unlock()
				close(ch)
			}, nil
		}
		cs.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// mapping returns the TLP→label mapping of a collection.
func (s *Store) mapping(col CollectionConfig) (Mapping, error) {
	base, err := col.base(s.cfg.Registry)
	if err != nil {
		return Mapping{}, err
	}
	return Mapping{Base: base, Community: col.Community, Amber: col.Amber, Everyone: s.cfg.Nations(), Registry: s.cfg.Registry}, nil
}

// FormatTime writes a TAXII timestamp: UTC, microseconds.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// Add stores the objects of an envelope in a collection, each on its own:
// an object that is not valid STIX 2.1, that carries a marking the
// collection does not accept, or that the principal may not write, is a
// failure with its reason; the others are stored (an object version
// already there counts as a success and is not stored twice). The request
// is then complete, and its status is kept for the retention period.
func (s *Store) Add(ctx context.Context, col CollectionConfig, objects []json.RawMessage) (*Status, error) {
	p, ok := vault.PrincipalFrom(ctx)
	if !ok {
		return nil, vault.ErrNoPrincipal
	}
	cs, err := s.open(ctx, col)
	if err != nil {
		return nil, err
	}
	defer cs.rw.RUnlock()
	st := newStatus(s.cfg.Now(), len(objects))
	m, err := s.mapping(col)
	if err != nil {
		return nil, err
	}
	marks := col.Markings()
	type job struct {
		i     int
		obj   *Object
		tlp   TLP
		label string
		added int64
	}
	results := make([]StatusDetail, len(objects))
	ok2 := make([]bool, len(objects))
	var jobs []job
	for i, raw := range objects {
		obj, err := ParseObject(raw)
		if err != nil {
			results[i] = failureOf(raw, err.Error())
			continue
		}
		t, err := marks.Level(obj.Markings)
		if err != nil {
			results[i] = StatusDetail{ID: obj.ID, Version: versionString(obj), Message: err.Error()}
			continue
		}
		l, err := m.Label(t)
		if err != nil {
			results[i] = StatusDetail{ID: obj.ID, Version: versionString(obj), Message: "no label for it: " + err.Error()}
			continue
		}
		jobs = append(jobs, job{i: i, obj: obj, tlp: t, label: l.String()})
	}
	// Dates added follow the envelope's order, whatever order the
	// objects are stored in.
	for k := range jobs {
		jobs[k].added = s.claimAdded(cs)
	}
	work := make(chan job)
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, max(len(jobs), 1)) {
		wg.Go(func() {
			for j := range work {
				msg, err := s.put(ctx, col, cs, j.obj, j.tlp, j.label, j.added)
				cs.release(j.added)
				results[j.i] = StatusDetail{ID: j.obj.ID, Version: versionString(j.obj), Message: msg}
				if err != nil {
					results[j.i].Message = s.failureMessage(ctx, err, j.tlp)
				} else {
					ok2[j.i] = true
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	for i, r := range results {
		if ok2[i] {
			st.Successes = append(st.Successes, r)
		} else {
			st.Failures = append(st.Failures, r)
		}
	}
	st.finish()
	if err := s.saveStatus(st, p.Name, col.ID); err != nil {
		s.log.ErrorContext(ctx, "TAXII status not kept", "status", st.ID, "err", err)
	}
	return st, nil
}

// failureMessage says why an object was not stored, for the status
// resource: a denial is said plainly (the client sent the object and knows
// its markings), other errors as they are.
func (s *Store) failureMessage(ctx context.Context, err error, t TLP) string {
	switch {
	case errors.Is(err, access.ErrDenied):
		s.log.InfoContext(ctx, "TAXII object refused", "err", err)
		return fmt.Sprintf("access denied: you may not write objects marked TLP:%s into this collection", t)
	case errors.Is(err, vault.ErrInvalidLabel):
		return err.Error()
	}
	s.log.ErrorContext(ctx, "TAXII object not stored", "err", err)
	return "not stored: " + err.Error()
}

// put stores one object version as added at a (a date claimed with
// claimAdded), unless it is there already.
func (s *Store) put(ctx context.Context, col CollectionConfig, cs *collState, obj *Object, t TLP, labelText string, a int64) (string, error) {
	version := obj.Version()
	release, err := cs.claim(ctx, obj.ID+"|"+version.String())
	if err != nil {
		return "", err
	}
	defer release()
	have, err := s.ix.versions(col.ID, obj.ID)
	if err != nil {
		return "", err
	}
	for _, e := range have {
		if version.IsZero() || e.Version == version.UnixNano() {
			return "already in the collection", nil
		}
	}
	vns := version.UnixNano()
	if version.IsZero() {
		vns = a * 1000
	}
	meta := map[string]string{
		metaAdded:       FormatTime(time.UnixMicro(a)),
		metaType:        obj.Type,
		metaSpecVersion: obj.SpecVersion,
		metaTLP:         t.String(),
	}
	if !version.IsZero() {
		meta[metaVersion] = version.UTC().Format(time.RFC3339Nano)
	}
	key := KeyPrefix(col.ID) + obj.ID
	info, err := s.e.Put(ctx, col.Vault, key, bytes.NewReader(obj.Raw), vault.PutOptions{
		Size: int64(len(obj.Raw)), ContentType: MediaSTIX, Meta: meta, Label: labelText,
	})
	if err != nil {
		return "", err
	}
	e := Entry{ID: obj.ID, Type: obj.Type, SpecVersion: obj.SpecVersion, Version: vns, Added: a, Label: info.Label, TLP: t.String(), VaultVersion: info.VersionID.String()}
	if err := s.ix.Add(col.ID, e); err != nil {
		// Stored but not indexed: the version is complete in the vault,
		// and a rebuild of the index takes it.
		return "", fmt.Errorf("stored as version %s of %s but not indexed (embassy taxii index rebuild makes it visible): %w", info.VersionID, key, err)
	}
	s.record(ctx, audit.Event{Kind: "taxii.add", Vault: col.Vault, Key: key, Version: info.VersionID,
		Detail: map[string]string{"collection": col.ID, "stix_id": obj.ID, "stix_version": FormatTime(time.Unix(0, vns)), "tlp": t.String()}})
	return "", nil
}

// record writes an audit event if the store has a log.
func (s *Store) record(ctx context.Context, ev audit.Event) {
	if s.cfg.Audit == nil {
		return
	}
	if p, ok := vault.PrincipalFrom(ctx); ok {
		ev.Actor = p.Name
	}
	if err := s.cfg.Audit(ctx, ev); err != nil {
		s.log.ErrorContext(ctx, "TAXII change not on the audit log", "kind", ev.Kind, "err", err)
	}
}

func versionString(o *Object) string {
	if v := o.Version(); !v.IsZero() {
		return FormatTime(v)
	}
	return ""
}

// failureOf describes an object that did not parse: its id and version
// as far as they can be read.
func failureOf(raw json.RawMessage, msg string) StatusDetail {
	var head struct {
		ID       any `json:"id"`
		Modified any `json:"modified"`
		Created  any `json:"created"`
	}
	json.Unmarshal(raw, &head)
	d := StatusDetail{Message: msg}
	if s, ok := head.ID.(string); ok && len(s) <= 300 {
		d.ID = s
	}
	for _, v := range []any{head.Modified, head.Created} {
		if s, ok := v.(string); ok && len(s) <= 64 {
			d.Version = s
			break
		}
	}
	return d
}

// Result is one page of a listing.
type Result struct {
	Entries []Entry
	// Objects are the objects of the entries, when asked for.
	Objects []json.RawMessage
	More    bool
	Next    string
}

// maxScan bounds the index entries one listing request examines: a
// listing that meets many objects the caller may not read returns a short
// page, with more and next, rather than scanning without end.
const maxScan = 20000

// readCache remembers the access decision per label, and each object's
// readable versions, for one request.
type readCache struct {
	s        *Store
	ctx      context.Context
	col      CollectionConfig
	labels   map[string]bool
	versions map[string][]Entry
}

func (s *Store) newReadCache(ctx context.Context, col CollectionConfig) *readCache {
	return &readCache{s: s, ctx: ctx, col: col, labels: map[string]bool{}, versions: map[string][]Entry{}}
}

func (rc *readCache) readable(e Entry) bool {
	ok, seen := rc.labels[e.Label]
	if !seen {
		ok = rc.s.e.CanRead(rc.ctx, rc.col.Vault, e.Label) == nil
		rc.labels[e.Label] = ok
	}
	return ok
}

// readableVersions returns the versions of id the principal may read,
// oldest first.
func (rc *readCache) readableVersions(id string) ([]Entry, error) {
	if vs, ok := rc.versions[id]; ok {
		return vs, nil
	}
	all, err := rc.s.ix.versions(rc.col.ID, id)
	if err != nil {
		return nil, err
	}
	var vs []Entry
	for _, e := range all {
		if rc.readable(e) {
			vs = append(vs, e)
		}
	}
	rc.versions[id] = vs
	return vs, nil
}

// versionMatches applies match[version] to entry e among the readable
// versions of its object.
func versionMatches(f VersionFilter, e Entry, vs []Entry) bool {
	f = f.effective()
	if f.All {
		return true
	}
	if f.Last && len(vs) > 0 && vs[len(vs)-1].Version == e.Version {
		return true
	}
	if f.First && len(vs) > 0 && vs[0].Version == e.Version {
		return true
	}
	for _, t := range f.Times {
		if t.UnixNano() == e.Version {
			return true
		}
	}
	return false
}

// token kinds.
const (
	tokenList     = "l"
	tokenVersions = "v"
)

func (s *Store) sealNext(kind, coll, id string, pos int64) (string, error) {
	b, err := s.cfg.Tokens.SealToken([]byte(kind + "\x00" + coll + "\x00" + id + "\x00" + strconv.FormatInt(pos, 10)))
	if err != nil {
		return "", err
	}
	return encodeToken(b), nil
}

func (s *Store) openNext(tok, kind, coll, id string) (int64, error) {
	b, err := decodeToken(tok)
	if err == nil {
		b, err = s.cfg.Tokens.OpenToken(b)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: next: not a token this server handed out", ErrFilter)
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 4 || parts[0] != kind || parts[1] != coll || parts[2] != id {
		return 0, fmt.Errorf("%w: next: a token of another listing", ErrFilter)
	}
	pos, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: next: a damaged token", ErrFilter)
	}
	return pos, nil
}

// List pages through a collection in date-added order (Get Objects, Get
// Object Manifests): the objects the filter selects among those the
// context's principal may read, with their bodies if asked.
func (s *Store) List(ctx context.Context, col CollectionConfig, f Filter, bodies bool) (Result, error) {
	cs, err := s.open(ctx, col)
	if err != nil {
		return Result{}, err
	}
	defer cs.rw.RUnlock()
	after := int64(0)
	if !f.AddedAfter.IsZero() {
		after = f.AddedAfter.UnixMicro()
		if time.UnixMicro(after).After(f.AddedAfter) {
			after--
		}
	}
	if f.Next != "" {
		pos, err := s.openNext(f.Next, tokenList, col.ID, "")
		if err != nil {
			return Result{}, err
		}
		after = max(after, pos)
	}
	rc := s.newReadCache(ctx, col)
	var res Result
	before := cs.watermark()
	scanned := 0
	for {
		cands, more, err := s.ix.candidates(col.ID, query{after: after, before: before, ids: f.IDs, types: f.Types, max: min(1000, maxScan-scanned)})
		if err != nil {
			return Result{}, err
		}
		for i, e := range cands {
			if len(res.Entries) == f.Limit {
				res.More = true
				break
			}
			scanned++
			after = e.Added
			if !slices.Contains(f.SpecVersions, e.SpecVersion) && len(f.SpecVersions) > 0 || !rc.readable(e) {
				continue
			}
			vs, err := rc.readableVersions(e.ID)
			if err != nil {
				return Result{}, err
			}
			if !versionMatches(f.Version, e, vs) {
				continue
			}
			res.Entries = append(res.Entries, e)
			if len(res.Entries) == f.Limit && (i < len(cands)-1 || more) {
				res.More = true
				break
			}
		}
		if res.More || !more {
			break
		}
		if scanned >= maxScan {
			res.More = true
			break
		}
	}
	if res.More {
		if res.Next, err = s.sealNext(tokenList, col.ID, "", after); err != nil {
			return Result{}, err
		}
	}
	if bodies {
		res.Entries, res.Objects = s.fetch(ctx, col, res.Entries)
	}
	return res, nil
}

// Versions pages through the versions of one object the context's
// principal may read, oldest first (Get an Object, Get Object Versions):
// those added after f.AddedAfter, of f's spec versions, and, if
// matchVersion, those f.Version selects.
func (s *Store) Versions(ctx context.Context, col CollectionConfig, id string, f Filter, matchVersion, bodies bool) (Result, error) {
	cs, err := s.open(ctx, col)
	if err != nil {
		return Result{}, err
	}
	defer cs.rw.RUnlock()
	rc := s.newReadCache(ctx, col)
	vs, err := rc.readableVersions(id)
	if err != nil {
		return Result{}, err
	}
	if len(vs) == 0 {
		return Result{}, fmt.Errorf("%w: %s", index.ErrNotFound, id)
	}
	from := int64(-1 << 63)
	if f.Next != "" {
		if from, err = s.openNext(f.Next, tokenVersions, col.ID, id); err != nil {
			return Result{}, err
		}
	}
	var res Result
	for i, e := range vs {
		if e.Version <= from {
			continue
		}
		if !f.AddedAfter.IsZero() && !e.AddedTime().After(f.AddedAfter) ||
			len(f.SpecVersions) > 0 && !slices.Contains(f.SpecVersions, e.SpecVersion) ||
			matchVersion && !versionMatches(f.Version, e, vs) {
			continue
		}
		if len(res.Entries) == f.Limit {
			res.More = true
			if res.Next, err = s.sealNext(tokenVersions, col.ID, id, vs[i-1].Version); err != nil {
				return Result{}, err
			}
			break
		}
		res.Entries = append(res.Entries, e)
	}
	if bodies {
		res.Entries, res.Objects = s.fetch(ctx, col, res.Entries)
	}
	return res, nil
}

// fetch reads the objects of entries, in parallel. An entry whose object
// cannot be read is left out and logged: a label the manifest does not
// share with the index (the read decides on the manifest's), or a version
// the index has but the vault no longer does (rebuild the index).
func (s *Store) fetch(ctx context.Context, col CollectionConfig, es []Entry) ([]Entry, []json.RawMessage) {
	objs := make([]json.RawMessage, len(es))
	errs := make([]error, len(es))
	sem := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	for i, e := range es {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			objs[i], errs[i] = s.read(ctx, col, e)
		})
	}
	wg.Wait()
	outE, outO := es[:0:0], objs[:0:0]
	for i := range es {
		if errs[i] != nil {
			s.log.WarnContext(ctx, "TAXII object left out of a listing", "collection", col.ID, "id", es[i].ID, "vault_version", es[i].VaultVersion, "err", errs[i])
			continue
		}
		outE, outO = append(outE, es[i]), append(outO, objs[i])
	}
	return outE, outO
}

func (s *Store) read(ctx context.Context, col CollectionConfig, e Entry) (json.RawMessage, error) {
	vid, err := e.manifestID()
	if err != nil {
		return nil, err
	}
	r, err := s.e.Get(ctx, col.Vault, KeyPrefix(col.ID)+e.ID, vault.GetOptions{VersionID: vid, Length: -1})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxObjectSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxObjectSize || !json.Valid(b) {
		return nil, fmt.Errorf("vault version %s of %s is not a STIX object", vid, e.ID)
	}
	return b, nil
}

// Delete removes the versions of an object that f selects (match[version],
// default all; match[spec_version]) for good, and reports how many. Only
// versions the principal may read are removed; with none, index.ErrNotFound.
func (s *Store) Delete(ctx context.Context, col CollectionConfig, id string, f Filter) (int, error) {
	cs, err := s.open(ctx, col)
	if err != nil {
		return 0, err
	}
	defer cs.rw.RUnlock()
	rc := s.newReadCache(ctx, col)
	vs, err := rc.readableVersions(id)
	if err != nil {
		return 0, err
	}
	if f.Version.IsZero() {
		f.Version.All = true
	}
	var sel []Entry
	for _, e := range vs {
		if (len(f.SpecVersions) == 0 || slices.Contains(f.SpecVersions, e.SpecVersion)) && versionMatches(f.Version, e, vs) {
			sel = append(sel, e)
		}
	}
	if len(sel) == 0 {
		return 0, fmt.Errorf("%w: %s", index.ErrNotFound, id)
	}
	key := KeyPrefix(col.ID) + id
	n := 0
	for _, e := range sel {
		vid, err := e.manifestID()
		if err != nil {
			return n, err
		}
		if _, err := s.e.Delete(ctx, col.Vault, key, vault.DeleteOptions{VersionID: vid}); err != nil && !errors.Is(err, index.ErrNotFound) {
			return n, err
		}
		if err := s.ix.Remove(col.ID, e); err != nil {
			return n, err
		}
		s.record(ctx, audit.Event{Kind: "taxii.delete", Vault: col.Vault, Key: key, Version: vid,
			Detail: map[string]string{"collection": col.ID, "stix_id": id, "stix_version": FormatTime(e.VersionTime())}})
		n++
	}
	return n, nil
}

// RebuildStats says what a rebuild found.
type RebuildStats struct {
	Indexed int `json:"indexed"`
	// Skipped are versions under the collection's prefix that are not
	// TAXII objects (written there through S3, or damaged), left out.
	Skipped int `json:"skipped"`
}

// Rebuild makes a collection's index again from its vault: every version
// under the collection's prefix, from its metadata. Listings of the
// collection wait while it runs.
func (s *Store) Rebuild(ctx context.Context, col CollectionConfig) (RebuildStats, error) {
	cs := s.state(col.ID)
	cs.rw.Lock()
	defer cs.rw.Unlock()
	sys := vault.AsSystem(ctx)
	var st RebuildStats
	if err := s.ix.Reset(col.ID); err != nil {
		return st, err
	}
	prefix := KeyPrefix(col.ID)
	opts := index.VersionOptions{Prefix: prefix, Max: 1000}
	seen := map[int64]bool{}
	var batch []Entry
	for {
		page, err := s.e.Versions(sys, col.Vault, opts)
		if err != nil {
			return st, fmt.Errorf("rebuild TAXII index of %s: %w", col.Name(), err)
		}
		for _, v := range page.Versions {
			if v.DeleteMarker {
				continue
			}
			info, err := s.e.Stat(sys, col.Vault, v.Key, v.ID)
			if err != nil {
				s.log.WarnContext(ctx, "TAXII rebuild: version unreadable, left out", "key", v.Key, "version", v.ID, "err", err)
				st.Skipped++
				continue
			}
			e, err := entryOf(info, strings.TrimPrefix(v.Key, prefix))
			if err != nil || seen[e.Added] {
				s.log.WarnContext(ctx, "TAXII rebuild: not a TAXII object, left out", "key", v.Key, "version", v.ID, "err", err)
				st.Skipped++
				continue
			}
			seen[e.Added] = true
			batch = append(batch, e)
			if len(batch) == 1000 {
				if err := s.ix.Add(col.ID, batch...); err != nil {
					return st, err
				}
				st.Indexed += len(batch)
				batch = batch[:0]
			}
		}
		if !page.Truncated {
			break
		}
		opts.KeyMarker, opts.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
	}
	if err := s.ix.Add(col.ID, batch...); err != nil {
		return st, err
	}
	st.Indexed += len(batch)
	if err := s.ix.MarkBuilt(col.ID); err != nil {
		return st, err
	}
	cs.mu.Lock()
	cs.last = max(cs.last, s.ix.LastAdded(col.ID))
	cs.ready = true
	cs.mu.Unlock()
	return st, nil
}

// entryOf reads an index entry back from a stored version's metadata.
func entryOf(info vault.ObjectInfo, id string) (Entry, error) {
	typ, err := identifierType(id)
	if err != nil {
		return Entry{}, err
	}
	if info.Meta[metaType] != typ {
		return Entry{}, fmt.Errorf("metadata %s %q does not match the key's %q", metaType, info.Meta[metaType], typ)
	}
	added, err := ParseTimestamp(info.Meta[metaAdded])
	if err != nil {
		return Entry{}, fmt.Errorf("metadata %s: %v", metaAdded, err)
	}
	e := Entry{ID: id, Type: typ, SpecVersion: info.Meta[metaSpecVersion], Added: added.UnixMicro(), Label: info.Label, TLP: info.Meta[metaTLP], VaultVersion: info.VersionID.String()}
	if e.SpecVersion != SpecVersion {
		return Entry{}, fmt.Errorf("metadata %s %q", metaSpecVersion, e.SpecVersion)
	}
	if v := info.Meta[metaVersion]; v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return Entry{}, fmt.Errorf("metadata %s: %v", metaVersion, err)
		}
		e.Version = t.UnixNano()
	} else {
		e.Version = e.Added * 1000
	}
	return e, nil
}
