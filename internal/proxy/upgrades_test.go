package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// wsBackend is a backend that accepts WebSocket-like upgrades: it answers
// 101 with hello in the same write (so the proxy's reader buffers it with
// the head), then echoes what it reads until the connection ends. It copies
// with plain Read and Write calls so that it creates no splice pipe itself.
func wsBackend(t *testing.T, hello string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				c.Close()
				stop()
				continue
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"+hello)
			buf := make([]byte, 512)
			for {
				n, err := br.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			stop()
		}
	}()
	return ln.Addr().String()
}

// openFDs returns the process's open descriptors as "fd -> target"
// entries ("socket:[123]", "pipe:[456]"), without the directory handle
// the listing itself opens. It skips the test where /proc is missing.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	fds := make(map[string]string, len(ents))
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || strings.HasPrefix(target, "/proc/") {
			continue // closed meanwhile, or the listing's own handle
		}
		fds[e.Name()] = target
	}
	return fds
}

// opened returns the descriptors of now that were not open before, sorted.
func opened(before, now map[string]string) []string {
	var added []string
	for fd, target := range now {
		if before[fd] != target {
			added = append(added, fd+" -> "+target)
		}
	}
	slices.Sort(added)
	return added
}

// TestWebSocketReleasesDescriptors: a proxied WebSocket carries bytes both
// ways (including those buffered with the request and the 101 answer), and
// once the client closes it the process holds no descriptor it opened for
// it, in particular no splice pipe parked in the runtime's pipe pool until
// a garbage collection.
//
// Not parallel: it counts the whole process's descriptors. The garbage
// collector is off while it runs, so a pooled pipe cannot be reclaimed
// before the check, and two collections first empty the pipe pool, so a
// pipe taken from it during the test is always a new one.
func TestWebSocketReleasesDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	runtime.GC()

	const hello = "hello from the backend"
	s := newSetup(t, UpstreamOptions{}, Options{}, [2]string{"ws", wsBackend(t, hello)})
	front := frontServer(t, s.h)
	before := openFDs(t)

	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The first frame travels with the request head: the server's reader
	// buffers it, and it must still reach the backend.
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping-1")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	want := hello + "ping-1"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB: several buffers' worth
	wrote := make(chan error, 1)
	go func() { _, err := io.WriteString(c, big); wrote <- err }()
	got = make([]byte, len(big))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != big {
		t.Fatalf("echo of %d bytes: %v (equal: %v)", len(big), err, string(got) == big)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	c.Close()

	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond) // polls the kernel's table
	defer tick.Stop()
	for {
		added := opened(before, openFDs(t))
		if len(added) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("descriptors still open after the WebSocket closed: %v (pipes among them: %d)",
				added, strings.Count(strings.Join(added, " "), "pipe:["))
		}
	}
	if now := openFDs(t); len(now) > len(before) {
		t.Errorf("%d descriptors open, %d before the WebSocket", len(now), len(before))
	}
}
