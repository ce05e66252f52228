// Package certs serves fronttier's TLS certificates: it loads file
// certificates (with their full chains), picks one per handshake by SNI,
// reloads files when they change on disk, accepts certificates pushed in by
// the ACME side, and reports expiry to the management API and Prometheus.
//
// The handshake path reads one immutable snapshot (the SNI index) through an
// atomic pointer and takes no lock. Every change (Sync, a reload, Put,
// SetDefault, SetACME) builds a new snapshot and swaps it in; a tls.Conn
// already established keeps the certificate it was handshaken with.
package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources of a certificate, as in the configuration's
// certificate_source.type.
const (
	SourceFile        = "file"
	SourceLetsEncrypt = "lets_encrypt"
)

// Status values of Info.Status for file certificates. The ACME side sets
// the status of lets_encrypt certificates itself (conventionally "pending",
// "valid", "renewing" or "failed"), but a served certificate past its
// expiry is "expired" whatever its source last said.
const (
	StatusValid   = "valid"
	StatusExpired = "expired"
	StatusError   = "error"
	// StatusPending is the status of a lets_encrypt host until the ACME
	// side reports on it.
	StatusPending = "pending"
)

// Sentinel errors.
var (
	// ErrNotFound is returned by Reload for a domain that has no
	// certificate source (or no ACME side to ask).
	ErrNotFound = errors.New("no certificate configured")
	// ErrNoCertificate is wrapped by the error GetCertificate returns when
	// neither the SNI name nor a default certificate gives a certificate.
	ErrNoCertificate = errors.New("no certificate for server name")
)

// Host is one virtual host as the certificate manager needs it.
type Host struct {
	// Domain is the normalised, lower-case name; "*.example.com" for a
	// wildcard host.
	Domain string
	// Source is "", SourceFile or SourceLetsEncrypt; "" means the host has
	// no certificate and is ignored.
	Source string
	// CertPath and KeyPath are the PEM files of a SourceFile host.
	CertPath, KeyPath string
}

// Info is one certificate as the management API shows it. The JSON field
// names are part of the API.
type Info struct {
	Domain string `json:"domain"`
	// ExpiresAt is the served certificate's NotAfter in UTC; nil if none
	// is loaded.
	ExpiresAt *time.Time `json:"expires_at"`
	// DaysUntilExpiration is floor((NotAfter-now)/24h), negative once
	// expired; nil if no certificate is loaded.
	DaysUntilExpiration *int `json:"days_until_expiration"`
	// Source is SourceFile or SourceLetsEncrypt.
	Source string `json:"source"`
	// Status is, for file certificates, "valid", "expired" or "error"
	// (nothing loaded); for lets_encrypt ones whatever the ACME side set
	// ("pending" until it sets something), or "expired" once the served
	// certificate is past its expiry, whatever that was.
	Status string `json:"status"`
	// Names are the SAN DNS names of the served certificate.
	Names []string `json:"names"`
	// Issuer is the issuer's common name, or its whole DN if it has none.
	Issuer    string     `json:"issuer"`
	NotBefore *time.Time `json:"not_before"`
	// LastLoadedAt is when the served certificate was loaded (or put).
	LastLoadedAt *time.Time `json:"last_loaded_at"`
	// LastError is the error of the last failed load, reload or issuance;
	// "" if the last attempt succeeded.
	LastError string `json:"last_error"`
}

// Options configures a Manager. The zero value is usable.
type Options struct {
	// Log receives load, reload and watcher events; nil discards them.
	Log *slog.Logger
	// Registerer, if not nil, gets the certificate metrics.
	Registerer prometheus.Registerer
	// Recheck is the period of the re-check of file certificates that backs
	// up the file watcher; 0 means one minute.
	Recheck time.Duration
	// Debounce coalesces bursts of file events; 0 means 200ms.
	Debounce time.Duration
	// RenewalWarning, if positive, logs a warning (once per load) when a
	// file certificate expires within this duration.
	RenewalWarning time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// noWatch disables the fsnotify watcher so that tests can exercise the
	// periodic re-check alone.
	noWatch bool
}

// Defaults of Options.
const (
	DefaultRecheck  = time.Minute
	DefaultDebounce = 200 * time.Millisecond
)

// Manager is the certificate store. It is safe for concurrent use. The
// handshake path reads snap only; loadMu serialises file loading; mu
// guards the host table and is held only briefly, never during file I/O.
type Manager struct {
	o   Options
	log *slog.Logger
	met *metricSet

	// snap is the current SNI index; never nil after New.
	snap atomic.Pointer[snapshot]

	// loadMu serialises everything that reads certificate files (Sync,
	// Reload, the watcher's and the periodic re-checks), so that file I/O
	// happens without holding mu and two loads of one host never race.
	loadMu sync.Mutex

	// mu protects the fields below and every entry's fields.
	mu    sync.Mutex
	hosts map[string]*entry // by Domain; only hosts with a Source
	def   string            // SetDefault's domain, "" for none
	acme  ACME              // SetACME's hook, nil for none

	// kick tells Run that the set of watched directories may have changed.
	kick    chan struct{}
	running atomic.Bool
}

// entry is one host's state. Fields are protected by Manager.mu.
type entry struct {
	host Host
	// cert is the served certificate (Leaf set); nil if none.
	cert *tls.Certificate
	// hash is the hash of the files cert was loaded from (file sources).
	hash [sha256.Size]byte
	// failKey identifies the last failure (content hash and message) so
	// that a re-check of the same broken files neither logs nor counts it
	// again.
	failKey  string
	loadedAt time.Time
	status   string // lets_encrypt only
	lastErr  string
	warned   bool     // RenewalWarning logged for the current cert
	dirs     []string // directories whose events concern this host (file sources)
}

// New returns a Manager with no hosts. Register its metrics on
// o.Registerer, which panics on duplicate registration like MustRegister.
func New(o Options) *Manager {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultRecheck
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Manager{
		o:     o,
		log:   o.Log.With("component", "certs"),
		hosts: make(map[string]*entry),
		kick:  make(chan struct{}, 1),
	}
	m.met = newMetricSet(m)
	if o.Registerer != nil {
		m.met.register(o.Registerer)
	}
	m.snap.Store(&snapshot{})
	return m
}

// normalise lower-cases name and strips a trailing dot. It does not
// allocate when name is already lower case.
func normalise(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}
