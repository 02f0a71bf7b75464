package s3

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/manifest"
)

func (s *Server) owner(q *request) owner {
	p := q.principal
	if p == "" {
		p = "embassy"
	}
	return owner{ID: p, DisplayName: p}
}

// maxBuckets is the most buckets ListBuckets returns on a page.
const maxBuckets = 10000

func (s *Server) listBuckets(q *request) error {
	qs := q.query
	prefix, after := qs.Get("prefix"), qs.Get("continuation-token")
	max := maxBuckets
	if m := qs.Get("max-buckets"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > maxBuckets {
			return errorf("InvalidArgument", http.StatusBadRequest, "max-buckets must be a number from 1 to %d", maxBuckets)
		}
		max = n
	}
	res := listAllMyBucketsResult{Xmlns: s3NS, Owner: s.owner(q), Buckets: []bucketXML{}, Prefix: prefix}
	vs := s.cfg.Vaults.ListVaults()
	if s.cfg.Allied != nil {
		vs = append(vs, s.cfg.Allied.AlliedBuckets(q.r.Context())...)
	}
	slices.SortFunc(vs, func(a, b VaultInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, v := range vs {
		// The token is the last name a page returned: a bucket the
		// principal may list.
		if !q.p.Can(v.Name, access.RoleReader) || !strings.HasPrefix(v.Name, prefix) || v.Name <= after {
			continue
		}
		if len(res.Buckets) == max {
			res.ContinuationToken = res.Buckets[max-1].Name
			break
		}
		res.Buckets = append(res.Buckets, bucketXML{Name: v.Name, CreationDate: xmlTime(v.Created)})
	}
	return q.writeXML(res)
}

func (s *Server) createBucket(q *request) error {
	if err := manifest.ValidNewVault(q.bucket); err != nil {
		return errInvalidBucketName.with(err)
	}
	if err := aclHeaders(q.r.Header); err != nil {
		return err
	}
	if q.r.ContentLength != 0 {
		var cfg createBucketConfiguration
		if err := q.readXML(&cfg); err != nil {
			return err
		}
		if cfg.LocationConstraint != "" && cfg.LocationConstraint != s.cfg.Region {
			return errorf("InvalidLocationConstraint", http.StatusBadRequest, "The specified location-constraint %q is not valid; this node serves %s", cfg.LocationConstraint, s.cfg.Region)
		}
	}
	h := q.r.Header
	o := VaultOptions{
		Erasure:     h.Get("x-embassy-erasure"),
		Survive:     h.Get("x-embassy-survive"),
		OutsideHome: strings.EqualFold(h.Get("x-embassy-outside-home"), "true"),
		ObjectLock:  strings.EqualFold(h.Get("x-amz-bucket-object-lock-enabled"), "true"),
	}
	if err := s.cfg.Vaults.CreateVault(q.r.Context(), q.bucket, o); err != nil {
		if errors.Is(err, ErrVaultExists) {
			// S3 in us-east-1 answers 200 to creating a bucket one
			// already has (and changes nothing); other regions 409.
			if s.cfg.Region == "us-east-1" {
				q.w.Header().Set("Location", "/"+q.bucket)
				q.ok()
				return nil
			}
			return errBucketAlreadyOwned.with(err)
		}
		if ae, ok := errors.AsType[*apiError](err); ok {
			return ae
		}
		if strings.Contains(err.Error(), "cannot be satisfied") || strings.Contains(err.Error(), "erasure") || strings.Contains(err.Error(), "survive") {
			return errorf("InvalidArgument", http.StatusBadRequest, "%v", err)
		}
		return err
	}
	q.w.Header().Set("Location", "/"+q.bucket)
	q.ok()
	return nil
}

func (s *Server) headBucket(q *request) error {
	if !s.bucketExists(q) {
		return errNoSuchBucket
	}
	q.w.Header().Set("x-amz-bucket-region", s.cfg.Region)
	q.ok()
	return nil
}

func (s *Server) deleteBucket(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	// As on AWS, a bucket with no current object can be deleted: its
	// noncurrent versions, delete markers and uploads in progress go with
	// it (each recorded as a deletion), unless a lock keeps a version.
	if err := s.cfg.Vaults.DeleteVault(q.r.Context(), q.bucket); err != nil {
		if errors.Is(err, ErrVaultNotEmpty) {
			e := errBucketNotEmpty.with(err)
			e.Message += ": " + strings.TrimPrefix(err.Error(), ErrVaultNotEmpty.Error()+": ")
			return e
		}
		return err
	}
	q.noContent()
	return nil
}

func (s *Server) getLocation(q *request) error {
	if !s.bucketExists(q) {
		return errNoSuchBucket
	}
	region := s.cfg.Region
	if region == "us-east-1" {
		region = ""
	}
	return q.writeXML(locationConstraint{Xmlns: s3NS, Region: region})
}

// Vaults are always versioned: every put creates a version and a delete
// writes a delete marker, so history cannot be lost by overwriting.
func (s *Server) getVersioning(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	return q.writeXML(versioningConfiguration{Xmlns: s3NS, Status: "Enabled"})
}

func (s *Server) putVersioning(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	var v versioningConfiguration
	if err := q.readXML(&v); err != nil {
		return err
	}
	switch v.Status {
	case "Enabled":
		q.ok()
		return nil
	case "Suspended":
		return errorf("InvalidBucketState", http.StatusConflict, "embassy vaults are always versioned: every version is kept until it is deleted by version id")
	}
	return errMalformedXML
}

func (s *Server) getEncryption(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	// Everything is sealed with AES-256-GCM under per-object keys.
	var c serverSideEncryptionConfiguration
	c.Xmlns = s3NS
	c.Rule.Apply.SSEAlgorithm = "AES256"
	return q.writeXML(c)
}

func (s *Server) getACL(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	o := s.owner(q)
	var g grant
	g.Grantee.XMLNSXSI = "http://www.w3.org/2001/XMLSchema-instance"
	g.Grantee.Type = "CanonicalUser"
	g.Grantee.ID, g.Grantee.Name = o.ID, o.DisplayName
	g.Permission = "FULL_CONTROL"
	return q.writeXML(accessControlPolicy{Xmlns: s3NS, Owner: o, Grants: []grant{g}})
}

func (s *Server) getTagging(q *request) error {
	if _, err := s.e.Stat(q.r.Context(), q.bucket, q.key, manifest.ID{}); err != nil {
		return err
	}
	return q.writeXML(tagging{Xmlns: s3NS})
}

func (s *Server) getObjectLockConfig(q *request) error {
	v, ok := s.cfg.Vaults.VaultInfo(q.bucket)
	if !ok {
		return errNoSuchBucket
	}
	if !v.Lock.Enabled {
		return errNoLockConfiguration
	}
	c := objectLockConfiguration{Xmlns: s3NS, ObjectLockEnabled: "Enabled"}
	if v.Lock.Mode != "" {
		c.Rule = &struct {
			DefaultRetention struct {
				Mode  string `xml:"Mode"`
				Days  *int   `xml:"Days,omitempty"`
				Years *int   `xml:"Years,omitempty"`
			} `xml:"DefaultRetention"`
		}{}
		r := &c.Rule.DefaultRetention
		r.Mode = v.Lock.Mode
		if v.Lock.Days > 0 {
			r.Days = &v.Lock.Days
		}
		if v.Lock.Years > 0 {
			r.Years = &v.Lock.Years
		}
	}
	return q.writeXML(c)
}

// maxRetentionDays is the longest default retention a vault may set.
const maxRetentionDays = 36500

func (s *Server) putObjectLockConfig(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	var c objectLockConfiguration
	if err := q.readXML(&c); err != nil {
		return err
	}
	if c.ObjectLockEnabled != "Enabled" {
		return errMalformedXML
	}
	lc := LockConfig{Enabled: true}
	if c.Rule != nil {
		d := c.Rule.DefaultRetention
		if d.Mode != "GOVERNANCE" && d.Mode != "COMPLIANCE" {
			return errMalformedXML
		}
		// The codes are S3's: both periods is a malformed document, a
		// period that is not positive an invalid one.
		if d.Days != nil && d.Years != nil {
			return errorf("MalformedXML", http.StatusBadRequest, "Default retention takes Days or Years, not both")
		}
		if (d.Days == nil || *d.Days <= 0) && (d.Years == nil || *d.Years <= 0) {
			return errorf("InvalidRetentionPeriod", http.StatusBadRequest, "Default retention needs a positive number of Days or Years")
		}
		days, years := deref(d.Days), deref(d.Years)
		// A default past what a version's lock can record would make every
		// later put in the vault fail; S3 caps retention at a century.
		if days > maxRetentionDays || years > maxRetentionDays/365 {
			return errorf("InvalidRetentionPeriod", http.StatusBadRequest, "Default retention may be at most %d days or %d years", maxRetentionDays, maxRetentionDays/365)
		}
		lc.Mode, lc.Days, lc.Years = d.Mode, days, years
	}
	if err := s.cfg.Vaults.SetObjectLock(q.r.Context(), q.bucket, lc); err != nil {
		return err
	}
	q.ok()
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
