package server

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

// testServer is a Server on a loopback listener.
type testServer struct {
	*Server
	addr string
	news atomic.Int64 // connections accepted
	logs *testutil.SyncBuffer
	ln   net.Listener
	errc chan error
}

func start(t *testing.T, h http.Handler, mod func(*Options)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), logs: new(testutil.SyncBuffer), ln: ln, errc: make(chan error, 1)}
	o := Options{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 10 * time.Second,
		ErrorLog: log.New(ts.logs, "", 0),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				ts.news.Add(1)
			}
		}}
	if mod != nil {
		mod(&o)
	}
	ts.Server = New(o)
	go func() { ts.errc <- ts.Serve(ln) }()
	t.Cleanup(func() {
		ts.Close()
		if err := <-ts.errc; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// dial opens a raw connection with a deadline.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange writes raw on a fresh connection and reads one response.
func exchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c := dial(t, addr)
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// closed reports whether the server closes c (reads EOF) within a while.
func closed(c net.Conn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := br.ReadByte()
	return err == io.EOF || (err != nil && !isTimeout(err))
}

// echo answers with the request's method, target, Host and body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Host", r.Host)
	w.Header().Set("X-Target", r.RequestURI)
	var tr []string
	for k, v := range r.Trailer {
		tr = append(tr, k+"="+strings.Join(v, ","))
	}
	w.Header().Set("X-Trailer", strings.Join(tr, ";"))
	io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
})

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
