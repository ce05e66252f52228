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
// the accept queue while the first holds its connection, and is served as
// soon as the first closes.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	a1 := startBackend(t, "a1")
	p := newProxy(t, conf{
		Domains:    []domainConf{{"limit.example.com", "a"}},
		Backends:   []backendConf{be("a1", a1, "a")},
		ProxyExtra: "max_connections = 1\n",
	})
	first := dialRaw(t, p)
	first.get(t, "limit.example.com", "/") // holds the only slot, kept alive

	second, err := net.Dial("tcp", p.HTTP) // the kernel accepts; the proxy does not yet
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, "GET / HTTP/1.1\r\nHost: limit.example.com\r\n\r\n")
	br := bufio.NewReader(second)
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a second connection was served while the limit was taken")
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("after the first client left: %q, %v", line, err)
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
