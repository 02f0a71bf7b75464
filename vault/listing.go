package vault

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// Listings that leak nothing. A listing shows a principal only what it may
// read: objects and versions whose label admits it, delete markers hiding
// such objects, its own multipart uploads (all of them to an operator), and
// a common prefix only when something it may read lies under it. The work
// per request is bounded: at most a scan budget of index records is
// examined, and a page may come back short — empty, even — but truncated,
// with a position to continue from, rather than scan without end. That
// position may name a key the principal may not see; callers (the S3 front
// end) hand it out only sealed.

// DefaultListScan is how many index records a listing examines per
// request, at most (a little more when a common prefix must be probed).
const DefaultListScan = 10000

// minListStep is the least a listing examines per step, so that every
// request makes progress.
const minListStep = 64

// Position is where a listing resumes: after Key, and after ID within it
// (a version id or an upload id; "" resumes after all of Key's entries, and
// after everything under Key when Key is a whole common prefix).
type Position struct {
	Key string
	ID  string
}

// listItem is an entry of a listing (a version, an upload, in the page the
// index returned: not copied) or a common prefix.
type listItem[T any] struct {
	prefix string
	v      *T
}

// fetchFunc reads one page of the index: prefix, delimiter, after a
// position, at most max items, examining about scan records. It reports
// whether more follow, where the next page starts, and what it examined.
type fetchFunc[T any] func(ctx context.Context, prefix, delimiter string, after Position, max, scan int) (items []listItem[T], more bool, next Position, scanned int, err error)

// resume is where a listing continues: just after an item, whose position
// is worked out only if the listing stops there, or at a position.
type resume[T any] struct {
	after listItem[T]
	isIt  bool
	at    Position
}

func (r *resume[T]) setItem(it listItem[T]) { r.after, r.isIt = it, true }
func (r *resume[T]) set(p Position)         { r.at, r.isIt = p, false }

// position returns where r resumes; pos gives an entry's position.
func (r *resume[T]) position(pos func(*T) Position) Position {
	if !r.isIt {
		return r.at
	}
	if r.after.prefix != "" {
		return Position{Key: r.after.prefix}
	}
	return pos(r.after.v)
}

// boundedList lists up to limit items readable by the caller (readable
// decides for entries; a common prefix is kept when probing under it finds
// a readable entry), examining about budget index records. It returns the
// items, whether the listing is truncated, and where it continues (pos
// gives the position just after an entry).
func boundedList[T any](ctx context.Context, fetch fetchFunc[T], readable func(*T) bool, pos func(*T) Position, prefix, delimiter string, after Position, limit, budget int) ([]listItem[T], bool, Position, error) {
	var out []listItem[T]
	cur := after
	var next resume[T]
	next.set(after)
	for {
		items, more, inext, scanned, err := fetch(ctx, prefix, delimiter, cur, index.MaxList, max(budget, minListStep))
		if err != nil {
			return out, false, Position{}, err
		}
		budget -= scanned
		if out == nil {
			// Sized by the first fetch: usually the whole page.
			out = make([]listItem[T], 0, min(limit, len(items)))
		}
		for i, it := range items {
			last := i == len(items)-1 && !more
			if it.prefix == "" {
				if readable(it.v) {
					out = append(out, it)
				}
				next.setItem(it)
			} else {
				// Resuming inside this prefix: the probe continues from
				// where it stopped.
				var from Position
				if strings.HasPrefix(cur.Key, it.prefix) && cur.Key != it.prefix {
					from = cur
				}
				found, resumeAt, used, err := probePrefix(ctx, fetch, readable, it.prefix, from, budget)
				if err != nil {
					return out, false, Position{}, err
				}
				budget -= used
				switch {
				case found:
					out = append(out, it)
					next.setItem(it)
				case resumeAt != nil:
					return out, true, *resumeAt, nil
				default:
					next.setItem(it) // nothing readable under it: skip it
				}
			}
			if len(out) == limit {
				if last {
					return out, false, Position{}, nil
				}
				return out, true, next.position(pos), nil
			}
			if budget <= 0 && !last {
				return out, true, next.position(pos), nil
			}
		}
		if !more {
			return out, false, Position{}, nil
		}
		cur = inext
		next.set(inext)
		if budget <= 0 {
			return out, true, inext, nil
		}
	}
}

// entries counts the items that are not common prefixes.
func entries[T any](items []listItem[T]) int {
	n := 0
	for _, it := range items {
		if it.prefix == "" {
			n++
		}
	}
	return n
}

// probePrefix looks under a common prefix for an entry readable by the
// caller, from a position (zero: the start). It stops when one is found,
// when the prefix is exhausted, or when the budget is, returning where to
// resume.
func probePrefix[T any](ctx context.Context, fetch fetchFunc[T], readable func(*T) bool, cp string, from Position, budget int) (bool, *Position, int, error) {
	used := 0
	pos := from
	for {
		items, more, next, scanned, err := fetch(ctx, cp, "", pos, index.MaxList, max(budget-used, minListStep))
		used += scanned
		if err != nil {
			return false, nil, used, err
		}
		for _, it := range items {
			if it.prefix == "" && readable(it.v) {
				return true, nil, used, nil
			}
		}
		if !more {
			return false, nil, used, nil
		}
		pos = next
		if used >= budget {
			return false, &pos, used, nil
		}
	}
}

// labelReader returns the read decision of the context's principal on
// objects of vault v by their label text, as canRead makes it, remembering
// the answer for the last few labels seen: the principal and the vault are
// the same for every key of a listing, so the answer for a label is too,
// and a vault's keys carry few labels.
func (e *Engine) labelReader(ctx context.Context, v Vault) func(label string) bool {
	type answer struct {
		label string
		ok    bool
	}
	var memo [8]answer
	n, next := 0, 0
	return func(label string) bool {
		for _, a := range memo[:n] {
			if a.label == label {
				return a.ok
			}
		}
		ok := e.canRead(ctx, v, label) == nil
		memo[next] = answer{label, ok}
		next = (next + 1) % len(memo)
		if n < len(memo) {
			n++
		}
		return ok
	}
}

// filtering reports whether listings in ctx are filtered for a principal.
func (e *Engine) filtering(ctx context.Context) bool {
	return e.decider != nil && ctx.Value(systemKey{}) == nil
}

// scanOf returns a listing's scan budget.
func scanOf(n int) int {
	if n > 0 {
		return n
	}
	return DefaultListScan
}

// List lists the latest versions of keys in a vault that the context's
// principal may read, with the common prefixes under which it may read
// something. page.Next continues the listing; it may name a key the
// principal may not see (see the comment at the top of this file).
func (e *Engine) List(ctx context.Context, vaultName string, o index.ListOptions) (index.ListPage, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return index.ListPage{}, err
	}
	if !e.filtering(ctx) {
		return e.index.List(ctx, vaultName, o)
	}
	var fetched pages
	fetch := func(ctx context.Context, prefix, delim string, after Position, n, scan int) ([]listItem[index.Version], bool, Position, int, error) {
		ip, err := e.index.List(ctx, vaultName, index.ListOptions{Prefix: prefix, Delimiter: delim, After: after.Key, Max: n, Scan: scan})
		fetched.add(ip.Entries)
		if err != nil {
			return nil, false, Position{}, ip.Scanned, err
		}
		return merged(ip.Entries, ip.CommonPrefixes, func(x *index.Version) string { return x.Key }), ip.Truncated, Position{Key: ip.Next}, max(ip.Scanned, len(ip.Entries)+len(ip.CommonPrefixes)), nil
	}
	canRead := e.labelReader(ctx, v)
	readable := func(x *index.Version) bool { return canRead(x.Label) }
	pos := func(x *index.Version) Position { return Position{Key: x.Key} }
	items, truncated, next, err := boundedList(ctx, fetch, readable, pos, o.Prefix, o.Delimiter, Position{Key: o.After}, index.PageSize(o.Max), scanOf(o.Scan))
	page := index.ListPage{Truncated: truncated}
	page.Entries, page.CommonPrefixes = fetched.result(items)
	if truncated {
		page.Next = next.Key
	}
	return page, err
}

// pages are the index pages a listing fetched, as far as result needs
// them: how many, and the only one if there was one.
type pages struct {
	n    int
	only []index.Version
}

func (p *pages) add(es []index.Version) { p.n, p.only = p.n+1, es }

// result returns the versions and common prefixes of a listing's items.
// When the items all come from one index page (the listing needed one
// fetch), the versions are moved down within that page, which the index
// made for this listing alone, instead of copied into a new slice: each
// item's version lies at or after where it goes, and after every earlier
// item's.
func (p *pages) result(items []listItem[index.Version]) ([]index.Version, []string) {
	n := entries(items)
	var vs []index.Version
	switch {
	case n == 0:
	case p.n == 1:
		vs = p.only[:0]
	default:
		vs = make([]index.Version, 0, n)
	}
	var cps []string
	for _, it := range items {
		if it.prefix != "" {
			cps = append(cps, it.prefix)
		} else {
			vs = append(vs, *it.v)
		}
	}
	if p.n == 1 && n > 0 {
		// What lies past the result is not the caller's.
		clear(p.only[n:])
		vs = vs[:n:n]
	}
	return vs, cps
}

// merged returns a page's entries and common prefixes as listing items,
// in key order (key gives an entry's), the entries pointing into es.
func merged[T any](es []T, cps []string, key func(*T) string) []listItem[T] {
	items := make([]listItem[T], 0, len(es)+len(cps))
	i, j := 0, 0
	for i < len(es) || j < len(cps) {
		if j == len(cps) || i < len(es) && key(&es[i]) < cps[j] {
			items = append(items, listItem[T]{v: &es[i]})
			i++
		} else {
			items = append(items, listItem[T]{prefix: cps[j]})
			j++
		}
	}
	return items
}

// Versions lists the versions (delete markers included) in a vault that
// the context's principal may read, with the common prefixes under which it
// may read a version. NextKeyMarker and NextVersionMarker continue it and
// may name a version the principal may not see.
func (e *Engine) Versions(ctx context.Context, vaultName string, o index.VersionOptions) (index.VersionPage, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return index.VersionPage{}, err
	}
	if !e.filtering(ctx) {
		return e.index.Versions(ctx, vaultName, o)
	}
	var fetched pages
	fetch := func(ctx context.Context, prefix, delim string, after Position, n, scan int) ([]listItem[index.Version], bool, Position, int, error) {
		vo := index.VersionOptions{Prefix: prefix, Delimiter: delim, KeyMarker: after.Key, Max: min(n, scan)}
		if after.ID != "" {
			id, err := manifest.ParseID(after.ID)
			if err != nil {
				return nil, false, Position{}, 0, err
			}
			vo.VersionMarker = id
		}
		ip, err := e.index.Versions(ctx, vaultName, vo)
		fetched.add(ip.Versions)
		if err != nil {
			return nil, false, Position{}, 0, err
		}
		items := merged(ip.Versions, ip.CommonPrefixes, func(x *index.Version) string { return x.Key })
		next := Position{Key: ip.NextKeyMarker}
		if !ip.NextVersionMarker.IsZero() {
			next.ID = ip.NextVersionMarker.String()
		}
		return items, ip.Truncated, next, len(items), nil
	}
	canRead := e.labelReader(ctx, v)
	readable := func(x *index.Version) bool { return canRead(x.Label) }
	pos := func(x *index.Version) Position { return Position{Key: x.Key, ID: x.ID.String()} }
	after := Position{Key: o.KeyMarker}
	if !o.VersionMarker.IsZero() {
		after.ID = o.VersionMarker.String()
	}
	items, truncated, next, err := boundedList(ctx, fetch, readable, pos, o.Prefix, o.Delimiter, after, index.PageSize(o.Max), scanOf(o.Scan))
	page := index.VersionPage{Truncated: truncated}
	page.Versions, page.CommonPrefixes = fetched.result(items)
	if truncated {
		page.NextKeyMarker = next.Key
		if next.ID != "" {
			page.NextVersionMarker, _ = manifest.ParseID(next.ID)
		}
	}
	return page, err
}

// ListUploads lists the in-progress uploads of a vault the context's
// principal may see: all of them to an operator of the vault (and to the
// node's own work), its own to anyone else. NextKeyMarker and NextIDMarker
// continue it and may name an upload the principal may not see.
func (e *Engine) ListUploads(ctx context.Context, vaultName string, o index.UploadOptions) (index.UploadPage, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return index.UploadPage{}, err
	}
	if !e.filtering(ctx) {
		return e.index.ListUploads(ctx, vaultName, o)
	}
	fetch := func(ctx context.Context, prefix, delim string, after Position, n, scan int) ([]listItem[index.Upload], bool, Position, int, error) {
		ip, err := e.index.ListUploads(ctx, vaultName, index.UploadOptions{Prefix: prefix, Delimiter: delim, KeyMarker: after.Key, IDMarker: after.ID, Max: min(n, scan)})
		if err != nil {
			return nil, false, Position{}, 0, err
		}
		items := merged(ip.Uploads, ip.CommonPrefixes, func(u *index.Upload) string { return u.Key })
		return items, ip.Truncated, Position{Key: ip.NextKeyMarker, ID: ip.NextIDMarker}, len(items), nil
	}
	readable := func(u *index.Upload) bool {
		var rec uploadRecord
		return json.Unmarshal(u.Data, &rec) == nil && e.mayReadUpload(ctx, v, u.ID, rec) == nil
	}
	pos := func(u *index.Upload) Position { return Position{Key: u.Key, ID: u.ID} }
	items, truncated, next, err := boundedList(ctx, fetch, readable, pos, o.Prefix, o.Delimiter, Position{Key: o.KeyMarker, ID: o.IDMarker}, index.PageSize(o.Max), scanOf(o.Scan))
	page := index.UploadPage{Truncated: truncated}
	for _, it := range items {
		if it.prefix != "" {
			page.CommonPrefixes = append(page.CommonPrefixes, it.prefix)
		} else {
			page.Uploads = append(page.Uploads, *it.v)
		}
	}
	if truncated {
		page.NextKeyMarker, page.NextIDMarker = next.Key, next.ID
	}
	return page, err
}
