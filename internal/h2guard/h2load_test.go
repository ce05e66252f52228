package h2guard

//lint:file-ignore SA1019 the comparison runs golang.org/x/net/http2's server unwrapped.

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2load's output: "finished in 1.23s, 45678.90 req/s, ..." and
// "requests: 200000 total, 200000 started, 200000 done, 200000 succeeded, ...".
var (
	h2loadRate = regexp.MustCompile(`finished in [^,]+, ([\d.]+) req/s`)
	h2loadDone = regexp.MustCompile(`(\d+) succeeded`)
)

// cpuTime returns the CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestH2Load measures what the guard costs: h2load (Debian's
// nghttp2-client) against a trivial handler served by
// golang.org/x/net/http2 with and without the guard, and by net/http's own
// HTTP/2 server, in turns, reporting requests per second and the servers'
// CPU time per request (h2load runs in a process of its own). It runs
// with H2LOAD=1; H2LOAD_ARGS replaces the
// load (default "-n 200000 -c 8 -m 16").
func TestH2Load(t *testing.T) {
	if os.Getenv("H2LOAD") == "" {
		t.Skip("set H2LOAD=1 to measure the guard's cost with h2load")
	}
	bin, err := exec.LookPath("h2load")
	if err != nil {
		t.Skip("h2load not installed (apt-get install nghttp2-client)")
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	servers := []struct {
		name      string
		configure func(*http.Server) error
	}{
		{name: "x/net/http2 with h2guard", configure: Configure},
		{name: "x/net/http2", configure: func(hs *http.Server) error { return http2.ConfigureServer(hs, nil) }},
		{name: "net/http", configure: func(*http.Server) error { return nil }},
	}
	cert := testCert(t)
	addrs := make([]string, len(servers))
	for i, s := range servers {
		hs := &http.Server{
			Handler:   hello,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
			HTTP2:     &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
			ErrorLog:  log.New(io.Discard, "", 0),
		}
		if err := s.configure(hs); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		go func() {
			if err := hs.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
				t.Error(err)
			}
		}()
		t.Cleanup(func() { hs.Close() })
	}
	args := "-n 200000 -c 8 -m 16"
	if a := os.Getenv("H2LOAD_ARGS"); a != "" {
		args = a
	}
	for round := range 3 {
		for i, s := range servers {
			cmd := exec.Command("sh", "-c", bin+" "+args+" -H 'user-agent: h2load' https://"+addrs[i]+"/")
			cpu := cpuTime(t)
			out, err := cmd.CombinedOutput()
			cpu = cpuTime(t) - cpu
			rate, done := h2loadRate.FindSubmatch(out), h2loadDone.FindSubmatch(out)
			if err != nil || rate == nil || done == nil {
				t.Fatalf("h2load: %v\n%s", err, out)
			}
			n, _ := strconv.Atoi(string(done[1]))
			t.Logf("round %d, %-25s %9s req/s, %5.2f µs CPU per request",
				round+1, s.name, rate[1], float64(cpu.Microseconds())/float64(max(n, 1)))
		}
	}
}
