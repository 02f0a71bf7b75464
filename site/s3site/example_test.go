package s3site_test

import (
	"context"
	"errors"
	"log"
	"strings"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

// A site in a bucket with object lock: every blob is retained for 90 days
// in COMPLIANCE mode, so a compromised node cannot erase the embassy's copy.
func ExampleNew() {
	ctx := context.Background()
	s, err := s3site.New(ctx, s3site.Config{
		Endpoint:   "s3.eu-central-1.amazonaws.com",
		Region:     "eu-central-1",
		Bucket:     "embassy-est-lux-1",
		Prefix:     "node-1",
		AccessKey:  "AKIA...",
		SecretKey:  "...",
		Secure:     true,
		ObjectLock: &s3site.ObjectLock{Mode: s3site.Compliance, Days: 90},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Put(ctx, "shards/ab/abcdef.0", strings.NewReader("sealed shard"), 12); err != nil {
		log.Fatal(err)
	}
	switch err := s.Delete(ctx, "shards/ab/abcdef.0"); {
	case errors.Is(err, s3site.ErrRetained):
		// Leave it: deletable after the date the message gives.
	case errors.Is(err, site.ErrUnavailable):
		// Try again later.
	case err != nil:
		log.Fatal(err)
	}
}
