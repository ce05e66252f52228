package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Failure says why a request was not answered whole; "" when it was. It is
// the access log's error field and decides whether proxy_requests_total
// counts the request as an error (see Failure.Counts).
type Failure string

// The failures, by where they happened.
const (
	// No backend could be reached, or none was available.
	FailNoBackend Failure = "no_backend"       // no backend for the tag (503)
	FailConnect   Failure = "upstream_connect" // connecting failed (502)
	// The backend's answer was missing, late, broken or cut.
	FailUpstreamTimeout   Failure = "upstream_timeout"      // no response head in time (504)
	FailUpstreamRead      Failure = "upstream_read_timeout" // silent for longer than the read timeout
	FailUpstreamClosed    Failure = "upstream_closed"       // closed or reset before the answer was whole
	FailUpstreamMalformed Failure = "upstream_malformed"    // an answer that breaks RFC 9112
	FailUpstream          Failure = "upstream_error"        // any other failure of the exchange
	// The client's side.
	FailClientBody    Failure = "client_body"         // the upload failed: too large, stalled, cut
	FailClientTimeout Failure = "client_send_timeout" // the client did not take the answer in time
	FailClientClosed  Failure = "client_closed"       // the client left before the answer was whole
)

// Counts reports whether the failure counts as an error in
// proxy_requests_total: every answer that failed or was cut short, but
// those the client ended by leaving (nginx's 499), which say nothing of
// the service.
func (f Failure) Counts() bool { return f != "" && f != FailClientClosed }

// upstreamFailure classifies an error met while exchanging with a backend.
func upstreamFailure(err error) Failure {
	var te timeoutError
	var op *net.OpError
	switch {
	case errors.As(err, &te) && te.pause:
		return FailUpstreamRead
	case errors.As(err, &te), isTimeout(err):
		return FailUpstreamTimeout
	case errors.As(err, &op) && op.Op == "dial":
		return FailConnect
	case errors.Is(err, errMalformed), errors.Is(err, errHeadTooLarge):
		return FailUpstreamMalformed
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return FailUpstreamClosed
	}
	return FailUpstream
}

// clientWriteError is a failed write to the client: it left, or did not
// take the answer within the send timeout.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "write to client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

// failure classifies the client's side of it.
func (e *clientWriteError) failure() Failure {
	if isTimeout(e.err) {
		return FailClientTimeout
	}
	return FailClientClosed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
