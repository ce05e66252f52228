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
// both maps, which hold this node's own challenges. In a fleet, shared
// publishes them to the other nodes and finds theirs, so that whichever
// node the CA reaches answers; it is nil on a node alone.
type challenges struct {
	mu     sync.RWMutex
	http   map[string]string        // token -> key authorization
	alpn   map[string]alpnChallenge // domain -> certificate
	shared sharedChallenges
}

// sharedChallenges keeps the answers to the challenges of every node of
// a fleet (implemented by fleet, in etcd).
type sharedChallenges interface {
	// put publishes keyAuth as the answer to k until remove, or until this
	// node's session ends.
	put(ctx context.Context, k challengeKey, keyAuth string) error
	// remove withdraws the answer to k if it is still keyAuth.
	remove(ctx context.Context, k challengeKey, keyAuth string) error
	// get returns the answer to k, published by any node.
	get(ctx context.Context, k challengeKey) (keyAuth string, ok bool)
}

// challengeKey names a challenge: by its token for HTTP-01, by its domain
// for TLS-ALPN-01 (the CA's handshake names the domain, not the token).
type challengeKey struct {
	alpn bool
	name string
}

type alpnChallenge struct {
	token string
	cert  *tls.Certificate
}

func newChallenges() *challenges {
	return &challenges{http: make(map[string]string), alpn: make(map[string]alpnChallenge)}
}

// keyAuthorization returns the answer to the HTTP-01 challenge of token:
// this node's, else the fleet's.
func (c *challenges) keyAuthorization(ctx context.Context, token string) (string, bool) {
	c.mu.RLock()
	ka, ok := c.http[token]
	c.mu.RUnlock()
	if ok || c.shared == nil {
		return ka, ok
	}
	return c.shared.get(ctx, challengeKey{name: token})
}

// alpnCert returns the certificate answering the TLS-ALPN-01 challenge of
// domain: this node's, else one made from the fleet's answer; nil when
// there is no challenge.
func (c *challenges) alpnCert(ctx context.Context, domain string) *tls.Certificate {
	c.mu.RLock()
	cert := c.alpn[domain].cert
	c.mu.RUnlock()
	if cert != nil || c.shared == nil {
		return cert
	}
	keyAuth, ok := c.shared.get(ctx, challengeKey{alpn: true, name: domain})
	if !ok {
		return nil
	}
	cert, err := acmez.TLSALPN01ChallengeCert(acmeproto.Challenge{
		Type:             acmeproto.ChallengeTypeTLSALPN01,
		Identifier:       acmeproto.Identifier{Type: "dns", Value: domain},
		KeyAuthorization: keyAuth,
	})
	if err != nil {
		return nil
	}
	return cert
}

// http01Solver presents HTTP-01 challenges through challengeHandler.
type http01Solver struct{ c *challenges }

var _ acmez.Solver = http01Solver{}

func (s http01Solver) Present(ctx context.Context, chal acmeproto.Challenge) error {
	if !validToken(chal.Token) {
		return fmt.Errorf("present http-01 challenge: malformed token %q", chal.Token)
	}
	s.c.mu.Lock()
	s.c.http[chal.Token] = chal.KeyAuthorization
	s.c.mu.Unlock()
	if s.c.shared != nil {
		if err := s.c.shared.put(ctx, challengeKey{name: chal.Token}, chal.KeyAuthorization); err != nil {
			return fmt.Errorf("present http-01 challenge: %w", err)
		}
	}
	return nil
}

func (s http01Solver) CleanUp(ctx context.Context, chal acmeproto.Challenge) error {
	s.c.mu.Lock()
	delete(s.c.http, chal.Token)
	s.c.mu.Unlock()
	if s.c.shared != nil {
		return s.c.shared.remove(ctx, challengeKey{name: chal.Token}, chal.KeyAuthorization)
	}
	return nil
}

// tlsALPN01Solver presents TLS-ALPN-01 challenges through Manager.ALPN.
type tlsALPN01Solver struct{ c *challenges }

var _ acmez.Solver = tlsALPN01Solver{}

func (s tlsALPN01Solver) Present(ctx context.Context, chal acmeproto.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(chal)
	if err != nil {
		return fmt.Errorf("present tls-alpn-01 challenge for %s: %w", chal.Identifier.Value, err)
	}
	name := strings.ToLower(chal.Identifier.Value)
	s.c.mu.Lock()
	s.c.alpn[name] = alpnChallenge{token: chal.Token, cert: cert}
	s.c.mu.Unlock()
	if s.c.shared != nil {
		if err := s.c.shared.put(ctx, challengeKey{alpn: true, name: name}, chal.KeyAuthorization); err != nil {
			return fmt.Errorf("present tls-alpn-01 challenge for %s: %w", name, err)
		}
	}
	return nil
}

func (s tlsALPN01Solver) CleanUp(ctx context.Context, chal acmeproto.Challenge) error {
	name := strings.ToLower(chal.Identifier.Value)
	s.c.mu.Lock()
	if s.c.alpn[name].token == chal.Token {
		delete(s.c.alpn, name)
	}
	s.c.mu.Unlock()
	if s.c.shared != nil {
		return s.c.shared.remove(ctx, challengeKey{alpn: true, name: name}, chal.KeyAuthorization)
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
	keyAuth, ok := h.c.keyAuthorization(r.Context(), token)
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
