//go:build unix

package proxy

import (
	"syscall"
	"unsafe"
)

// peek is pconn.alive's look at the socket, run by RawConn.Read: a
// non-blocking MSG_PEEK that must find nothing to read yet. It is the
// liveness check's whole cost, once per reuse, so it is the bare system
// call: no source address asked for or decoded, the error compared as an
// Errno rather than through errors.Is.
func (pc *pconn) peek(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	// Quiet and open: nothing to read yet. Bytes (a return of 1) or the
	// end of the stream (0) leave errno 0; any other error is a broken
	// connection.
	pc.peekOK = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
	return true // never wait for readiness
}
