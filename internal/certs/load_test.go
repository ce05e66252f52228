package certs

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadPairFormats(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	inter := root.intermediate(t)
	tests := []struct {
		name      string
		opts      leafOpts
		ca        *testCA
		certFile  string
		keyFile   string
		wantChain int
	}{
		{name: "ecdsa sec1 .crt", opts: leafOpts{names: []string{"a.test"}}, ca: root, certFile: "a.crt", keyFile: "a.key", wantChain: 1},
		{name: "ecdsa pkcs8 .pem", opts: leafOpts{names: []string{"a.test"}, keyForm: "pkcs8"}, ca: root, certFile: "a.pem", keyFile: "a-key.pem", wantChain: 1},
		{name: "rsa pkcs1 .cer", opts: leafOpts{names: []string{"a.test"}, rsa: true}, ca: root, certFile: "a.cer", keyFile: "a.key", wantChain: 1},
		{name: "rsa pkcs8", opts: leafOpts{names: []string{"a.test"}, rsa: true, keyForm: "pkcs8"}, ca: root, certFile: "a.crt", keyFile: "a.key", wantChain: 1},
		{name: "leaf and intermediate", opts: leafOpts{names: []string{"a.test"}, chain: []*testCA{inter}}, ca: inter, certFile: "fullchain.pem", keyFile: "privkey.pem", wantChain: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := tt.ca.leaf(t, tt.opts)
			certPath, keyPath := filepath.Join(dir, tt.certFile), filepath.Join(dir, tt.keyFile)
			writeFile(t, certPath, p.certPEM)
			writeFile(t, keyPath, p.keyPEM)
			c, err := LoadPair(certPath, keyPath, time.Now())
			if err != nil {
				t.Fatalf("LoadPair: %v", err)
			}
			if len(c.Certificate) != tt.wantChain {
				t.Errorf("chain length %d, want %d", len(c.Certificate), tt.wantChain)
			}
			if c.Leaf == nil || c.Leaf.SerialNumber.Cmp(p.leaf.SerialNumber) != 0 {
				t.Errorf("Leaf not set to the first certificate")
			}
			if !bytes.Equal(c.Certificate[0], p.leaf.Raw) {
				t.Errorf("first certificate is not the leaf")
			}
		})
	}
}

func TestLoadPairErrors(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	inter := root.intermediate(t)
	good := root.leaf(t, leafOpts{names: []string{"a.test"}})
	other := root.leaf(t, leafOpts{names: []string{"b.test"}})
	expired := root.leaf(t, leafOpts{names: []string{"a.test"},
		notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	future := root.leaf(t, leafOpts{names: []string{"a.test"},
		notBefore: time.Now().Add(24 * time.Hour), notAfter: time.Now().Add(48 * time.Hour)})
	chained := inter.leaf(t, leafOpts{names: []string{"a.test"}})

	block, _ := pem.Decode(good.keyPEM)
	encryptedPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: block.Bytes})
	encryptedLegacy := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   block.Bytes})
	certDER, _ := pem.Decode(good.certPEM)
	brokenCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	brokenKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")})
	// Intermediate first, then the leaf: the key matches the second block.
	wrongOrder := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.cert.Raw}), chained.certPEM...)

	tests := []struct {
		name      string
		cert, key []byte // nil: file missing
		wantFile  string // "cert", "key" or "both"
		want      []string
		wantIs    error
	}{
		{name: "missing certificate", cert: nil, key: good.keyPEM, wantFile: "cert", want: []string{"read certificate", "no such file"}, wantIs: fs.ErrNotExist},
		{name: "missing key", cert: good.certPEM, key: nil, wantFile: "key", want: []string{"read key", "no such file"}, wantIs: fs.ErrNotExist},
		{name: "empty certificate", cert: []byte("\n"), key: good.keyPEM, wantFile: "cert", want: []string{"is empty"}},
		{name: "garbage certificate", cert: []byte("hello world"), key: good.keyPEM, wantFile: "cert", want: []string{`no PEM "CERTIFICATE" block`}},
		{name: "DER certificate", cert: certDER.Bytes, key: good.keyPEM, wantFile: "cert", want: []string{`no PEM "CERTIFICATE" block`}},
		{name: "corrupt certificate block", cert: brokenCert, key: good.keyPEM, wantFile: "cert", want: []string{"block #1"}},
		{name: "key file holds a certificate", cert: good.certPEM, key: good.certPEM, wantFile: "key", want: []string{"no PEM private key block"}},
		{name: "garbage key", cert: good.certPEM, key: []byte("-----BEGIN nothing"), wantFile: "key", want: []string{"no PEM private key block"}},
		{name: "corrupt key block", cert: good.certPEM, key: brokenKey, wantFile: "key", want: []string{"cannot parse", "PKCS#1, PKCS#8 or EC"}},
		{name: "encrypted PKCS#8 key", cert: good.certPEM, key: encryptedPKCS8, wantFile: "key", want: []string{"is encrypted; fronttier needs an unencrypted key"}},
		{name: "encrypted legacy PEM key", cert: good.certPEM, key: encryptedLegacy, wantFile: "key", want: []string{"is encrypted; fronttier needs an unencrypted key"}},
		{name: "key of another certificate", cert: good.certPEM, key: other.keyPEM, wantFile: "both", want: []string{"do not match"}},
		{name: "leaf not first", cert: wrongOrder, key: chained.keyPEM, wantFile: "both", want: []string{"certificate #2", "leaf certificate first"}},
		{name: "expired", cert: expired.certPEM, key: expired.keyPEM, wantFile: "cert",
			want: []string{"expired on " + expired.leaf.NotAfter.UTC().Format(time.RFC3339)}, wantIs: ErrExpired},
		{name: "not yet valid", cert: future.certPEM, key: future.keyPEM, wantFile: "cert", want: []string{"not valid until"}, wantIs: errNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certPath, keyPath := filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
			if tt.cert != nil {
				writeFile(t, certPath, tt.cert)
			}
			if tt.key != nil {
				writeFile(t, keyPath, tt.key)
			}
			c, err := LoadPair(certPath, keyPath, time.Now())
			if err == nil {
				t.Fatalf("LoadPair succeeded (%d certificates), want an error", len(c.Certificate))
			}
			msg := err.Error()
			want := append([]string(nil), tt.want...)
			switch tt.wantFile {
			case "cert":
				want = append(want, certPath)
			case "key":
				want = append(want, keyPath)
			case "both":
				want = append(want, certPath, keyPath)
			}
			if !containsAll(msg, want...) {
				t.Errorf("error %q\nwant it to contain %q", msg, want)
			}
			if tt.wantFile == "key" && strings.Contains(msg, certPath) {
				t.Errorf("error %q names the certificate for a key problem", msg)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestLoadPairKeyBundledWithCertificate(t *testing.T) {
	t.Parallel()
	p := newRoot(t).leaf(t, leafOpts{names: []string{"a.test"}})
	dir := t.TempDir()
	path := filepath.Join(dir, "combined.pem")
	writeFile(t, path, append(append([]byte(nil), p.certPEM...), p.keyPEM...))
	c, err := LoadPair(path, path, time.Now())
	if err != nil {
		t.Fatalf("LoadPair of a combined file: %v", err)
	}
	if len(c.Certificate) != 1 {
		t.Errorf("chain length %d, want 1 (the key block is not a certificate)", len(c.Certificate))
	}
}
