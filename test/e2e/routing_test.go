package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestProxyErrors checks the proxy's own answers: unknown host 404, a tag
// with no backend 503, an unreachable backend 502; each a short plain-text
// body.
func TestProxyErrors(t *testing.T) {
	t.Parallel()
	ok := startBackend(t, "ok1")
	p := newProxy(t, conf{
		Domains: []domainConf{
			{"ok.example.com", "ok"},
			{"empty.example.com", "nobody-has-this"},
			{"down.example.com", "down"},
		},
		Backends: []backendConf{
			be("ok1", ok, "ok"),
			{ID: "dead1", Addr: freeAddr(t), Tags: []string{"down"}}, // nothing listens there
		},
	})
	if id := p.getEcho(t, "ok.example.com", "/").BackendID; id != "ok1" {
		t.Fatalf("ok.example.com went to %q", id)
	}
	cases := []struct {
		name, host string
		want       int
	}{
		{"unknown host", "unknown.example.net", http.StatusNotFound},
		{"unknown host with port", "unknown.example.net:8080", http.StatusNotFound},
		{"IP literal host", "127.0.0.1", http.StatusNotFound},
		{"tag without backend", "empty.example.com", http.StatusServiceUnavailable},
		{"backend down", "down.example.com", http.StatusBadGateway},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second time too (no caching of a bad state)
				resp, body := p.get(t, tc.host, "/some/path?q=1")
				if resp.StatusCode != tc.want {
					t.Fatalf("Host %s: status %d, want %d; body %q", tc.host, resp.StatusCode, tc.want, body)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type %q, want text/plain", ct)
				}
				if len(body) == 0 || len(body) > 200 {
					t.Errorf("body %q: want a short message", body)
				}
				if resp.Header.Get("X-Backend-Id") != "" {
					t.Errorf("a proxy error carries X-Backend-Id %q", resp.Header.Get("X-Backend-Id"))
				}
			}
		})
	}
}

// TestSwitchUnderLoad switches a domain's tag back and forth 20 times while
// four clients keep sending requests: not one request may fail.
func TestSwitchUnderLoad(t *testing.T) {
	t.Parallel()
	a1, a2 := startBackend(t, "a1"), startBackend(t, "a2")
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"load.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("a2", a2, "a"), be("b1", b1, "b"), be("b2", b2, "b")},
	})

	l := startLoad(t, p, "load.example.com", 4)

	// 20 switches, one every 100ms (paced by a ticker, ~2s of load).
	tick := time.NewTicker(100 * time.Millisecond)
	tag := "a"
	for i := range 20 {
		<-tick.C
		if tag == "a" {
			tag = "b"
		} else {
			tag = "a"
		}
		status, body, err := p.tryAPI(http.MethodPost, "/domains/load.example.com/switch", map[string]string{"new_tag": tag})
		if err != nil || status != http.StatusOK {
			t.Errorf("switch %d to %s: %d %s %v", i, tag, status, body, err)
		}
	}
	tick.Stop()
	// Let the load run until requests have been served after the last
	// switch too.
	l.more(t, 20, "load continues after the last switch")
	l.finish()
	served := l.served

	t.Logf("%d requests, served by %v", l.total.Load(), served)
	if f := l.failures.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed during the switches; first: %s", f, l.total.Load(), l.firstErr)
	}
	if l.total.Load() < 100 {
		t.Errorf("only %d requests were sent; the load loop is too slow to mean anything", l.total.Load())
	}
	for _, id := range []string{"a1", "a2", "b1", "b2"} {
		if served[id] == 0 {
			t.Errorf("backend %s served nothing (served: %v)", id, served)
		}
	}
	for id := range served {
		if !strings.HasPrefix(id, "a") && !strings.HasPrefix(id, "b") {
			t.Errorf("unexpected backend %q", id)
		}
	}
	// 20 switches from a end on a.
	for range 4 {
		if id := p.backendOf(t, "load.example.com"); !strings.HasPrefix(id, "a") {
			t.Fatalf("after an even number of switches a request went to %q", id)
		}
	}
}

// TestForwardedHeaders checks what the backend sees: X-Forwarded-* set by
// the proxy (a client's X-Forwarded-For replaced, not passed on), the
// original Host, and no hop-by-hop headers.
func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "h1")
	p := newProxy(t, conf{
		Domains:  []domainConf{{"hdr.example.com", "h"}},
		Backends: []backendConf{be("h1", b, "h")},
	})

	cases := []struct {
		name    string
		host    string
		headers map[string]string
	}{
		{"plain", "hdr.example.com", nil},
		{"client X-Forwarded-For", "hdr.example.com", map[string]string{
			"X-Forwarded-For":   "6.6.6.6, 7.7.7.7",
			"X-Forwarded-Host":  "evil.example.net",
			"X-Forwarded-Proto": "https",
		}},
		{"hop-by-hop", "hdr.example.com", map[string]string{
			"Connection":   "X-Custom, keep-alive",
			"X-Custom":     "1",
			"Keep-Alive":   "timeout=5",
			"X-End-To-End": "kept",
		}},
		{"host with port", "hdr.example.com:8080", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			for k, v := range tc.headers {
				hdr.Set(k, v)
			}
			resp, body, err := p.request(http.MethodGet, tc.host, "/headers?x=1", nil, hdr)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %q", resp.StatusCode, body)
			}
			var e echoReply
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("not an echo: %q", body)
			}
			h := e.Headers
			if _, ok := tc.headers["X-Custom"]; ok {
				// Control: sent straight to the backend, the headers do
				// arrive, so their absence below is the proxy's doing.
				req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr+"/headers", nil)
				req.Header = hdr.Clone()
				direct, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var d echoReply
				err = json.NewDecoder(direct.Body).Decode(&d)
				direct.Body.Close()
				if err != nil || d.Headers["X-Custom"] != "1" || d.Headers["Keep-Alive"] == "" {
					t.Fatalf("control request straight to the backend: headers %v, err %v", d.Headers, err)
				}
			}
			if got := h["X-Forwarded-For"]; got != "127.0.0.1" {
				t.Errorf("X-Forwarded-For %q, want 127.0.0.1 (the client's address only)", got)
			}
			if got := h["X-Forwarded-Proto"]; got != "http" {
				t.Errorf("X-Forwarded-Proto %q, want http", got)
			}
			if got := h["X-Forwarded-Host"]; got != tc.host {
				t.Errorf("X-Forwarded-Host %q, want %q", got, tc.host)
			}
			if e.Host != tc.host {
				t.Errorf("backend saw Host %q, want the original %q", e.Host, tc.host)
			}
			if e.URI != "/headers?x=1" {
				t.Errorf("backend saw request URI %q, want /headers?x=1", e.URI)
			}
			for _, k := range []string{"X-Custom", "Keep-Alive", "Proxy-Connection"} {
				if v, ok := h[k]; ok {
					t.Errorf("hop-by-hop header %s: %q reached the backend", k, v)
				}
			}
			if c := h["Connection"]; strings.Contains(strings.ToLower(c), "x-custom") {
				t.Errorf("Connection %q reached the backend", c)
			}
			if v, ok := tc.headers["X-End-To-End"]; ok && h["X-End-To-End"] != v {
				t.Errorf("end-to-end header X-End-To-End %q, want %q", h["X-End-To-End"], v)
			}
		})
	}
}
