package proxy

import (
	"context"
	"net"
	"sync"
)

// Upgrades tracks the connections handed over to a protocol upgrade
// (WebSocket). http.Server.Shutdown does not see hijacked connections, so
// without this a graceful shutdown would cut every WebSocket at once. The
// zero value is ready to use.
type Upgrades struct {
	mu    sync.Mutex // guards conns and idle
	conns map[*upgraded]struct{}
	idle  chan struct{} // closed when conns becomes empty during Shutdown
}

// upgraded is one upgraded exchange: the client's and the backend's
// connections.
type upgraded struct{ client, backend net.Conn }

// add records an upgraded exchange; call the returned func when it ends.
func (u *Upgrades) add(client, backend net.Conn) (done func()) {
	c := &upgraded{client, backend}
	u.mu.Lock()
	if u.conns == nil {
		u.conns = make(map[*upgraded]struct{})
	}
	u.conns[c] = struct{}{}
	u.mu.Unlock()
	return func() {
		u.mu.Lock()
		delete(u.conns, c)
		if len(u.conns) == 0 && u.idle != nil {
			close(u.idle)
			u.idle = nil
		}
		u.mu.Unlock()
	}
}

// Len returns the number of upgraded connections open.
func (u *Upgrades) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// Shutdown waits for the upgraded connections to end by themselves until
// ctx is done, then closes those still open. It returns ctx's error if it
// had to close any.
func (u *Upgrades) Shutdown(ctx context.Context) error {
	u.mu.Lock()
	if len(u.conns) == 0 {
		u.mu.Unlock()
		return nil
	}
	idle := make(chan struct{})
	u.idle = idle
	u.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	u.mu.Lock()
	for c := range u.conns {
		c.client.Close()
		c.backend.Close()
	}
	u.mu.Unlock()
	return ctx.Err()
}
