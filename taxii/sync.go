package taxii

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/vault"
)

// SyncCursor is where a sync job has got to. It lives in taxii.db, a
// cache: losing it makes the next run start from the beginning, which
// stores nothing twice (objects are de-duplicated by id and version, here
// and on an embassy peer).
type SyncCursor struct {
	// URL is the remote collection the cursor is of: a job whose URL
	// changed starts again from the beginning.
	URL string `json:"url,omitempty"`
	// PulledUntil is the remote date added of the last object pulled
	// (the X-TAXII-Date-Added-Last of its page).
	PulledUntil string `json:"pulled_until,omitempty"`
	// PushedUntil is the local date added of the last object pushed.
	PushedUntil string `json:"pushed_until,omitempty"`
	// LastRun, LastError: the last run's end and its error, if any.
	LastRun   string `json:"last_run,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

var bucketSync = []byte("sync")

// SyncCursor returns a job's cursor (zero if it never ran).
func (x *Index) SyncCursor(name string) (SyncCursor, error) {
	var c SyncCursor
	_, err := x.getJSON(bucketSync, []byte(name), &c)
	return c, err
}

// SetSyncCursor keeps a job's cursor.
func (x *Index) SetSyncCursor(name string, c SyncCursor) error {
	return x.putJSON(bucketSync, []byte(name), c)
}

// SyncResult says what one run of a sync job did.
type SyncResult struct {
	// Pulled objects stored here (an object already here counts), and
	// those refused, with their reasons in the log.
	Pulled      int `json:"pulled"`
	PullRefused int `json:"pull_refused"`
	Pushed      int `json:"pushed"`
	PushRefused int `json:"push_refused"`
	// Withheld: objects marked TLP:RED that the recipient could read,
	// never sent. What it may not read is not even listed.
	Withheld int `json:"withheld"`
}

// syncPage is how many objects one request of a sync moves, and
// syncEnvelopeBytes the most one pushed envelope holds.
const (
	syncPage          = 500
	syncEnvelopeBytes = 4 << 20
)

// Sync runs a sync job once: it pulls what the remote collection added
// since the cursor, as job.As, and pushes what the local collection added
// since the cursor and job.Recipient may read (never TLP:RED), keeping the
// cursor after every page. principal resolves local principals; hc is the
// HTTP client (nil: http.DefaultClient).
func (s *Store) Sync(ctx context.Context, job SyncConfig, principal func(string) access.Principal, hc *http.Client) (SyncResult, error) {
	var res SyncResult
	if job.Peer != "" {
		return res, ErrNoPeerChannel
	}
	if err := checkSyncURL(job.URL, job.AllowInsecure); err != nil {
		return res, fmt.Errorf("sync %s: url: %w", job.Name, err)
	}
	col, err := s.Collection(job.Collection)
	if err != nil {
		return res, fmt.Errorf("sync %s: %w", job.Name, err)
	}
	cur, err := s.ix.SyncCursor(job.Name)
	if err != nil {
		return res, err
	}
	if cur.URL != job.URL {
		cur = SyncCursor{URL: job.URL}
	}
	c := &Client{URL: job.URL, User: job.User, Password: job.Password, HTTP: hc}
	var runErr error
	if job.Pulls() {
		// The roles of the principal pulled objects are written as, as a
		// TAXII client of this node would need them.
		if as := principal(job.As); !as.Can(col.Vault, access.RoleWriter) {
			runErr = fmt.Errorf("sync %s: %s holds no writer role on vault %s, so it may not add to collection %s", job.Name, job.As, col.Vault, col.Name())
		} else {
			runErr = s.pull(ctx, job, col, c, as, &cur, &res)
		}
	}
	if runErr == nil && job.Pushes() {
		if to := principal(job.Recipient); !to.Can(col.Vault, access.RoleReader) {
			runErr = fmt.Errorf("sync %s: the recipient %s holds no reader role on vault %s, so nothing of collection %s may be sent to it", job.Name, job.Recipient, col.Vault, col.Name())
		} else {
			runErr = s.push(ctx, job, col, c, to, &cur, &res)
		}
	}
	cur.LastRun, cur.LastError = FormatTime(s.cfg.Now()), ""
	if runErr != nil {
		cur.LastError = runErr.Error()
	}
	if err := s.ix.SetSyncCursor(job.Name, cur); err != nil && runErr == nil {
		runErr = err
	}
	s.log.InfoContext(ctx, "TAXII sync", "job", job.Name, "collection", col.Name(), "pulled", res.Pulled, "pull_refused", res.PullRefused,
		"pushed", res.Pushed, "push_refused", res.PushRefused, "withheld", res.Withheld, "err", runErr)
	return res, runErr
}

func (s *Store) pull(ctx context.Context, job SyncConfig, col CollectionConfig, c *Client, as access.Principal, cur *SyncCursor, res *SyncResult) error {
	actx := vault.WithPrincipal(ctx, as)
	var after time.Time
	if cur.PulledUntil != "" {
		t, err := ParseTimestamp(cur.PulledUntil)
		if err != nil {
			return fmt.Errorf("sync %s: pulled_until %q: %v", job.Name, cur.PulledUntil, err)
		}
		after = t
	}
	next := ""
	for range 100000 {
		p, err := c.GetObjects(ctx, after, next, syncPage)
		if err != nil {
			return fmt.Errorf("sync %s: pull: %w", job.Name, err)
		}
		if len(p.Objects) > 0 {
			st, err := s.Add(actx, col, p.Objects)
			if err != nil {
				return fmt.Errorf("sync %s: pull: %w", job.Name, err)
			}
			res.Pulled += st.SuccessCount
			res.PullRefused += st.FailureCount
			for _, f := range st.Failures {
				s.log.WarnContext(ctx, "TAXII sync: pulled object refused", "job", job.Name, "id", f.ID, "version", f.Version, "reason", f.Message)
			}
		}
		if !p.AddedLast.IsZero() {
			cur.PulledUntil = FormatTime(p.AddedLast)
			if err := s.ix.SetSyncCursor(job.Name, *cur); err != nil {
				return err
			}
		}
		switch {
		case !p.More:
			return nil
		case p.Next != "":
			next = p.Next
		case !p.AddedLast.IsZero() && p.AddedLast.After(after):
			after, next = p.AddedLast, ""
		default:
			return fmt.Errorf("sync %s: pull: the server says there is more but gives neither next nor a later X-TAXII-Date-Added-Last", job.Name)
		}
	}
	return nil
}

func (s *Store) push(ctx context.Context, job SyncConfig, col CollectionConfig, c *Client, to access.Principal, cur *SyncCursor, res *SyncResult) error {
	// The recipient's read decision is what may leave: listings leave out
	// what it may not read.
	rctx := vault.WithPrincipal(ctx, to)
	f := Filter{Limit: syncPage, Version: VersionFilter{All: true}}
	if cur.PushedUntil != "" {
		t, err := ParseTimestamp(cur.PushedUntil)
		if err != nil {
			return fmt.Errorf("sync %s: pushed_until %q: %v", job.Name, cur.PushedUntil, err)
		}
		f.AddedAfter = t
	}
	for range 100000 {
		page, err := s.List(rctx, col, f, true)
		if err != nil {
			return fmt.Errorf("sync %s: push: %w", job.Name, err)
		}
		var objs []json.RawMessage
		for i, e := range page.Entries {
			if e.TLP == TLPRed.String() {
				res.Withheld++
				continue
			}
			objs = append(objs, page.Objects[i])
		}
		// Envelopes of at most syncEnvelopeBytes, below any server's
		// usual max_content_length.
		for len(objs) > 0 {
			n, size := 0, 0
			for n < len(objs) && (n == 0 || size+len(objs[n]) <= syncEnvelopeBytes) {
				size += len(objs[n]) + 1
				n++
			}
			st, err := c.AddObjects(ctx, objs[:n], 2*time.Minute)
			if err != nil {
				return fmt.Errorf("sync %s: push: %w", job.Name, err)
			}
			objs = objs[n:]
			res.Pushed += st.SuccessCount
			res.PushRefused += st.FailureCount
			for _, fl := range st.Failures {
				s.log.WarnContext(ctx, "TAXII sync: pushed object refused by the remote server", "job", job.Name, "id", fl.ID, "version", fl.Version, "reason", fl.Message)
			}
			if st.Status != "complete" {
				return fmt.Errorf("sync %s: push: the remote server has not finished status %s after 2m", job.Name, st.ID)
			}
		}
		if n := len(page.Entries); n > 0 {
			cur.PushedUntil = FormatTime(page.Entries[n-1].AddedTime())
			if err := s.ix.SetSyncCursor(job.Name, *cur); err != nil {
				return err
			}
		}
		if !page.More {
			break
		}
		f.Next = page.Next
	}
	return nil
}

// SyncCursorOf returns a job's cursor.
func (s *Store) SyncCursorOf(name string) (SyncCursor, error) { return s.ix.SyncCursor(name) }
