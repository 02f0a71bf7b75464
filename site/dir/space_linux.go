package dir

import (
	"context"
	"syscall"
)

// Space implements site.SpaceReporter: the free and total bytes of the
// file system holding the site, as an unprivileged writer sees them.
func (s *Site) Space(ctx context.Context) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.root, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
