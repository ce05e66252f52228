package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPrepareBodyHTTP2NoBody: an HTTP/2 request whose stream ended with
// its HEADERS has a Body from golang.org/x/net/http2 and a ContentLength of
// 0; it is forwarded as bodiless, with no guard and no allocation.
func TestPrepareBodyHTTP2NoBody(t *testing.T) {
	h := New(Options{Routes: fixedRoutes{}, MaxBodyBytes: 1 << 20, BodyTimeout: time.Minute})
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.ProtoMajor, r.ContentLength = 2, 0
	body := io.NopCloser(strings.NewReader(""))
	r.Body = body
	allocs := testing.AllocsPerRun(100, func() {
		b, err := h.prepareBody(w, r)
		if err != nil || b.guard != nil || b.buf != nil {
			t.Fatalf("prepareBody = %+v, %v; want no body", b, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
	if r.Body != body {
		t.Error("the request's body was replaced")
	}
	// HTTP/1.1 with the same shape keeps the guard (its server gives
	// bodiless requests http.NoBody).
	r.ProtoMajor = 1
	if b, _ := h.prepareBody(w, r); b.guard == nil {
		t.Error("HTTP/1.1: no guard on a body of unknown end")
	}
}
