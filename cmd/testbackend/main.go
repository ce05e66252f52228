// Command testbackend is a small HTTP backend for trying out and testing
// fronttier; it replaces the manual's `python3 test_backend.py PORT ID`.
//
// Usage:
//
//	testbackend [-host ADDR] [-delay DURATION] [-health-status CODE] [-fail-rate F] PORT ID
//
// It answers:
//
//   - /health: {"status":"healthy","backend_id":ID} with -health-status
//     (status "unhealthy" when that is not 2xx);
//   - GET /sse?n=N: N (default 5) server-sent events "data: 1" .. "data: N",
//     ~10ms apart;
//   - /ws: a WebSocket handshake, then a raw echo of the byte stream;
//   - anything else: a JSON echo of the request (method, path, query, host,
//     headers, body size, request URI).
//
// Every answer carries an X-Backend-Id header, and every answer but /health
// waits -delay first. With -fail-rate F (0 to 1), that share of the echo
// requests, spread evenly (every 20th for 0.05), is answered 500 with an
// X-Injected-Failure: 1 header instead: a release that fails some of its
// requests, for trying rollouts.
package main

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
)

// options are the command-line flags.
type options struct {
	host         string        // bind address
	delay        time.Duration // added before every non-health answer
	healthStatus int           // status /health returns
	failRate     float64       // share of echo requests answered 500
}

const (
	// sseInterval is the pause between server-sent events.
	sseInterval = 10 * time.Millisecond
	// sseDefault and sseMax bound the n parameter of /sse.
	sseDefault, sseMax = 5, 100000
	// shutdownTimeout bounds the graceful shutdown on SIGINT/SIGTERM.
	shutdownTimeout = 5 * time.Second
	// websocketGUID is the RFC 6455 constant hashed into Sec-WebSocket-Accept.
	websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// usageLine is the synopsis printed with the flags on a command-line mistake.
const usageLine = "usage: testbackend [-host ADDR] [-delay DURATION] [-health-status CODE] [-fail-rate F] PORT ID"

// errUsage marks command-line mistakes, which exit with status 2.
var errUsage = errors.New("invalid arguments")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "testbackend:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "testbackend:", err)
		os.Exit(1)
	}
}

// run parses args (without the program name), serves until ctx is done, then
// shuts down gracefully. Messages go to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	port, id, opt, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(opt.host, port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Request contexts derive from serveCtx, which outlives ctx so that a
	// graceful shutdown lets in-flight requests finish. Cancelling it ends
	// delays, event streams and hijacked WebSocket connections.
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{
		Handler:           newHandler(id, opt),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return serveCtx },
	}
	fmt.Fprintf(stderr, "testbackend %s listening on %s\n", id, ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Stop accepting, wait for in-flight requests up to shutdownTimeout,
	// then cut whatever is left (Shutdown does not track WebSockets).
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	err = srv.Shutdown(sctx)
	cancel()
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// parseArgs parses the flags and the PORT and ID positionals. On a mistake it
// prints the usage to stderr and returns an error wrapping errUsage.
func parseArgs(args []string, stderr io.Writer) (port, id string, opt options, err error) {
	fs := flag.NewFlagSet("testbackend", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are reported once, by main
	fs.StringVar(&opt.host, "host", "127.0.0.1", "bind address")
	fs.DurationVar(&opt.delay, "delay", 0, "delay added before every answer but /health")
	fs.IntVar(&opt.healthStatus, "health-status", http.StatusOK, "status code /health returns")
	fs.Float64Var(&opt.failRate, "fail-rate", 0, "share (0 to 1) of echo requests answered 500, spread evenly")
	usage := func() {
		fmt.Fprintln(stderr, usageLine)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	fail := func(err error) (string, string, options, error) {
		usage()
		return "", "", opt, fmt.Errorf("%w: %w", errUsage, err)
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return "", "", opt, err
		}
		return fail(err)
	}
	if fs.NArg() != 2 {
		return fail(fmt.Errorf("want PORT and ID, got %d arguments", fs.NArg()))
	}
	n, err := strconv.ParseUint(fs.Arg(0), 10, 16)
	if err != nil {
		return fail(fmt.Errorf("bad port %q (want 0-65535)", fs.Arg(0)))
	}
	port, id = strconv.FormatUint(n, 10), fs.Arg(1)
	if id == "" || strings.ContainsFunc(id, unicode.IsControl) {
		return fail(fmt.Errorf("ID %q must be non-empty and printable", id))
	}
	if opt.delay < 0 {
		return fail(fmt.Errorf("negative -delay %v", opt.delay))
	}
	if opt.healthStatus < 200 || opt.healthStatus > 599 {
		return fail(fmt.Errorf("-health-status %d is not 200-599", opt.healthStatus))
	}
	if !(opt.failRate >= 0 && opt.failRate <= 1) {
		return fail(fmt.Errorf("-fail-rate %v is not between 0 and 1", opt.failRate))
	}
	return port, id, opt, nil
}

// newHandler returns the backend's handler for backend id.
func newHandler(id string, opt options) http.Handler {
	return &backend{id: id, opt: opt}
}

// backend is the handler. It routes by hand rather than with http.ServeMux,
// which would redirect unclean paths ("//a", "/a/../b") instead of echoing
// them as a proxy forwarded them.
type backend struct {
	id    string
	opt   options
	echos atomic.Uint64 // echo requests so far, for -fail-rate
}

// ServeHTTP sets X-Backend-Id, answers /health at once, and everything else
// after opt.delay.
func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend-Id", b.id)
	if r.URL.Path == "/health" {
		b.health(w, r)
		return
	}
	if !b.wait(r.Context()) {
		return
	}
	switch {
	case r.URL.Path == "/sse" && r.Method == http.MethodGet:
		b.sse(w, r)
	case r.URL.Path == "/ws":
		b.websocket(w, r)
	default:
		if b.injectFailure() {
			w.Header().Set("X-Injected-Failure", "1")
			http.Error(w, "injected failure (-fail-rate)", http.StatusInternalServerError)
			return
		}
		b.echo(w, r)
	}
}

// injectFailure counts an echo request and reports whether -fail-rate
// fails it: the n-th fails when floor(n*F) steps up, so exactly that
// share fails, evenly spread.
func (b *backend) injectFailure() bool {
	f := b.opt.failRate
	if f <= 0 {
		return false
	}
	n := float64(b.echos.Add(1))
	return math.Floor(n*f) > math.Floor((n-1)*f)
}

// wait sleeps opt.delay and reports whether ctx was still live at the end.
func (b *backend) wait(ctx context.Context) bool {
	if b.opt.delay <= 0 {
		return true
	}
	t := time.NewTimer(b.opt.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// health answers the health check with -health-status.
func (b *backend) health(w http.ResponseWriter, r *http.Request) {
	status := "healthy"
	if b.opt.healthStatus < 200 || b.opt.healthStatus > 299 {
		status = "unhealthy"
	}
	body, err := json.Marshal(struct {
		Status    string `json:"status"`
		BackendID string `json:"backend_id"`
	}{status, b.id})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if code := b.opt.healthStatus; code == http.StatusNoContent || code == http.StatusNotModified {
		w.WriteHeader(code) // these may not have a body
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(b.opt.healthStatus)
	_, _ = w.Write(body)
}

// echoReply is the JSON body of an echo.
type echoReply struct {
	BackendID string            `json:"backend_id"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	URI       string            `json:"uri"` // request target as received
	Query     string            `json:"query"`
	Host      string            `json:"host"`
	Headers   map[string]string `json:"headers"`
	BodyBytes int64             `json:"body_bytes"`
}

// echo describes the request it received.
func (b *backend) echo(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, fmt.Sprintf("reading body: %v", err), http.StatusBadRequest)
		return
	}
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		if len(v) > 0 {
			headers[k] = v[0]
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echoReply{
		BackendID: b.id,
		Method:    r.Method,
		Path:      r.URL.Path,
		URI:       r.RequestURI,
		Query:     r.URL.RawQuery,
		Host:      r.Host,
		Headers:   headers,
		BodyBytes: n,
	})
}

// sse streams n server-sent events, flushing each as it is written.
func (b *backend) sse(w http.ResponseWriter, r *http.Request) {
	n := sseDefault
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > sseMax {
			http.Error(w, fmt.Sprintf("n must be an integer 0-%d", sseMax), http.StatusBadRequest)
			return
		}
		n = v
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return // streaming unsupported; the client gets headers at the end
	}
	t := time.NewTicker(sseInterval)
	defer t.Stop()
	for i := 1; i <= n; i++ {
		if i > 1 {
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// websocket answers a WebSocket handshake and then echoes the raw byte
// stream until the client closes it.
//
// This is not a frame parser: it sends back exactly the bytes it receives.
// Client frames are masked and servers must not mask, so the echo is a valid
// WebSocket exchange only for tests that read the raw bytes (or send unmasked
// frames); that is enough to check that a proxy tunnels upgraded connections
// both ways.
func (b *backend) websocket(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Upgrade", "websocket") ||
		!headerHasToken(r.Header, "Connection", "upgrade") || key == "" {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "expected a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, fmt.Sprintf("cannot hijack: %v", err), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	// Close the connection when the server shuts down.
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()

	// The server may have left deadlines on the connection; an echo lasts
	// as long as the client wants.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return
	}
	_, _ = fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: %s\r\nX-Backend-Id: %s\r\n\r\n", websocketAccept(key), b.id)
	if err := brw.Flush(); err != nil {
		return
	}
	// brw.Reader may already hold bytes the client sent after its request.
	_, _ = io.Copy(conn, brw.Reader)
}

// websocketAccept computes Sec-WebSocket-Accept for a Sec-WebSocket-Key
// (RFC 6455, section 4.2.2).
func websocketAccept(key string) string {
	sum := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// headerHasToken reports whether the comma-separated header name contains
// token, ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
