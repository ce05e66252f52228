package server

import (
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// An idle connection (one waiting for its next request, or for its first)
// holds as little as it can: most of a proxy's client connections are idle
// at any moment. While nothing is buffered, its read and write buffers go
// back to the server's pool (bufPool) and it waits for its socket to turn
// readable through the runtime's poller (syscall.RawConn.Read), which needs
// no buffer, at the bottom of a shallow call chain so that the goroutine's
// stack, grown by the handler, shrinks at the next collections (Go halves a
// stack at a collection when under a quarter of it is used). Buffers are
// taken from the pool again when the first bytes arrive. What the
// connection keeps is listed in BENCHMARKS.md ("Idle connections").

// waitRequest waits, within d (no limit when 0), for the first byte of the
// next request, holding no buffer while it waits. It reports whether the
// byte came (false: timeout, end of stream, error or Close), and whether
// the read deadline now running is the one for d (armed from now).
func (c *conn) waitRequest(d time.Duration) (ok, armed bool) {
	if c.rc == nil { // no socket to wait on: wait in a buffered read
		c.takeBufs()
		c.armRead(d)
		_, err := c.br.Peek(1)
		return err == nil, true
	}
	if _, isTLS := c.rwc.(*tls.Conn); isTLS {
		// crypto/tls may hold records already read off the socket (the
		// next request, pipelined, or a request sent with the handshake's
		// last flight), which a wait on the socket would not see: ask it,
		// without waiting. A read deadline in the past fails the read at
		// once, before any system call, and crypto/tls keeps no error from
		// a timeout; a partial record stays in its buffer for the next read.
		c.takeBufs()
		c.setReadDeadline(aLongTimeAgo)
		if _, err := c.br.Peek(1); err == nil {
			c.setReadDeadline(time.Time{}) // await arms the header deadline if the head is not all here
			return true, false
		} else if !isTimeout(err) {
			return false, false
		}
	}
	c.armRead(d)
	c.woke = false
	if err := c.rc.Read(c.readableFn); err != nil {
		return false, true // the deadline passed or the connection closed
	}
	c.takeBufs()
	_, err := c.br.Peek(1)
	return err == nil, true
}

// readable is the test syscall.RawConn.Read calls before each wait for the
// socket to turn readable, and again after it: the first time it peeks at
// the socket (data may have arrived before the wait began, unannounced),
// and if nothing is there, gives the buffers back before the wait; after a
// wait, the poller has said the socket is readable, which the read that
// follows will see (or, rarely, wait a little more for, holding buffers).
// Made once per connection as c.readableFn, so a wait allocates nothing.
func (c *conn) readable(fd uintptr) bool {
	if c.woke {
		return true
	}
	c.woke = true
	if pending(fd, c.peek[:]) {
		return true
	}
	c.putBufs()
	return false
}

// takeBufs gives the connection its buffers (connBufs), from the
// server's pool, unless it holds them.
func (c *conn) takeBufs() {
	if c.connBufs == nil {
		c.connBufs = c.s.bufs.get(c.rwc)
		c.w.header = c.header
		c.held.Store(true)
	}
}

// putBufs gives the connection's buffers back to the server's pool, if it
// holds them and they are empty. A large head's field storage is dropped,
// not pooled.
func (c *conn) putBufs() {
	if c.connBufs == nil || c.br.Buffered() > 0 || c.bw.Buffered() > 0 {
		return
	}
	if c.bigHead {
		c.fields, c.bigHead = fields{}, false
	}
	c.s.bufs.put(c.connBufs)
	c.connBufs, c.w.header = nil, nil
	c.held.Store(false)
}

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
