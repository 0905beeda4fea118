package agent

import (
	"fmt"
	"syscall"
)

// diskFullBelow: with less free space than this on the data filesystem a
// node counts as full. PostgreSQL refuses writes that need a new page or a
// new WAL segment (16 MiB) long before the last byte is gone, so a leader
// this full is about to refuse every write.
const diskFullBelow = 32 << 20

// freeBytes is statfs's space available to unprivileged users (PostgreSQL
// does not run as root) on the filesystem holding path.
func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// diskFull reports whether the data filesystem is full; an error (the
// directory is missing, say) is not "full": it says nothing of space.
func (a *Agent) diskFull() bool {
	free, err := a.d.FreeBytes(a.cfg.DataDir)
	if err != nil {
		a.log.Debug("free space unknown", "err", err)
		return false
	}
	return free < diskFullBelow
}
