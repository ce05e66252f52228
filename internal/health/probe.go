package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"fronttier/internal/backend"
)

// userAgent is sent with every active check.
const userAgent = "fronttier-health/1"

// maxDrain is how much of a check's response body is read before closing.
const maxDrain = 4 << 10

// Check failure kinds; the error texts are short: "status 503",
// "timeout after 5s".
var (
	errStatus  = errors.New("status")
	errTimeout = errors.New("timeout")
)

// probe is the checker's per-backend state.
type probe struct {
	b *backend.Backend

	// epoch counts passive ejections; an active check that began in an
	// earlier epoch is not recorded (it saw the backend before real
	// traffic showed it failing).
	epoch atomic.Uint64

	// slot is the backend's place in the checker's schedule; guarded by
	// schedule.mu.
	slot slot

	// mu guards removed, fails, the ejection fields and series writes,
	// and makes the read-modify-write of b's health and status atomic
	// between the active check and Failure. It is held only for
	// bookkeeping, never across network I/O.
	mu      sync.Mutex
	removed bool        // Removed was called: record nothing more
	fails   []time.Time // passive failures inside the window, oldest first
	s       series

	// Ejection back-off (hold.go), guarded by mu.
	ejections int           // ejections in a row, counted since the backend last stayed routable for EjectionMax
	hold      time.Duration // length of the current hold; 0 when none
	holdEnd   time.Time     // when the current hold ends; zero when none
	upSince   time.Time     // when the backend last became routable; zero while unhealthy
}

// newProbe returns the checker's state for b, added at now.
func newProbe(b *backend.Backend, m *metrics, now time.Time) *probe {
	p := &probe{
		b:    b,
		slot: slot{index: -1},
		s:    m.series(b),
	}
	if b.Routable() {
		p.upSince = now
	}
	p.s.setHealthy(b.Health())
	return p
}

// retire marks p removed and deletes its metrics series. Any later write
// sees removed under p.mu, so no series is brought back.
func (p *probe) retire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removed = true
	p.s.delete()
}

// jitter returns d ±10%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// check makes one active check of p's backend with o and records it. ctx
// carries the check's deadline (o.Timeout); a check cancelled before it
// (removal, shutdown) is not recorded. It returns when the backend's hold
// ends if the check left it held, else the zero time.
func (c *Checker) check(ctx context.Context, p *probe, o *Options) time.Time {
	epoch := p.epoch.Load()
	at := c.clock.Now()
	start := time.Now() // the network's time, not the timetable's
	err := c.roundTrip(ctx, p.b.Addr, o)
	d := time.Since(start)
	if errors.Is(ctx.Err(), context.Canceled) {
		return time.Time{}
	}
	return c.record(p, o, epoch, at, d, err)
}

// roundTrip sends one check to addr within ctx's deadline and returns nil
// on a 2xx answer.
func (c *Checker) roundTrip(ctx context.Context, addr string, o *Options) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+o.Path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Host = addr
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w after %s", errTimeout, o.Timeout)
		}
		if ue, ok := errors.AsType[*url.Error](err); ok {
			return ue.Err // drop the `Get "http://...":` prefix
		}
		return err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}

// record applies one check's result to p's backend: metrics, status, and
// the state machine described in the package comment. at is when the check
// started. It returns when the backend's hold ends if it is still held,
// else the zero time.
func (c *Checker) record(p *probe, o *Options, epoch uint64, at time.Time, d time.Duration, err error) time.Time {
	pass := err == nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return time.Time{}
	}
	p.s.check(pass, d)
	if p.epoch.Load() != epoch {
		return time.Time{} // a passive ejection happened meanwhile; a fresh check follows
	}
	now := c.clock.Now()
	ended := p.endHold(now, o)
	b := p.b
	st := b.Status()
	st.LastCheck = at
	if pass {
		st.LastError = ""
		st.ConsecutivePasses++
		st.ConsecutiveFailures = 0
		c.logFor(p, slog.LevelDebug, "health check passed", "duration", d.String(), "consecutive_passes", st.ConsecutivePasses)
	} else {
		st.LastError = err.Error()
		st.ConsecutiveFailures++
		st.ConsecutivePasses = 0
		c.logFor(p, slog.LevelDebug, "health check failed", "error", st.LastError, "consecutive_failures", st.ConsecutiveFailures)
	}
	from := b.Health()
	to := next(from, st, o, p.held())
	b.SetStatus(st)
	if to != from && b.SetHealth(to) {
		reason := activeReason(from, st)
		if to == backend.Healthy && ended > 0 {
			reason += ", after a hold of " + ended.String() + " (ejection " + strconv.Itoa(p.ejections) + ")"
		}
		c.transition(p, now, o, from, to, reasonActive, reason)
	}
	p.s.setHealthy(b.Health())
	if c.observe != nil {
		c.observe(event{b: b, pass: pass, status: st, health: b.Health()})
	}
	return p.holdEnd
}

// next is the active state machine: the health after a check that left st.
// held says the backend is in an ejection hold, which keeps it unhealthy
// whatever its checks say.
func next(h backend.Health, st backend.Status, o *Options, held bool) backend.Health {
	switch {
	case h == backend.Unknown && st.ConsecutivePasses > 0:
		return backend.Healthy
	case h == backend.Unknown:
		return backend.Unhealthy
	case h == backend.Healthy && st.ConsecutiveFailures >= o.UnhealthyThreshold:
		return backend.Unhealthy
	case h == backend.Unhealthy && st.ConsecutivePasses >= o.HealthyThreshold && !held:
		return backend.Healthy
	}
	return h
}

// activeReason says why an active check moved the backend from h.
func activeReason(from backend.Health, st backend.Status) string {
	switch {
	case from == backend.Unknown && st.LastError == "":
		return "first check passed"
	case from == backend.Unknown:
		return "first check failed: " + st.LastError
	case st.LastError == "":
		return strconv.Itoa(st.ConsecutivePasses) + " consecutive checks passed"
	default:
		return strconv.Itoa(st.ConsecutiveFailures) + " consecutive checks failed, last: " + st.LastError
	}
}

// transition logs and counts a change of health made at now by the
// caller, which holds p.mu, and starts or ends the ejection hold (see
// hold.go). kind is reasonActive or reasonPassive.
func (c *Checker) transition(p *probe, now time.Time, o *Options, from, to backend.Health, kind, reason string) {
	if to == backend.Unhealthy {
		p.s.eject(kind)
		if hold := p.eject(now, from, o); hold > 0 {
			c.logFor(p, slog.LevelWarn, "backend unhealthy", "from", from.String(), "reason", reason,
				"hold", hold.String(), "ejection", p.ejections)
			return
		}
		c.logFor(p, slog.LevelWarn, "backend unhealthy", "from", from.String(), "reason", reason)
		return
	}
	p.readmit(now)
	c.logFor(p, slog.LevelInfo, "backend healthy", "from", from.String(), "reason", reason)
}

// logFor logs msg about p's backend with args after its id and address. The
// attributes are added per message rather than kept in a logger per
// backend: messages are rare, backends many.
func (c *Checker) logFor(p *probe, level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !c.log.Enabled(ctx, level) {
		return
	}
	c.log.Log(ctx, level, msg, append([]any{"backend", p.b.ID, "address", p.b.Addr}, args...)...)
}
