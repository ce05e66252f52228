//go:build unix

package server

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// TestReadOnce checks the single read a busy keep-alive connection makes
// for its next request (waitRequest's try): nothing there yet is
// errWouldBlock, not a wait; bytes are read; the peer's close is io.EOF.
func TestReadOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rc := rawConn(server)
	try := func() (int, []byte, error) {
		t.Helper()
		p := make([]byte, 16)
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool { n, rerr = readOnce(fd, p); return true }); err != nil {
			t.Fatal(err)
		}
		return n, p[:n], rerr
	}
	if n, _, err := try(); n != 0 || !errors.Is(err, errWouldBlock) {
		t.Fatalf("empty socket: %d, %v; want 0, errWouldBlock", n, err)
	}
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	// The bytes are on their way over loopback: wait for them as the
	// server does (a peek first: readiness announced before the wait
	// began is not announced again), then the attempt must take them.
	wait := func() {
		t.Helper()
		woke := false
		if err := rc.Read(func(fd uintptr) bool {
			if woke {
				return true
			}
			woke = true
			var b [1]byte
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return n >= 0 || !wouldBlock(err)
		}); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	if n, got, err := try(); err != nil || string(got) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("with a request waiting: %d %q, %v", n, got, err)
	}
	client.Close()
	for {
		n, _, err := try()
		if errors.Is(err, errWouldBlock) {
			wait() // the FIN is on its way
			continue
		}
		if n != 0 || err != io.EOF {
			t.Fatalf("after the peer closed: %d, %v; want 0, io.EOF", n, err)
		}
		break
	}
}
