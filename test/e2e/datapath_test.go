package e2e

import (
	"bufio"
	"fronttier/internal/testutil"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// stallingBackend answers /health, and on any other path sends a head
// promising 100 bytes, the first few, and then nothing more while the
// connection stays open: a backend hung mid-answer.
func stallingBackend(t *testing.T) string {
	t.Helper()
	return testutil.ServeRaw(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/health" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			br.Peek(1) // silence until the proxy gives up and closes
			return
		}
	}).Addr
}

// TestCutAnswersAreVisible: through the binary, a backend that stalls
// mid-answer is cut after upstream_read_timeout_secs; the client can tell
// (the connection closes before the promised length); the metrics count it
// as an error although its status was 200; the log says why at warn.
func TestCutAnswersAreVisible(t *testing.T) {
	t.Parallel()
	p := newProxy(t, conf{
		Domains:    []domainConf{{"stall.example.com", "s"}},
		Backends:   []backendConf{{ID: "stall1", Addr: stallingBackend(t), Tags: []string{"s"}}},
		ProxyExtra: "upstream_read_timeout_secs = 1\n",
	})
	c, err := net.Dial("tcp", p.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: stall.example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no head reached the client: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != io.ErrUnexpectedEOF || string(body) != "partial" {
		t.Fatalf("client read %q, %v: want the first bytes, then a cut (unexpected EOF)", body, err)
	}

	line := p.waitLog(t, msgIs("answer cut short"), "the cut answer logged at warn")
	m, _ := jsonLine(line)
	if m["level"] != "WARN" || m["reason"] != "upstream_read_timeout" || m["backend"] != "stall1" {
		t.Errorf("log line %s: want WARN, reason upstream_read_timeout, backend stall1", line)
	}
	resp, err = http.Get("http://" + p.API + "/api/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := map[string]string{"domain": "stall.example.com", "backend": "stall1", "code": "200", "error": "true"}
	found := false
	for _, s := range parseMetrics(t, string(text)) {
		if s.name == "proxy_requests_total" && hasLabels(s.labels, want) && s.value == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("no proxy_requests_total%v = 1 in:\n%s", want, grepLines(string(text), "proxy_requests_total"))
	}
}
