package certs

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"
)

// acmeTLSProto is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737).
const acmeTLSProto = "acme-tls/1"

// ACME is the ACME side as the Manager sees it.
type ACME interface {
	// Reload renews or re-reads the certificate of domain now.
	Reload(domain string) error
	// ALPN answers TLS-ALPN-01 challenge handshakes (a ClientHello
	// offering "acme-tls/1"); it returns nil, nil when it has nothing for
	// hello. It is called on the handshake path and must be cheap.
	ALPN(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// snapshot is the immutable SNI index the handshake path reads. It is built
// whole by rebuildLocked and never modified afterwards.
type snapshot struct {
	exact map[string]*chainSet // by name
	wild  map[string]*chainSet // by suffix after "*", e.g. ".example.com"
	def   *chainSet            // served when nothing matches; may be nil
	acme  ACME                 // may be nil
	// served lists every served certificate by domain, sorted, for the
	// metrics collector.
	served []served
}

// served is one host's certificates as the metrics see them.
type served struct {
	domain string
	// notAfter is the earliest expiry of the host's chains, so that the
	// expiry metrics warn before any chain expires.
	notAfter time.Time
}

// lookup returns the chains for name (normalised): the exact name, then
// a wildcard covering exactly one more label. It does not consider the
// default. A wildcard name ("*.example.com") finds wildcard certificates
// only.
func (s *snapshot) lookup(name string) *chainSet {
	if suffix, ok := strings.CutPrefix(name, "*"); ok {
		return s.wild[suffix]
	}
	if c, ok := s.exact[name]; ok {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return s.wild[name[i:]]
	}
	return nil
}

// rebuildLocked builds a new snapshot from m.hosts and publishes it. m.mu
// must be held.
//
// Every host's chains are indexed, as one set, under the SAN DNS names of
// each chain and the host's domain. When two hosts claim a name, the host whose domain is the
// name wins; otherwise the lexically first domain does.
func (m *Manager) rebuildLocked() {
	domains := make([]string, 0, len(m.hosts))
	for d, e := range m.hosts {
		if e.set != nil {
			domains = append(domains, d)
		}
	}
	slices.Sort(domains)
	s := &snapshot{
		exact:  make(map[string]*chainSet, len(domains)),
		wild:   make(map[string]*chainSet),
		acme:   m.acme,
		served: make([]served, 0, len(domains)),
	}
	owner := make(map[string]string, len(domains)) // name -> domain of the host serving it
	claim := func(name, domain string, set *chainSet) {
		name = normalise(name)
		if name == "" {
			return
		}
		if prev, ok := owner[name]; ok && (prev == name || domain != name) {
			return
		}
		owner[name] = domain
		if suffix, ok := strings.CutPrefix(name, "*"); ok {
			s.wild[suffix] = set
		} else {
			s.exact[name] = set
		}
	}
	for _, d := range domains {
		e := m.hosts[d]
		for _, c := range e.chains {
			for _, n := range c.cert.Leaf.DNSNames {
				claim(n, d, e.set)
			}
		}
		claim(d, d, e.set)
		s.served = append(s.served, served{domain: d, notAfter: e.set.notAfter})
	}
	if e := m.hosts[m.def]; e != nil {
		s.def = e.set
	}
	m.snap.Store(s)
}

// GetCertificate returns the certificate for a TLS handshake: the ACME
// side's challenge certificate for a hello offering "acme-tls/1", else the
// certificate of the SNI name (exact, then wildcard), else the default. A
// miss returns an error wrapping ErrNoCertificate, which fails the
// handshake. An exact or wildcard hit takes one atomic load and does not
// allocate.
//
// A host with several chains (an ECDSA and an RSA one) serves the first,
// in the order ECDSA, RSA, others, that the client supports
// (tls.ClientHelloInfo.SupportsCertificate: its signature algorithms, and
// in TLS 1.2 its cipher suites), else its primary chain. So every client
// able to verify ECDSA gets it, and RSA's much slower signing is spent on
// old clients only.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := m.snap.Load()
	if s.acme != nil && offersACME(hello) {
		if c, err := s.acme.ALPN(hello); c != nil || err != nil {
			return c, err
		}
	}
	name := normalise(hello.ServerName)
	if name != "" {
		if c := s.lookup(name); c != nil {
			return c.pick(hello), nil
		}
	}
	if s.def != nil {
		return s.def.pick(hello), nil
	}
	if name == "" {
		return nil, fmt.Errorf("%w: client sent no SNI and there is no default certificate", ErrNoCertificate)
	}
	return nil, fmt.Errorf("%w %q", ErrNoCertificate, name)
}

// offersACME reports whether hello offers the TLS-ALPN-01 protocol.
func offersACME(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, acmeTLSProto)
}

// Ready reports whether a certificate covering domain (exact or wildcard,
// not the default) is being served.
func (m *Manager) Ready(domain string) bool {
	name := normalise(domain)
	return name != "" && m.snap.Load().lookup(name) != nil
}

// TLSConfig returns the configuration of the HTTPS listener: TLS 1.2 or
// later, TLS 1.2 cipher suites limited to ECDHE with AES-GCM or
// ChaCha20-Poly1305, ALPN "h2" and "http/1.1", certificates from
// GetCertificate. Handshakes offering "acme-tls/1" get the ACME side's
// challenge certificate and that protocol, through GetConfigForClient.
// Each call returns a new Config.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       cipherSuites(),
		NextProtos:         []string{"h2", "http/1.1"},
		GetCertificate:     m.GetCertificate,
		GetConfigForClient: m.configForClient,
	}
}

// cipherSuites are the TLS 1.2 suites served (TLS 1.3's are not
// configurable and all strong): forward secret, AEAD only.
func cipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// configForClient answers TLS-ALPN-01 challenges with a configuration that
// serves the ACME side's certificate and negotiates "acme-tls/1" (which the
// main configuration does not offer). Other handshakes use the main
// configuration.
func (m *Manager) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if !offersACME(hello) {
		return nil, nil
	}
	a := m.snap.Load().acme
	if a == nil {
		return nil, nil
	}
	c, err := a.ALPN(hello)
	if err != nil || c == nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		NextProtos:   []string{acmeTLSProto},
		Certificates: []tls.Certificate{*c},
	}, nil
}
