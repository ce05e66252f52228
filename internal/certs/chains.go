package certs

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Key types of certificate chains, as the configuration and the management
// API name them. A host may serve one chain of each.
const (
	KeyECDSA   = "ecdsa"
	KeyRSA     = "rsa"
	KeyEd25519 = "ed25519"
)

// SourceACME is the Source of a chain in the API's chains array when it
// was obtained over ACME (a file chain names its certificate file).
const SourceACME = "acme"

// KeyType returns the key type of a certificate's public key: KeyECDSA,
// KeyRSA, KeyEd25519, or the Go type's name for anything else.
func KeyType(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return KeyECDSA
	case *rsa.PublicKey:
		return KeyRSA
	case ed25519.PublicKey:
		return KeyEd25519
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// keyRank orders key types for serving: ECDSA first (fastest to sign with
// Go's crypto and taken by every current client), then RSA (old clients),
// then anything else.
func keyRank(keyType string) int {
	switch keyType {
	case KeyECDSA:
		return 0
	case KeyRSA:
		return 1
	default:
		return 2
	}
}

// Pair is a certificate chain file and its key file.
type Pair struct {
	CertPath, KeyPath string
}

// chain is one loaded certificate chain of a host.
type chain struct {
	cert     *tls.Certificate // Leaf set
	keyType  string
	source   string // the certificate file, or SourceACME
	loadedAt time.Time
}

// chainSet is what the handshake path serves for one host. It is built
// whole by newChainSet when the host's chains change and never modified.
type chainSet struct {
	// certs are the chains in preference order (ECDSA, RSA, others);
	// never empty.
	certs []*tls.Certificate
	// primary is served when the client supports none of certs (the
	// handshake then fails in crypto/tls with the usual error): the
	// file host's cert_path chain, an ACME host's first chain.
	primary *tls.Certificate
	// notAfter is the earliest expiry of the chains.
	notAfter time.Time
}

// newChainSet returns the set serving chains, the first of which is the
// primary; nil when chains is empty.
func newChainSet(chains []chain) *chainSet {
	if len(chains) == 0 {
		return nil
	}
	ordered := slices.Clone(chains)
	slices.SortStableFunc(ordered, func(a, b chain) int { return cmp.Compare(keyRank(a.keyType), keyRank(b.keyType)) })
	s := &chainSet{certs: make([]*tls.Certificate, len(ordered)), primary: chains[0].cert}
	for i, c := range ordered {
		s.certs[i] = c.cert
		if i == 0 || c.cert.Leaf.NotAfter.Before(s.notAfter) {
			s.notAfter = c.cert.Leaf.NotAfter
		}
	}
	return s
}

// pick returns the chain to serve to hello: the first, in preference
// order, that the client supports, else the primary. A host with one
// chain costs nothing more than before.
func (s *chainSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(s.certs) > 1 {
		for _, c := range s.certs {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return s.primary
}

// earliest returns the chain of chains that expires first, nil if none.
func earliest(chains []chain) *chain {
	var first *chain
	for i := range chains {
		if first == nil || chains[i].cert.Leaf.NotAfter.Before(first.cert.Leaf.NotAfter) {
			first = &chains[i]
		}
	}
	return first
}

// pairs returns the files of a file host: the primary first, then the
// additional chains in configuration order.
func (h *Host) pairs() []Pair {
	return append([]Pair{{h.CertPath, h.KeyPath}}, h.Additional...)
}

// equal reports whether h and o describe the same source.
func (h *Host) equal(o *Host) bool {
	return h.Domain == o.Domain && h.Source == o.Source && h.CertPath == o.CertPath &&
		h.KeyPath == o.KeyPath && slices.Equal(h.Additional, o.Additional) && slices.Equal(h.KeyTypes, o.KeyTypes)
}

// hashFiles identifies the content of a host's files, in order.
func hashFiles(files [][]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d\n", len(f))
		h.Write(f)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// ChainError is a failure to load one chain of a file host; its message
// names the file concerned.
type ChainError struct {
	// Chain is 0 for the primary chain (CertPath, KeyPath) and i+1 for
	// Additional[i].
	Chain int
	Err   error
}

func (e *ChainError) Error() string { return e.Err.Error() }
func (e *ChainError) Unwrap() error { return e.Err }

// readHost reads every file of a file host, certificate then key for each
// pair. An error is a *ChainError.
func readHost(h *Host) ([][]byte, error) {
	var files [][]byte
	for i, p := range h.pairs() {
		c, err := readFile("certificate", p.CertPath)
		if err != nil {
			return nil, &ChainError{Chain: i, Err: err}
		}
		k, err := readFile("key", p.KeyPath)
		if err != nil {
			return nil, &ChainError{Chain: i, Err: err}
		}
		files = append(files, c, k)
	}
	return files, nil
}

// parseHost parses the files readHost returned into the host's chains, the
// primary first. Every chain must load (see LoadPair), no two may have the
// same key type (which one would be served?), and every additional chain
// must cover the host's domain. now is also the chains' load time. An
// error is a *ChainError.
func parseHost(h *Host, files [][]byte, now time.Time) ([]chain, error) {
	pairs := h.pairs()
	chains := make([]chain, 0, len(pairs))
	for i, p := range pairs {
		cert, err := parsePair(p.CertPath, p.KeyPath, files[2*i], files[2*i+1], now)
		if err != nil {
			return nil, &ChainError{Chain: i, Err: err}
		}
		kt := KeyType(cert.Leaf.PublicKey)
		for _, prev := range chains {
			if prev.keyType == kt {
				return nil, &ChainError{Chain: i, Err: fmt.Errorf("certificate %s and %s both have %s keys; a domain serves at most one chain per key type", prev.source, p.CertPath, kt)}
			}
		}
		if i > 0 && h.Domain != "" {
			if err := covers(cert, h.Domain); err != nil {
				return nil, &ChainError{Chain: i, Err: fmt.Errorf("certificate %s: %w", p.CertPath, err)}
			}
		}
		chains = append(chains, chain{cert: cert, keyType: kt, source: p.CertPath, loadedAt: now})
	}
	return chains, nil
}

// covers reports why cert is not valid for domain ("*.example.com" for a
// wildcard host), or nil.
func covers(cert *tls.Certificate, domain string) error {
	name := domain
	if suffix, ok := strings.CutPrefix(domain, "*"); ok {
		// Any one-label name under the wildcard stands for it: a
		// certificate for *.example.com covers it, one for
		// www.example.com does not.
		name = "fronttier-wildcard-check" + suffix
	}
	if err := cert.Leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("does not cover %s (its names: %s)", domain, strings.Join(cert.Leaf.DNSNames, ", "))
	}
	return nil
}

// CheckFiles loads every chain of a file host as the Manager would (see
// parseHost) and returns the first failure, a *ChainError naming the file
// concerned.
// `fronttier validate` and API changes use it before a host is accepted.
func CheckFiles(h Host, now time.Time) error {
	h.Domain = normalise(h.Domain)
	files, err := readHost(&h)
	if err != nil {
		return err
	}
	_, err = parseHost(&h, files, now)
	return err
}
