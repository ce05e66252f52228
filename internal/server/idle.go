package server

import (
	"crypto/tls"
	"errors"
	"os"
	"time"
)

// An idle connection (one waiting for its next request, or for its first)
// holds as little as it can: most of a proxy's client connections are idle
// at any moment. While nothing is buffered, its buffers (connBufs) go back
// to the server's pool and it waits for its socket to turn readable
// through the runtime's poller (syscall.RawConn.Read), which needs no
// buffer; the buffers are taken from the pool again when the first bytes
// arrive. Its goroutine's stack, grown by the handler, is the other cost:
// a wait that lasts longer than moveAfter moves to a fresh goroutine, whose
// stack starts small (the runtime's adaptive starting size, 2 KiB when
// most goroutines wait like this), and the old goroutine ends, freeing its
// stack at once. Moving only long waits keeps busy keep-alive connections,
// which wait a little between every two requests, from paying a goroutine
// and a regrown stack per request. What an idle connection still costs is
// in BENCHMARKS.md ("Idle connections").

// moveAfter is how long a wait for a request lasts before it moves to a
// fresh goroutine (up to an eighth less: see armRead).
const moveAfter = 2 * time.Second

// waitResult is how a wait for a request ended.
type waitResult int8

const (
	waitReady waitResult = iota // the request's first byte is buffered
	waitEnded                   // timeout, end of stream, error or Close: close the connection
	waitMoved                   // a fresh goroutine carries on with the wait
)

// resumed is the end of a wait for a request that moved to a fresh
// goroutine (resume).
type resumed struct {
	ok  bool  // the wait moved and has ended
	err error // how: nil when the socket turned readable
}

// waitRequest waits, within d (no limit when 0), for the first byte of the
// next request, holding no buffer while it waits. first is passed on to a
// fresh goroutine the wait moves to; r is the end of a wait that moved. It
// reports how the wait ended, and whether the read deadline now running is
// the one for d.
func (c *conn) waitRequest(d time.Duration, first bool, r resumed) (res waitResult, armed bool) {
	switch {
	case r.ok:
		if r.err != nil {
			return waitEnded, true
		}
		c.takeBufs()
		return c.peekRequest(), true
	case c.rc == nil: // no socket to wait on: wait in a buffered read
		c.takeBufs()
		c.armRead(d)
		return c.peekRequest(), true
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
			return waitReady, false
		} else if !isTimeout(err) {
			return waitEnded, false
		}
	}
	if d > 0 && d <= c.s.moveAfter {
		c.armRead(d)
		if c.waitReadable() != nil {
			return waitEnded, true // the deadline passed or the connection closed
		}
		c.takeBufs()
		return c.peekRequest(), true
	}
	var until time.Time // the end of the whole wait; zero: none
	if d > 0 {
		until = time.Now().Add(d)
	}
	c.armRead(c.s.moveAfter)
	err := c.waitReadable()
	if isTimeout(err) {
		c.movedWait.Store(true)
		go c.resume(first, until)
		return waitMoved, false
	}
	if err != nil {
		return waitEnded, false
	}
	if first && !until.IsZero() {
		// A first request's head is due within d of the wait's start,
		// whether or not the wait had to move (once per connection).
		c.setReadDeadline(until)
		armed = true
	}
	c.takeBufs()
	return c.peekRequest(), armed // else the deadline running is moveAfter's
}

// resume carries on, on a fresh goroutine, with a wait for a request that
// outlasted moveAfter, until the deadline until (none when zero); then it
// serves the connection as serve does. It waits at the bottom of the
// shortest call chain it can, so that its stack stays at its small
// starting size. It is the connection's goroutine from then on, owned as
// serve's was: Close, Shutdown and the connection cap end it by closing
// the connection, which wakes the wait.
func (c *conn) resume(first bool, until time.Time) {
	c.setReadDeadline(until)
	err := c.waitReadable()
	c.movedWait.Store(false)
	c.loop(first, resumed{ok: true, err: err})
}

// waitReadable waits until the socket has something to read (data, an end
// of stream or an error), the read deadline passes or the connection
// closes, giving its buffers back if it has to wait.
func (c *conn) waitReadable() error {
	c.woke = false
	return c.rc.Read(c.readableFn)
}

// peekRequest reads the first bytes of a request into the read buffer.
func (c *conn) peekRequest() waitResult {
	if _, err := c.br.Peek(1); err != nil {
		return waitEnded
	}
	return waitReady
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

// isTimeout reports whether err is a read deadline's (without
// allocating: it is asked after every wait).
func isTimeout(err error) bool {
	return err != nil && errors.Is(err, os.ErrDeadlineExceeded)
}
