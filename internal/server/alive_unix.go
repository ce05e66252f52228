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
	if _, ok := c.(syscall.Conn); !ok {
		return true
	}
	rc := rawConn(c)
	if rc == nil {
		return false
	}
	ok := true
	err := rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
		case err == nil: // end of stream
			ok = false
		case wouldBlock(err), errors.Is(err, syscall.EINTR):
		default:
			ok = false
		}
	})
	return err == nil && ok
}

// rawConn returns c's socket, to wait on for readability without reading
// (waitRequest), or nil when c has none.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// pending reports, without waiting or consuming anything, whether the
// socket fd has something a read would return now: data, an end of stream
// or an error. b (one byte) receives the peeked byte.
func pending(fd uintptr, b []byte) bool {
	n, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n > 0 || !wouldBlock(err)
}

func wouldBlock(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
}
