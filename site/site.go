// Package site owns the boundary between an embassy node and the places its
// shards and manifests live. A site is a dumb store of opaque, named blobs:
// it never sees plaintext, object names or user metadata, only sealed shard
// blocks and sealed manifests under names made of random identifiers.
//
// The [Site] interface is the one plugin boundary of the storage layer. Its
// drivers live in subpackages (dir, memory, fault, and later s3 and peer);
// every driver passes the conformance suite in package sitetest. Retries,
// rate limits and metrics are wrappers around a Site, not features of a
// driver.
//
// A [Descriptor] records what placement needs to know about a site: where its
// bytes physically sit, who provides it, whose law controls that provider,
// who operates it, the highest classification it is accredited for and how
// it is reached.
package site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Site stores opaque blobs by name.
//
// Put stores the whole of r under name, replacing any blob of that name. It
// is atomic, a reader sees either the old blob or the whole new one, and
// durable when it returns nil. If r returns an error, Put stores nothing and
// returns that error. size is the number of bytes r will yield, or -1 when
// unknown; a reader that yields more or fewer is refused, with an error
// naming size, and nothing of it is stored (a blob it would replace is
// kept).
//
// Get returns length bytes of the blob starting at off (length < 0 reads to
// the end). A range past the end yields fewer bytes. A missing blob returns
// an error wrapping [ErrNotFound]. A driver passes on no more than length
// bytes whatever its provider sends; the node reads every site it opens
// through [Guarded], which holds each Get to its length as well
// ([Limited]).
//
// Stat returns a blob's size. Delete removes a blob; deleting a missing blob
// is not an error. List calls fn for every blob whose name starts with
// prefix, in no particular order, and stops at fn's first error.
type Site interface {
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (Info, error)
	Delete(ctx context.Context, name string) error
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// Info describes a stored blob.
type Info struct {
	Name     string
	Size     int64
	Modified time.Time
}

// ErrNotFound means the named blob does not exist on the site.
var ErrNotFound = errors.New("site: blob not found")

// ErrUnavailable means the site cannot be reached or refuses service. The
// caller should treat every shard on it as missing for now and, when
// writing, choose another site that keeps the placement policy.
var ErrUnavailable = errors.New("site: unavailable")

// UnavailableError is an [ErrUnavailable] that carries the reason a site
// is refused: its marker names another node or site, it has none, or its
// directory or bucket is shared with another site. Nothing is read from,
// written to, listed on or deleted from such a site until the operator
// fixes what Reason names. errors.Is(err, ErrUnavailable) holds for it.
type UnavailableError struct {
	// Site is the id of the refused site.
	Site string
	// Reason says what is wrong, for a person.
	Reason string
	// Recheck, if set, is how soon the refusal may change by itself (a
	// lease held by another process that may lapse): a [Guarded] site
	// checks again after it rather than after [RecheckRefused].
	Recheck time.Duration
}

func (e *UnavailableError) Error() string {
	if e.Site == "" {
		return "site unavailable: " + e.Reason
	}
	return "site " + e.Site + " unavailable: " + e.Reason
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// TopDirs returns the top-level directories of a site's namespace, without
// slashes: shards ("s"), manifests ("m"), the evidence journal of nodes
// from before the audit log ("j"), the node's own records ("node": the
// descriptor and the site marker) and the copy of the audit log ("log").
// Every blob the engine writes lives under one of them. A driver that
// keeps a directory tree creates them only when the site is created, never
// afterwards, so that a write racing with the removal of a site, or landing
// on an unmounted mount point, can never recreate the site somewhere else.
// Add a prefix here when the engine adds a kind of blob, and to
// [AddedTopDirs].
func TopDirs() []string { return []string{"s", "m", "j", "node", "log"} }

// AddedTopDirs are the top directories added since the first sites were
// made: a site that lacks only these, and whose marker is the node's, has
// them created (through the marker's own directory handle) rather than
// being refused as damaged.
func AddedTopDirs() []string { return []string{"log"} }

// ErrFull means the site has no space left (a full disk, an exhausted
// quota) for the blob being written; the write left nothing behind. The
// caller should write to other sites if the placement policy allows, and
// tell the operator which site is full: reads from it go on working.
var ErrFull = errors.New("site: full")

// ErrRetained means the blob is under a provider's retention (object lock)
// and cannot be deleted before its date. The caller should leave it: it
// will go when its retention has passed.
var ErrRetained = errors.New("site: blob retained by object lock")

// ErrNotBlob means something that is not a blob stands at the blob's name
// (a FIFO, a socket or a device in a directory site, put there by someone
// other than the node): it is never read, replaced or removed. The caller
// should count the blob missing there, read it from other copies or
// shards, and write it to another site rather than back at that name.
var ErrNotBlob = errors.New("not a blob the node wrote, left in place")

// MaxNameLen bounds blob names.
const MaxNameLen = 512

// CheckName reports whether name is a valid blob name: 1 to [MaxNameLen]
// bytes of ASCII letters, digits, '.', '_', '-' and '/', made of non-empty
// segments separated by single slashes, none of them "." or "..". Names are
// chosen by the engine, never by users, but drivers check them anyway so
// that no name can escape a driver's root.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("site: invalid blob name %q: length must be 1 to %d", name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-', c == '/':
		default:
			return fmt.Errorf("site: invalid blob name %q: byte %q not allowed", name, c)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("site: invalid blob name %q: empty, '.' or '..' segment", name)
		}
	}
	return nil
}
