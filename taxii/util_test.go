package taxii_test

import "github.com/embassy-dev/embassy/index"

func indexVersionOptions(prefix string) index.VersionOptions {
	return index.VersionOptions{Prefix: prefix, Max: 1000}
}
