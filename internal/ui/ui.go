// Package ui is the operator dashboard served at /ui/ on the management
// listener: hand-written static files (index.html, app.js, app.css and an
// icon) embedded in the binary, with no framework and no build step. The
// files hold no data: the page reads and changes everything through the
// management API (/api/v1) with the user's bearer token, so the API's users
// and roles apply to it unchanged, and the shell itself is served without
// a token.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

//go:embed static
var static embed.FS

// authMarker is the attribute of index.html that tells the page whether the
// API asks for a token; New rewrites it when it does not.
const authMarker = `data-auth="token"`

// Options configures the dashboard.
type Options struct {
	// TokenRequired says the management API asks for a bearer token: the
	// page shows its sign-in form first instead of meeting a 401. (Not a
	// secret: any request to the API shows it.)
	TokenRequired bool
}

// Handler serves the dashboard's files under Prefix: GET and HEAD only,
// with an ETag, "Cache-Control: no-cache" (the browser revalidates, a new
// binary's files are never stale) and a strict Content-Security-Policy (no
// inline script or style, nothing from another origin, no framing).
type Handler struct {
	files map[string]file // by path under Prefix; "" is index.html
}

// file is one embedded file, ready to serve.
type file struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

var _ http.Handler = (*Handler)(nil)

// types are the dashboard's files and their content types: every file
// under static/ (ui_test.go checks there are no others).
var types = map[string]string{
	"index.html":  "text/html; charset=utf-8",
	"app.js":      "text/javascript; charset=utf-8",
	"app.css":     "text/css; charset=utf-8",
	"favicon.svg": "image/svg+xml",
}

// New returns the dashboard's handler.
func New(o Options) *Handler {
	h := &Handler{files: map[string]file{}}
	for name, ctype := range types {
		body, err := static.ReadFile("static/" + name)
		if err != nil {
			panic("ui: " + err.Error()) // compiled in: cannot happen (ui_test.go reads them)
		}
		if name == "index.html" && !o.TokenRequired {
			body = bytes.Replace(body, []byte(authMarker), []byte(`data-auth="none"`), 1)
		}
		sum := sha256.Sum256(body)
		h.files[name] = file{name: name, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	h.files[""] = h.files["index.html"]
	return h
}

// ServeHTTP serves Prefix's files; the prefix without its slash redirects
// to it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method "+r.Method+" not allowed; use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		target := Prefix
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	f, found := h.files[name]
	if !ok || !found {
		http.Error(w, "no such file: "+r.URL.Path, http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304, HEAD without a body.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}
