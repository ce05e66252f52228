//go:build !linux

package etcdtest

import "syscall"

// sysProcAttr is nil where the kernel cannot tie a child's life to ours;
// the test's cleanup still kills every member.
func sysProcAttr() *syscall.SysProcAttr { return nil }
