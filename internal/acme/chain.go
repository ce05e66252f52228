package acme

import (
	"crypto/x509"
	"encoding/pem"

	acmeproto "github.com/mholt/acmez/v3/acme"
)

// preferredChain returns the chain to serve among those the CA offered
// (the default first, then its "alternate" links, RFC 8555 §7.4.2): the
// first that holds a certificate whose subject common name is name, or
// whose last certificate was issued by name (chains usually leave the root
// out), else the first. ok reports whether name matched; name "" always
// picks the first.
func preferredChain(chains []acmeproto.Certificate, name string) (chain acmeproto.Certificate, ok bool) {
	if name == "" {
		return chains[0], false
	}
	for _, c := range chains {
		if chainMatches(c.ChainPEM, name) {
			return c, true
		}
	}
	return chains[0], false
}

// chainMatches reports whether chainPEM holds a certificate named name or
// ends at an issuer named name.
func chainMatches(chainPEM []byte, name string) bool {
	var last *x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return false
		}
		if cert.Subject.CommonName == name {
			return true
		}
		last = cert
	}
	return last != nil && last.Issuer.CommonName == name
}
