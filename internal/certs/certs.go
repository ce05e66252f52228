// Package certs serves fronttier's TLS certificates: it loads file
// certificates (with their full chains), picks one per handshake by SNI
// and, for a domain with chains of several key types (ECDSA and RSA), the
// first the client supports, reloads files when they change on disk,
// accepts certificates pushed in by the ACME side, and reports expiry to
// the management API and Prometheus.
//
// The handshake path reads one immutable snapshot (the SNI index) through an
// atomic pointer and takes no lock. Every change (Sync, a reload, Put,
// SetDefault, SetACME) builds a new snapshot and swaps it in; a tls.Conn
// already established keeps the certificate it was handshaken with.
package certs

import (
	"crypto/sha256"
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

	// The ACME side's other statuses, as internal/acme names them; they
	// rank the key types' statuses of a host (see entry.acmeStatus).
	statusRenewing = "renewing"
	statusFailed   = "failed"
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
	// CertPath and KeyPath are the PEM files of a SourceFile host: its
	// primary chain, served to clients that support none of its chains.
	CertPath, KeyPath string
	// Additional are further chains of a SourceFile host, each with
	// another key type than the primary and the others (an RSA chain
	// beside an ECDSA one), each covering Domain.
	Additional []Pair
	// KeyTypes are the key types (KeyECDSA, KeyRSA) whose chains the ACME
	// side provides for a SourceLetsEncrypt host; nil means KeyECDSA
	// alone.
	KeyTypes []string
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
	// Chains are the served chains, in the order they are offered to a
	// client (ECDSA, RSA, others); the fields above describe the one that
	// expires first. Empty when nothing is loaded.
	Chains []ChainInfo `json:"chains"`
}

// ChainInfo is one served chain of a domain as the management API shows
// it. The JSON field names are part of the API.
type ChainInfo struct {
	// KeyType is KeyECDSA, KeyRSA or KeyEd25519.
	KeyType string `json:"key_type"`
	// Source is the chain's certificate file, or SourceACME.
	Source   string    `json:"source"`
	NotAfter time.Time `json:"not_after"`
	// DaysLeft is floor((NotAfter-now)/24h), negative once expired.
	DaysLeft int    `json:"days_left"`
	Issuer   string `json:"issuer"`
	// Status and LastError are those of the ACME side for this key type;
	// empty for file chains.
	Status    string `json:"status,omitempty"`
	LastError string `json:"last_error,omitempty"`
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
	// chains are the loaded chains: for a file host the primary first,
	// then the additional ones in configuration order; for a lets_encrypt
	// host one per key type put, in preference order. Empty if none.
	chains []chain
	// set is what the handshake path serves, built from chains; nil if
	// chains is empty.
	set *chainSet
	// hash is the hash of the files chains were loaded from (file
	// sources).
	hash [sha256.Size]byte
	// failKey identifies the last failure (content hash and message) so
	// that a re-check of the same broken files neither logs nor counts it
	// again.
	failKey string
	// units are the ACME side's status and last error of each key type
	// of a lets_encrypt host; nil for file hosts.
	units   map[string]*unit
	lastErr string   // file hosts
	warned  bool     // RenewalWarning logged for the current cert
	dirs    []string // directories whose events concern this host (file sources)
}

// unit is the ACME side's report on one key type of a lets_encrypt host.
type unit struct {
	status, lastErr string
}

// setChains replaces e's chains and rebuilds what is served.
func (e *entry) setChains(chains []chain) {
	e.chains = chains
	e.set = newChainSet(chains)
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
