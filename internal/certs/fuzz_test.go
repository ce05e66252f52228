package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// FuzzParsePair feeds arbitrary certificate and key file contents to the
// loader behind LoadPair: it must never panic, every error must name the
// file it concerns, and a pair it accepts must have its leaf set and be
// valid at the time given.
//
//	go test -run=^$ -fuzz=FuzzParsePair -fuzztime=60s ./internal/certs
func FuzzParsePair(f *testing.F) {
	certPEM, keyPEM := fuzzSeedPair(f)
	f.Add(certPEM, keyPEM)
	f.Add(certPEM, certPEM)
	f.Add(keyPEM, keyPEM)
	f.Add(append(append([]byte{}, certPEM...), certPEM...), keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keyPEM)
	f.Add(certPEM, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	f.Add(certPEM, []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{})
	now := time.Now()
	f.Fuzz(func(t *testing.T, certData, keyData []byte) {
		c, err := parsePair("cert.pem", "key.pem", certData, keyData, now)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "cert.pem") && !strings.Contains(msg, "key.pem") {
				t.Fatalf("error names neither file: %v", err)
			}
			return
		}
		if c == nil || c.Leaf == nil || len(c.Certificate) == 0 {
			t.Fatalf("accepted pair without a leaf: %+v", c)
		}
		if now.Before(c.Leaf.NotBefore) || now.After(c.Leaf.NotAfter) {
			t.Fatalf("accepted a certificate not valid now (%v - %v)", c.Leaf.NotBefore, c.Leaf.NotAfter)
		}
	})
}

// fuzzSeedPair makes a valid self-signed ECDSA pair as PEM.
func fuzzSeedPair(tb testing.TB) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.com"},
		DNSNames:     []string{"example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
