package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// connCtx is the context of every request on one connection. It is
// cancelled when the connection closes, and Err also asks the socket
// whether the client has gone (an end of stream or a reset waiting to be
// read), without reading: the proxy asks when it waits on a slow backend.
// Done is closed once either is seen. Nothing is allocated per request.
type connCtx struct {
	c    *conn
	done chan struct{}
	gone atomic.Bool
	once sync.Once
}

func (x *connCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *connCtx) Done() <-chan struct{}       { return x.done }
func (x *connCtx) Value(any) any               { return nil }

func (x *connCtx) Err() error {
	if x.gone.Load() {
		return context.Canceled
	}
	if !alive(x.c.raw) {
		x.cancel()
		return context.Canceled
	}
	return nil
}

func (x *connCtx) cancel() {
	x.once.Do(func() {
		x.gone.Store(true)
		close(x.done)
	})
}
