package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/logging"
	"fronttier/internal/testutil"
)

// stub is a raw TCP backend (testutil.RawServer) whose serve gets the
// connection's reader too, the request head not yet read.
type stub struct {
	addr string
	srv  *testutil.RawServer
}

func newStub(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *stub {
	t.Helper()
	srv := testutil.ServeRaw(t, func(n int, c net.Conn) { serve(n, c, bufio.NewReader(c)) })
	return &stub{addr: srv.Addr, srv: srv}
}

// readReqHead reads one request head off br; false at the end.
func readReqHead(br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	return req, err == nil
}

// collected is an AccessLog that keeps its entries.
type collected struct {
	mu      sync.Mutex
	entries []logging.Entry
}

func (c *collected) Log(e logging.Entry) {
	c.mu.Lock()
	c.entries = append(c.entries, e)
	c.mu.Unlock()
}

func (c *collected) last() logging.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 {
		return logging.Entry{}
	}
	return c.entries[len(c.entries)-1]
}

// TestUnsolicitedBytesNeverReachAnotherClient: a backend that sends bytes
// nobody asked for on a kept-alive connection (a whole extra answer, or an
// idle-timeout 408 before closing) must not have them read as the next
// client's answer: the pooled connection is closed, never reused.
func TestUnsolicitedBytesNeverReachAnotherClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, extra string }{
		{"forged second answer", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"},
		{"idle-close 408", "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			answered, sent := make(chan struct{}), make(chan struct{})
			be := newStub(t, func(n int, c net.Conn, br *bufio.Reader) {
				if _, ok := readReqHead(br); !ok {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nconn%d", n)
				if n == 1 {
					<-answered                  // the client has its answer: the connection idles in the pool
					io.WriteString(c, tc.extra) // bytes nobody asked for
					close(sent)
				}
				br.Peek(1) // hold the connection open until the test ends
			})
			s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"b", be.addr})
			front := frontServer(t, s.h)
			if _, body, err := getRawPath(t, front, "/"); err != nil || body != "conn1" {
				t.Fatalf("first answer %q, %v", body, err)
			}
			close(answered)
			<-sent
			_, body, err := getRawPath(t, front, "/")
			if err != nil || body != "conn2" {
				t.Fatalf("second client got %q (%v), want its own answer from a new connection", body, err)
			}
		})
	}
}

// TestSendTimeoutIsPerWrite: the send timeout bounds each pause in writing
// to the client, not the backend's time to answer nor a stream's gaps.
func TestSendTimeoutIsPerWrite(t *testing.T) {
	t.Parallel()
	const send = 150 * time.Millisecond
	be := newStub(t, func(n int, c net.Conn, br *bufio.Reader) {
		req, ok := readReqHead(br)
		if !ok {
			return
		}
		time.Sleep(3 * send) // a slow backend: the behaviour under test
		if req.URL.Path == "/slow" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i := range 3 {
			fmt.Fprintf(c, "8\r\ndata: %d\n\r\n", i)
			time.Sleep(3 * send) // gaps longer than the send timeout
		}
		io.WriteString(c, "0\r\n\r\n")
	})
	s := newSetup(t, UpstreamOptions{}, Options{SendTimeout: send}, [2]string{"b", be.addr})
	front := frontServer(t, s.h)
	for path, want := range map[string]string{"/slow": "slow", "/events": "data: 0\ndata: 1\ndata: 2\n"} {
		c, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path)
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || string(body) != want {
			t.Errorf("%s: body %q, %v; want %q whole", path, body, err, want)
		}
	}
}

// TestReadTimeout: a backend that goes silent mid-answer is cut after the
// read timeout (the client's connection closes before the promised length,
// and the head reaches the client before the stall ends); one that goes
// silent before its head gets 504; one that keeps moving is never cut. Each
// failure is counted as an error and logged with its reason.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	const pause = 200 * time.Millisecond
	be := newStub(t, func(n int, c net.Conn, br *bufio.Reader) {
		req, ok := readReqHead(br)
		if !ok {
			return
		}
		switch req.URL.Path {
		case "/stall-body":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part")
		case "/stall-head":
		case "/moving":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
			for i := range 6 {
				time.Sleep(pause / 2) // 6 × pause/2 in all: longer than the timeout, no gap as long
				fmt.Fprint(c, i)
			}
			br.Peek(1)
			return
		}
		br.Peek(1) // then silence until the proxy gives up
	})
	access := &collected{}
	s := newSetup(t, UpstreamOptions{ReadTimeout: pause}, Options{Access: access}, [2]string{"b", be.addr})
	front := frontServer(t, s.h)

	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /stall-body HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != io.ErrUnexpectedEOF || string(body) != "first part" {
		t.Errorf("stalled body: %q, %v; want the first part, then the connection cut", body, err)
	}
	if got, want := s.obs.last(), "example.com b 200 failed"; got != want {
		t.Errorf("observed %q, want %q", got, want)
	}
	if e := access.last(); e.Error != string(FailUpstreamRead) || e.Status != 200 {
		t.Errorf("access log: status %d error %q, want 200 %q", e.Status, e.Error, FailUpstreamRead)
	}

	resp, _, err = getRawPath(t, front, "/stall-head")
	if err != nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("stalled head: %v, %v; want 504", resp, err)
	}
	if e := access.last(); e.Error != string(FailUpstreamRead) {
		t.Errorf("access log error %q, want %q", e.Error, FailUpstreamRead)
	}

	resp, body2, err := getRawPath(t, front, "/moving")
	if err != nil || resp.StatusCode != 200 || body2 != "012345" {
		t.Errorf("a moving answer: %v %q, %v; want it whole", resp, body2, err)
	}
	if got, want := s.obs.last(), "example.com b 200"; got != want {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// getRawPath sends a GET of path for example.com on a new connection and
// returns the answer, its body read to the end (or to the error).
func getRawPath(t *testing.T, front, path string) (*http.Response, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// TestEarlyAnswer: a backend that answers a large upload without reading
// it (401) gets its answer to the client at once, without waiting for the
// backend to close (it never does here), and its connection is not reused.
func TestEarlyAnswer(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{}) // released when the test ends, before the stub closes
	be := newStub(t, func(n int, c net.Conn, br *bufio.Reader) {
		req, ok := readReqHead(br)
		if !ok {
			return
		}
		if req.Method == http.MethodPost {
			io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope")
			<-hold // never reads the upload, never closes (closing with unread bytes would reset)
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	t.Cleanup(func() { close(hold) })
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"b", be.addr})
	front := frontServer(t, s.h)

	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const size = 8 << 20
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", size)
	go io.Copy(c, io.LimitReader(zeros{}, size)) // blocks once nobody reads; ends with c
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no early answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || string(body) != "nope" {
		t.Fatalf("got %d %q, want 401 nope", resp.StatusCode, body)
	}
	if got := s.obs.last(); got != "example.com b 401" {
		t.Errorf("observed %q: an early answer is no failure", got)
	}
	if _, body, err := getRawPath(t, front, "/after"); err != nil || body != "ok" {
		t.Fatalf("next request: %q, %v", body, err)
	}
	if n := be.srv.Conns(); n != 2 {
		t.Errorf("backend saw %d connections, want 2: the early answer's must not be reused", n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestClientCutIsNoBackendFailure: a client that leaves mid-answer is
// logged as client_closed and not counted as an error.
func TestClientCutIsNoBackendFailure(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 1<<20)
	be := newStub(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readReqHead(br); !ok {
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 64<<20)
			for range 64 {
				if _, err := io.WriteString(c, big); err != nil {
					return
				}
			}
		}
	})
	access := &collected{}
	s := newSetup(t, UpstreamOptions{}, Options{Access: access}, [2]string{"b", be.addr})
	front := frontServer(t, s.h)
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	io.ReadFull(c, make([]byte, 1<<20))
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for access.last().Status == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling for the handler to finish, bounded
	}
	if e := access.last(); e.Error != string(FailClientClosed) {
		t.Errorf("access log error %q, want %q", e.Error, FailClientClosed)
	}
	if got := s.obs.last(); got != "example.com b 200" {
		t.Errorf("observed %q: a client leaving is not a failure of the service", got)
	}
}

// TestPausedBodyReachesClient: what the backend sent before pausing (the
// head, the first bytes) reaches the client during the pause: the backend
// waits for the client to have read it before it sends the rest, so a
// proxy holding it back would deadlock until the client's bound.
func TestPausedBodyReachesClient(t *testing.T) {
	t.Parallel()
	proceed := make(chan struct{})
	be := newStub(t, func(n int, c net.Conn, br *bufio.Reader) {
		if _, ok := readReqHead(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
		<-proceed
		io.WriteString(c, "-last")
		br.Peek(1)
	})
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"b", be.addr})
	front := frontServer(t, s.h)
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound: passing it is the failure
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		close(proceed)
		t.Fatalf("the head did not reach the client while the backend paused: %v", err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		close(proceed)
		t.Fatalf("the first bytes did not reach the client while the backend paused: %q, %v", first, err)
	}
	close(proceed)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "-last" {
		t.Errorf("the rest: %q, %v", rest, err)
	}
}
