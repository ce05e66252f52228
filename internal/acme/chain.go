package acme

import (
	"fronttier/internal/certs"

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
	chain, err := certs.ParseChain(chainPEM)
	if err != nil || len(chain) == 0 {
		return false
	}
	for _, c := range chain {
		if c.Subject.CommonName == name {
			return true
		}
	}
	return chain[len(chain)-1].Issuer.CommonName == name
}
