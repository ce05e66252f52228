package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClientsOnTheWire drives the binary's HTTP/1.1 listener (fronttier's
// own server) with raw connections: pipelining, 100-continue, refused
// smuggling shapes and oversized heads, and slowloris connections that must
// neither last past the header timeout nor keep others from being served.
func TestClientsOnTheWire(t *testing.T) {
	t.Parallel()
	a1 := startBackend(t, "a1")
	p := newProxy(t, conf{
		Domains:    []domainConf{{"wire.example.com", "a"}},
		Backends:   []backendConf{be("a1", a1, "a")},
		ProxyExtra: "read_header_timeout_secs = 1\nmax_header_bytes = 2048\n",
	})
	const host = "wire.example.com"

	t.Run("pipelined", func(t *testing.T) {
		c := dialRaw(t, p)
		c.SetDeadline(time.Now().Add(waitTimeout))
		fmt.Fprintf(c, "GET /one HTTP/1.1\r\nHost: %s\r\n\r\nGET /two HTTP/1.1\r\nHost: %s\r\n\r\n", host, host)
		for _, want := range []string{"/one", "/two"} {
			if e := readEcho(t, c.br); e.Path != want || e.BackendID != "a1" {
				t.Fatalf("pipelined answer for %s: %+v", want, e)
			}
		}
	})

	t.Run("100-continue", func(t *testing.T) {
		c := dialRaw(t, p)
		c.SetDeadline(time.Now().Add(waitTimeout))
		fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", host)
		if line, err := c.br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("before the body: %q, %v", line, err)
		}
		c.br.ReadString('\n')
		io.WriteString(c, "hello")
		if e := readEcho(t, c.br); e.BodyBytes != 5 || e.Method != http.MethodPost {
			t.Fatalf("after the body: %+v", e)
		}
	})

	for _, tc := range []struct{ name, req, status string }{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: identity\r\n\r\n", "501"},
		{"head too large", "GET / HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("b", 4096) + "\r\n\r\n", "431"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, p)
			c.SetDeadline(time.Now().Add(waitTimeout))
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if !strings.HasPrefix(resp.Status, tc.status) || !resp.Close {
				t.Errorf("answer %q (close %v), want %s and the connection closed", resp.Status, resp.Close, tc.status)
			}
		})
	}

	t.Run("slowloris", func(t *testing.T) {
		// Ten clients send half a head; one keeps trickling a byte every
		// 200 ms. All are cut off after the 1 s header timeout, and a
		// normal client is served meanwhile.
		start := time.Now()
		var slow []*rawConn
		for i := range 10 {
			c := dialRaw(t, p)
			fmt.Fprintf(c, "GET /slow%d HTTP/1.1\r\nHost: %s\r\n", i, host)
			slow = append(slow, c)
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(slow[0], "X"); err != nil {
						return
					}
				}
			}
		}()
		if id := dialRaw(t, p).get(t, host, "/"); id != "a1" {
			t.Errorf("a normal client beside slow ones got %q", id)
		}
		for i, c := range slow {
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, err := c.br.ReadByte(); err == nil {
				t.Errorf("slow client %d got an answer", i)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("slow client %d was not cut off", i)
			}
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("slow clients lasted %v with a 1 s header timeout", d)
		}
	})
}

// readEcho reads one answer from br and decodes the testbackend's echo.
func readEcho(t *testing.T, br *bufio.Reader) echoReply {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoReply
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, echo: %v", resp.StatusCode, err)
	}
	io.Copy(io.Discard, resp.Body)
	return e
}
