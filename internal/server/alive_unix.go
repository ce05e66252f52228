//go:build unix

package server

import (
	"errors"
	"net"
	"syscall"
)

// alive reports whether the client may still be there: a non-blocking
// peek at the socket finds data or nothing yet, not an end of stream or an
// error. The peek takes no read lock, so it is safe beside a read in
// progress, and ignores deadlines.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
		case err == nil: // end of stream
			ok = false
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			ok = false
		}
	})
	return err == nil && ok
}
