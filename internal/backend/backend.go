// Package backend holds the live upstream servers: their identity, their
// health as seen by the checkers, their load, and the per-backend forwarder
// that owns the connection pool. A Backend outlives route-table rebuilds, so
// a switch or an edit never resets health or drops pooled connections.
//
// backend imports nothing else of fronttier.
package backend

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Health is a backend's health as decided by the checkers.
type Health int32

const (
	// Unknown is a new backend's state until its first check: it is
	// routable, so a backend is not refused traffic before anyone looked.
	Unknown Health = iota
	// Healthy backends get traffic.
	Healthy
	// Unhealthy backends get no traffic, unless every backend of a pool is
	// unhealthy (see balance.Pool.Pick).
	Unhealthy
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// Status is what the last health check saw. It is replaced whole, never
// mutated, so readers need no lock.
type Status struct {
	LastCheck           time.Time
	LastError           string
	ConsecutiveFailures int
	ConsecutivePasses   int
}

// Backend is one live upstream server. ID and Addr never change: an address
// change makes a new Backend. All mutable state is atomic; a Backend is safe
// for concurrent use.
type Backend struct {
	ID   string
	Addr string

	// Forward sends a request to this backend over its own connection pool.
	// It is set once, by the Registry's factory, before the Backend is
	// published.
	Forward http.Handler

	health   atomic.Int32
	active   atomic.Int64
	status   atomic.Pointer[Status]
	removed  atomic.Bool
	onChange func(*Backend, Health, Health)

	// FailureLog throttles the proxy's log lines about this backend's
	// failures.
	FailureLog Throttle
}

// Health returns the current health.
func (b *Backend) Health() Health { return Health(b.health.Load()) }

// Routable reports whether the backend should get traffic: healthy or not
// yet checked.
func (b *Backend) Routable() bool { return b.Health() != Unhealthy }

// SetHealth moves the backend to h and reports whether that was a change.
// Only a transition calls the registry's change hook, so logs and metrics
// fire once per change.
func (b *Backend) SetHealth(h Health) bool {
	old := Health(b.health.Swap(int32(h)))
	if old == h {
		return false
	}
	if b.onChange != nil {
		b.onChange(b, old, h)
	}
	return true
}

// Status returns the last check's result; the zero Status before any check.
func (b *Backend) Status() Status {
	if s := b.status.Load(); s != nil {
		return *s
	}
	return Status{}
}

// SetStatus records a check's result.
func (b *Backend) SetStatus(s Status) { b.status.Store(&s) }

// Active returns the number of requests in flight to the backend.
func (b *Backend) Active() int64 { return b.active.Load() }

// Acquire counts a request in flight; call Release when it ends.
func (b *Backend) Acquire() { b.active.Add(1) }

// Release ends a request counted by Acquire.
func (b *Backend) Release() { b.active.Add(-1) }

// Removed reports whether the backend has left the registry. Requests
// already forwarded to it finish; nothing new is routed to it.
func (b *Backend) Removed() bool { return b.removed.Load() }

// close releases the backend's idle connections once it has left the
// registry. Connections of requests in flight finish first.
func (b *Backend) close() {
	b.removed.Store(true)
	if c, ok := b.Forward.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Throttle lets an event through at most once per interval, lock-free, so
// that something happening on every request (a failing backend, panic
// routing) is logged once in a while rather than per request. The zero
// value lets the first event through.
type Throttle struct{ last atomic.Int64 }

// Allow reports whether an event at now may pass: true at most once per
// every, across all goroutines.
func (t *Throttle) Allow(now time.Time, every time.Duration) bool {
	last, n := t.last.Load(), now.UnixNano()
	return n-last >= int64(every) && t.last.CompareAndSwap(last, n)
}
