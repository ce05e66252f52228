// Command idleconns holds many idle keep-alive connections open to a running
// HTTP server, for bench/idle.sh to measure what each one costs the server.
//
// It opens -n connections to -addr (plain HTTP, or HTTPS with -tls), -c at a
// time, makes one GET request for -host on each and reads the whole answer,
// so that every connection has served a request and now waits in keep-alive
// for its next one (the realistic idle connection). When all are open it
// prints "idle N" on stdout and holds them until its standard input ends (or
// SIGINT/SIGTERM). Then, with -recheck (the default), it makes one more
// request on every connection, to show that each survived its idle time and
// is served correctly, prints "recheck N ok", closes them all and exits. Any
// failure is reported on stderr and makes the exit status 1.
//
// It starts nothing itself; the server must be running.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address (host:port)")
	n := flag.Int("n", 10000, "connections to hold")
	conc := flag.Int("c", 64, "connections opened at a time")
	host := flag.String("host", "example.com", "Host header, and TLS server name")
	path := flag.String("path", "/", "request target")
	useTLS := flag.Bool("tls", false, "HTTPS (the certificate is not verified)")
	recheck := flag.Bool("recheck", true, "before closing, make one more request on every connection")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on each connect and exchange")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl := &client{addr: *addr, host: *host, path: *path, timeout: *timeout}
	if *useTLS {
		cl.tls = &tls.Config{ServerName: *host, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	}
	if err := run(ctx, cl, *n, *conc, *recheck); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

// run opens n connections, holds them until stdin ends or ctx is done, and
// rechecks them if asked.
func run(ctx context.Context, cl *client, n, conc int, recheck bool) error {
	start := time.Now()
	conns, err := cl.each(ctx, make([]net.Conn, n), conc, cl.open)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return fmt.Errorf("opening %d connections: %w", n, err)
	}
	fmt.Fprintf(os.Stderr, "idleconns: %d connections open and idle in %.1f s\n", n, time.Since(start).Seconds())
	fmt.Printf("idle %d\n", n)

	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
		return nil
	}
	if !recheck {
		return nil
	}
	if _, err := cl.each(ctx, conns, conc, cl.again); err != nil {
		return fmt.Errorf("recheck: %w", err)
	}
	fmt.Printf("recheck %d ok\n", n)
	return nil
}

// client makes the requests.
type client struct {
	addr, host, path string
	tls              *tls.Config
	timeout          time.Duration
}

// each runs f for every slot of conns, conc at a time, and returns conns
// with what f left in each slot and the first error.
func (cl *client) each(ctx context.Context, conns []net.Conn, conc int, f func(context.Context, net.Conn) (net.Conn, error)) ([]net.Conn, error) {
	var next atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range max(conc, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c, err := f(ctx, conns[i])
				conns[i] = c
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return conns, first
}

// open connects and makes the first request.
func (cl *client) open(ctx context.Context, _ net.Conn) (net.Conn, error) {
	d := net.Dialer{Timeout: cl.timeout}
	c, err := d.DialContext(ctx, "tcp", cl.addr)
	if err != nil {
		return nil, err
	}
	if cl.tls != nil {
		tc := tls.Client(c, cl.tls)
		hctx, cancel := context.WithTimeout(ctx, cl.timeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c = tc
	}
	return cl.again(ctx, c)
}

// again makes one request on c and reads the whole answer, which must be a
// 200 that keeps the connection open.
func (cl *client) again(_ context.Context, c net.Conn) (net.Conn, error) {
	c.SetDeadline(time.Now().Add(cl.timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: idleconns\r\n\r\n", cl.path, cl.host); err != nil {
		return c, err
	}
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return c, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return c, err
	case resp.StatusCode != http.StatusOK:
		return c, fmt.Errorf("status %s", resp.Status)
	case resp.Close:
		return c, errors.New("the server closes the connection after the answer")
	case br.Buffered() > 0:
		return c, errors.New("bytes after the answer")
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
