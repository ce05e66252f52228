//go:build unix

package store

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on the directory holding path (the
// file it links to, if a link), so that two writers of one configuration
// file (two Files, two processes) compare and swap one at a time. The
// lock is the directory's own (flock), so no lock file is left beside
// the configuration.
func lockDir(path string) (unlock func(), err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		d.Close()
	}, nil
}
