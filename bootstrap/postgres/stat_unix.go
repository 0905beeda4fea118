package postgres

import (
	"os"
	"syscall"
)

type owner struct{ uid, gid uint32 }

func statOwner(fi os.FileInfo) (owner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}, false
	}
	return owner{st.Uid, st.Gid}, true
}
