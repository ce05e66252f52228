package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreaming checks server-sent events, large uploads and WebSocket
// upgrades through the proxy.
func TestStreaming(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "s1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"stream.example.com", "s"}},
		Backends: []backendConf{be("s1", b, "s")},
	})

	t.Run("SSE", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.HTTP+"/sse?n=5", nil)
		req.Host = "stream.example.com"
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var events []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				events = append(events, line)
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		want := []string{"data: 1", "data: 2", "data: 3", "data: 4", "data: 5"}
		if strings.Join(events, "|") != strings.Join(want, "|") {
			t.Fatalf("events %q, want %q", events, want)
		}
	})

	t.Run("SSE is not buffered", func(t *testing.T) {
		t.Parallel()
		// 500 events 10ms apart take ~5s to stream; the first one must
		// come through long before the end (a buffering proxy would hold
		// them all: they fit in one 32 KiB buffer).
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.HTTP+"/sse?n=500", nil)
		req.Host = "stream.example.com"
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: 1\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("the first event took %v to arrive: the stream is buffered", d)
		}
		line, err = br.ReadString('\n')
		if err != nil || line != "\n" {
			t.Fatalf("after the first event %q, %v", line, err)
		}
		if line, err = br.ReadString('\n'); err != nil || line != "data: 2\n" {
			t.Fatalf("second event %q, %v", line, err)
		}
	})

	t.Run("upload 20 MiB", func(t *testing.T) {
		t.Parallel()
		const size = 20 << 20
		for _, chunked := range []bool{false, true} {
			name := map[bool]string{false: "Content-Length", true: "chunked"}[chunked]
			// The body is generated as it is read, never held in memory.
			body := io.LimitReader(zeroReader{}, size)
			req, _ := http.NewRequest(http.MethodPost, "http://"+p.HTTP+"/upload", body)
			req.Host = "stream.example.com"
			req.ContentLength = size
			if chunked {
				req.ContentLength = -1
			}
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var e echoReply
			err = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, %v", name, resp.StatusCode, err)
			}
			if e.BodyBytes != size || e.Method != http.MethodPost {
				t.Errorf("%s: backend received %s with %d bytes, want POST with %d", name, e.Method, e.BodyBytes, size)
			}
		}
	})

	t.Run("WebSocket", func(t *testing.T) {
		t.Parallel()
		conn, id := dialWebSocket(t, p, "stream.example.com")
		if id != "s1" {
			t.Errorf("X-Backend-Id %q, want s1", id)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := conn.br
		// The backend echoes raw bytes: both directions are tunnelled.
		for _, msg := range []string{"hello through the proxy", strings.Repeat("0123456789", 10000)} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil {
				t.Fatalf("reading the echo of %d bytes: %v", len(msg), err)
			}
			if string(got) != msg {
				t.Fatalf("echo differs from what was sent (%d bytes)", len(msg))
			}
		}
	})
}

// zeroReader reads zero bytes forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
