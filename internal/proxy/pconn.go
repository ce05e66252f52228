package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// pconn is one connection to a backend, pooled between exchanges.
//
// Reads go through pconn.Read, which watches the exchange in progress: the
// connection's read deadline ticks every watchTick, and at each tick the
// read resumes unless the client has left, the response-header deadline
// has passed, or the backend has sent nothing for longer than the read
// timeout. One deadline set per exchange replaces a per-request context
// watch (context.AfterFunc cost six allocations and a lock per request),
// and no clock is read per successful read: progress is noted with a flag
// and timed only at the ticks.
type pconn struct {
	c         net.Conn
	raw       syscall.RawConn // for the liveness peek; nil if c has none
	peekFn    func(fd uintptr) bool
	peekOK    bool          // the last peek found the connection quiet and open
	br        *bufio.Reader // reads through the pconn itself
	bw        *bufio.Writer
	idleSince time.Time

	hp headParser // scratch space for response heads
	ex exchange   // the exchange in progress, reused

	// Set by the handler's goroutine for the exchange in progress, read
	// only by that goroutine.
	ctx     context.Context // the client's request; nil when idle or upgraded
	hard    time.Time       // response-header deadline; zero = none
	hardFor time.Duration   // its length, for the error
	pause   time.Duration   // the longest silence allowed (read timeout); 0 = none
	quiet   time.Time       // when the backend was last seen sending, to a tick
	moved   bool            // bytes arrived since the last tick
	client  pauser          // told when the backend was silent for a tick; nil = none
}

// pauser is the client's side of an exchange (the recorder), told at each
// tick the backend sent nothing: the wait is the backend's, and must not
// run down the client's send timeout.
type pauser interface{ pause() }

// watchTick is how often a read blocked on the backend checks whether the
// client is still there and whether a timeout has passed: timeouts are
// noticed up to this late.
const watchTick = 500 * time.Millisecond

// newPconn wraps a fresh connection to a backend.
func newPconn(c net.Conn, maxHead int) *pconn {
	pc := &pconn{c: c, bw: bufio.NewWriterSize(c, 4<<10)}
	pc.br = bufio.NewReaderSize(pc, 4<<10)
	pc.hp.max = maxHead
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
			pc.peekFn = pc.peek // one allocation per connection, not per reuse
		}
	}
	return pc
}

// Read implements io.Reader for br: see pconn.
func (pc *pconn) Read(p []byte) (int, error) {
	for {
		n, err := pc.c.Read(p)
		if n > 0 {
			pc.moved = true
			return n, err
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if pc.ctx != nil && pc.ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %w", context.Cause(pc.ctx), err)
		}
		now := time.Now()
		if !pc.hard.IsZero() && !now.Before(pc.hard) {
			return 0, timeoutError{after: pc.hardFor}
		}
		if pc.moved {
			pc.moved, pc.quiet = false, now
		} else {
			if pc.pause > 0 && now.Sub(pc.quiet) >= pc.pause {
				return 0, timeoutError{after: pc.pause, pause: true}
			}
			if pc.client != nil {
				pc.client.pause()
			}
		}
		pc.c.SetReadDeadline(pc.tick(now))
	}
}

// watch starts watching an exchange for ctx from now: a response-header
// deadline when headerTimeout is not zero, a bound on each silence of the
// backend when pause is not zero, and client, if not nil, told of each
// tick the backend was silent.
func (pc *pconn) watch(ctx context.Context, client pauser, headerTimeout, pause time.Duration, now time.Time) {
	pc.ctx, pc.client, pc.hard, pc.hardFor = ctx, client, time.Time{}, headerTimeout
	pc.pause, pc.quiet, pc.moved = pause, now, false
	if headerTimeout > 0 {
		pc.hard = now.Add(headerTimeout)
	}
	pc.c.SetReadDeadline(pc.tick(now))
}

// unwatch ends the watch: an upgraded connection lives on its own.
func (pc *pconn) unwatch() {
	pc.ctx, pc.client, pc.hard, pc.pause = nil, nil, time.Time{}, 0
}

// tick returns the next read deadline: a watch tick away, or the
// response-header deadline or the end of the allowed silence if sooner.
func (pc *pconn) tick(now time.Time) time.Time {
	next := now.Add(watchTick)
	if !pc.hard.IsZero() && pc.hard.Before(next) {
		next = pc.hard
	}
	if pc.pause > 0 {
		if end := pc.quiet.Add(pc.pause); end.Before(next) {
			next = end
		}
	}
	return next
}

func (pc *pconn) close() { pc.c.Close() }

// alive reports whether a pooled connection may carry another exchange:
// nothing is buffered, and a non-blocking peek at the socket finds neither
// an end of stream nor bytes. A backend may send bytes nobody asked for (a
// second answer, an idle-timeout 408 before it closes); such a connection
// must never be reused, or the next client would read them as its answer.
func (pc *pconn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.raw == nil {
		return true // cannot peek: a closed connection is found when used
	}
	pc.peekOK = false
	if err := pc.raw.Read(pc.peekFn); err != nil {
		return false
	}
	return pc.peekOK
}

// timeoutError is a backend that sent nothing for too long: no response
// head within the response-header timeout, or a silence longer than the
// read timeout.
type timeoutError struct {
	after time.Duration
	pause bool // the read timeout, not the header timeout
}

func (e timeoutError) Error() string {
	if e.pause {
		return fmt.Sprintf("backend sent nothing for %s (upstream read timeout)", e.after)
	}
	return fmt.Sprintf("backend sent no response headers within %s (upstream timeout)", e.after)
}
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
