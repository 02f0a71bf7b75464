package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/s3"
)

// The admin API lives beside the S3 API on the same listener, under
// /_embassy/ (a name no bucket can have: bucket names have no '_'):
//
//	GET  /_embassy/status                      node, custody and seal state
//	POST /_embassy/unseal                      {"share": base64}: one custodian's share
//	GET  /_embassy/requests                    two-person requests
//	POST /_embassy/requests/{id}/approve       {"custodian": name, "signature": base64}
//	POST /_embassy/requests/{id}/reject        same
//
// Unsealing is authenticated by the shares themselves and decisions by the
// custodians' signatures, so these endpoints need no S3 credentials.

// AdminPrefix is the path prefix of the admin API.
const AdminPrefix = "/_embassy/"

// Status is the node's status as the admin API reports it.
type Status struct {
	Node    string       `json:"node"`
	Nation  string       `json:"nation"`
	Dev     bool         `json:"dev"`
	Custody string       `json:"custody"` // "local key file" or "shamir t-of-n"
	Unseal  UnsealStatus `json:"unseal"`
	Note    string       `json:"note,omitempty"`
	// Sites is each site's state once the node is unsealed: a site whose
	// marker names another node or site, or that has none, is
	// unavailable, with the reason.
	Sites []SiteState `json:"sites"`
	// Descriptor is the node descriptor's generation on the sites, and
	// why the node does not publish it, if it does not.
	Descriptor DescriptorState `json:"descriptor"`
}

// Status returns the node's status.
func (n *Node) Status() Status {
	st := Status{Node: n.Config.Node.ID, Nation: n.Config.Node.Nation, Dev: n.Config.Node.Dev, Custody: "local root key file"}
	n.sealMu.Lock()
	st.Unseal = n.statusLocked()
	n.sealMu.Unlock()
	if n.Custody != nil {
		st.Custody = "shamir " + itoa(n.Custody.Set.Threshold) + " of " + itoa(len(n.Custody.Custodians))
	}
	if st.Dev {
		st.Note = "DEVELOPMENT NODE: the root key is a local file and the node unseals itself; not for real data"
	}
	st.Sites = []SiteState{}
	if !st.Unseal.Sealed {
		st.Sites = append(st.Sites, n.SiteStates(context.Background(), 10*time.Second)...)
		st.Descriptor = n.Descriptor()
	}
	return st
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// Handler returns the node's HTTP handler: the admin API and, once the node
// is unsealed, the S3 API (503 ServiceUnavailable before).
func (n *Node) Handler(extra ...s3.Credential) http.Handler {
	var once sync.Once
	var s3h http.Handler
	var s3err error
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, AdminPrefix) {
			n.admin(w, r)
			return
		}
		if err := n.Ready(); err != nil {
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>ServiceUnavailable</Code><Message>The node is sealed: custodians must unseal it (embassy unseal).</Message></Error>`)
			return
		}
		once.Do(func() { s3h, s3err = n.S3Handler(extra...) })
		if s3err != nil {
			http.Error(w, s3err.Error(), http.StatusInternalServerError)
			return
		}
		s3h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type adminError struct {
	Error string `json:"error"`
}

func (n *Node) admin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, AdminPrefix)
	body := func(v any) error {
		return json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v)
	}
	switch {
	case path == "metrics" && r.Method == http.MethodGet:
		n.metrics(w)
	case path == "status" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, n.Status())
	case path == "unseal" && r.Method == http.MethodPost:
		var req struct {
			Share string `json:"share"`
		}
		if err := body(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"malformed request: " + err.Error()})
			return
		}
		share, err := base64.StdEncoding.DecodeString(req.Share)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"share is not base64"})
			return
		}
		st, err := n.Unseal(share)
		clear(share)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, struct {
				adminError
				UnsealStatus
			}{adminError{err.Error()}, st})
			return
		}
		writeJSON(w, http.StatusOK, st)
	case path == "requests" && r.Method == http.MethodGet:
		rs, err := n.Requests()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, adminError{err.Error()})
			return
		}
		if rs == nil {
			rs = []*Request{}
		}
		writeJSON(w, http.StatusOK, rs)
	case strings.HasPrefix(path, "requests/") && r.Method == http.MethodPost:
		id, verb, _ := strings.Cut(strings.TrimPrefix(path, "requests/"), "/")
		if verb != "approve" && verb != "reject" {
			writeJSON(w, http.StatusNotFound, adminError{"no such endpoint"})
			return
		}
		var req struct {
			Custodian string `json:"custodian"`
			Signature string `json:"signature"`
		}
		if err := body(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"malformed request: " + err.Error()})
			return
		}
		sig, err := base64.StdEncoding.DecodeString(req.Signature)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{"signature is not base64"})
			return
		}
		rq, err := n.Decide(r.Context(), id, req.Custodian, verb == "approve", sig)
		if err != nil {
			status := http.StatusForbidden
			switch {
			case errors.Is(err, ErrNoSuchRequest):
				status = http.StatusNotFound
			case errors.Is(err, ErrNotPending):
				status = http.StatusConflict
			}
			writeJSON(w, status, adminError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rq)
	default:
		writeJSON(w, http.StatusNotFound, adminError{"no such endpoint: " + r.Method + " " + r.URL.Path})
	}
}
