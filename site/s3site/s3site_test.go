package s3site_test

import (
	"testing"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/sitetest"
)

func TestConformanceEmbassy(t *testing.T) {
	srv := embassyServer(t)
	sitetest.Run(t, func(t *testing.T) site.Site { return newSite(t, srv.config("embassy/est-1")) })
}

func TestConformanceVersitygw(t *testing.T) {
	srv, _ := versitygwServer(t)
	for _, prefix := range []string{"", "embassy/site-a/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			sitetest.Run(t, func(t *testing.T) site.Site { return newSite(t, srv.config(prefix)) })
		})
	}
}
