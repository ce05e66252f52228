package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// RawServer is a raw TCP server on 127.0.0.1 for tests that script a
// peer byte by byte (a misbehaving backend): Serve runs for each accepted
// connection, numbered from 1, and the connection is closed when it
// returns or the test ends, when every connection's goroutine is waited
// for.
type RawServer struct {
	Addr  string
	conns atomic.Int32
}

// Conns returns how many connections were accepted.
func (s *RawServer) Conns() int { return int(s.conns.Load()) }

// ServeRaw starts a RawServer running serve.
func ServeRaw(t testing.TB, serve func(n int, c net.Conn)) *RawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &RawServer{Addr: ln.Addr().String()}
	var mu sync.Mutex
	var open []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.conns.Add(1))
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(n, c)
			})
		}
	})
	return s
}
