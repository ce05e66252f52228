package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"

	"fronttier/internal/certs"
)

// Key types a domain's certificates can have (Options.KeyTypes), named as
// internal/certs names them.
const (
	// KeyECDSA: P-256 keys, the default; fast to sign with and accepted
	// by every current client.
	KeyECDSA = certs.KeyECDSA
	// KeyRSA: 2048-bit RSA keys, for old clients that cannot verify
	// ECDSA; much slower to sign with.
	KeyRSA = certs.KeyRSA
)

// checkKeyTypes returns kts without change when valid (ECDSA or RSA, each
// at most once); nil or empty means KeyECDSA alone.
func checkKeyTypes(kts []string) ([]string, error) {
	if len(kts) == 0 {
		return []string{KeyECDSA}, nil
	}
	for i, kt := range kts {
		if kt != KeyECDSA && kt != KeyRSA {
			return nil, fmt.Errorf("key type %q is not one of %q, %q", kt, KeyECDSA, KeyRSA)
		}
		if slices.Contains(kts[:i], kt) {
			return nil, fmt.Errorf("key type %q is listed twice", kt)
		}
	}
	return slices.Clone(kts), nil
}

// generateKey returns a new private key of keyType.
func generateKey(keyType string) (crypto.Signer, error) {
	if keyType == KeyRSA {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// unitKey names the certificate of one key type of a domain in the
// Manager, the cache, etcd (certificate, failed attempts) and the logs:
// the domain itself for ECDSA, so that caches written before there were
// key types keep working, and domain+"+"+keyType otherwise ('+' is in no
// domain name). The cache puts it beside the ECDSA one:
// certificates/<ca>/<domain>/<domain>+rsa.crt.
func unitKey(domain, keyType string) string {
	if keyType == KeyECDSA {
		return domain
	}
	return domain + "+" + keyType
}

// unitDomain returns the domain of a unit key.
func unitDomain(key string) string {
	name, _, _ := strings.Cut(key, "+")
	return name
}

// nameSlot lets one order at a time run for a domain name on this node,
// whatever its key type: a CA validating a TLS-ALPN-01 challenge names
// the domain, not the order, so two orders for one name at once could
// answer each other's challenge. It is a one-slot semaphore shared by the
// units of one name.
type nameSlot chan struct{}

func newNameSlot() nameSlot { return make(nameSlot, 1) }

// take waits for the slot until ctx ends; it returns the function that
// gives it back, or ctx's error.
func (s nameSlot) take(ctx context.Context) (func(), error) {
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
