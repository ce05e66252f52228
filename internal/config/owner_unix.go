//go:build unix

package config

import (
	"os"
	"syscall"
)

// owner returns the file's owner and group, or -1, -1 when unknown.
func owner(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
