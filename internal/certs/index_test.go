package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// sniFixture is a Manager serving three file hosts and an exact host
// shadowed by a SAN of another certificate.
type sniFixture struct {
	m                  *Manager
	addr               string
	main, wild, api    pair
	shop, shopByOthers pair
}

func newSNIFixture(t *testing.T) *sniFixture {
	t.Helper()
	root := newRoot(t)
	dir := t.TempDir()
	f := &sniFixture{
		main: root.leaf(t, leafOpts{names: []string{"example.com", "www.example.com"}}),
		wild: root.leaf(t, leafOpts{names: []string{"*.wild.test"}, rsa: true}),
		api:  root.leaf(t, leafOpts{names: []string{"api.example.com"}}),
		// aaa.test's certificate also claims shop.test, which has its own
		// host: the host whose domain is the name wins.
		shopByOthers: root.leaf(t, leafOpts{names: []string{"aaa.test", "shop.test"}}),
		shop:         root.leaf(t, leafOpts{names: []string{"shop.test"}}),
	}
	f.m, _, _ = newTestManager(t, Options{})
	f.m.Sync([]Host{
		writePair(t, dir, "main", "example.com", f.main),
		writePair(t, dir, "wild", "*.wild.test", f.wild),
		writePair(t, dir, "api", "api.example.com", f.api),
		writePair(t, dir, "aaa", "aaa.test", f.shopByOthers),
		writePair(t, dir, "shop", "shop.test", f.shop),
		{Domain: "plain.test"}, // no source: ignored
	})
	f.m.SetDefault("example.com")
	f.addr = serveHTTPS(t, f.m)
	return f
}

func TestSNISelection(t *testing.T) {
	t.Parallel()
	f := newSNIFixture(t)
	tests := []struct {
		name string
		sni  string
		want pair
	}{
		{name: "exact configured domain", sni: "example.com", want: f.main},
		{name: "SAN other than the configured domain", sni: "www.example.com", want: f.main},
		{name: "exact beats wildcard parent", sni: "api.example.com", want: f.api},
		{name: "wildcard one label", sni: "a.wild.test", want: f.wild},
		{name: "wildcard does not cover two labels", sni: "a.b.wild.test", want: f.main},
		{name: "wildcard does not cover its apex", sni: "wild.test", want: f.main},
		{name: "unknown name gets the default", sni: "unknown.test", want: f.main},
		{name: "no SNI gets the default", sni: "", want: f.main},
		{name: "host named like the SAN wins", sni: "shop.test", want: f.shop},
		{name: "other SAN of the shadowing certificate", sni: "aaa.test", want: f.shopByOthers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := servedSerial(t, f.addr, tt.sni)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got.Cmp(tt.want.leaf.SerialNumber) != 0 {
				t.Errorf("served serial %v, want %v (%v)", got, tt.want.leaf.SerialNumber, tt.want.leaf.DNSNames)
			}
		})
	}
}

func TestGetCertificateNormalisesName(t *testing.T) {
	t.Parallel()
	f := newSNIFixture(t)
	tests := []struct {
		name string
		want pair
	}{
		{"WWW.Example.COM", f.main},
		{"www.example.com.", f.main},
		{"API.EXAMPLE.COM", f.api},
		{"A.WILD.TEST.", f.wild},
	}
	for _, tt := range tests {
		c, err := f.m.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.name})
		if err != nil {
			t.Fatalf("GetCertificate(%q): %v", tt.name, err)
		}
		if c.Leaf.SerialNumber.Cmp(tt.want.leaf.SerialNumber) != 0 {
			t.Errorf("GetCertificate(%q) = %v, want %v", tt.name, c.Leaf.DNSNames, tt.want.leaf.DNSNames)
		}
	}
}

func TestSNIMissFailsHandshake(t *testing.T) {
	t.Parallel()
	f := newSNIFixture(t)
	f.m.SetDefault("")
	for _, sni := range []string{"unknown.test", ""} {
		if _, err := peer(t, f.addr, sni); err == nil {
			t.Errorf("handshake with SNI %q succeeded without a default certificate", sni)
		}
		_, err := f.m.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if !errors.Is(err, ErrNoCertificate) {
			t.Errorf("GetCertificate(%q) error %v, want ErrNoCertificate", sni, err)
		}
	}
	// A default naming a host without a certificate serves nothing either.
	f.m.SetDefault("nothing.test")
	if _, err := peer(t, f.addr, "unknown.test"); err == nil {
		t.Error("handshake succeeded with a default that has no certificate")
	}
	// The default follows SetDefault.
	f.m.SetDefault("API.example.com.")
	if err := wantSerial(t, f.addr, "unknown.test", f.api)(); err != nil {
		t.Error(err)
	}
}

func TestChainServedAndVerified(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	inter := root.intermediate(t)
	p := inter.leaf(t, leafOpts{names: []string{"chain.test"}, chain: []*testCA{inter}})
	m, _, _ := newTestManager(t, Options{})
	m.Sync([]Host{writePair(t, t.TempDir(), "chain", "chain.test", p)})
	addr := serveHTTPS(t, m)

	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "chain.test", RootCAs: root.pool()})
	if err != nil {
		t.Fatalf("verified handshake: %v", err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if len(st.PeerCertificates) != 2 {
		t.Fatalf("server sent %d certificates, want leaf and intermediate", len(st.PeerCertificates))
	}
	if !st.PeerCertificates[1].Equal(inter.cert) {
		t.Errorf("second certificate is %v, want the intermediate", st.PeerCertificates[1].Subject)
	}
	if st.NegotiatedProtocol != "" {
		t.Errorf("negotiated %q without ALPN offer", st.NegotiatedProtocol)
	}
}

func TestTLSConfigPolicy(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	m, _, _ := newTestManager(t, Options{})
	ec := root.leaf(t, leafOpts{names: []string{"ec.test"}})
	rs := root.leaf(t, leafOpts{names: []string{"rsa.test"}, rsa: true, keyForm: "pkcs8"})
	dir := t.TempDir()
	m.Sync([]Host{writePair(t, dir, "ec", "ec.test", ec), writePair(t, dir, "rsa", "rsa.test", rs)})
	addr := serveHTTPS(t, m)

	cfg := m.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("weak or non-forward-secret suite %s enabled", name)
		}
	}
	if fmt.Sprint(cfg.NextProtos) != "[h2 http/1.1]" {
		t.Errorf("NextProtos %v", cfg.NextProtos)
	}

	var weak []uint16
	for _, s := range tls.InsecureCipherSuites() {
		weak = append(weak, s.ID)
	}
	for _, s := range tls.CipherSuites() {
		if strings.Contains(s.Name, "_CBC_") || strings.HasPrefix(s.Name, "TLS_RSA_") {
			weak = append(weak, s.ID)
		}
	}
	tests := []struct {
		name   string
		sni    string
		client *tls.Config
		wantOK bool
		wantH2 bool
	}{
		{name: "tls1.3 ecdsa", sni: "ec.test", client: &tls.Config{}, wantOK: true},
		{name: "tls1.2 ecdsa gcm", sni: "ec.test", client: &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, wantOK: true},
		{name: "tls1.2 rsa chacha", sni: "rsa.test", client: &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}}, wantOK: true},
		{name: "h2 negotiated", sni: "ec.test", client: &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, wantOK: true, wantH2: true},
		{name: "tls1.1 refused", sni: "ec.test", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
		{name: "tls1.2 cbc and rsa kex refused", sni: "rsa.test", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: weak}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.client.Clone()
			c.ServerName, c.InsecureSkipVerify = tt.sni, true
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
			if err != nil {
				if tt.wantOK {
					t.Fatalf("handshake: %v", err)
				}
				return
			}
			defer conn.Close()
			if !tt.wantOK {
				t.Fatalf("handshake succeeded with %s / %s", tls.VersionName(conn.ConnectionState().Version),
					tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
			}
			if got := conn.ConnectionState().NegotiatedProtocol == "h2"; got != tt.wantH2 {
				t.Errorf("h2 negotiated = %v, want %v", got, tt.wantH2)
			}
		})
	}
}

// fakeACME answers TLS-ALPN-01 handshakes for one domain and records
// reloads.
type fakeACME struct {
	domain string
	cert   *tls.Certificate
	reload func(domain string) error
}

func (f *fakeACME) Reload(domain string) error { return f.reload(domain) }

func (f *fakeACME) ALPN(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == f.domain {
		return f.cert, nil
	}
	return nil, nil
}

func TestACMEALPNHook(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	normal := root.leaf(t, leafOpts{names: []string{"le.test"}})
	challenge := root.leaf(t, leafOpts{names: []string{"le.test"}})
	challengeCert, err := tls.X509KeyPair(challenge.certPEM, challenge.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ := newTestManager(t, Options{})
	m.Sync([]Host{{Domain: "le.test", Source: SourceLetsEncrypt}})
	normalCert, err := tls.X509KeyPair(normal.certPEM, normal.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m.Put("le.test", &normalCert)
	addr := serveHTTPS(t, m)

	dialALPN := func(sni string, protos ...string) (tls.ConnectionState, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, NextProtos: protos, InsecureSkipVerify: true}) //nolint:gosec // inspects the served certificate
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}

	// Without a hook, an acme-tls/1-only client gets no protocol.
	if _, err := dialALPN("le.test", acmeTLSProto); err == nil {
		t.Error("acme-tls/1 handshake succeeded with no ACME hook")
	}

	m.SetACME(&fakeACME{domain: "le.test", cert: &challengeCert})
	st, err := dialALPN("le.test", acmeTLSProto)
	if err != nil {
		t.Fatalf("acme-tls/1 handshake: %v", err)
	}
	if st.NegotiatedProtocol != acmeTLSProto {
		t.Errorf("negotiated %q, want %q", st.NegotiatedProtocol, acmeTLSProto)
	}
	if st.PeerCertificates[0].SerialNumber.Cmp(challenge.leaf.SerialNumber) != 0 {
		t.Error("challenge handshake did not get the ACME certificate")
	}
	// Ordinary handshakes are untouched.
	st, err = dialALPN("le.test", "h2", "http/1.1")
	if err != nil {
		t.Fatalf("normal handshake: %v", err)
	}
	if st.PeerCertificates[0].SerialNumber.Cmp(normal.leaf.SerialNumber) != 0 {
		t.Error("normal handshake got the challenge certificate")
	}
	// GetCertificate consults the hook too, and falls through on nil.
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "le.test", SupportedProtos: []string{acmeTLSProto}})
	if err != nil || c != &challengeCert {
		t.Errorf("GetCertificate for acme-tls/1 = %p, %v; want the hook's certificate", c, err)
	}
	c, err = m.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.test", SupportedProtos: []string{acmeTLSProto}})
	if err == nil {
		t.Errorf("GetCertificate for an unknown acme-tls/1 name = %v, want a miss", c.Leaf.DNSNames)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	f := newSNIFixture(t)
	tests := []struct {
		domain string
		want   bool
	}{
		{"example.com", true},
		{"WWW.example.com.", true},
		{"x.wild.test", true},
		{"*.wild.test", true},
		{"*.example.com", false},
		{"x.y.wild.test", false},
		{"unknown.test", false}, // the default does not count
		{"plain.test", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := f.m.Ready(tt.domain); got != tt.want {
			t.Errorf("Ready(%q) = %v, want %v", tt.domain, got, tt.want)
		}
	}
}

func TestGetCertificateDoesNotAllocate(t *testing.T) {
	f := newSNIFixture(t)
	for _, name := range []string{"www.example.com", "a.wild.test", "unknown.test"} {
		hello := &tls.ClientHelloInfo{ServerName: name, SupportedProtos: []string{"h2", "http/1.1"}}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := f.m.GetCertificate(hello); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("GetCertificate(%q) allocates %v times per call, want 0", name, allocs)
		}
	}
}

// BenchmarkGetCertificate looks up among 10,000 hosts (and as many SAN
// names), half exact, the rest wildcard, from parallel goroutines.
func BenchmarkGetCertificate(b *testing.B) {
	root := newRoot(b)
	p := root.leaf(b, leafOpts{names: []string{"shared.bench"}})
	cert, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	m := New(Options{})
	const n = 10000
	hellos := make([]*tls.ClientHelloInfo, 0, n)
	m.mu.Lock()
	for i := range n {
		d := fmt.Sprintf("host%d.bench.example", i)
		sni := d
		if i%2 == 1 {
			d = "*." + d
			sni = "www." + sni
		}
		e := &entry{host: Host{Domain: d, Source: SourceLetsEncrypt}}
		e.setChains([]chain{{cert: &cert, keyType: KeyECDSA, source: SourceACME}})
		m.hosts[d] = e
		hellos = append(hellos, &tls.ClientHelloInfo{ServerName: sni})
	}
	m.rebuildLocked()
	m.mu.Unlock()
	if s := m.snap.Load(); len(s.exact)+len(s.wild) < n {
		b.Fatalf("index has %d names, want at least %d", len(s.exact)+len(s.wild), n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if c, err := m.GetCertificate(hellos[i%n]); err != nil || c == nil {
				b.Fatalf("miss for %q: %v", hellos[i%n].ServerName, err)
			}
			i++
		}
	})
}
