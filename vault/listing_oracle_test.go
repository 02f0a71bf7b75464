package vault

// The engine's listings as they were before the eighth pass of issue 15
// (which keeps the index's page instead of copying each version twice on
// the way to the listing's, and remembers the label decision per label),
// kept as the oracle TestListingsMatchOracle compares them with.

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// oldListItem is an entry of a listing (a version, an upload) or a common
// prefix, with the position just after it.
type oldListItem[T any] struct {
	prefix string
	v      T
	pos    Position
}

// oldFetchFunc reads one page of the index: prefix, delimiter, after a
// position, at most max items, examining about scan records. It reports
// whether more follow, where the next page starts, and what it examined.
type oldFetchFunc[T any] func(ctx context.Context, prefix, delimiter string, after Position, max, scan int) (items []oldListItem[T], more bool, next Position, scanned int, err error)

// oldBoundedList lists up to limit items readable by the caller (readable
// decides for oldEntries; a common prefix is kept when probing under it finds
// a readable entry), examining about budget index records. It returns the
// items, whether the listing is truncated, and where it continues.
func oldBoundedList[T any](ctx context.Context, fetch oldFetchFunc[T], readable func(T) bool, prefix, delimiter string, after Position, limit, budget int) ([]oldListItem[T], bool, Position, error) {
	var out []oldListItem[T]
	cur, next := after, after
	for {
		items, more, inext, scanned, err := fetch(ctx, prefix, delimiter, cur, index.MaxList, max(budget, minListStep))
		if err != nil {
			return out, false, Position{}, err
		}
		budget -= scanned
		if out == nil {
			// Sized by the first fetch: usually the whole page.
			out = make([]oldListItem[T], 0, min(limit, len(items)))
		}
		for i, it := range items {
			last := i == len(items)-1 && !more
			if it.prefix == "" {
				if readable(it.v) {
					out = append(out, it)
				}
				next = it.pos
			} else {
				// Resuming inside this prefix: the probe continues from
				// where it stopped.
				var from Position
				if strings.HasPrefix(cur.Key, it.prefix) && cur.Key != it.prefix {
					from = cur
				}
				found, resume, used, err := oldProbePrefix(ctx, fetch, readable, it.prefix, from, budget)
				if err != nil {
					return out, false, Position{}, err
				}
				budget -= used
				switch {
				case found:
					out = append(out, it)
					next = it.pos
				case resume != nil:
					return out, true, *resume, nil
				default:
					next = it.pos // nothing readable under it: skip it
				}
			}
			if len(out) == limit {
				if last {
					return out, false, Position{}, nil
				}
				return out, true, next, nil
			}
			if budget <= 0 && !last {
				return out, true, next, nil
			}
		}
		if !more {
			return out, false, Position{}, nil
		}
		cur, next = inext, inext
		if budget <= 0 {
			return out, true, next, nil
		}
	}
}

// oldEntries counts the items that are not common prefixes.
func oldEntries[T any](items []oldListItem[T]) int {
	n := 0
	for _, it := range items {
		if it.prefix == "" {
			n++
		}
	}
	return n
}

// oldProbePrefix looks under a common prefix for an entry readable by the
// caller, from a position (zero: the start). It stops when one is found,
// when the prefix is exhausted, or when the budget is, returning where to
// resume.
func oldProbePrefix[T any](ctx context.Context, fetch oldFetchFunc[T], readable func(T) bool, cp string, from Position, budget int) (bool, *Position, int, error) {
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

// oracleList is List before the eighth pass: it lists the latest versions of keys in a vault that the context's
// principal may read, with the common prefixes under which it may read
// something. page.Next continues the listing; it may name a key the
// principal may not see (see the comment at the top of this file).
func (e *Engine) oracleList(ctx context.Context, vaultName string, o index.ListOptions) (index.ListPage, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return index.ListPage{}, err
	}
	if !e.filtering(ctx) {
		return e.index.List(ctx, vaultName, o)
	}
	fetch := func(ctx context.Context, prefix, delim string, after Position, n, scan int) ([]oldListItem[index.Version], bool, Position, int, error) {
		ip, err := e.index.List(ctx, vaultName, index.ListOptions{Prefix: prefix, Delimiter: delim, After: after.Key, Max: n, Scan: scan})
		if err != nil {
			return nil, false, Position{}, ip.Scanned, err
		}
		items := make([]oldListItem[index.Version], 0, len(ip.Entries)+len(ip.CommonPrefixes))
		i, j := 0, 0
		for i < len(ip.Entries) || j < len(ip.CommonPrefixes) {
			if j == len(ip.CommonPrefixes) || i < len(ip.Entries) && ip.Entries[i].Key < ip.CommonPrefixes[j] {
				items = append(items, oldListItem[index.Version]{v: ip.Entries[i], pos: Position{Key: ip.Entries[i].Key}})
				i++
			} else {
				items = append(items, oldListItem[index.Version]{prefix: ip.CommonPrefixes[j], pos: Position{Key: ip.CommonPrefixes[j]}})
				j++
			}
		}
		return items, ip.Truncated, Position{Key: ip.Next}, max(ip.Scanned, len(items)), nil
	}
	readable := func(x index.Version) bool { return e.canRead(ctx, v, x.Label) == nil }
	items, truncated, next, err := oldBoundedList(ctx, fetch, readable, o.Prefix, o.Delimiter, Position{Key: o.After}, index.PageSize(o.Max), scanOf(o.Scan))
	page := index.ListPage{Truncated: truncated}
	if n := oldEntries(items); n > 0 {
		page.Entries = make([]index.Version, 0, n)
	}
	for _, it := range items {
		if it.prefix != "" {
			page.CommonPrefixes = append(page.CommonPrefixes, it.prefix)
		} else {
			page.Entries = append(page.Entries, it.v)
		}
	}
	if truncated {
		page.Next = next.Key
	}
	return page, err
}

// oracleVersions is Versions before the eighth pass: it lists the versions (delete markers included) in a vault that
// the context's principal may read, with the common prefixes under which it
// may read a version. NextKeyMarker and NextVersionMarker continue it and
// may name a version the principal may not see.
func (e *Engine) oracleVersions(ctx context.Context, vaultName string, o index.VersionOptions) (index.VersionPage, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return index.VersionPage{}, err
	}
	if !e.filtering(ctx) {
		return e.index.Versions(ctx, vaultName, o)
	}
	fetch := func(ctx context.Context, prefix, delim string, after Position, n, scan int) ([]oldListItem[index.Version], bool, Position, int, error) {
		vo := index.VersionOptions{Prefix: prefix, Delimiter: delim, KeyMarker: after.Key, Max: min(n, scan)}
		if after.ID != "" {
			id, err := manifest.ParseID(after.ID)
			if err != nil {
				return nil, false, Position{}, 0, err
			}
			vo.VersionMarker = id
		}
		ip, err := e.index.Versions(ctx, vaultName, vo)
		if err != nil {
			return nil, false, Position{}, 0, err
		}
		items := make([]oldListItem[index.Version], 0, len(ip.Versions)+len(ip.CommonPrefixes))
		i, j := 0, 0
		for i < len(ip.Versions) || j < len(ip.CommonPrefixes) {
			if j == len(ip.CommonPrefixes) || i < len(ip.Versions) && ip.Versions[i].Key < ip.CommonPrefixes[j] {
				x := ip.Versions[i]
				items = append(items, oldListItem[index.Version]{v: x, pos: Position{Key: x.Key, ID: x.ID.String()}})
				i++
			} else {
				items = append(items, oldListItem[index.Version]{prefix: ip.CommonPrefixes[j], pos: Position{Key: ip.CommonPrefixes[j]}})
				j++
			}
		}
		next := Position{Key: ip.NextKeyMarker}
		if !ip.NextVersionMarker.IsZero() {
			next.ID = ip.NextVersionMarker.String()
		}
		return items, ip.Truncated, next, len(items), nil
	}
	readable := func(x index.Version) bool { return e.canRead(ctx, v, x.Label) == nil }
	after := Position{Key: o.KeyMarker}
	if !o.VersionMarker.IsZero() {
		after.ID = o.VersionMarker.String()
	}
	items, truncated, next, err := oldBoundedList(ctx, fetch, readable, o.Prefix, o.Delimiter, after, index.PageSize(o.Max), scanOf(o.Scan))
	page := index.VersionPage{Truncated: truncated}
	if n := oldEntries(items); n > 0 {
		page.Versions = make([]index.Version, 0, n)
	}
	for _, it := range items {
		if it.prefix != "" {
			page.CommonPrefixes = append(page.CommonPrefixes, it.prefix)
		} else {
			page.Versions = append(page.Versions, it.v)
		}
	}
	if truncated {
		page.NextKeyMarker = next.Key
		if next.ID != "" {
			page.NextVersionMarker, _ = manifest.ParseID(next.ID)
		}
	}
	return page, err
}

// oracleListUploads is ListUploads before the eighth pass: it lists the in-progress uploads of a vault the context's
// principal may see: all of them to an operator of the vault (and to the
// node's own work), its own to anyone else. NextKeyMarker and NextIDMarker
// continue it and may name an upload the principal may not see.
func (e *Engine) oracleListUploads(ctx context.Context, vaultName string, o index.UploadOptions) (index.UploadPage, error) {
	v, err := e.Vault(vaultName)
	if err != nil {
		return index.UploadPage{}, err
	}
	if !e.filtering(ctx) {
		return e.index.ListUploads(ctx, vaultName, o)
	}
	fetch := func(ctx context.Context, prefix, delim string, after Position, n, scan int) ([]oldListItem[index.Upload], bool, Position, int, error) {
		ip, err := e.index.ListUploads(ctx, vaultName, index.UploadOptions{Prefix: prefix, Delimiter: delim, KeyMarker: after.Key, IDMarker: after.ID, Max: min(n, scan)})
		if err != nil {
			return nil, false, Position{}, 0, err
		}
		items := make([]oldListItem[index.Upload], 0, len(ip.Uploads)+len(ip.CommonPrefixes))
		i, j := 0, 0
		for i < len(ip.Uploads) || j < len(ip.CommonPrefixes) {
			if j == len(ip.CommonPrefixes) || i < len(ip.Uploads) && ip.Uploads[i].Key < ip.CommonPrefixes[j] {
				u := ip.Uploads[i]
				items = append(items, oldListItem[index.Upload]{v: u, pos: Position{Key: u.Key, ID: u.ID}})
				i++
			} else {
				items = append(items, oldListItem[index.Upload]{prefix: ip.CommonPrefixes[j], pos: Position{Key: ip.CommonPrefixes[j]}})
				j++
			}
		}
		return items, ip.Truncated, Position{Key: ip.NextKeyMarker, ID: ip.NextIDMarker}, len(items), nil
	}
	readable := func(u index.Upload) bool {
		var rec uploadRecord
		return json.Unmarshal(u.Data, &rec) == nil && e.mayReadUpload(ctx, v, u.ID, rec) == nil
	}
	items, truncated, next, err := oldBoundedList(ctx, fetch, readable, o.Prefix, o.Delimiter, Position{Key: o.KeyMarker, ID: o.IDMarker}, index.PageSize(o.Max), scanOf(o.Scan))
	page := index.UploadPage{Truncated: truncated}
	for _, it := range items {
		if it.prefix != "" {
			page.CommonPrefixes = append(page.CommonPrefixes, it.prefix)
		} else {
			page.Uploads = append(page.Uploads, it.v)
		}
	}
	if truncated {
		page.NextKeyMarker, page.NextIDMarker = next.Key, next.ID
	}
	return page, err
}
