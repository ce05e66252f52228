package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/testutil"
)

// buffersHeld counts the server's connections, and those of them holding
// buffers (connBufs).
func (s *Server) buffersHeld() (held, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.held.Load() {
			held++
		}
	}
	return held, len(s.conns)
}

// movedWaits counts the server's connections whose wait for a request has
// moved to a fresh goroutine and holds no buffers.
func (s *Server) movedWaits() (n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.movedWait.Load() && !c.held.Load() {
			n++
		}
	}
	return n
}

// fixedAnswer answers with a body naming the request's method, path and
// X-N field, in a head with a fixed Date: the same request always gets the
// same bytes.
var fixedAnswer = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header()["Date"] = []string{"Thu, 01 Jan 2026 00:00:00 GMT"}
	io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.Header.Get("X-N"))
})

// fixedRequest is a request for fixedAnswer, and want the exact answer.
func fixedRequest(path, n string) (req, want string) {
	body := "GET " + path + " " + n
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-N: " + n + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
}

// roundTrip writes req on c and reads exactly len(want) bytes back, which
// must be want.
func roundTrip(t *testing.T, c net.Conn, req, want string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the answer to %q: %v (got %q)", req, err, got)
	}
	if string(got) != want {
		t.Fatalf("answer\n%q\nwant\n%q", got, want)
	}
}

// idleModes are the two kinds of connection an idle wait differs for.
var idleModes = []struct {
	name string
	tls  bool
}{{"plain", false}, {"tls", true}}

// startIdle starts a fixedAnswer server, TLS or not, and returns it with a
// function that opens a client connection to it.
func startIdle(t *testing.T, useTLS bool, mod func(*Options)) (*testServer, func() net.Conn) {
	t.Helper()
	var cfg *tls.Config
	ts := start(t, fixedAnswer, func(o *Options) {
		if useTLS {
			cert := testutil.SelfSigned(t, "localhost")
			o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		}
		if mod != nil {
			mod(o)
		}
	})
	if useTLS {
		cfg = &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"} //nolint:gosec // self-signed test certificate
	}
	return ts, func() net.Conn {
		c := dial(t, ts.addr)
		if cfg == nil {
			return c
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}
}

// TestIdleHoldsNoBuffers: a connection waiting for a request, its first or
// a next one, holds no buffers; after the wait, during which the collector
// ran (emptying the buffer pool and moving the waiting goroutine's stack)
// and another connection used pooled buffers, its request is answered byte
// for byte.
func TestIdleHoldsNoBuffers(t *testing.T) {
	for _, m := range idleModes {
		t.Run(m.name, func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, nil)
			a, fresh := connect(), connect()
			req, want := fixedRequest("/first", "1")
			roundTrip(t, a, req, want)
			eventually(t, "both connections idle without buffers", func() bool {
				held, n := ts.buffersHeld()
				return held == 0 && n == 2
			})
			runtime.GC()
			runtime.GC()
			b := connect()
			for i := range 3 {
				req, want := fixedRequest("/other/"+strings.Repeat("x", i*100), strings.Repeat("y", 300))
				roundTrip(t, b, req, want)
			}
			req, want = fixedRequest("/after-idle", "2")
			roundTrip(t, a, req, want)
			req, want = fixedRequest("/first-on-fresh", "3")
			roundTrip(t, fresh, req, want)
			eventually(t, "all three idle without buffers again", func() bool {
				held, n := ts.buffersHeld()
				return held == 0 && n == 3
			})
		})
	}
}

// batchConn holds what is written to it until flush, so that several TLS
// records leave in one TCP write and reach the server's socket together.
type batchConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold {
		return b.buf.Write(p)
	}
	return b.Conn.Write(p)
}

func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold = false
	_, err := b.Conn.Write(b.buf.Bytes())
	return err
}

// TestIdleTLSBuffered: requests crypto/tls has already read off the socket
// (pipelined in separate records that arrived together, or in one record)
// are answered at once: the wait for the next request asks crypto/tls
// before it waits on the socket, which would not show them.
func TestIdleTLSBuffered(t *testing.T) {
	ts, _ := startIdle(t, true, func(o *Options) { o.IdleTimeout = time.Minute })
	for _, oneRecord := range []bool{false, true} {
		raw := dial(t, ts.addr)
		bc := &batchConn{Conn: raw}
		tc := tls.Client(bc, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}) //nolint:gosec // self-signed test certificate
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		reqs, wants := "", ""
		bc.mu.Lock()
		bc.hold = true
		bc.mu.Unlock()
		for i := range 3 {
			req, want := fixedRequest("/pipelined", strings.Repeat("n", i+1))
			reqs, wants = reqs+req, wants+want
			if !oneRecord {
				io.WriteString(tc, req)
			}
		}
		if oneRecord {
			io.WriteString(tc, reqs)
		}
		if err := bc.flush(); err != nil {
			t.Fatal(err)
		}
		// The answers must come long before the idle timeout (a minute)
		// would end a wait that missed the buffered requests.
		tc.SetReadDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, len(wants))
		if _, err := io.ReadFull(tc, got); err != nil {
			t.Fatalf("one record %v: %v (got %q)", oneRecord, err, got)
		}
		if string(got) != wants {
			t.Fatalf("one record %v: answers\n%q\nwant\n%q", oneRecord, got, wants)
		}
	}
}

// idleAfterOne makes one request on c, the server's only connection, and
// waits until it is idle without buffers; it returns the request and its
// answer.
func idleAfterOne(t *testing.T, ts *testServer, c net.Conn) (req, want string) {
	t.Helper()
	req, want = fixedRequest("/", "1")
	roundTrip(t, c, req, want)
	eventually(t, "the connection idle without buffers", func() bool {
		held, n := ts.buffersHeld()
		return held == 0 && n == 1
	})
	return req, want
}

// TestIdleEnds: a connection waiting without buffers is still closed by
// the idle timeout, by Shutdown at once, and by the connection cap
// reclaiming it for a new client.
func TestIdleEnds(t *testing.T) {
	for _, m := range idleModes {
		t.Run(m.name+"/idle timeout", func(t *testing.T) {
			_, connect := startIdle(t, m.tls, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
			c := connect()
			req, want := fixedRequest("/", "1")
			roundTrip(t, c, req, want)
			if !closed(c, bufio.NewReader(c)) {
				t.Error("an idle connection outlived the idle timeout")
			}
		})
		t.Run(m.name+"/shutdown", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, func(o *Options) { o.IdleTimeout = time.Minute })
			c := connect()
			idleAfterOne(t, ts, c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := ts.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with only an idle connection: %v", err)
			}
			if !closed(c, bufio.NewReader(c)) {
				t.Error("the idle connection is still open after Shutdown")
			}
		})
		t.Run(m.name+"/reclaimed", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, func(o *Options) { o.IdleTimeout = time.Minute; o.MaxConns = 1 })
			c := connect()
			req, want := idleAfterOne(t, ts, c)
			d := connect() // TLS: the handshake needs the slot
			roundTrip(t, d, req, want)
			if !closed(c, bufio.NewReader(c)) {
				t.Error("the idle connection was not reclaimed for the new one")
			}
		})
	}
}

// TestIdleMoves: a wait for a request that outlasts moveAfter goes on in
// a fresh goroutine, holding no buffers, and ends as a wait does: the
// request is answered byte for byte, the idle timeout, the header timeout
// (for a first request), the connection cap and Shutdown still close the
// connection.
func TestIdleMoves(t *testing.T) {
	for _, m := range idleModes {
		fast := func(idle time.Duration) func(*Options) {
			return func(o *Options) {
				o.moveAfter = 10 * time.Millisecond
				o.IdleTimeout = idle
				o.ReadHeaderTimeout = time.Minute
			}
		}
		moved := func(ts *testServer) {
			t.Helper()
			eventually(t, "the wait moved", func() bool { return ts.movedWaits() == 1 })
		}
		t.Run(m.name+"/served", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, fast(time.Minute))
			c := connect()
			moved(ts) // before the first request
			req, want := fixedRequest("/first", "1")
			roundTrip(t, c, req, want)
			moved(ts)
			runtime.GC()
			req, want = fixedRequest("/after-the-move", "2")
			roundTrip(t, c, req, want)
			roundTrip(t, c, req, want)
		})
		t.Run(m.name+"/idle timeout", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, fast(time.Second))
			c := connect()
			req, want := fixedRequest("/", "1")
			roundTrip(t, c, req, want)
			moved(ts)
			if !closed(c, bufio.NewReader(c)) {
				t.Error("a moved wait outlived the idle timeout")
			}
		})
		t.Run(m.name+"/header timeout", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, func(o *Options) {
				o.moveAfter = 10 * time.Millisecond
				o.ReadHeaderTimeout = time.Second
			})
			c := connect()
			moved(ts)
			if !closed(c, bufio.NewReader(c)) {
				t.Error("a moved wait for a first request outlived the header timeout")
			}
		})
		t.Run(m.name+"/reclaimed", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, func(o *Options) {
				fast(time.Minute)(o)
				o.MaxConns = 1
			})
			c := connect()
			req, want := fixedRequest("/", "1")
			roundTrip(t, c, req, want)
			moved(ts)
			d := connect() // TLS: the handshake needs the slot
			roundTrip(t, d, req, want)
			if !closed(c, bufio.NewReader(c)) {
				t.Error("the moved idle connection was not reclaimed for the new one")
			}
		})
		t.Run(m.name+"/shutdown", func(t *testing.T) {
			ts, connect := startIdle(t, m.tls, fast(time.Minute))
			c := connect()
			req, want := fixedRequest("/", "1")
			roundTrip(t, c, req, want)
			moved(ts)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := ts.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with only an idle connection: %v", err)
			}
			if !closed(c, bufio.NewReader(c)) {
				t.Error("the moved idle connection is still open after Shutdown")
			}
		})
	}
}

// TestHijackClearsReadDeadline: a hijacked connection has no read deadline
// left from the server's wait for its request (which may be the 2 s of a
// wait's first stage).
func TestHijackClearsReadDeadline(t *testing.T) {
	left := make(chan int64, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			left <- -1
			return
		}
		defer c.Close()
		left <- w.(*response).c.rdl.Load()
	}), func(o *Options) { o.moveAfter = time.Second })
	c := dial(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
	if d := <-left; d != 0 {
		t.Errorf("the hijacked connection has a read deadline (%v from now)", time.Until(time.Unix(0, d)))
	}
}

// TestFirstHeadDeadline: a new connection's first request head is due
// within the header timeout of the wait's start, also when the wait, long
// enough to move, ends before moveAfter: the deadline is not re-armed
// from the first byte.
func TestFirstHeadDeadline(t *testing.T) {
	ts, connect := startIdle(t, false, func(o *Options) { o.ReadHeaderTimeout = time.Minute })
	c := connect()
	var sc *conn
	eventually(t, "the new connection waiting without buffers", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for x := range ts.conns {
			sc = x
		}
		return sc != nil && !sc.held.Load()
	})
	sent := time.Now()
	io.WriteString(c, "G") // a first byte, and no more of the head
	eventually(t, "the first byte read", sc.held.Load)
	if dl := time.Unix(0, sc.rdl.Load()); !dl.Before(sent.Add(time.Minute)) {
		t.Errorf("the head's deadline is %v after the first byte was sent, want less than the header timeout (1m0s)", dl.Sub(sent))
	}
}
