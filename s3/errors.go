package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/s3/sigv4"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// apiError is an S3 error: a code, its HTTP status and a message. This file
// is the one place where engine errors become S3 codes.
type apiError struct {
	Code    string
	Status  int
	Message string
	Fields  []sigv4.Field
	Headers map[string]string
	err     error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.Code + ": " + e.err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *apiError) Unwrap() error { return e.err }

func newErr(code string, status int, msg string) *apiError {
	return &apiError{Code: code, Status: status, Message: msg}
}

func errorf(code string, status int, format string, args ...any) *apiError {
	return &apiError{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

var (
	errNoSuchBucket        = newErr("NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist")
	errNoSuchKey           = newErr("NoSuchKey", http.StatusNotFound, "The specified key does not exist.")
	errNoSuchVersion       = newErr("NoSuchVersion", http.StatusNotFound, "The specified version does not exist.")
	errNoSuchUpload        = newErr("NoSuchUpload", http.StatusNotFound, "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	errMethodNotAllowed    = newErr("MethodNotAllowed", http.StatusMethodNotAllowed, "The specified method is not allowed against this resource.")
	errInvalidRange        = newErr("InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable")
	errMalformedXML        = newErr("MalformedXML", http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema.")
	errBucketNotEmpty      = newErr("BucketNotEmpty", http.StatusConflict, "The bucket you tried to delete is not empty")
	errBucketAlreadyOwned  = newErr("BucketAlreadyOwnedByYou", http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it.")
	errInvalidBucketName   = newErr("InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid.")
	errPreconditionFailed  = newErr("PreconditionFailed", http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold")
	errEntityTooLarge      = newErr("EntityTooLarge", http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size.")
	errEntityTooSmall      = newErr("EntityTooSmall", http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size.")
	errInvalidPart         = newErr("InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.")
	errInvalidPartOrder    = newErr("InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
	errNotImplemented      = newErr("NotImplemented", http.StatusNotImplemented, "A header you provided implies functionality that is not implemented")
	errObjectLocked        = newErr("AccessDenied", http.StatusForbidden, "Access Denied because object protected by object lock.")
	errKeyTooLong          = newErr("KeyTooLongError", http.StatusBadRequest, "Your key is too long")
	errInvalidURI          = newErr("InvalidURI", http.StatusBadRequest, "Couldn't parse the specified URI.")
	errMissingContentLen   = newErr("MissingContentLength", http.StatusLengthRequired, "You must provide the Content-Length HTTP header.")
	errInvalidLockConfig   = newErr("InvalidRequest", http.StatusBadRequest, "Bucket is missing Object Lock Configuration")
	errNoLockConfiguration = newErr("ObjectLockConfigurationNotFoundError", http.StatusNotFound, "Object Lock configuration does not exist for this bucket")
	errNoSuchRetention     = newErr("NoSuchObjectLockConfiguration", http.StatusNotFound, "The specified object does not have a ObjectLock configuration")
	errInternal            = newErr("InternalError", http.StatusInternalServerError, "We encountered an internal error. Please try again.")
)

// with returns a copy of e carrying a more specific message and cause.
func (e *apiError) with(err error) *apiError {
	c := *e
	c.err = err
	return &c
}

// toAPI maps any error to the S3 error the client sees.
func toAPI(err error) *apiError {
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae
	}
	if se, ok := errors.AsType[*sigv4.Error](err); ok {
		return &apiError{Code: string(se.Code), Status: se.Status(), Message: se.Message, Fields: se.Fields, err: err}
	}
	switch {
	case errors.Is(err, access.ErrDenied):
		// The same answer whether or not the object exists; the reason
		// goes to the log, never to the client.
		return &apiError{Code: "AccessDenied", Status: http.StatusForbidden, Message: "Access Denied", err: err}
	case errors.Is(err, vault.ErrApprovalRequired):
		msg := "This operation needs the approval of two custodians."
		if pe, ok := errors.AsType[*vault.PendingError](err); ok {
			msg = fmt.Sprintf("This operation needs the approval of %d custodians: request %s has been created (embassy approve %s).", pe.Needed, pe.RequestID, pe.RequestID)
		}
		return &apiError{Code: "AccessDenied", Status: http.StatusForbidden, Message: msg, Headers: map[string]string{"x-embassy-request-id": requestID(err)}, err: err}
	case errors.Is(err, vault.ErrNoCustodians):
		return &apiError{Code: "AccessDenied", Status: http.StatusForbidden, Message: "This operation needs the approval of two custodians, and this node has none: it is refused.", err: err}
	case errors.Is(err, vault.ErrInvalidLabel):
		return errorf("InvalidArgument", http.StatusBadRequest, "%v", err).with(err)
	case errors.Is(err, vault.ErrLabelBinding):
		return errInternal.with(err)
	case errors.Is(err, vault.ErrNoSuchVault):
		return errNoSuchBucket.with(err)
	case errors.Is(err, vault.ErrDeleteMarker):
		dm, _ := errors.AsType[*vault.DeleteMarkerError](err)
		h := map[string]string{"x-amz-delete-marker": "true"}
		if dm != nil {
			h["x-amz-version-id"] = dm.Version.String()
		}
		var base *apiError
		if dm != nil && !dm.Latest {
			base = errMethodNotAllowed
		} else {
			base = errNoSuchKey
		}
		e := base.with(err)
		e.Headers = h
		return e
	case errors.Is(err, vault.ErrNoSuchKey):
		return errNoSuchKey.with(err)
	case errors.Is(err, vault.ErrNoSuchVersion):
		return errNoSuchVersion.with(err)
	case errors.Is(err, vault.ErrNoSuchUpload):
		return errNoSuchUpload.with(err)
	case errors.Is(err, vault.ErrInvalidRange):
		return errInvalidRange.with(err)
	case errors.Is(err, vault.ErrInvalidPart):
		return errInvalidPart.with(err)
	case errors.Is(err, vault.ErrInvalidPartOrder):
		return errInvalidPartOrder.with(err)
	case errors.Is(err, vault.ErrPartTooSmall):
		return errEntityTooSmall.with(err)
	case errors.Is(err, vault.ErrPreconditionFailed):
		return errPreconditionFailed.with(err)
	case errors.Is(err, vault.ErrLocked):
		return errObjectLocked.with(err)
	case errors.Is(err, vault.ErrIncomplete):
		return newErr("IncompleteBody", http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header.").with(err)
	case errors.Is(err, site.ErrFull):
		// Named for the operator; the paths and system errors stay in the
		// log. 507 is not retried by S3 clients, as a full disk should not be.
		return &apiError{Code: "XEmbassyStorageFull", Status: http.StatusInsufficientStorage, Message: fullMessage(err), err: err}
	case errors.Is(err, vault.ErrReconfigured):
		// Retried by S3 clients; the retry is placed under the new
		// configuration.
		return &apiError{Code: "SlowDown", Status: http.StatusServiceUnavailable, Message: "The node's configuration changed while the object was written; please retry.", Headers: map[string]string{"Retry-After": "1"}, err: err}
	case errors.Is(err, custody.ErrSealLimit):
		// Named for the operators in the log (the key and the command that
		// rotates it); writes stay refused until they do.
		return newErr("ServiceUnavailable", http.StatusServiceUnavailable, "A key of this node has encrypted as many messages as it safely can and must be rotated by the operators: writes under it are refused until then.").with(err)
	case errors.Is(err, placement.ErrInfeasible):
		return newErr("ServiceUnavailable", http.StatusServiceUnavailable, "Not enough sites are available to store the object under its vault's placement policy: "+err.Error()).with(err)
	case errors.Is(err, vault.ErrUnreadable):
		return newErr("ServiceUnavailable", http.StatusServiceUnavailable, "Too few sites hold intact shards of the object right now.").with(err)
	case errors.Is(err, manifest.ErrCorrupt):
		return errInternal.with(err)
	case errors.Is(err, index.ErrNotFound):
		return errNoSuchKey.with(err)
	case errors.Is(err, httpguard.ErrTooSlow):
		return newErr("RequestTimeout", http.StatusBadRequest, "Your socket connection to the server was not read from or written to within the timeout period.").with(err)
	case errors.Is(err, context.Canceled):
		return newErr("RequestTimeout", http.StatusBadRequest, "Your socket connection to the server was not read from or written to within the timeout period.").with(err)
	}
	return errInternal.with(err)
}

// fullMessage names the sites that are full.
func fullMessage(err error) string {
	sfe, ok := errors.AsType[*vault.SiteFullError](err)
	switch {
	case !ok || len(sfe.Sites) == 0:
		return "A storage site is full: the object could not be stored. An operator must free space there, add sites, or drain it."
	case len(sfe.Sites) == 1:
		return "Site " + sfe.Sites[0] + " is full: the object could not be stored. An operator must free space there, add sites, or drain it."
	}
	return "Sites " + strings.Join(sfe.Sites, ", ") + " are full: the object could not be stored. An operator must free space there, add sites, or drain them."
}

type errorDoc struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
	Extra     []extraField
}

type extraField struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func requestID(err error) string {
	if pe, ok := errors.AsType[*vault.PendingError](err); ok {
		return pe.RequestID
	}
	return ""
}
