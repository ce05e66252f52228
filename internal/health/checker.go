// Package health decides whether backends get traffic. It writes its verdict
// into each backend.Backend's atomic health flag and never touches route
// tables.
//
// Active checking: one goroutine per backend sends
// "GET http://<addr><path>" at once when the backend is added and then every
// Interval (±10% jitter). A 2xx answer within Timeout is a pass; anything else
// (another status, a connection error, a timeout) is a failure.
//
// State machine: a backend starts backend.Unknown, which is routable. Its
// first check decides directly (pass -> Healthy, failure -> Unhealthy), so a
// freshly registered tag can be switched to at once. After that a Healthy
// backend turns Unhealthy after UnhealthyThreshold consecutive failures and an
// Unhealthy one turns Healthy after HealthyThreshold consecutive passes.
// Checks go on while a backend is unhealthy; that is how it comes back.
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
)

// Options configures checking. Zero values get the manual's defaults (10s,
// 5s, 3, 2, "/health").
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
	return o
}

// Checker runs active health checks of every backend it is told about and
// counts passive failures reported by the proxy. It is a backend.Watcher
// (register it with backend.Registry.Watch) and a proxy.FailureReporter.
//
// All methods are safe for concurrent use. Added, Removed and Failure never
// block for long: they take Checker.mu (lifecycle only, never on the request
// path) or a backend's own small mutex.
type Checker struct {
	log    *slog.Logger
	client *http.Client
	m      *metrics

	// opts holds the options in force, defaults applied; replaced whole by
	// SetOptions.
	opts atomic.Pointer[Options]
	// changed is closed (and replaced) by SetOptions so that waiting probes
	// re-arm their timers with the new interval.
	changed atomic.Pointer[chan struct{}]

	// probes maps *backend.Backend to its *probe. Failure loads it without
	// a lock; Added and Removed change it under mu.
	probes sync.Map

	mu      sync.Mutex      // guards ctx, stopped and each probe's cancel; serialises Added/Removed/Run
	ctx     context.Context // Run's context; nil before Run
	stopped bool            // Run's context is done: start no more goroutines
	wg      sync.WaitGroup  // probe goroutines

	// Test hooks, set before the checker is used.
	now     func() time.Time // clock for status times and the passive window
	observe func(event)      // called after each recorded active check
	live    atomic.Int64     // probe goroutines running
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
		now:    time.Now,
	}
	o = o.withDefaults()
	o.Log, o.Registerer = nil, nil
	c.opts.Store(&o)
	ch := make(chan struct{})
	c.changed.Store(&ch)
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

// SetOptions replaces the thresholds, interval, timeout, path and passive
// settings (a SIGHUP reload). They apply from each backend's next check; a
// backend waiting for its next check re-arms its timer with the new interval
// counted from its last check. Health and counters are kept. o.Log and
// o.Registerer are ignored: the logger and metrics stay those given to New.
func (c *Checker) SetOptions(o Options) {
	o = o.withDefaults()
	o.Log, o.Registerer = nil, nil
	c.opts.Store(&o)
	ch := make(chan struct{})
	close(*c.changed.Swap(&ch))
}

// Run starts checking every backend added so far and every one added while
// it runs. It returns after ctx is done and every goroutine it started has
// exited. Run is meant to be called once; a second call returns at once.
func (c *Checker) Run(ctx context.Context) {
	c.mu.Lock()
	if c.ctx != nil {
		c.mu.Unlock()
		c.log.Error("health checker already running")
		return
	}
	c.ctx = ctx
	c.probes.Range(func(_, v any) bool {
		c.start(v.(*probe))
		return true
	})
	c.mu.Unlock()

	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
	c.client.CloseIdleConnections()
}

// start launches p's goroutine if Run is running. c.mu must be held.
func (c *Checker) start(p *probe) {
	if c.ctx == nil || c.stopped || p.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	p.cancel = cancel
	c.wg.Go(func() {
		c.live.Add(1)
		defer c.live.Add(-1)
		defer cancel()
		c.loop(ctx, p)
	})
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
	p := newProbe(b, c.log, c.m)
	c.probes.Store(b, p)
	c.start(p)
}

// Removed stops checking b: its goroutine is cancelled (a check in flight is
// abandoned and not recorded) and its metrics series are deleted. It does not
// wait for the goroutine; Run does. Removing an unknown backend does nothing.
//
// Metric series are labelled by backend id, so when a backend is replaced
// (an address change) Removed(old) must come before Added(new), as
// backend.Registry.Sync does.
func (c *Checker) Removed(b *backend.Backend) {
	c.mu.Lock()
	v, ok := c.probes.LoadAndDelete(b)
	var cancel context.CancelFunc
	if ok {
		cancel = v.(*probe).cancel
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	v.(*probe).retire()
	if cancel != nil {
		cancel()
	}
}

// probeOf returns b's probe, or nil when b is not (or no longer) checked.
func (c *Checker) probeOf(b *backend.Backend) *probe {
	if v, ok := c.probes.Load(b); ok {
		return v.(*probe)
	}
	return nil
}

// kick asks for an active check of b now rather than at its next tick.
func (c *Checker) kick(b *backend.Backend) {
	if p := c.probeOf(b); p != nil {
		p.poke()
	}
}
