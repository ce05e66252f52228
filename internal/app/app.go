// Package app wires fronttier together and runs it: it loads the
// configuration, builds the registry, state, proxy, API and metrics, binds
// the listeners, reloads on request and shuts down in order. It is the only
// package that knows every other one.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/acme"
	"fronttier/internal/admin"
	"fronttier/internal/backend"
	"fronttier/internal/certs"
	"fronttier/internal/cluster"
	"fronttier/internal/config"
	"fronttier/internal/h2guard"
	"fronttier/internal/health"
	"fronttier/internal/logging"
	"fronttier/internal/metrics"
	"fronttier/internal/proxy"
	"fronttier/internal/rollout"
	"fronttier/internal/server"
	"fronttier/internal/state"
	"fronttier/internal/store"
)

// Options is what the command line hands to Run.
type Options struct {
	// ConfigPath is the configuration file; API changes are written back
	// to it.
	ConfigPath string
	// Console receives the log when logging.output is "console", and the
	// access log when it has no file.
	Console io.Writer
	// Reload receives a value for each SIGHUP: re-read the file.
	Reload <-chan struct{}
	// Ready, if set, is called once every listener is bound, with their
	// addresses by name ("http", "https", "api", "metrics").
	Ready func(addrs map[string]string)
	// Version is the binary's, announced to the fleet.
	Version string
}

// App is a running fronttier.
type App struct {
	o        Options
	log      *logging.Logger
	access   *logging.AccessLog
	audit    io.WriteCloser // the management API's audit log; nil when off
	metrics  *metrics.Metrics
	reg      *backend.Registry
	checker  *health.Checker
	upgrades proxy.Upgrades // WebSockets, drained at shutdown
	certs    *certs.Manager
	acme     *acme.Manager
	store    *state.Store
	file     *store.File // the configuration file
	fleet    *fleet      // nil unless [cluster] store = "etcd"
	self     cluster.Self
	started  time.Time
	proxy    *proxy.Handler
	servers  []*listener

	// rollouts makes the operators' rollout changes and drives the
	// gates: on a single node itself (Run), in a fleet when this node is
	// elected (fleet.run).
	rollouts *rollout.Controller
}

// listener is one bound listener and what serves it. The management,
// metrics and pprof listeners are served by net/http (srv); the data-path
// listeners by internal/server (h1), which takes its settings, handler and
// HTTP/2 hand-off from srv when serving starts.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
	h1   *server.Server // data path only
	// maxConns caps the data path's open connections (0: no cap).
	maxConns int
}

// dataPath reports whether the listener carries proxied traffic.
func (s *listener) dataPath() bool { return s.name == "http" || s.name == "https" }

// serve serves the listener until shutdown.
func (s *listener) serve() error {
	if s.h1 != nil {
		return s.h1.Serve(s.ln)
	}
	return s.srv.Serve(s.ln)
}

// prepare builds the data-path server from srv's settings and handler,
// once they are final and before serving starts (shutdown reads s.h1 from
// another goroutine).
func (s *listener) prepare() {
	if !s.dataPath() {
		return
	}
	hs := s.srv
	next := make(map[string]func(*tls.Conn), len(hs.TLSNextProto))
	for proto, fn := range hs.TLSNextProto {
		next[proto] = func(c *tls.Conn) { fn(hs, c, hs.Handler) }
	}
	s.h1 = server.New(server.Options{
		Handler:           hs.Handler,
		TLS:               hs.TLSConfig,
		NextProto:         next,
		ReadHeaderTimeout: hs.ReadHeaderTimeout,
		IdleTimeout:       hs.IdleTimeout,
		MaxHeaderBytes:    hs.MaxHeaderBytes,
		MaxConns:          s.maxConns,
		ConnState:         hs.ConnState,
		ErrorLog:          hs.ErrorLog,
		// hs serves no connection itself: its Shutdown only runs the
		// hooks that send HTTP/2 connections a GOAWAY.
		OnShutdown: []func(){func() { hs.Shutdown(context.Background()) }},
	})
}

// shutdown drains the listener's connections until ctx ends.
func (s *listener) shutdown(ctx context.Context) error {
	if s.h1 != nil {
		return s.h1.Shutdown(ctx)
	}
	return s.srv.Shutdown(ctx)
}

// close closes every connection at once.
func (s *listener) close() {
	if s.h1 != nil {
		s.h1.Close()
	}
	s.srv.Close()
}

// Run loads the configuration and serves until ctx is cancelled, then
// drains and returns nil; it returns an error if it cannot start: the file
// is invalid or a listener cannot be bound. A certificate file that does
// not load is not such an error: as at run time, the certificate manager
// logs it, counts it and shows it in the API, and every other domain is
// served (`fronttier validate` still fails on it).
func Run(ctx context.Context, o Options) error {
	file := store.NewFile(o.ConfigPath)
	snap, err := file.Load(ctx)
	if err != nil {
		return err
	}
	a, err := build(snap, file, o)
	if err != nil {
		return err
	}
	defer a.close()
	return a.serve(ctx)
}

// build creates every component for snap, loaded from st, and binds the
// listeners.
func build(snap store.Snapshot, file *store.File, o Options) (_ *App, err error) {
	a := &App{o: o, file: file, started: time.Now().UTC()}
	var st store.Store = file
	cfg := snap.Config
	l := cfg.Logging
	rot := logging.Options{Level: l.Level, Format: l.Format, Output: l.Output, FilePath: l.FilePath,
		MaxSizeMB: l.MaxSizeMB, MaxBackups: l.MaxBackups, MaxAgeDays: l.MaxAgeDays, Compress: l.Compress}
	if a.log, err = logging.New(rot, o.Console); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	// Before anything writes the file: what a crash left of a write.
	removed, rmErr := config.RemoveStaleTemps(o.ConfigPath)
	if len(removed) > 0 {
		a.log.Info("removed temporary files left by an interrupted write of the configuration file", "files", removed)
	}
	if rmErr != nil {
		a.log.Warn("cannot remove the temporary files left by an interrupted write of the configuration file", "error", rmErr)
	}
	if l.AccessLog {
		if a.access, err = logging.NewAccessLog(l.AccessLogPath, rot, o.Console); err != nil {
			return nil, err
		}
	}
	if l.AuditLogPath != "" {
		if a.audit, err = logging.OpenAuditLog(l.AuditLogPath, rot); err != nil {
			return nil, err
		}
	}
	log := a.log.Logger
	a.metrics = metrics.New(prometheus.NewRegistry())
	if cfg.Fleet() {
		if snap, err = a.joinFleet(snap, a.metrics.Registry()); err != nil {
			return nil, err
		}
		cfg, st = snap.Config, a.fleet.store
	}
	p := cfg.Proxy
	a.reg = backend.NewRegistry(proxy.NewFactory(proxy.UpstreamOptions{
		DialTimeout:           secs(p.DialTimeoutSecs),
		ResponseHeaderTimeout: secs(p.UpstreamTimeoutSecs),
		ReadTimeout:           secs(p.UpstreamReadTimeoutSecs),
		MaxHeaderBytes:        p.UpstreamMaxHeaderBytes,
		MaxIdleConns:          p.MaxIdleConnsPerBackend,
		TrustedProxies:        trustedProxies(p.TrustedProxies),
		Latency:               func(id string) interface{ Observe(float64) } { return a.metrics.Upstream(id) },
		Upgrades:              &a.upgrades,
		Log:                   log,
	}), nil)
	a.checker = health.New(healthOptions(cfg.HealthCheck, log, a.metrics.Registry()))
	a.reg.Watch(a.checker)
	a.reg.Watch(a.metrics)
	if err := a.buildTLS(cfg); err != nil {
		return nil, err
	}
	if a.store, err = state.NewAt(snap, a.reg, st, log); err != nil {
		return nil, err
	}
	a.metrics.WatchCanaries(a.store) // proxy_canary_percent, from the table in force
	a.rollouts = a.newRollouts(cfg, log)
	if a.fleet != nil {
		a.store.SetWriteTimeout(secs(cfg.Cluster.EtcdDialTimeoutSecs))
		a.fleet.current = a.store.Config
		a.fleet.appliedRev(snap.Rev)
	}
	a.store.SetHooks(state.Hooks{
		Reloaded: a.reloaded,
		Applied:  a.appliedRev,
		Retried:  a.retried,
		Followed: a.followed,
		Check: func(old, next *config.Config) error {
			return checkCertFiles(old, next, time.Now())
		},
		Published: a.published,
	})
	// Bind the data-path listeners first: redirects name the port HTTPS
	// is really on (listen_addr may ask for any free port).
	var httpsLn net.Listener
	if p.ListenAddrHTTP != "" {
		if _, err := a.listen("http", p.ListenAddrHTTP, nil, &p); err != nil {
			return nil, err
		}
	}
	if p.ListenAddr != "" {
		if httpsLn, err = a.listen("https", p.ListenAddr, nil, &p); err != nil {
			return nil, err
		}
	}
	po := proxy.Options{
		Routes:       a.store,
		TLS:          a.certs,
		Challenge:    a.acme.HTTPHandler(),
		Observer:     a.metrics,
		Failures:     a.checker,
		Passive5xx:   cfg.HealthCheck.Passive5xx,
		Log:          log,
		HTTPSPort:    httpsPort(p, httpsLn),
		MaxBodyBytes: p.MaxBodyBytes,
		BodyTimeout:  secs(p.ClientBodyTimeoutSecs),
		SendTimeout:  secs(p.SendTimeoutSecs),
	}
	if a.access != nil {
		po.Access = a.access
	}
	a.proxy = proxy.New(po)
	for _, s := range a.servers {
		s.srv.Handler = a.proxy
	}
	api := admin.New(admin.Options{Store: a.store, Certs: renewableCertsAPI{certsAPI{a.certs}, a.acme}, Metrics: a.metrics.Handler(), Log: log,
		Token: p.APIToken(), Cluster: clusterInfo{a.clusterInfo}, Users: cfg.Users, Audit: a.audit, Rollouts: a.rollouts, Stats: a.metrics})
	apiLn, err := a.listen("api", p.ManagementAPIAddr, api, &p)
	if err != nil {
		return nil, err
	}
	a.self = cluster.Self{Name: nodeName(cfg), APIAddr: apiLn.Addr().String(), Version: o.Version}
	if a.fleet != nil {
		a.fleet.join(a.self)
	}
	if cfg.Metrics.Enabled {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.metrics.Handler())
		if _, err := a.listen("metrics", cfg.Metrics.ListenAddr, mux, &p); err != nil {
			return nil, err
		}
	}
	if cfg.Debug.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if _, err := a.listen("pprof", cfg.Debug.PprofAddr, mux, &p); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// listen binds addr and prepares a server for h on it (h may be set on
// the server later, before serving starts). Its error names the listener,
// its key and address, and says why (see bindError).
func (a *App) listen(name, addr string, h http.Handler, p *config.Proxy) (net.Listener, error) {
	ln, err := bindListener(name, addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: secs(p.ReadHeaderTimeoutSecs),
		IdleTimeout:       secs(p.IdleTimeoutSecs),
		MaxHeaderBytes:    p.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	if name == "http" || name == "https" {
		srv.ConnState = a.metrics.ConnState
		// internal/server logs only handler panics and accept errors
		// here (net/http's chatter stays at Debug on the other listeners).
		srv.ErrorLog = slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	}
	if name == "https" {
		// The RFC's default frame size: frames larger than a client can
		// assume are refused with FRAME_SIZE_ERROR, as h2spec checks.
		srv.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: 16 << 10}
		srv.TLSConfig = a.certs.TLSConfig()
		srv.ErrorLog = a.certs.HandshakeErrorLog(a.log.Logger)
		// HTTP/2 through h2guard, for RFC 9113's SETTINGS and
		// malformed-request rules that Go's server departs from, and its
		// per-connection budgets against HTTP/2 attacks (counted).
		if err := h2guard.ConfigureLimits(srv, h2guard.Limits{OnCalm: a.metrics.HTTP2AttackClosed}); err != nil {
			ln.Close()
			return nil, fmt.Errorf("%s listener: %w", name, err)
		}
	}
	a.servers = append(a.servers, &listener{name: name, ln: ln, srv: srv, maxConns: p.MaxConnections})
	return ln, nil
}

// serve runs the servers until ctx ends, reloading on a.o.Reload, then
// shuts them down gracefully.
func (a *App) serve(ctx context.Context) error {
	log := a.log.Logger
	errc := make(chan error, len(a.servers))
	addrs := make(map[string]string, len(a.servers))
	for _, s := range a.servers {
		addrs[s.name] = s.ln.Addr().String()
		log.Info("listening", "listener", s.name, "addr", s.ln.Addr().String())
		s.prepare()
		go func() {
			if err := s.serve(); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", s.name, err)
			}
		}()
	}
	if a.o.Ready != nil {
		a.o.Ready(addrs)
	}
	// Loading a large configuration leaves a lot of garbage; collect it
	// now, so the collector's next goal is set from the steady-state heap
	// rather than from the peak of start-up (with GOGC=400 that peak would
	// otherwise let memory grow to five times it before the next cycle).
	runtime.GC()
	debug.FreeOSMemory()
	cfg := a.store.Config()
	log.Info("fronttier started", "config", a.o.ConfigPath, "domains", len(cfg.VirtualHosts), "backends", len(cfg.Backends))
	warnConfig(log, cfg)

	// Background work (health checks, certificate watching, ACME) runs
	// until the servers have drained, then stops and is waited for.
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range []interface{ Run(context.Context) }{a.checker, a.certs, a.acme} {
		wg.Go(func() { r.Run(bg) })
	}
	wg.Go(func() { a.follow(bg) })
	if a.fleet != nil {
		wg.Go(func() { a.fleet.run(bg) })
	}
	if a.fleet == nil {
		wg.Go(func() { a.rollouts.Run(bg) })
	}
	defer func() {
		stopBG()
		wg.Wait()
	}()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-a.o.Reload:
			a.reload()
		case runErr = <-errc:
			log.Error("listener failed, shutting down", "error", runErr)
			break loop
		}
	}
	a.shutdown()
	return runErr
}

// shutdown stops accepting, lets requests in flight finish for up to the
// configured drain time, then closes what is left.
func (a *App) shutdown() {
	log := a.log.Logger
	drain := secs(a.store.Config().Proxy.ShutdownTimeoutSecs)
	log.Info("shutting down, draining requests in flight", "timeout", drain.String())
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	done := make(chan struct{}, len(a.servers))
	for _, s := range a.servers {
		go func() {
			if err := s.shutdown(ctx); err != nil {
				log.Warn("drain timed out, closing connections", "listener", s.name, "error", err)
				s.close()
			}
			done <- struct{}{}
		}()
	}
	if n := a.upgrades.Len(); n > 0 {
		log.Info("waiting for upgraded connections (WebSockets) to close", "open", n)
	}
	if err := a.upgrades.Shutdown(ctx); err != nil {
		log.Warn("drain timed out, closing upgraded connections", "open", a.upgrades.Len())
	}
	for range a.servers {
		<-done
	}
	log.Info("shutdown complete")
}

// close releases what build acquired.
func (a *App) close() {
	a.fleet.close()
	for _, s := range a.servers {
		s.ln.Close()
	}
	if a.reg != nil {
		a.reg.Sync(nil)
	}
	if a.access != nil {
		a.access.Close()
	}
	if a.audit != nil {
		a.audit.Close()
	}
	if a.log != nil {
		a.log.Close()
	}
}

// healthOptions maps the [health_check] section to the checker's options.
func healthOptions(hc config.HealthCheck, log *slog.Logger, reg prometheus.Registerer) health.Options {
	return health.Options{
		Interval:           secs(hc.IntervalSecs),
		Timeout:            secs(hc.TimeoutSecs),
		UnhealthyThreshold: hc.UnhealthyThreshold,
		HealthyThreshold:   hc.HealthyThreshold,
		Path:               hc.Path,
		PassiveFailures:    hc.PassiveFailures,
		PassiveWindow:      secs(hc.PassiveWindowSecs),
		EjectionBase:       secs(hc.EjectionBaseSecs),
		EjectionMax:        secs(hc.EjectionMaxSecs),
		Log:                log,
		Registerer:         reg,
	}
}

// restartNeeded names the changed sections that a reload does not apply:
// everything in [proxy] but default_certificate, [metrics], [debug],
// [lets_encrypt], [logging] but level, and health_check.passive_5xx.
func restartNeeded(old, cur *config.Config) []string {
	var keys []string
	op, cp := old.Proxy, cur.Proxy
	op.DefaultCertificate, cp.DefaultCertificate = "", ""
	ol, cl := old.Logging, cur.Logging
	ol.Level, cl.Level = "", ""
	for _, c := range []struct {
		key  string
		a, b any
	}{
		{"proxy", op, cp},
		{"logging", ol, cl},
		{"metrics", old.Metrics, cur.Metrics},
		{"debug", old.Debug, cur.Debug},
		{"lets_encrypt", old.LetsEncrypt, cur.LetsEncrypt},
		{"health_check.passive_5xx", old.HealthCheck.Passive5xx, cur.HealthCheck.Passive5xx},
	} {
		if !reflect.DeepEqual(c.a, c.b) {
			keys = append(keys, c.key)
		}
	}
	return keys
}

// trustedProxies parses proxy.trusted_proxies (already validated).
func trustedProxies(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := config.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// httpsPort is the port HTTP->HTTPS redirects name: https_port when set,
// else the port the HTTPS listener is bound to, else 443.
func httpsPort(p config.Proxy, ln net.Listener) int {
	if p.HTTPSPort != 0 {
		return p.HTTPSPort
	}
	if ln != nil {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			return a.Port
		}
	}
	return 443
}
