package taxii

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Status is a TAXII 2.1 status resource: what became of the objects of
// one Add Objects request.
type Status struct {
	ID               string         `json:"id"`
	Status           string         `json:"status"`
	RequestTimestamp string         `json:"request_timestamp"`
	TotalCount       int            `json:"total_count"`
	SuccessCount     int            `json:"success_count"`
	Successes        []StatusDetail `json:"successes"`
	FailureCount     int            `json:"failure_count"`
	Failures         []StatusDetail `json:"failures"`
	PendingCount     int            `json:"pending_count"`
	Pendings         []StatusDetail `json:"pendings"`
}

// StatusDetail is one object of a status: its id and version, and for a
// failure, why.
type StatusDetail struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Message string `json:"message,omitempty"`
}

func newStatus(now time.Time, total int) *Status {
	return &Status{ID: NewCollectionID(), Status: "pending", RequestTimestamp: FormatTime(now), TotalCount: total,
		Successes: []StatusDetail{}, Failures: []StatusDetail{}, Pendings: []StatusDetail{}}
}

func (st *Status) finish() {
	st.SuccessCount, st.FailureCount, st.PendingCount = len(st.Successes), len(st.Failures), len(st.Pendings)
	if st.PendingCount == 0 {
		st.Status = "complete"
	}
}

// storedStatus is a status as the index keeps it: with who asked, in
// which collection, and when.
type storedStatus struct {
	Status     *Status `json:"status"`
	Principal  string  `json:"principal"`
	Collection string  `json:"collection"`
	Created    int64   `json:"created"`
}

// ErrNoStatus: no status of that id (never made, expired, or not the
// caller's).
var ErrNoStatus = errors.New("no such status")

func statusAgeKey(created int64, id string) []byte {
	return append(be64(created), id...)
}

// saveStatus keeps a status and drops those past the retention period.
func (s *Store) saveStatus(st *Status, principal, coll string) error {
	now := s.cfg.Now()
	rec := storedStatus{Status: st, Principal: principal, Collection: coll, Created: now.UnixNano()}
	if err := s.ix.putJSON(bucketStatus, []byte(st.ID), rec); err != nil {
		return err
	}
	return s.ix.db.Update(func(tx *bolt.Tx) error {
		age, err := tx.CreateBucketIfNotExists(bucketStatusAge)
		if err != nil {
			return err
		}
		if err := age.Put(statusAgeKey(rec.Created, st.ID), nil); err != nil {
			return err
		}
		// Expire the old ones, a bounded number at a time.
		cutoff := now.Add(-s.cfg.Config().Retention()).UnixNano()
		sb := tx.Bucket(bucketStatus)
		c := age.Cursor()
		n := 0
		for k, _ := c.First(); k != nil && n < 1000; k, _ = c.First() {
			if int64(binary.BigEndian.Uint64(k[:8])) >= cutoff {
				break
			}
			if err := sb.Delete(k[8:]); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
}

// GetStatus returns a status that principal may see: its own, or any if
// all is set (an operator). A status past the retention period is gone.
func (s *Store) GetStatus(id, principal string, all bool) (*Status, error) {
	var rec storedStatus
	ok, err := s.ix.getJSON(bucketStatus, []byte(id), &rec)
	if err != nil {
		return nil, err
	}
	if !ok || rec.Status == nil || (!all && rec.Principal != principal) ||
		s.cfg.Now().Sub(time.Unix(0, rec.Created)) > s.cfg.Config().Retention() {
		return nil, fmt.Errorf("%w: %s", ErrNoStatus, id)
	}
	return rec.Status, nil
}

// Tokens are sealed bytes in URL-safe base64, without padding.
func encodeToken(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func decodeToken(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
}
