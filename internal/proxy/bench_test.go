package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"fronttier/internal/h2guard"
)

// BenchmarkProxy measures one whole proxied request: a keep-alive client,
// the handler on a real listener, and a loopback upstream. Compare runs with
// benchstat: go test -run=^$ -bench=Proxy -benchmem -count=10 ./internal/proxy
func BenchmarkProxy(b *testing.B) {
	up := serveB(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"64"}
		w.Write(make([]byte, 64))
	}))
	s := newSetup(b, UpstreamOptions{MaxIdleConns: 64}, Options{}, [2]string{"up", up})
	front := frontServer(b, s.h) // internal/server, as the app serves it
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	req, _ := http.NewRequest("GET", "http://"+front+"/", nil)
	req.Host = "example.com"
	runRequests(b, client, req, nil)
}

func serveB(b *testing.B, h http.Handler) string { return serve(b, h) }

// BenchmarkProxyHTTP2 is BenchmarkProxy with the client on HTTP/2 over
// TLS, served as the app serves it (golang.org/x/net/http2 behind
// internal/h2guard), with the app's default send and body timeouts: one
// connection, 8 streams per CPU in flight.
func BenchmarkProxyHTTP2(b *testing.B) {
	up := serveB(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"64"}
		w.Write(make([]byte, 64))
	}))
	s := newSetup(b, UpstreamOptions{MaxIdleConns: 64},
		Options{SendTimeout: time.Minute, BodyTimeout: time.Minute}, [2]string{"up", up})
	front := httptest.NewUnstartedServer(s.h)
	if err := h2guard.ConfigureLimits(front.Config, h2guard.Limits{}); err != nil {
		b.Fatal(err)
	}
	front.TLS = &tls.Config{NextProtos: []string{"h2"}}
	front.StartTLS()
	b.Cleanup(front.Close)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP2(true)
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Host = "example.com"
	b.SetParallelism(8) // 16 streams in flight on 2 CPUs
	runRequests(b, client, req, func(resp *http.Response) string {
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			return resp.Status + " over " + resp.Proto + ", want 200 over HTTP/2"
		}
		return ""
	})
}

// runRequests sends req over client from parallel goroutines, b.N times in
// all, reading each answer whole; check, if not nil, returns what is wrong
// with an answer ("" for nothing).
func runRequests(b *testing.B, client *http.Client, req *http.Request, check func(*http.Response) string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if check != nil {
				if msg := check(resp); msg != "" {
					b.Error(msg)
					return
				}
			}
		}
	})
}
