package s3

import (
	"net/http"
	"strings"
)

// embassy decides access by labels and roles, not grants, so it behaves as
// an AWS bucket whose ACLs are disabled (object ownership
// BucketOwnerEnforced): the canned ACLs clients send by default are
// accepted, and change nothing; any grant to someone else is refused,
// rather than ignored, so that nobody believes data was shared or made
// public.

// errACLNotSupported is S3's answer to an ACL that would grant access when
// ACLs are disabled.
func errACLNotSupported(what string) *apiError {
	return errorf("AccessControlListNotSupported", http.StatusBadRequest,
		"The bucket does not allow ACLs: embassy decides access by labels and roles, so %s cannot be granted (only the canned ACLs private and bucket-owner-full-control are accepted)", what)
}

// aclHeaders checks the ACL headers of a request that creates a bucket or
// an object: x-amz-acl may be private or bucket-owner-full-control, and no
// x-amz-grant-* header may be given.
func aclHeaders(h http.Header) error {
	switch acl := strings.ToLower(strings.TrimSpace(h.Get("x-amz-acl"))); acl {
	case "", "private", "bucket-owner-full-control":
	default:
		return errACLNotSupported("the canned ACL " + acl)
	}
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "x-amz-grant-") {
			return errACLNotSupported("access by " + name)
		}
	}
	return nil
}

// putACL answers PutObjectAcl and PutBucketAcl: a canned private or
// bucket-owner-full-control ACL, or a policy whose only grant is
// FULL_CONTROL to the owner GetObjectAcl shows, is accepted and changes
// nothing; any other grant is refused.
func (s *Server) putACL(q *request) error {
	if q.key != "" {
		id, err := versionID(q.query.Get("versionId"))
		if err != nil {
			return err
		}
		if _, err := s.e.Stat(q.r.Context(), q.bucket, q.key, id); err != nil {
			return err
		}
	} else if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	if err := aclHeaders(q.r.Header); err != nil {
		return err
	}
	if q.r.ContentLength == 0 && q.r.Header.Get("x-amz-acl") == "" {
		return errorf("MissingSecurityHeader", http.StatusBadRequest, "Your request was missing a required header: x-amz-acl, or an AccessControlPolicy in the body")
	}
	if q.r.Header.Get("x-amz-acl") == "" {
		var p accessControlPolicy
		if err := q.readXML(&p); err != nil {
			return err
		}
		own := s.owner(q)
		for _, g := range p.Grants {
			if g.Permission != "FULL_CONTROL" || g.Grantee.ID != own.ID {
				who := g.Grantee.ID
				if who == "" {
					who = "a group or an e-mail address"
				}
				return errACLNotSupported(g.Permission + " for " + who)
			}
		}
	}
	q.ok()
	return nil
}
