package etcdtest

import "syscall"

// sysProcAttr has the kernel kill an etcd member when the test binary dies
// (a panic, a -timeout), so no orphan keeps its ports and data directory.
// The signal follows the thread that started the child; Go ends a thread
// only when a goroutine locked to it exits, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
