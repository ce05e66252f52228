package acme

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"fronttier/internal/clock"
)

// The default order rate limit mirrors Let's Encrypt's "new orders per
// account" limit (300 per 3 hours, refilled at one per 36 seconds), so that
// fronttier never runs into it; other CAs allow at least as much.
const (
	defaultOrderBurst = 300
	defaultOrderEvery = 36 * time.Second
)

// orderLimiter is a token bucket on the new orders sent to the CA: up to
// burst at once, then one every every. It is the only limit shared by the
// domains: an order waiting for validation holds nothing, so a domain whose
// validation hangs delays no other, and a failing domain backs off on its
// own schedule. mu guards tokens and last.
type orderLimiter struct {
	clock clock.Clock
	every time.Duration
	burst float64

	mu     sync.Mutex
	tokens float64   // may go negative: tokens reserved ahead
	last   time.Time // when tokens was last refilled
}

func newOrderLimiter(c clock.Clock, every time.Duration, burst int) *orderLimiter {
	return &orderLimiter{clock: c, every: every, burst: float64(burst), tokens: float64(burst)}
}

// reserve takes a token and returns when it may be used: now if the bucket
// was not empty, else when the refill reaches it.
func (l *orderLimiter) reserve() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if !l.last.IsZero() && now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+float64(now.Sub(l.last))/float64(l.every))
	}
	if now.After(l.last) {
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return now
	}
	return now.Add(time.Duration(-l.tokens * float64(l.every)))
}

// giveBack returns a token that was reserved but not used.
func (l *orderLimiter) giveBack() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = min(l.burst, l.tokens+1)
}

// wait takes a token, waiting for the refill if the bucket is empty, or
// returns ctx's error (and the token) if ctx ends first.
func (l *orderLimiter) wait(ctx context.Context) error {
	at := l.reserve()
	if !at.After(l.clock.Now()) {
		return nil
	}
	al := l.clock.Alarm()
	defer al.Stop()
	al.Set(at)
	for {
		select {
		case <-ctx.Done():
			l.giveBack()
			return ctx.Err()
		case <-al.C():
			if !l.clock.Now().Before(at) {
				return nil
			}
			al.Set(at)
		}
	}
}

// prepaidKey is the context key of a *atomic.Bool that is true while the
// attempt in that context holds a token it has not used yet.
type prepaidKey struct{}

// withToken returns ctx carrying a token taken beforehand, and a function
// that gives the token back to l if no order used it.
func withToken(ctx context.Context, l *orderLimiter) (context.Context, func()) {
	p := new(atomic.Bool)
	p.Store(true)
	return context.WithValue(ctx, prepaidKey{}, p), func() {
		if p.CompareAndSwap(true, false) {
			l.giveBack()
		}
	}
}

// orderGate is the ACME client's transport: every newOrder request takes a
// token from limit first, the one its attempt took beforehand (see
// withToken) or, for the further orders acmez makes within one attempt
// (another challenge type after a failed validation, a retry without
// "replaces"), a new one. Counting at the transport is what makes the
// limit exact; the token an attempt takes beforehand is what lets it wait
// for the limit before its order timeout starts.
type orderGate struct {
	next  http.RoundTripper
	limit *orderLimiter
	// newOrder is the URL of the CA's newOrder resource, nil until the
	// directory has been read.
	newOrder atomic.Pointer[string]
}

var _ http.RoundTripper = (*orderGate)(nil)

func (g *orderGate) RoundTrip(req *http.Request) (*http.Response, error) {
	if u := g.newOrder.Load(); u != nil && req.Method == http.MethodPost && req.URL.String() == *u {
		p, _ := req.Context().Value(prepaidKey{}).(*atomic.Bool)
		if p == nil || !p.CompareAndSwap(true, false) {
			if err := g.limit.wait(req.Context()); err != nil {
				if req.Body != nil {
					req.Body.Close()
				}
				return nil, fmt.Errorf("wait for the order rate limit: %w", err)
			}
		}
	}
	return g.next.RoundTrip(req)
}
