// Package proxy is the data path: the http.Handler every client request
// goes through. It finds the virtual host, redirects to HTTPS when the host
// wants it and can be served, picks a backend from the host's pool, forwards
// (retrying another backend when a connection could not be made), and
// reports the outcome to metrics, passive health and the access log.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/logging"
	"fronttier/internal/route"
)

// Routes gives the route table in force.
type Routes interface {
	Table() *route.Table
}

// TLSReady tells whether HTTPS can be served for a host right now (a
// certificate is loaded for it).
type TLSReady interface {
	Ready(domain string) bool
}

// Observer receives what the data path does: Request once per finished
// request (domain "" when no host matched; tag the tag the request was
// routed to, "" when it was answered before (a redirect, a refused
// upload); backend "" when none was picked; failed when the answer failed
// or was cut short, whatever its status: see Failure.Counts), Retry when
// an attempt is sent again to another backend, Panic when a request goes
// to an unhealthy backend because none is healthy.
type Observer interface {
	Request(domain, tag, backend string, code int, failed bool, d time.Duration)
	Retry(domain, backend string)
	Panic(domain string)
}

// FailureReporter is told about forwarding failures (passive health).
type FailureReporter interface {
	Failure(b *backend.Backend, err error)
}

// AccessLog writes one line per request.
type AccessLog interface {
	Log(e logging.Entry)
}

// Options configures a Handler. Routes is required; the rest may be nil.
type Options struct {
	Routes   Routes
	TLS      TLSReady
	Observer Observer
	Failures FailureReporter
	Access   AccessLog
	// Challenge answers /.well-known/acme-challenge/ on plain HTTP.
	Challenge http.Handler
	Log       *slog.Logger
	// HTTPSPort is written into redirects unless it is 443 or 0.
	HTTPSPort int
	// MaxAttempts bounds how many backends one request is tried on;
	// default 3.
	MaxAttempts int
	// MaxBodyBytes limits request bodies; 0 means no limit.
	MaxBodyBytes int64
	// Passive5xx reports 5xx answers from a backend to Failures too.
	Passive5xx bool
	// BodyTimeout is the longest a client may pause while sending a request
	// body; 0 = no limit.
	BodyTimeout time.Duration
	// SendTimeout bounds each pause while writing the answer to the client
	// (nginx's send_timeout): armed before every write, so the backend's
	// time to answer never counts; 0 = no limit.
	SendTimeout time.Duration
}

// Handler is the proxy's http.Handler. It takes no lock: it reads the route
// table through one atomic load and balances with atomics.
type Handler struct {
	o    Options
	port string // ":8443", or "" when redirects carry no port
	recs recorderPool
}

// maxAttempts bounds o.MaxAttempts; it sizes the per-request array of tried
// backends, which stays on the stack.
const maxAttempts = 8

// New returns a Handler.
func New(o Options) *Handler {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	o.MaxAttempts = min(o.MaxAttempts, maxAttempts)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{o: o}
	if o.HTTPSPort != 0 && o.HTTPSPort != 443 {
		h.port = ":" + strconv.Itoa(o.HTTPSPort)
	}
	return h
}

const challengePrefix = "/.well-known/acme-challenge/"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.o.Challenge != nil && r.TLS == nil && strings.HasPrefix(r.URL.Path, challengePrefix) {
		h.arm(w)
		h.o.Challenge.ServeHTTP(w, r)
		return
	}
	host := h.o.Routes.Table().Lookup(r.Host)
	if host == nil {
		h.finish(r, start, "", "", "", h.plain(w, http.StatusNotFound, "404 unknown host\n"))
		return
	}
	if r.TLS == nil && host.Redirect && host.TLS && h.o.TLS != nil && h.o.TLS.Ready(host.Domain) {
		h.finish(r, start, host.Domain, "", "", h.redirect(w, r))
		return
	}
	if h.o.MaxBodyBytes > 0 && r.ContentLength > h.o.MaxBodyBytes {
		h.finish(r, start, host.Domain, "", "", h.plain(w, http.StatusRequestEntityTooLarge, "413 request body too large\n"))
		return
	}
	h.forward(w, r, host, start)
}

// forward sends r to a backend of the pool host places it on (see
// route.Host.Decide: its stable pool, a canary's, an override's). When an
// attempt fails before any response reached the client, and the request
// can safely be sent again (see retryable), it is tried on another
// backend, up to MaxAttempts backends.
//
// A host without a Split costs nothing more than its pool's Pick. With
// one, a client with its cookies costs a scan of its Cookie field and no
// allocation; a client given a new bucket, or moved to another backend,
// gets a Set-Cookie on the answer.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, host *route.Host, start time.Time) {
	body, err := h.prepareBody(w, r)
	if err != nil {
		h.finish(r, start, host.Domain, "", "", h.bodyFailed(w, err))
		return
	}
	defer body.finish()
	rec := h.recs.get(w, r, h.o.SendTimeout)
	defer h.recs.put(rec)

	pool, tag := host.Pool, host.Tag
	affinity, affKey := false, ""
	if sp := host.Split; sp != nil {
		d := host.Decide(r)
		pool, tag = d.Pool, d.Tag
		if d.Source == route.SourceNew {
			rec.cookies[0] = bucketCookie(d.Bucket, r)
		}
		if affinity = sp.Affinity; affinity {
			affKey, _ = route.Cookie(r.Header, route.AffinityCookie)
		}
	}
	var triedBuf [maxAttempts]*backend.Backend
	tried := triedBuf[:0]
	var b *backend.Backend
	for {
		var panicked, kept bool
		if affinity {
			b, panicked, kept = pool.PickAffine(affKey, tried)
		} else {
			b, panicked = pool.Pick(tried)
		}
		if b == nil {
			break
		}
		if panicked {
			h.panicking(host.Domain, tag, pool, b)
		}
		if affinity && !kept {
			rec.cookies[1] = ""
			if k := pool.AffinityKey(b); k != affKey {
				rec.cookies[1] = affinityCookie(k, r) // a new client, or its backend is gone
			}
		}
		body.rewind(r)
		rec.err = nil
		h.send(b, rec, r)
		if rec.err == nil || rec.fail != "" {
			switch {
			case h.o.Failures == nil:
			case rec.aborted: // the backend broke its answer off
				h.o.Failures.Failure(b, rec.err)
			case h.o.Passive5xx && rec.status >= 500:
				h.o.Failures.Failure(b, statusError(rec.status))
			}
			break
		}
		if berr := body.failed(); berr != nil {
			rec.err = berr // the client's upload failed, not the backend
			break
		}
		if clientGone(r, rec.err) {
			rec.status = statusClientClosed
			break
		}
		if h.o.Failures != nil {
			h.o.Failures.Failure(b, rec.err)
		}
		tried = append(tried, b)
		if rec.started || !body.replayable() || !retryable(r, rec.err) || len(tried) >= h.o.MaxAttempts {
			break
		}
		if h.o.Observer != nil {
			h.o.Observer.Retry(host.Domain, b.ID)
		}
		h.o.Log.Debug("retrying on another backend", "domain", host.Domain, "backend", b.ID, "error", rec.err)
	}
	switch {
	case b == nil && len(tried) == 0:
		res := h.plain(w, http.StatusServiceUnavailable, "503 no backend available\n")
		res.fail = FailNoBackend
		h.finish(r, start, host.Domain, tag, "", res)
		return
	case b == nil:
		b = tried[len(tried)-1]
	}
	if rec.started {
		rec.arm() // the server's last write (a final chunk, a flush) comes after the handler
	}
	res := answer{code: rec.status, bytes: rec.bytes, fail: rec.fail}
	switch {
	case rec.fail != "":
		h.cutShort(host, b, rec)
	case rec.err == nil:
	case rec.status == statusClientClosed:
		res.fail = FailClientClosed
	case body.failed() != nil:
		res = h.bodyFailed(w, rec.err)
	case rec.started: // an upgrade that failed after the switch
		res.fail = upstreamFailure(rec.err)
	default:
		res = h.failed(w, host, b, rec.err)
	}
	h.finish(r, start, host.Domain, tag, b.ID, res)
	if rec.aborted {
		panic(http.ErrAbortHandler) // the client must see a broken response
	}
}

// cutShort logs an answer that broke off after its head was sent, at
// most every logEvery per backend (metrics and the access log count each
// one). A client that left is the client's business: Debug.
func (h *Handler) cutShort(host *route.Host, b *backend.Backend, rec *recorder) {
	args := []any{"domain", host.Domain, "backend", b.ID, "status", rec.status,
		"bytes", rec.bytes, "reason", string(rec.fail), "error", rec.err}
	if !rec.fail.Counts() {
		h.o.Log.Debug("client left before the answer was complete", args...)
		return
	}
	if b.FailureLog.Allow(time.Now(), logEvery) {
		h.o.Log.Warn("answer cut short", args...)
	}
}

// bodyFailed answers a request whose body could not be read from the
// client: 413 over the size limit, 408 when the client stalled, 400 when
// it broke off.
func (h *Handler) bodyFailed(w http.ResponseWriter, err error) answer {
	var maxErr *http.MaxBytesError
	var a answer
	switch {
	case errors.As(err, &maxErr):
		a = h.plain(w, http.StatusRequestEntityTooLarge, "413 request body too large\n")
	case isTimeout(err):
		a = h.plain(w, http.StatusRequestTimeout, "408 request body timed out\n")
	default:
		a = h.plain(w, http.StatusBadRequest, "400 could not read request body\n")
	}
	a.fail = FailClientBody
	return a
}

// statusError is a backend's 5xx answer reported as a passive failure.
type statusError int

func (e statusError) Error() string { return "status " + strconv.Itoa(int(e)) }

// statusClientClosed is recorded (never sent) for requests whose client
// left before the answer: nginx's 499.
const statusClientClosed = 499

// failed answers a request that no backend could serve. The failure is
// logged at most every logEvery per backend: during an outage every request
// fails, and the metrics and access log already count each one.
func (h *Handler) failed(w http.ResponseWriter, host *route.Host, b *backend.Backend, err error) answer {
	if b.FailureLog.Allow(time.Now(), logEvery) {
		h.o.Log.Warn("backend failed", "domain", host.Domain, "backend", b.ID, "error", err)
	}
	code, msg := http.StatusBadGateway, "502 bad gateway\n"
	if isTimeout(err) {
		code, msg = http.StatusGatewayTimeout, "504 gateway timeout\n"
	}
	a := h.plain(w, code, msg)
	a.fail = upstreamFailure(err)
	return a
}

// panicking notes that the pool of tag had no healthy backend left and a
// request for domain went to an unhealthy one anyway: counted every time,
// logged at most every logEvery per pool.
func (h *Handler) panicking(domain, tag string, pool *balance.Pool, b *backend.Backend) {
	if h.o.Observer != nil {
		h.o.Observer.Panic(domain)
	}
	if pool.PanicLog.Allow(time.Now(), logEvery) {
		h.o.Log.Warn("no healthy backend for tag, sending traffic to unhealthy backends (panic mode)",
			"domain", domain, "tag", tag, "backend", b.ID)
	}
}

// logEvery is how often a condition that can hit every request (a failing
// backend, panic routing) is logged; metrics count every occurrence.
const logEvery = 10 * time.Second

// send forwards r to b, counting it in flight meanwhile.
func (h *Handler) send(b *backend.Backend, rec *recorder, r *http.Request) {
	b.Acquire()
	defer b.Release()
	b.Forward.ServeHTTP(rec, r)
}

// retryable reports whether a failed attempt may be sent to another
// backend: always when the connection could not be made (nothing was
// sent), and for idempotent methods on any failure before a response
// (reset, early close, response-header timeout). The body's own
// replayability is the caller's to check.
func retryable(r *http.Request, err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || idempotent(r.Method)
}

// idempotent reports whether sending a request with method twice has the
// effect of sending it once (RFC 9110 section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// clientGone reports whether the failure is the client's leaving.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil || errors.Is(err, context.Canceled)
}

func (h *Handler) redirect(w http.ResponseWriter, r *http.Request) answer {
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	w.Header()["Location"] = []string{"https://" + host + h.port + r.URL.RequestURI()}
	h.arm(w)
	w.WriteHeader(http.StatusMovedPermanently)
	return answer{code: http.StatusMovedPermanently}
}

// finish reports a request to metrics and the access log.
func (h *Handler) finish(r *http.Request, start time.Time, domain, tag, backendID string, a answer) {
	d := time.Since(start)
	if h.o.Observer != nil {
		h.o.Observer.Request(domain, tag, backendID, a.code, a.fail.Counts(), d)
	}
	if h.o.Log.Enabled(context.Background(), logging.LevelTrace) {
		h.o.Log.Log(context.Background(), logging.LevelTrace, "request", "method", r.Method, "host", r.Host,
			"path", r.URL.Path, "domain", domain, "tag", tag, "backend", backendID, "status", a.code,
			"bytes", a.bytes, "duration", d.String(), "error", string(a.fail))
	}
	if h.o.Access != nil {
		h.o.Access.Log(logging.Entry{
			Time: start, Client: clientIP(r), Method: r.Method, Host: r.Host,
			Path: r.URL.Path, Status: a.code, Bytes: a.bytes, Duration: d, Backend: backendID,
			Error: string(a.fail),
		})
	}
}

// arm starts the send timeout for an answer of the proxy's own (see
// recorder.arm): a deadline left by an earlier request on this keep-alive
// connection must not cut it short.
func (h *Handler) arm(w http.ResponseWriter) {
	if dl, ok := w.(writeDeadliner); ok && h.o.SendTimeout > 0 {
		dl.SetWriteDeadline(time.Now().Add(h.o.SendTimeout))
	}
}

func clientIP(r *http.Request) string {
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return ip
	}
	return r.RemoteAddr
}

// answer is how a request was answered: its status, body size, and why it
// failed or was cut short ("" when it was not).
type answer struct {
	code  int
	bytes int64
	fail  Failure
}

// plain writes a short plain-text answer of the proxy's own.
func (h *Handler) plain(w http.ResponseWriter, code int, msg string) answer {
	h.arm(w)
	hdr := w.Header()
	hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	hdr["Content-Length"] = []string{strconv.Itoa(len(msg))}
	w.WriteHeader(code)
	n, _ := io.WriteString(w, msg)
	return answer{code: code, bytes: int64(n)}
}
