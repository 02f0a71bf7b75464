package s3

import (
	"context"
	"net/http"
	"strings"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/vault"
)

// Allied serves allies' shared vaults: buckets whose name holds "--"
// (OWNER--VAULT, e.g. est--registry), a name no vault of this node can
// have. They are read-only: listing, GET and HEAD only; everything else is
// AccessDenied. The node fetches what they hold from the owner, as the
// request's principal (vault.PrincipalFrom), and the owner decides.
type Allied interface {
	// AlliedBuckets lists the shared vaults in force the principal may see.
	AlliedBuckets(ctx context.Context) []VaultInfo
	// AlliedBucket reports whether name is a shared vault in force.
	AlliedBucket(ctx context.Context, name string) bool
	// AlliedList lists a shared vault as the engine's List does.
	AlliedList(ctx context.Context, bucket string, o index.ListOptions) (index.ListPage, error)
	// AlliedGet opens a version of a shared object, as the engine's Get.
	AlliedGet(ctx context.Context, bucket, key string, o vault.GetOptions) (*vault.Reader, error)
}

// IsAlliedBucket reports whether name is an ally's shared vault.
func IsAlliedBucket(name string) bool { return strings.Contains(name, "--") }

// alliedOps are the operations an ally's shared vault answers.
var alliedOps = map[string]bool{"GetObject": true, "HeadObject": true, "ListObjects": true, "ListObjectsV2": true, "HeadBucket": true, "GetBucketLocation": true}

// checkAllied refuses what a shared vault does not answer.
func (s *Server) checkAllied(q *request) error {
	if s.cfg.Allied == nil {
		return errNoSuchBucket
	}
	if !alliedOps[q.op] {
		return errorf("AccessDenied", http.StatusForbidden, "%s is an ally's shared vault: it is read-only (list, GET and HEAD)", q.bucket)
	}
	if !s.alliedExists(q) {
		return errNoSuchBucket
	}
	return nil
}

func (s *Server) alliedExists(q *request) bool {
	return s.cfg.Allied.AlliedBucket(q.r.Context(), q.bucket)
}

// bucketExists reports whether the request's bucket exists.
func (s *Server) bucketExists(q *request) bool {
	if IsAlliedBucket(q.bucket) {
		return s.cfg.Allied != nil && s.alliedExists(q)
	}
	_, ok := s.cfg.Vaults.VaultInfo(q.bucket)
	return ok
}

// get opens an object of the request's bucket.
func (s *Server) get(q *request, o vault.GetOptions) (*vault.Reader, error) {
	if IsAlliedBucket(q.bucket) {
		return s.cfg.Allied.AlliedGet(q.r.Context(), q.bucket, q.key, o)
	}
	return s.e.Get(q.r.Context(), q.bucket, q.key, o)
}
