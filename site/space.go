package site

import "context"

// SpaceReporter is implemented by sites that know their free space (a
// directory's file system). It is optional: a site that does not know
// (most S3 providers) does not implement it, and nothing is reported.
type SpaceReporter interface {
	// Space returns the bytes free for the site's blobs and the total
	// size of the store holding them.
	Space(ctx context.Context) (free, total int64, err error)
}
