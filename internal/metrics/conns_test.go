package metrics

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/server"
)

// TestConnStateHijacked: a hijacked connection stays counted in
// proxy_active_connections until its StateClosed, which takes it off once.
func TestConnStateHijacked(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	plain, ws := &net.TCPConn{}, &net.TCPConn{}
	for _, step := range []struct {
		c    net.Conn
		st   http.ConnState
		want float64
	}{
		{plain, http.StateNew, 1},
		{plain, http.StateActive, 1},
		{plain, http.StateIdle, 1},
		{ws, http.StateNew, 2},
		{ws, http.StateActive, 2},
		{ws, http.StateHijacked, 2}, // a WebSocket is still an open connection
		{ws, http.StateClosed, 1},
		{plain, http.StateClosed, 0},
	} {
		m.ConnState(step.c, step.st)
		if got := testutil.ToFloat64(m.connections); got != step.want {
			t.Fatalf("after %v: proxy_active_connections = %v, want %v", step.st, got, step.want)
		}
	}
}

// TestConnStateWebSocket: through the data-path server, an upgraded
// connection counts until the handler closes it, then not at all.
func TestConnStateWebSocket(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	hijacked, closeIt, closed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	srv := server.New(server.Options{
		ReadHeaderTimeout: 5 * time.Second,
		ConnState:         m.ConnState,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				close(hijacked)
				return
			}
			close(hijacked)
			<-closeIt
			c.Close()
			c.Close() // a second Close must not count again
			close(closed)
		}),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	<-hijacked
	if got := testutil.ToFloat64(m.connections); got != 1 {
		t.Errorf("while upgraded: proxy_active_connections = %v, want 1", got)
	}
	close(closeIt)
	<-closed
	if got := testutil.ToFloat64(m.connections); got != 0 {
		t.Errorf("after the upgraded connection closed: proxy_active_connections = %v, want 0", got)
	}
}
