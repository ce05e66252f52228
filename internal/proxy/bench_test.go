package proxy

import (
	"io"
	"net/http"
	"testing"
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
		}
	})
}

func serveB(b *testing.B, h http.Handler) string { return serve(b, h) }
