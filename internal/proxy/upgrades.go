package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
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

// upgrade completes a protocol switch (WebSocket): it hands the client's
// connection over from the HTTP server, sends it the backend's 101 answer
// and then copies bytes both ways until either side closes.
func (u *Upstream) upgrade(w http.ResponseWriter, r *http.Request, ex *exchange) {
	head, pc := ex.head, ex.pc
	pc.ctx, pc.client = nil, nil // no watching: an upgraded connection lives on its own (and outlives the recorder)
	defer pc.close()
	want, got := upgradeType(r.Header), head.upgrade
	if want == "" || !strings.EqualFold(want, got) {
		clear(w.Header()) // the 101's fields must not leak into the 502
		recordError(w, r, errors.New("backend switched protocols without an upgrade request for it"))
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		recordError(w, r, err)
		return
	}
	defer client.Close()
	client.SetDeadline(time.Time{}) // an upgraded connection may idle for long
	hdr := w.Header()               // the 101's end-to-end fields, hop-by-hop ones dropped
	hdr.Set("Connection", "Upgrade")
	hdr.Set("Upgrade", got)
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	if err := hdr.Write(brw); err != nil {
		return
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	pc.c.SetDeadline(time.Time{})
	if u.o.Upgrades != nil {
		done := u.o.Upgrades.add(client, pc.c)
		defer done()
	}
	// Copy both ways; when either direction ends, close both connections
	// so the other copy ends too.
	done := make(chan struct{}, 2)
	go func() { // client -> backend, including bytes the server buffered
		u.pipe(pc.c, brw.Reader)
		done <- struct{}{}
	}()
	go func() { // backend -> client, including bytes already read
		u.pipe(client, pc.br)
		done <- struct{}{}
	}()
	<-done
	client.Close()
	pc.close()
	<-done
}

// pipe copies src to dst until either fails, through a pooled buffer with
// plain Read and Write calls. io.Copy would find TCPConn.ReadFrom (or
// bufio.Reader.WriteTo, which reaches the TCP connection under it) and
// splice(2) through a pipe that the runtime keeps in a pool closed only by
// a garbage collection: two descriptors per WebSocket outliving it.
func (u *Upstream) pipe(dst io.Writer, src io.Reader) {
	buf := u.bufs.get()
	defer u.bufs.put(buf)
	io.CopyBuffer(writeOnly{dst}, readOnly{src}, *buf)
}

// writeOnly and readOnly hide every method but Write and Read from
// io.CopyBuffer, so that it uses the buffer it is given (see pipe).
type (
	writeOnly struct{ w io.Writer }
	readOnly  struct{ r io.Reader }
)

func (w writeOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
func (r readOnly) Read(p []byte) (int, error)   { return r.r.Read(p) }
