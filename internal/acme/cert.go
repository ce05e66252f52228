package acme

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"

	"fronttier/internal/certs"
)

// certificate is an immutable snapshot of a certificate with its key and
// metadata; a change makes a new snapshot.
type certificate struct {
	tls  *tls.Certificate  // chain and key, Leaf set
	leaf *x509.Certificate // == tls.Leaf
	meta certMeta
}

// certMeta is what is cached beside a certificate in <domain>.json.
type certMeta struct {
	Domain    string    `json:"domain"`
	Directory string    `json:"directory"`
	URL       string    `json:"url,omitempty"`
	Serial    string    `json:"serial"`
	NotAfter  time.Time `json:"not_after"`
	Obtained  time.Time `json:"obtained"`
	// RenewalInfo is the CA's last ARI answer; nil when the CA has none.
	RenewalInfo *acmeproto.RenewalInfo `json:"renewal_info,omitempty"`
}

// parseCertificate checks that chainPEM (leaf first) and keyPEM form a pair.
func parseCertificate(chainPEM, keyPEM []byte, meta certMeta) (*certificate, error) {
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse certificate and key: %w", err)
	}
	if pair.Leaf == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		pair.Leaf = leaf
	}
	return &certificate{tls: &pair, leaf: pair.Leaf, meta: meta}, nil
}

// usableFor reports why c cannot be served for name at now, or nil.
func (c *certificate) usableFor(name string, now time.Time) error {
	if err := c.leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("certificate does not cover %s: %w", name, err)
	}
	if !c.validAt(now) {
		return fmt.Errorf("certificate for %s expired at %s: %w", name,
			c.leaf.NotAfter.Format(time.RFC3339), errExpired)
	}
	return nil
}

var errExpired = errors.New("certificate expired")

// validAt reports whether c has not expired at now.
func (c *certificate) validAt(now time.Time) bool {
	return c != nil && now.Before(c.leaf.NotAfter)
}

// keyType is the key type of the leaf (KeyECDSA, KeyRSA, ...).
func (c *certificate) keyType() string {
	return certs.KeyType(c.leaf.PublicKey)
}

// serial is the leaf's serial number in hexadecimal, as openssl prints it.
func (c *certificate) serial() string {
	return strings.ToUpper(c.leaf.SerialNumber.Text(16))
}

// withRenewalInfo returns a copy of c with new renewal information.
func (c *certificate) withRenewalInfo(ri acmeproto.RenewalInfo) *certificate {
	cp := *c
	cp.meta.RenewalInfo = &ri
	return &cp
}
