package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"
	"github.com/prometheus/client_golang/prometheus"

	"fronttier/internal/clock"
)

// Directory URLs of Let's Encrypt.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Statuses reported to Installer.SetStatus.
const (
	// StatusPending: no certificate yet; issuance is queued or in progress.
	StatusPending = "pending"
	// StatusValid: a valid certificate is installed and not being renewed.
	StatusValid = "valid"
	// StatusRenewing: a valid certificate is installed and a renewal is in
	// progress; a non-nil error is the last failed renewal attempt.
	StatusRenewing = "renewing"
	// StatusFailed: no valid certificate could be obtained; the error says why
	// and a retry is scheduled.
	StatusFailed = "failed"
)

// ALPNProto is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737). A TLS
// listener must list it in tls.Config.NextProtos for Manager.ALPN to work.
const ALPNProto = acmez.ACMETLS1Protocol

// Default values of Options fields left zero, and internal limits.
const (
	DefaultRenewalCheck = 24 * time.Hour
	DefaultRenewBefore  = 30 * 24 * time.Hour

	defaultRetryBase    = time.Minute
	defaultRetryMax     = time.Hour
	defaultOrderTimeout = 10 * time.Minute
	defaultARITimeout   = 30 * time.Second
	httpTimeout         = 30 * time.Second
)

// Errors returned by this package.
var (
	// ErrNotManaged: the domain is not in the set given to Sync.
	ErrNotManaged = errors.New("domain not managed by acme")
	// ErrNoCertificate: the cache holds no certificate for the domain.
	ErrNoCertificate = errors.New("no cached certificate")
	// ErrInvalidDomain: the name cannot get a certificate through HTTP-01 or
	// TLS-ALPN-01 (IP address, wildcard, malformed).
	ErrInvalidDomain = errors.New("invalid domain name for acme")
)

// Installer receives certificates and status (implemented by
// internal/certs.Manager). Calls for one domain and key type never
// overlap.
type Installer interface {
	// Put serves cert for domain, replacing the previous certificate of
	// the same key type (that of cert's public key).
	Put(domain string, cert *tls.Certificate)
	// SetStatus records the status of the keyType certificate of domain
	// ("" means all of them): "pending", "valid", "renewing" or "failed";
	// err is nil or the last error.
	SetStatus(domain, keyType, status string, err error)
}

// Options configures a Manager. Zero values take the defaults documented on
// each field.
type Options struct {
	// Email is the account's contact address; "" registers without contact.
	Email string
	// DirectoryURL is the ACME directory; "" means LetsEncryptProduction.
	DirectoryURL string
	// CARoot is a PEM file with the roots trusted for the ACME server's HTTPS
	// (private CAs, Pebble); when set, only these roots are trusted. ""
	// means the system roots.
	CARoot string
	// CacheDir holds the account, certificates and keys (files 0600,
	// directories 0700); in a fleet, only a copy of the certificates and
	// keys this node served, read when etcd cannot be reached. Required.
	CacheDir string
	// RenewalCheck is the longest a domain goes without a check (a
	// backstop: checks happen when a certificate is due, see the package
	// comment); zero means DefaultRenewalCheck (24h).
	RenewalCheck time.Duration
	// RenewBefore: renew when less than this, or less than a third of the
	// certificate's lifetime if that is smaller, remains before expiry, or
	// earlier when the CA's renewal information (ARI) suggests so; zero
	// means DefaultRenewBefore (30 days).
	RenewBefore time.Duration
	// PreferredChain is the common name of a root or intermediate CA: when
	// the CA offers several chains for a certificate, the first one that
	// holds a certificate of that name or ends at a root of that name is
	// served and cached. "" or no match means the CA's default chain.
	PreferredChain string
	// KeyTypes are the key types of each domain's certificates, KeyECDSA
	// (P-256) and KeyRSA (2048 bits), each at most once: each is ordered,
	// cached and renewed on its own (see unitKey). Nil means KeyECDSA
	// alone.
	KeyTypes []string
	// Profile is the certificate profile to order (draft-ietf-acme-profiles,
	// e.g. Let's Encrypt's "tlsserver" or "shortlived") when the CA's
	// directory offers it; otherwise, and when "", the CA's default is
	// ordered (a profile the CA does not offer is logged once).
	Profile string
	// Installer receives certificates and statuses. Required.
	Installer Installer
	// Log receives the package's records, with component=acme; nil discards.
	Log *slog.Logger
	// Registerer registers the package's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Fleet, when set, shares the account, certificates and keys, the
	// orders and the challenge answers with the other nodes of a fleet
	// through etcd; nil means this node alone.
	Fleet *Fleet
}

// Manager obtains and renews certificates for a set of domains. Create it
// with New, give it the domains with Sync and run it with Run.
type Manager struct {
	directory    string
	email        string
	chainName    string   // Options.PreferredChain
	profile      string   // Options.Profile
	keyTypes     []string // Options.KeyTypes, never empty
	renewalCheck time.Duration
	renewBefore  time.Duration
	inst         Installer
	log          *slog.Logger
	store        store
	fleet        *fleet // nil on a node alone
	client       *acmez.Client
	transport    *http.Transport
	chal         *challenges
	metrics      *metrics
	limit        *orderLimiter // new orders sent to the CA
	gate         *orderGate    // the ACME client's transport
	acct         accountCache
	// noProfile is set once the CA was found not to offer profile, so that
	// this is logged once.
	noProfile atomic.Bool

	// clock is the Manager's one source of time: the schedule of every
	// domain (when a certificate is due, when to retry, when to look at
	// the CA's renewal information again), the order rate limit, and the
	// checks that a certificate has not expired all read it, so they agree
	// with each other. It is clock.System, fixed before Sync and Run, so
	// tests can set a fake one (with setClock) and prove a schedule of
	// hours in a second against a real CA. What the CA and acmez do stays
	// on their own (system) clocks: the validity of issued certificates,
	// HTTP timeouts, acmez's polling.
	clock clock.Clock

	// Tunables, fixed before Run; unexported so tests can shorten them.
	retryBase    time.Duration
	retryMax     time.Duration
	orderTimeout time.Duration
	ariTimeout   time.Duration
	// ari: use the CA's renewal information (true); tests turn it off to
	// see the schedule of RenewBefore alone.
	ari bool

	// mu protects domains, runCtx and running; it is never held while
	// talking to the CA. wg counts the domain goroutines of the current Run.
	mu      sync.Mutex
	domains map[string]*domain
	runCtx  context.Context // non-nil while Run accepts work
	running bool            // Run is active, including its shutdown
	wg      sync.WaitGroup
}

// New checks the options and returns a Manager that manages no domain yet.
// It creates CacheDir (0700) when missing and registers the metrics.
func New(o Options) (*Manager, error) {
	if o.Installer == nil {
		return nil, errors.New("acme: options: Installer is required")
	}
	if o.CacheDir == "" {
		return nil, errors.New("acme: options: CacheDir is required")
	}
	if o.RenewalCheck < 0 || o.RenewBefore < 0 {
		return nil, errors.New("acme: options: RenewalCheck and RenewBefore must not be negative")
	}
	keyTypes, err := checkKeyTypes(o.KeyTypes)
	if err != nil {
		return nil, fmt.Errorf("acme: options: KeyTypes: %w", err)
	}
	if o.DirectoryURL == "" {
		o.DirectoryURL = LetsEncryptProduction
	}
	if u, err := url.Parse(o.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("acme: options: directory URL %q: must be an https URL", o.DirectoryURL)
	}
	if o.RenewalCheck == 0 {
		o.RenewalCheck = DefaultRenewalCheck
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = DefaultRenewBefore
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "acme")

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CARoot != "" {
		pool, err := loadRoots(o.CARoot)
		if err != nil {
			return nil, fmt.Errorf("acme: options: %w", err)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig

	var st store
	var fl *fleet
	if f := o.Fleet; f != nil {
		if f.Client == nil {
			return nil, errors.New("acme: options: Fleet.Client is required")
		}
		timeout := f.Timeout
		if timeout <= 0 {
			timeout = DefaultFleetTimeout
		}
		es, err := newEtcdStore(f.Client, f.Prefix, o.CacheDir, o.DirectoryURL, timeout, log)
		if err != nil {
			return nil, fmt.Errorf("acme: %w", err)
		}
		st, fl = es, newFleet(f.Node, es, log)
	} else {
		fs, err := newFileStore(o.CacheDir, o.DirectoryURL)
		if err != nil {
			return nil, fmt.Errorf("acme: %w", err)
		}
		st = fs
	}
	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}

	chal := newChallenges()
	if fl != nil {
		chal.shared = fl
	}
	limit := newOrderLimiter(clock.System{}, defaultOrderEvery, defaultOrderBurst)
	gate := &orderGate{next: transport, limit: limit}
	m := &Manager{
		directory:    o.DirectoryURL,
		email:        o.Email,
		chainName:    o.PreferredChain,
		profile:      o.Profile,
		keyTypes:     keyTypes,
		renewalCheck: o.RenewalCheck,
		renewBefore:  o.RenewBefore,
		inst:         o.Installer,
		log:          log,
		store:        st,
		fleet:        fl,
		transport:    transport,
		chal:         chal,
		metrics:      met,
		limit:        limit,
		gate:         gate,
		acct:         accountCache{lock: make(chan struct{}, 1)},
		clock:        clock.System{},
		retryBase:    defaultRetryBase,
		retryMax:     defaultRetryMax,
		orderTimeout: defaultOrderTimeout,
		ariTimeout:   defaultARITimeout,
		ari:          true,
		domains:      make(map[string]*domain),
	}
	m.client = &acmez.Client{
		Client: &acmeproto.Client{
			Directory:  o.DirectoryURL,
			HTTPClient: &http.Client{Transport: gate, Timeout: httpTimeout},
			UserAgent:  "fronttier",
			Logger:     log,
		},
		ChallengeSolvers: map[string]acmez.Solver{
			acmeproto.ChallengeTypeHTTP01:    http01Solver{chal},
			acmeproto.ChallengeTypeTLSALPN01: tlsALPN01Solver{chal},
		},
	}
	return m, nil
}

func loadRoots(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA root %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("read CA root %s: no PEM certificate found", path)
	}
	return pool, nil
}

// KeyTypes returns the key types of every domain's certificates, in
// order (Options.KeyTypes, with its default).
func (m *Manager) KeyTypes() []string { return slices.Clone(m.keyTypes) }

// Sync makes domains the complete set of managed domains. Calls must be
// serialised by the caller. A new domain whose valid certificate is in the
// cache is installed before Sync returns (status "valid", no ACME round trip);
// any other new domain gets status "pending" and is issued a certificate as
// soon as Run is active. Domains missing from the set stop being managed at
// once: an order in flight is abandoned and renewal stops; their cached files
// stay for a later return. Invalid names get status "failed" and are not
// managed.
func (m *Manager) Sync(domains []string) {
	want := make(map[string]bool, len(domains))
	for _, raw := range domains {
		name, err := normaliseDomain(raw)
		if err != nil {
			m.log.Warn("Not managing domain", "domain", raw, "error", err)
			m.inst.SetStatus(raw, "", StatusFailed, err)
			continue
		}
		want[name] = true
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.domains {
		if !want[d.name] {
			m.removeLocked(d)
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		if _, ok := m.domains[unitKey(name, m.keyTypes[0])]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		// The units of a name come and go together.
		slot := newNameSlot()
		for _, kt := range m.keyTypes {
			d := newDomain(name, kt, slot)
			m.loadCached(d)
			m.domains[d.key] = d
			if m.runCtx != nil {
				m.startLocked(d)
			}
		}
	}
}

// units returns the units of a managed domain name, in key type order;
// none when it is not managed.
func (m *Manager) units(name string) []*domain {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ds []*domain
	for _, kt := range m.keyTypes {
		if d := m.domains[unitKey(name, kt)]; d != nil {
			ds = append(ds, d)
		}
	}
	return ds
}

// loadCached installs d's cached certificate when it is usable, else sets the
// status "pending". d is not yet visible to any other goroutine.
func (m *Manager) loadCached(d *domain) {
	c, err := m.loadUsable(d)
	if err != nil {
		if !errors.Is(err, ErrNoCertificate) {
			m.log.Warn("Ignoring cached certificate", "domain", d.name, "key_type", d.keyType, "error", err)
		}
		m.inst.SetStatus(d.name, d.keyType, StatusPending, nil)
		m.log.Info("Certificate pending", "domain", d.name, "key_type", d.keyType)
		return
	}
	d.cert.Store(c)
	m.inst.Put(d.name, c.tls)
	m.inst.SetStatus(d.name, d.keyType, StatusValid, nil)
	m.log.Info("Certificate loaded from cache", "domain", d.name, "key_type", d.keyType,
		"expires_at", c.leaf.NotAfter, "serial", c.serial())
}

// loadUsable reads d's cached certificate and says why it cannot be
// served (expired, for another name, of another key type), if so.
func (m *Manager) loadUsable(d *domain) (*certificate, error) {
	c, err := m.store.loadCertificate(d.key)
	if err != nil {
		return nil, err
	}
	if err := c.usableFor(d.name, m.clock.Now()); err != nil {
		return nil, err
	}
	if kt := c.keyType(); kt != d.keyType {
		return nil, fmt.Errorf("cached certificate for %s has an %s key, not %s", d.name, kt, d.keyType)
	}
	return c, nil
}

// removeLocked stops managing d. m.mu is held.
func (m *Manager) removeLocked(d *domain) {
	d.installMu.Lock()
	d.removed.Store(true)
	d.installMu.Unlock()
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	delete(m.domains, d.key)
	m.log.Info("Domain no longer managed", "domain", d.name, "key_type", d.keyType)
}

// startLocked starts d's goroutine under the current Run. m.mu is held and
// m.runCtx is not nil.
func (m *Manager) startLocked(d *domain) {
	ctx, cancel := context.WithCancel(m.runCtx)
	d.cancel = cancel
	done := make(chan struct{})
	d.done = done
	m.wg.Go(func() {
		defer close(done)
		m.runDomain(ctx, d)
	})
}

// Run does the background work (issuance, renewal when due, retries with
// backoff) until ctx is done, then waits for its
// goroutines to exit and returns. Domains given to Sync before Run are
// worked on when Run starts. Only one Run may be active at a time; a second
// concurrent call logs an error and returns at once.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		m.log.Error("ACME manager is already running")
		return
	}
	m.running, m.runCtx = true, ctx
	if m.fleet != nil {
		m.fleet.start(ctx)
		m.wg.Go(func() { m.fleet.store.watch(ctx, m.managed, m.adoptShared) })
	}
	for _, d := range m.domains {
		m.startLocked(d)
	}
	n := len(m.domains)
	m.mu.Unlock()
	m.log.Info("ACME manager started", "directory", m.directory, "domains", n, "fleet", m.fleet != nil)

	<-ctx.Done()

	m.mu.Lock()
	m.runCtx = nil
	for _, d := range m.domains {
		if d.cancel != nil {
			d.cancel()
			d.cancel = nil
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
	if m.fleet != nil {
		m.fleet.stop()
	}
	m.transport.CloseIdleConnections()
	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
	m.log.Info("ACME manager stopped")
}

// Reload re-reads the cached certificate of a managed domain, installs it
// (status "valid") and triggers an immediate renewal check for it, which also
// refreshes the CA's renewal information. The check is triggered even when
// reading fails, so Reload also retries a failed issuance at once. It returns
// an error wrapping ErrNotManaged for domains outside the managed set, and
// one wrapping ErrNoCertificate when the cache holds no certificate.
func (m *Manager) Reload(domain string) error {
	name, err := normaliseDomain(domain)
	if err != nil {
		return fmt.Errorf("reload certificate for %s: %w", domain, errors.Join(ErrNotManaged, err))
	}
	units := m.units(name)
	if len(units) == 0 {
		return fmt.Errorf("reload certificate for %s: %w", name, ErrNotManaged)
	}
	var errs []error
	for _, d := range units {
		errs = append(errs, m.reloadUnit(d))
	}
	return errors.Join(errs...)
}

// reloadUnit is Reload for one key type of a domain.
func (m *Manager) reloadUnit(d *domain) error {
	defer d.poke()
	what := d.name
	if len(m.keyTypes) > 1 {
		what += " (" + d.keyType + ")"
	}
	c, err := m.loadUsable(d)
	if err != nil {
		return fmt.Errorf("reload certificate for %s: %w", what, err)
	}
	d.installMu.Lock()
	defer d.installMu.Unlock()
	if d.removed.Load() {
		return fmt.Errorf("reload certificate for %s: %w", what, ErrNotManaged)
	}
	d.cert.Store(c)
	m.inst.Put(d.name, c.tls)
	m.inst.SetStatus(d.name, d.keyType, StatusValid, nil)
	m.log.Info("Certificate reloaded", "domain", d.name, "key_type", d.keyType, "expires_at", c.leaf.NotAfter,
		"serial", c.serial(), "source", "cache")
	return nil
}

// Renew orders a new certificate of every key type for a managed domain
// now, whether or not its certificates are due and whatever their
// backoff, and returns at once. The status of each becomes "renewing"
// ("pending" while none is served); a new certificate replaces the served
// one of its key type when the order succeeds, and a failed order is
// retried with backoff like a due renewal until one succeeds. An order
// already in flight counts as the renewal. Only the order rate limit
// applies. It returns an error wrapping ErrNotManaged for domains outside
// the managed set.
func (m *Manager) Renew(domain string) error {
	name, err := normaliseDomain(domain)
	if err != nil {
		return fmt.Errorf("renew certificate for %s: %w", domain, errors.Join(ErrNotManaged, err))
	}
	units := m.units(name)
	if len(units) == 0 {
		return fmt.Errorf("renew certificate for %s: %w", name, ErrNotManaged)
	}
	for _, d := range units {
		if d.ordering.Load() {
			m.log.Info("Certificate renewal requested; an order is already in flight", "domain", name, "key_type", d.keyType)
			continue
		}
		status := StatusPending
		if d.cert.Load().validAt(m.clock.Now()) {
			status = StatusRenewing
		}
		m.setStatus(d, status, nil)
		m.log.Info("Certificate renewal requested", "domain", name, "key_type", d.keyType, "status", status)
		d.renew.Store(true)
		d.poke()
	}
	return nil
}

// HTTPHandler returns the handler answering the CA's HTTP-01 requests,
// GET /.well-known/acme-challenge/{token}. It never redirects; malformed or
// unknown tokens get 404. Mount it ahead of redirects and routing on the
// HTTP listener.
func (m *Manager) HTTPHandler() http.Handler {
	return challengeHandler{m.chal}
}

// ALPN answers TLS-ALPN-01 challenges: when the client offers ALPNProto and a
// challenge is pending for hello.ServerName it returns the challenge
// certificate, otherwise nil, nil (the caller then serves its usual
// certificate). Call it first in tls.Config.GetCertificate.
func (m *Manager) ALPN(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello == nil || !slices.Contains(hello.SupportedProtos, ALPNProto) {
		return nil, nil
	}
	name, err := normaliseDomain(hello.ServerName)
	if err != nil {
		return nil, nil
	}
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return m.chal.alpnCert(ctx, name), nil
}
