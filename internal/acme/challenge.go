package acme

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"
)

// ChallengePath is the URL path prefix of HTTP-01 challenges (RFC 8555 §8.3).
const ChallengePath = "/.well-known/acme-challenge/"

// maxTokenLen bounds the tokens HTTPHandler accepts; CAs use 43 characters.
const maxTokenLen = 128

// challenges holds the responses to the challenges being solved. mu guards
// both maps.
type challenges struct {
	mu   sync.RWMutex
	http map[string]string        // token -> key authorization
	alpn map[string]alpnChallenge // domain -> certificate
}

type alpnChallenge struct {
	token string
	cert  *tls.Certificate
}

func newChallenges() *challenges {
	return &challenges{http: make(map[string]string), alpn: make(map[string]alpnChallenge)}
}

func (c *challenges) keyAuthorization(token string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ka, ok := c.http[token]
	return ka, ok
}

func (c *challenges) alpnCert(domain string) *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.alpn[domain].cert
}

// http01Solver presents HTTP-01 challenges through challengeHandler.
type http01Solver struct{ c *challenges }

var _ acmez.Solver = http01Solver{}

func (s http01Solver) Present(_ context.Context, chal acmeproto.Challenge) error {
	if !validToken(chal.Token) {
		return fmt.Errorf("present http-01 challenge: malformed token %q", chal.Token)
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.http[chal.Token] = chal.KeyAuthorization
	return nil
}

func (s http01Solver) CleanUp(_ context.Context, chal acmeproto.Challenge) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	delete(s.c.http, chal.Token)
	return nil
}

// tlsALPN01Solver presents TLS-ALPN-01 challenges through Manager.ALPN.
type tlsALPN01Solver struct{ c *challenges }

var _ acmez.Solver = tlsALPN01Solver{}

func (s tlsALPN01Solver) Present(_ context.Context, chal acmeproto.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(chal)
	if err != nil {
		return fmt.Errorf("present tls-alpn-01 challenge for %s: %w", chal.Identifier.Value, err)
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.alpn[strings.ToLower(chal.Identifier.Value)] = alpnChallenge{token: chal.Token, cert: cert}
	return nil
}

func (s tlsALPN01Solver) CleanUp(_ context.Context, chal acmeproto.Challenge) error {
	name := strings.ToLower(chal.Identifier.Value)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.alpn[name].token == chal.Token {
		delete(s.c.alpn, name)
	}
	return nil
}

// challengeHandler answers GET and HEAD ChallengePath{token} with the key
// authorization of a pending HTTP-01 challenge.
type challengeHandler struct{ c *challenges }

func (h challengeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, ChallengePath)
	if !ok || !validToken(token) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	keyAuth, ok := h.c.keyAuthorization(token)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(keyAuth))
}

// validToken reports whether token is 1 to maxTokenLen characters of the
// base64url alphabet, as RFC 8555 §8.3 requires.
func validToken(token string) bool {
	if len(token) == 0 || len(token) > maxTokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		switch b := token[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}
