//go:build !unix

package server

import (
	"net"
	"syscall"
)

// alive cannot peek here: the client is assumed present until a read or
// write says otherwise.
func alive(net.Conn) bool { return true }

// rawConn is nil here: waitRequest waits in a buffered read instead.
func rawConn(net.Conn) syscall.RawConn { return nil }

// pending is never called without a raw connection.
func pending(uintptr, []byte) bool { return true }
