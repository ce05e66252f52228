// Package health decides whether backends get traffic. It writes its verdict
// into each backend.Backend's atomic health flag and never touches route
// tables.
//
// Active checking: the checker sends "GET http://<addr><path>" to each
// backend at once when it is added and then every Interval (±10% jitter)
// after its last check ended. A 2xx answer within Timeout is a pass;
// anything else (another status, a connection error, a timeout) is a
// failure. One scheduler goroutine keeps the timetable and runs each check
// on a goroutine of its own, a bounded number at once (see schedule), so
// many backends cost no goroutine while they wait.
//
// State machine: a backend starts backend.Unknown, which is routable. Its
// first check decides directly (pass -> Healthy, failure -> Unhealthy), so a
// freshly registered tag can be switched to at once. After that a Healthy
// backend turns Unhealthy after UnhealthyThreshold consecutive failures and an
// Unhealthy one turns Healthy after HealthyThreshold consecutive passes.
// Checks go on while a backend is unhealthy; that is how it comes back.
//
// Ejection back-off: with EjectionBase set, every transition to Unhealthy
// (an ejection, active or passive) also holds the backend out of rotation
// for at least EjectionBase × 2^(n-1), at most EjectionMax, where n counts
// its ejections since it last stayed routable for EjectionMax in a row. A
// backend that reaches HealthyThreshold passes during its hold is
// re-admitted when the hold ends, by a check made then that must pass too;
// so a flapping backend is kept out longer each time (see hold.go).
//
// Passive checking: the proxy reports forwarding failures on real traffic
// through Failure. PassiveFailures of them within PassiveWindow eject the
// backend at once (Unhealthy, with its pass counter reset so the active
// checker needs HealthyThreshold consecutive passes to bring it back), and an
// active check follows straight away.
//
// backend.Backend.SetHealth is the single place where health changes; each
// transition is logged once (Warn to unhealthy, Info to healthy) and counted.
package health

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/backend"
	"fronttier/internal/clock"
)

// Defaults applied by New and SetOptions to zero (or negative) fields. They
// are the manual's defaults.
const (
	DefaultInterval           = 10 * time.Second
	DefaultTimeout            = 5 * time.Second
	DefaultUnhealthyThreshold = 3
	DefaultHealthyThreshold   = 2
	DefaultPath               = "/health"
	// DefaultPassiveWindow applies when PassiveFailures is set and
	// PassiveWindow is not.
	DefaultPassiveWindow = 10 * time.Second
	// DefaultEjectionMax applies when EjectionBase is set and EjectionMax
	// is not.
	DefaultEjectionMax = 300 * time.Second
)

// Options configures checking. Zero values get the manual's defaults (10s,
// 5s, 3, 2, "/health"), except EjectionBase: zero turns ejection holds off.
type Options struct {
	// Interval is the time between two active checks of a backend, ±10%
	// jitter so that checks of many backends spread out; default 10s.
	Interval time.Duration
	// Timeout bounds one check, from dialing to the response headers;
	// default 5s.
	Timeout time.Duration
	// UnhealthyThreshold consecutive failures turn a healthy backend
	// unhealthy; default 3.
	UnhealthyThreshold int
	// HealthyThreshold consecutive passes turn an unhealthy backend
	// healthy; default 2.
	HealthyThreshold int
	// Path is the URL path (and optional query) probed; default "/health".
	// A path without a leading slash gets one.
	Path string

	// PassiveFailures failures on real traffic within PassiveWindow eject a
	// backend at once; 0 disables passive checking.
	PassiveFailures int
	// PassiveWindow is the sliding window PassiveFailures are counted in;
	// default 10s when PassiveFailures is set.
	PassiveWindow time.Duration

	// EjectionBase is how long an ejection (a transition to unhealthy,
	// from active checks or passive failures) holds a backend out of
	// rotation at least. Each further ejection doubles the hold, up to
	// EjectionMax, until the backend stays routable for EjectionMax in a
	// row; then the next ejection starts again at EjectionBase. Checks go
	// on during a hold; a backend that reaches HealthyThreshold passes
	// before its hold ends comes back when the hold ends, if the check
	// made then passes too. Zero (or less) turns holds off: a backend
	// comes back after HealthyThreshold passes, and changing it to zero
	// releases holds in force at their next check.
	EjectionBase time.Duration
	// EjectionMax caps the hold and is how long a backend must stay
	// routable for its ejections to be counted afresh. Zero or less means
	// DefaultEjectionMax (300s); a value below EjectionBase means
	// EjectionBase. Unused while EjectionBase is zero.
	EjectionMax time.Duration

	// Log receives transitions (Warn/Info) and failed checks (Debug); nil
	// discards. Only New reads it.
	Log *slog.Logger
	// Registerer gets the checker's metrics; nil means no metrics are
	// exported. Only New reads it.
	Registerer prometheus.Registerer
}

// withDefaults returns o with its zero fields defaulted.
func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UnhealthyThreshold <= 0 {
		o.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if o.HealthyThreshold <= 0 {
		o.HealthyThreshold = DefaultHealthyThreshold
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Path[0] != '/' {
		o.Path = "/" + o.Path
	}
	if o.PassiveFailures < 0 {
		o.PassiveFailures = 0
	}
	if o.PassiveWindow <= 0 {
		o.PassiveWindow = DefaultPassiveWindow
	}
	if o.EjectionBase <= 0 {
		o.EjectionBase = 0
	} else {
		if o.EjectionMax <= 0 {
			o.EjectionMax = DefaultEjectionMax
		}
		o.EjectionMax = max(o.EjectionMax, o.EjectionBase)
	}
	return o
}

// Checker runs active health checks of every backend it is told about and
// counts passive failures reported by the proxy. It is a backend.Watcher
// (register it with backend.Registry.Watch) and a proxy.FailureReporter.
//
// All methods are safe for concurrent use. Added, Removed and Failure never
// block for long: they take Checker.mu (lifecycle only, never on the request
// path), the schedule's mutex (Added, Removed, and Failure only when it
// ejects a backend; held for a heap operation) or a backend's own small
// mutex.
type Checker struct {
	log    *slog.Logger
	client *http.Client
	m      *metrics

	// opts holds the options in force, defaults applied; replaced whole by
	// SetOptions.
	opts atomic.Pointer[Options]

	// probes maps *backend.Backend to its *probe. Failure loads it without
	// a lock; Added and Removed change it under mu.
	probes sync.Map

	// sched is the timetable of active checks; Run's goroutine drives it.
	sched schedule

	// mu guards started and stopped and serialises Added, Removed and
	// Run. It is taken before schedule.mu and probe.mu, never after.
	mu      sync.Mutex
	started bool // Run was called
	stopped bool // Run returned: no check runs any more

	// clock is the checker's one source of time: status times, the
	// passive window, the timetable of checks and ejection holds all read
	// it, so they agree with each other. It is clock.System unless a test
	// sets a fake one before the checker is used. Only the duration of a
	// check (its histogram) and its timeout stay on the system clock: they
	// measure the network, not the timetable.
	clock clock.Clock

	// Test hooks, set before the checker is used (live and workers are
	// only read).
	observe func(event)  // called after each recorded active check
	live    atomic.Int64 // backends being checked: added, not removed, Run running
	workers atomic.Int64 // check goroutines running
}

// event is what the observe test hook sees of one recorded active check.
type event struct {
	b      *backend.Backend
	pass   bool
	status backend.Status
	health backend.Health
}

// Compile-time guards: Checker is a backend.Watcher and satisfies the
// proxy's FailureReporter interface (declared here to keep the arrows
// pointing down).
var (
	_ backend.Watcher = (*Checker)(nil)
	_ interface {
		Failure(b *backend.Backend, err error)
	} = (*Checker)(nil)
)

// New returns a Checker configured by o. It starts nothing: backends added
// before Run are queued and their checks start when Run does.
func New(o Options) *Checker {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		log:    log.With("component", "health"),
		client: newClient(),
		m:      newMetrics(o.Registerer, log),
		sched:  newSchedule(),
		clock:  clock.System{},
	}
	o = o.withDefaults()
	o.Log, o.Registerer = nil, nil
	c.opts.Store(&o)
	return c
}

// newClient returns the checker's one HTTP client. Keep-alives are disabled:
// a check must prove that a fresh connection works, and the checker should
// not hold a socket open to every backend. Redirects are not followed (a 3xx
// is a failure) and no proxy from the environment is used.
func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            (&net.Dialer{KeepAlive: -1}).DialContext,
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// options returns the options in force.
func (c *Checker) options() *Options { return c.opts.Load() }

// SetOptions replaces the thresholds, interval, timeout, path, passive and
// ejection settings (a SIGHUP reload). They apply from each backend's next
// check; a backend waiting for its next check has it re-timed with the new
// interval counted from the start of its last check. Health, counters and
// holds in force are kept (a hold keeps the length it started with; a zero
// EjectionBase releases it).
// o.Log and o.Registerer are ignored: the logger and metrics stay those
// given to New.
func (c *Checker) SetOptions(o Options) {
	o = o.withDefaults()
	o.Log, o.Registerer = nil, nil
	c.opts.Store(&o)
	c.sched.rearm(o.Interval)
}

// Run checks every backend added so far and every one added while it runs.
// It returns after ctx is done and every goroutine it started has exited.
// Run is meant to be called once; a second call returns at once.
func (c *Checker) Run(ctx context.Context) {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		c.log.Error("health checker already running")
		return
	}
	c.started = true
	c.live.Store(int64(c.sched.len()))
	c.mu.Unlock()

	c.loop(ctx)
	c.mu.Lock()
	c.stopped = true
	c.live.Store(0)
	c.mu.Unlock()
	c.client.CloseIdleConnections()
}

// Added starts checking b: the first check is made at once, then every
// Interval. Before Run, b is queued and checked when Run starts. Adding a
// backend already known does nothing.
func (c *Checker) Added(b *backend.Backend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.probes.Load(b); ok {
		return
	}
	now := c.clock.Now()
	p := newProbe(b, c.m, now)
	c.probes.Store(b, p)
	c.sched.add(p, now)
	if c.started && !c.stopped {
		c.live.Add(1)
	}
}

// Removed stops checking b: it is never checked again (a check in flight
// is abandoned and not recorded) and its metrics series are deleted. It
// does not wait for an abandoned check to return; Run does. Removing an
// unknown backend does nothing.
//
// Metric series are labelled by backend id, so when a backend is replaced
// (an address change) Removed(old) must come before Added(new), as
// backend.Registry.Sync does.
func (c *Checker) Removed(b *backend.Backend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.probes.LoadAndDelete(b)
	if !ok {
		return
	}
	p := v.(*probe)
	p.retire() // first: a check ending now records nothing
	c.sched.remove(p)
	if c.started && !c.stopped {
		c.live.Add(-1)
	}
}

// probeOf returns b's probe, or nil when b is not (or no longer) checked.
func (c *Checker) probeOf(b *backend.Backend) *probe {
	if v, ok := c.probes.Load(b); ok {
		return v.(*probe)
	}
	return nil
}

// kick asks for an active check of b now rather than when it falls due.
func (c *Checker) kick(b *backend.Backend) {
	if p := c.probeOf(b); p != nil {
		c.sched.kick(p, c.clock.Now())
	}
}
