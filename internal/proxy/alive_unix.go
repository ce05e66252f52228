//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// peek is pconn.alive's look at the socket, run by RawConn.Read: a
// non-blocking MSG_PEEK that must find nothing to read yet.
func (pc *pconn) peek(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	pc.peekOK = n < 0 && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
	return true // never wait for readiness
}
