package memory

import (
	"testing"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/sitetest"
)

func TestConformance(t *testing.T) {
	sitetest.Run(t, func(t *testing.T) site.Site { return New() })
}
