package acme

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	acmeproto "github.com/mholt/acmez/v3/acme"
)

func TestHTTPHandler(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, nil)
	valid := strings.Repeat("a", maxTokenLen)
	for _, tok := range []string{"abc_DEF-123", valid} {
		if err := (http01Solver{tm.chal}).Present(context.Background(), acmeproto.Challenge{Token: tok, KeyAuthorization: tok + ".thumb"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := (http01Solver{tm.chal}).Present(context.Background(), acmeproto.Challenge{Token: "mal.formed", KeyAuthorization: "ka"}); err == nil {
		t.Error("Present accepted a malformed token")
	}
	h := tm.HTTPHandler()

	tests := []struct {
		name, method, target string
		wantStatus           int
		wantBody             string
	}{
		{name: "pending token", method: http.MethodGet, target: ChallengePath + "abc_DEF-123", wantStatus: 200, wantBody: "abc_DEF-123.thumb"},
		{name: "longest token", method: http.MethodGet, target: ChallengePath + valid, wantStatus: 200, wantBody: valid + ".thumb"},
		{name: "head", method: http.MethodHead, target: ChallengePath + "abc_DEF-123", wantStatus: 200},
		{name: "unknown token", method: http.MethodGet, target: ChallengePath + "unknown", wantStatus: 404},
		{name: "empty token", method: http.MethodGet, target: ChallengePath, wantStatus: 404},
		{name: "too long", method: http.MethodGet, target: ChallengePath + valid + "a", wantStatus: 404},
		{name: "dot", method: http.MethodGet, target: ChallengePath + "abc.def", wantStatus: 404},
		{name: "padding", method: http.MethodGet, target: ChallengePath + "abc=", wantStatus: 404},
		{name: "slash", method: http.MethodGet, target: ChallengePath + "abc/def", wantStatus: 404},
		{name: "escaped slash", method: http.MethodGet, target: ChallengePath + "abc%2Fdef", wantStatus: 404},
		{name: "dot dot", method: http.MethodGet, target: ChallengePath + "..", wantStatus: 404},
		{name: "plus", method: http.MethodGet, target: ChallengePath + "ab+c", wantStatus: 404},
		{name: "other path", method: http.MethodGet, target: "/abc_DEF-123", wantStatus: 404},
		{name: "prefix without slash", method: http.MethodGet, target: "/.well-known/acme-challengeabc", wantStatus: 404},
		{name: "post", method: http.MethodPost, target: ChallengePath + "abc_DEF-123", wantStatus: 405},
		{name: "post malformed", method: http.MethodPost, target: ChallengePath + "a.b", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "http://a.example.test"+tt.target, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if rec.Header().Get("Location") != "" {
				t.Errorf("redirected to %s", rec.Header().Get("Location"))
			}
			if tt.wantStatus == 200 && tt.method == http.MethodGet && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
		})
	}

	t.Run("cleaned up", func(t *testing.T) {
		if err := (http01Solver{tm.chal}).CleanUp(context.Background(), acmeproto.Challenge{Token: "abc_DEF-123"}); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, ChallengePath+"abc_DEF-123", nil))
		if rec.Code != 404 {
			t.Errorf("status after CleanUp = %d, want 404", rec.Code)
		}
	})
}

func TestALPN(t *testing.T) {
	t.Parallel()
	tm := newTestManager(t, nil, nil)
	tm.Sync([]string{"pending.example.test", "managed.example.test"})
	chal := acmeproto.Challenge{
		Type:             acmeproto.ChallengeTypeTLSALPN01,
		Token:            "tok",
		KeyAuthorization: "tok.thumb",
		Identifier:       acmeproto.Identifier{Type: "dns", Value: "pending.example.test"},
	}
	solver := tlsALPN01Solver{tm.chal}
	if err := solver.Present(context.Background(), chal); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		serverName string
		protos     []string
		want       bool
	}{
		{name: "challenge", serverName: "pending.example.test", protos: []string{ALPNProto}, want: true},
		{name: "case and dot", serverName: "Pending.Example.Test.", protos: []string{ALPNProto}, want: true},
		{name: "among other protocols", serverName: "pending.example.test", protos: []string{"h2", ALPNProto}, want: true},
		{name: "no acme protocol", serverName: "pending.example.test", protos: []string{"h2", "http/1.1"}},
		{name: "no protocols", serverName: "pending.example.test"},
		{name: "managed without challenge", serverName: "managed.example.test", protos: []string{ALPNProto}},
		{name: "unknown name", serverName: "unknown.example.test", protos: []string{ALPNProto}},
		{name: "no server name", protos: []string{ALPNProto}},
		{name: "ip", serverName: "127.0.0.1", protos: []string{ALPNProto}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := tm.ALPN(&tls.ClientHelloInfo{ServerName: tt.serverName, SupportedProtos: tt.protos})
			if err != nil {
				t.Fatal(err)
			}
			if got := cert != nil; got != tt.want {
				t.Fatalf("certificate returned = %v, want %v", got, tt.want)
			}
			if cert != nil {
				if err := cert.Leaf.VerifyHostname("pending.example.test"); err != nil {
					t.Error(err)
				}
			}
		})
	}

	t.Run("cleaned up", func(t *testing.T) {
		if err := solver.CleanUp(context.Background(), chal); err != nil {
			t.Fatal(err)
		}
		cert, err := tm.ALPN(&tls.ClientHelloInfo{ServerName: "pending.example.test", SupportedProtos: []string{ALPNProto}})
		if cert != nil || err != nil {
			t.Errorf("ALPN after CleanUp = %v, %v; want nil, nil", cert, err)
		}
	})
	if cert, err := tm.ALPN(nil); cert != nil || err != nil {
		t.Errorf("ALPN(nil) = %v, %v", cert, err)
	}
}
