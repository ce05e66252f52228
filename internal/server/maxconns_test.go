package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// get sends a keep-alive GET for path on c and reads the answer's body.
func get(t *testing.T, c net.Conn, br *bufio.Reader, path string) string {
	t.Helper()
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return string(b)
}

// TestMaxConnsReclaimsIdle: at the cap, a new client is served at once
// (the idle timeout is a minute, the client's deadline 10 s) because the
// connection idle longest is closed for it; the other idle one stays.
func TestMaxConnsReclaimsIdle(t *testing.T) {
	var idles atomic.Int64
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(o *Options) {
		o.MaxConns = 2
		o.IdleTimeout = time.Minute
		o.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateIdle {
				idles.Add(1)
			}
		}
	})
	older := dial(t, ts.addr)
	olderR := bufio.NewReader(older)
	get(t, older, olderR, "/")
	eventually(t, "the first connection to turn idle", func() bool { return idles.Load() == 1 })
	newer := dial(t, ts.addr)
	newerR := bufio.NewReader(newer)
	get(t, newer, newerR, "/")
	eventually(t, "the second connection to turn idle", func() bool { return idles.Load() == 2 })

	third := dial(t, ts.addr)
	if got := get(t, third, bufio.NewReader(third), "/"); got != "ok" {
		t.Fatalf("third client got %q", got)
	}
	if !closed(older, olderR) {
		t.Error("the connection idle longest was not closed for the new client")
	}
	if got := get(t, newer, newerR, "/"); got != "ok" {
		t.Errorf("the other idle connection, used again, got %q", got)
	}
}

// TestMaxConnsKeepsActive: a connection in the middle of an exchange is
// never closed for a waiting client, however long the wait; once its
// answer is complete and it turns idle, it is the one closed, and the
// waiting client is served.
func TestMaxConnsKeepsActive(t *testing.T) {
	entered := make(chan struct{})
	proceed := make(chan struct{})
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-proceed
			io.WriteString(w, "slow done")
			return
		}
		io.WriteString(w, "ok")
	}), func(o *Options) {
		o.MaxConns = 1
		o.IdleTimeout = time.Minute
	})
	busy := dial(t, ts.addr)
	busyR := bufio.NewReader(busy)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	waiter := dial(t, ts.addr)
	io.WriteString(waiter, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	eventually(t, "the accept loop to wait for a slot", func() bool { return ts.waiting.Load() == 1 })
	close(proceed)
	resp, err := http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatalf("the active connection lost its answer: %v", err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "slow done" {
		t.Fatalf("the active connection's answer: %q, %v", b, err)
	}
	if !closed(busy, busyR) {
		t.Error("the connection was not closed when it turned idle with a client waiting")
	}
	resp, err = http.ReadResponse(bufio.NewReader(waiter), nil)
	if err != nil {
		t.Fatalf("the waiting client: %v", err)
	}
	resp.Body.Close()
}

// TestHijackedClose: a hijacked connection is reported StateHijacked when
// handed over and StateClosed once when the handler closes it (twice
// here), with or without MaxConns; with MaxConns its slot is freed once.
func TestHijackedClose(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxConns int
	}{
		{"no cap", 0},
		{"with MaxConns", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var states []http.ConnState
			closedTwice := make(chan struct{})
			ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
				c.Close()
				close(closedTwice)
			}), func(o *Options) {
				o.MaxConns = tc.maxConns
				o.ConnState = func(_ net.Conn, st http.ConnState) {
					mu.Lock()
					states = append(states, st)
					mu.Unlock()
				}
			})
			c := dial(t, ts.addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			<-closedTwice
			mu.Lock()
			got := append([]http.ConnState(nil), states...)
			mu.Unlock()
			want := []http.ConnState{http.StateNew, http.StateActive, http.StateHijacked, http.StateClosed}
			if !slices.Equal(got, want) {
				t.Fatalf("states %v, want %v", got, want)
			}
			if len(ts.slots) != 0 {
				t.Errorf("%d slots taken after the only connection closed", len(ts.slots))
			}
		})
	}
}
