package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Errors LoadPair wraps for certificates outside their validity period.
var (
	ErrExpired     = errors.New("certificate expired")
	errNotYetValid = errors.New("certificate not yet valid")
)

// LoadPair reads a PEM certificate file (the leaf first, then any
// intermediates, all of which are served) and its unencrypted private key
// (PKCS#1, PKCS#8 or SEC 1 EC), checks that they match and that the leaf is
// valid at now, and returns the pair with Leaf set. Every error names the
// file concerned.
func LoadPair(certPath, keyPath string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := readFile("certificate", certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile("key", keyPath)
	if err != nil {
		return nil, err
	}
	return parsePair(certPath, keyPath, certPEM, keyPEM, now)
}

// readFile reads path, naming what it is in the error.
func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in our message
		}
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return b, nil
}

// parsePair is LoadPair after reading the files.
func parsePair(certPath, keyPath string, certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	chain, err := parseChain(certPath, certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPath, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !publicKeyMatches(leaf.PublicKey, key) {
		for i, c := range chain[1:] {
			if publicKeyMatches(c.PublicKey, key) {
				return nil, fmt.Errorf("certificate %s: key %s matches certificate #%d of the file, not the first; put the leaf certificate first", certPath, keyPath, i+2)
			}
		}
		return nil, fmt.Errorf("certificate %s and key %s do not match (the key is not the certificate's private key)", certPath, keyPath)
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired on %s: %w", certPath, leaf.NotAfter.UTC().Format(time.RFC3339), ErrExpired)
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate %s is not valid until %s: %w", certPath, leaf.NotBefore.UTC().Format(time.RFC3339), errNotYetValid)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// parseChain parses every CERTIFICATE block of a PEM file, in order (see
// ParseChain), naming the file in its errors.
func parseChain(path string, data []byte) ([]*x509.Certificate, error) {
	chain, err := ParseChain(data)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	if len(chain) == 0 {
		if len(strings.TrimSpace(string(data))) == 0 {
			return nil, fmt.Errorf("certificate %s is empty", path)
		}
		return nil, fmt.Errorf("certificate %s: no PEM \"CERTIFICATE\" block found (is it PEM, not DER?)", path)
	}
	return chain, nil
}

// ParseChain parses every CERTIFICATE block of PEM data, in order; other
// block types (a key bundled into the same file) are skipped. It is the one
// chain parser of the proxy (ACME's chain selection uses it too). No block
// is no error: the caller decides whether an empty chain is one.
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return chain, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("block #%d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
}

// parseKey parses the first private key block of a PEM file.
func parseKey(path string, data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("key %s is encrypted; fronttier needs an unencrypted key", path)
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		key, err := parsePrivateKey(block)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path, err)
		}
		return key, nil
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fmt.Errorf("key %s is empty", path)
	}
	return nil, fmt.Errorf("key %s: no PEM private key block found", path)
}

// parsePrivateKey decodes a PKCS#1, PKCS#8 or SEC 1 key, whichever the
// block holds (the block's type is a hint only, as with tls.X509KeyPair).
func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T in PKCS#8 block", k)
		}
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("cannot parse %q block as a PKCS#1, PKCS#8 or EC private key", block.Type)
}

// publicKeyMatches reports whether key is the private half of pub.
func publicKeyMatches(pub crypto.PublicKey, key crypto.Signer) bool {
	p, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && p.Equal(pub)
}
