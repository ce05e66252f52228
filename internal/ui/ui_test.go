package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFiles checks each file is served with its type, an ETag, no-cache
// and the security headers, and answers a matching If-None-Match with 304.
func TestFiles(t *testing.T) {
	t.Parallel()
	h := New(Options{TokenRequired: true})
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/ui/", "text/html; charset=utf-8", `<script src="app.js"`},
		{"/ui/index.html", "text/html; charset=utf-8", `<table id="domains">`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "'use strict';"},
		{"/ui/app.css", "text/css; charset=utf-8", "table {"},
		{"/ui/favicon.svg", "image/svg+xml", "<svg"},
	} {
		r := serve(t, h, http.MethodGet, tc.path, nil)
		b := body(t, r)
		if r.StatusCode != http.StatusOK || !strings.Contains(b, tc.contains) {
			t.Errorf("GET %s: %d, body without %q", tc.path, r.StatusCode, tc.contains)
		}
		want := map[string]string{
			"Content-Type":            tc.ctype,
			"Cache-Control":           "no-cache",
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("GET %s: %s %q, want %q", tc.path, k, got, v)
			}
		}
		etag := r.Header.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{16}"$`).MatchString(etag) {
			t.Errorf("GET %s: ETag %q", tc.path, etag)
		}
		r = serve(t, h, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag})
		if r.StatusCode != http.StatusNotModified || body(t, r) != "" {
			t.Errorf("GET %s with If-None-Match its ETag: %d, want 304 without a body", tc.path, r.StatusCode)
		}
		r = serve(t, h, http.MethodHead, tc.path, nil)
		if r.StatusCode != http.StatusOK || body(t, r) != "" || r.Header.Get("ETag") != etag {
			t.Errorf("HEAD %s: %d, want 200 with the ETag and no body", tc.path, r.StatusCode)
		}
	}
}

// TestRefused checks other methods, paths outside the files, and the
// redirect of /ui.
func TestRefused(t *testing.T) {
	t.Parallel()
	h := New(Options{})
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/ui/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/ui/app.js", http.StatusMethodNotAllowed},
		{http.MethodGet, "/ui/nope.js", http.StatusNotFound},
		{http.MethodGet, "/ui/static/app.js", http.StatusNotFound},
		{http.MethodGet, "/ui/../ui/app.js", http.StatusNotFound},
		{http.MethodGet, "/other", http.StatusNotFound},
		{http.MethodGet, "/ui", http.StatusMovedPermanently},
	} {
		r := serve(t, h, tc.method, tc.path, nil)
		if r.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, r.StatusCode, tc.code)
		}
		if tc.code == http.StatusMethodNotAllowed && r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, r.Header.Get("Allow"))
		}
		if r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: no X-Frame-Options", tc.method, tc.path)
		}
	}
	if r := serve(t, h, http.MethodGet, "/ui?x=1", nil); r.Header.Get("Location") != "/ui/?x=1" {
		t.Errorf("GET /ui?x=1: Location %q, want /ui/?x=1", r.Header.Get("Location"))
	}
}

// TestAuthAttribute checks the page is told whether the API asks for a
// token.
func TestAuthAttribute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		required bool
		want     string
	}{{true, `<html lang="en" data-auth="token">`}, {false, `<html lang="en" data-auth="none">`}} {
		if b := body(t, serve(t, New(Options{TokenRequired: tc.required}), http.MethodGet, "/ui/", nil)); !strings.Contains(b, tc.want) {
			t.Errorf("TokenRequired %v: the page has no %s", tc.required, tc.want)
		}
	}
}

// TestStaticFiles checks every embedded file is served (types lists it),
// that the page needs nothing the Content-Security-Policy refuses (inline
// script or style, event handler attributes, another origin), and that
// the files stay small.
func TestStaticFiles(t *testing.T) {
	t.Parallel()
	total := 0
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		if _, ok := types[name]; !ok {
			t.Errorf("%s is embedded but not served: add it to types", name)
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		total += len(b)
		s := string(b)
		for _, bad := range []*regexp.Regexp{
			regexp.MustCompile(`<script(\s[^>]*)?>[^<\s]`), // inline script
			regexp.MustCompile(`<style`),
			regexp.MustCompile(`\sstyle=`),
			regexp.MustCompile(`\son[a-z]+=`),
			regexp.MustCompile(`(src|href)="(https?:)?//`),
			regexp.MustCompile(`javascript:`),
		} {
			if loc := bad.FindStringIndex(s); loc != nil {
				t.Errorf("%s has %q, which the Content-Security-Policy refuses", name, s[loc[0]:loc[1]])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(types) != 4 {
		t.Errorf("types lists %d files; the test expects index.html, app.js, app.css and favicon.svg", len(types))
	}
	const limit = 60 << 10
	if total > limit {
		t.Errorf("the dashboard's files are %d bytes, over %d: keep it small", total, limit)
	}
	t.Logf("dashboard files: %d bytes", total)
}
