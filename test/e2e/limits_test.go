package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMaxConnections: with max_connections = 1 a second client waits in
// the accept queue while the first is in the middle of a request, and is
// served as soon as the first goes idle: an idle keep-alive connection is
// reclaimed (closed) for a waiting client, as nginx does, instead of
// holding the slot for idle_timeout_secs.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	a1 := startBackend(t, "a1")
	p := newProxy(t, conf{
		Domains:    []domainConf{{"limit.example.com", "a"}},
		Backends:   []backendConf{be("a1", a1, "a")},
		ProxyExtra: "max_connections = 1\nidle_timeout_secs = 600\n",
	})
	first, err := net.Dial("tcp", p.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET / HTTP/1.1\r\n") // mid-request: the slot is in use
	firstBr := bufio.NewReader(first)
	if _, err := firstBr.Peek(0); err != nil {
		t.Fatal(err)
	}

	second, err := net.Dial("tcp", p.HTTP) // the kernel accepts; the proxy does not yet
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, "GET / HTTP/1.1\r\nHost: limit.example.com\r\n\r\n")
	br := bufio.NewReader(second)
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a second connection was served while the only slot was mid-request")
	}

	// The first request completes; its connection goes idle and is
	// reclaimed for the waiting client.
	io.WriteString(first, "Host: limit.example.com\r\n\r\n")
	first.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(firstBr, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v, %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	second.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("the waiting client, once the first went idle: %q, %v", line, err)
	}
	if _, err := firstBr.ReadByte(); err != io.EOF {
		t.Errorf("the idle first connection: %v, want it closed (EOF)", err)
	}
}

// TestPprofListener: [debug] pprof_addr serves Go's profiler on its own
// listener, and nothing of it leaks onto the proxy's or the API's.
func TestPprofListener(t *testing.T) {
	t.Parallel()
	p := newProxy(t, conf{Pprof: true})
	if p.Pprof == "" {
		t.Fatal("no pprof listener logged")
	}
	resp, err := http.Get("http://" + p.Pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof answered %d:\n%.200s", resp.StatusCode, body)
	}
	for _, addr := range []string{p.HTTP, p.API} {
		resp, err := http.Get("http://" + addr + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("%s serves /debug/pprof/", addr)
		}
	}
}
