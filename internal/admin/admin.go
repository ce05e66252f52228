// Package admin is the REST management API under /api/v1: domains,
// backends, the A/B switch, canaries, health, metrics and certificates;
// it also serves the dashboard (internal/ui) under /ui/. Handlers return
// errors; one adapter (serve) turns them into JSON {"error": ...}
// answers with the status their kind calls for.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/route"
	"fronttier/internal/state"
	"fronttier/internal/ui"
)

// Store is the authoritative state the API reads and changes.
type Store interface {
	Config() *config.Config
	// Table is the route table in force, which explain decides with.
	Table() *route.Table
	Backend(id string) *backend.Backend
	AddDomain(v config.VirtualHost) (config.VirtualHost, error)
	// The changes below apply only when their check (nil: none) passes;
	// the store runs it inside the change, atomically with it.
	UpdateDomainIf(domain string, check state.DomainCheck, edit func(v *config.VirtualHost) error, force bool) (config.VirtualHost, error)
	SwitchIf(domain string, check state.DomainCheck, tag string, force bool) (config.VirtualHost, error)
	SetCanaryIf(domain string, check state.DomainCheck, c config.Canary, force bool) (config.VirtualHost, error)
	ClearCanaryIf(domain string, check state.DomainCheck) (config.VirtualHost, error)
	DeleteDomainIf(domain string, check state.DomainCheck) error
	AddBackend(b config.Backend) (config.Backend, error)
	UpdateBackendIf(id string, check state.BackendCheck, edit func(b *config.Backend) error, force bool) (config.Backend, error)
	DeleteBackendIf(id string, check state.BackendCheck, force bool) error
}

var _ Store = (*state.Store)(nil)

// Certificates lists and reloads the certificates in use.
type Certificates interface {
	// List returns one JSON-encodable entry per certificate, sorted by
	// domain.
	List() any
	// Reload re-reads the certificate of domain now.
	Reload(domain string) error
}

// CertificateRenewer is implemented by Certificates that can renew ACME
// certificates on request; without it POST .../renew answers 501.
type CertificateRenewer interface {
	// Renew starts a new ACME order for domain's certificate and returns
	// the domain's entry (as List shows it) once the renewal is under way.
	// Its errors carry their status (*Error): 404 for a domain without a
	// certificate, 409 for one whose certificate is not from ACME.
	Renew(domain string) (any, error)
}

// Options configures the API. Store is required.
type Options struct {
	Store   Store
	Certs   Certificates // nil: no certificates
	Metrics http.Handler // nil: /api/v1/metrics answers 404
	Cluster Cluster      // nil: /api/v1/cluster answers 404
	Log     *slog.Logger
	// Token, when not empty, is the bearer token every request but
	// GET /api/v1/health must carry ("Authorization: Bearer <token>");
	// others get 401. Empty means the API asks for none. It is the admin
	// user config.TokenUserName.
	Token string
	// Users are the API's users besides Token's (see config.APIUser):
	// with Token or any user, every request but GET /api/v1/health needs
	// the token of one of them and is limited by its role and domains
	// (see auth.go); others get 401, refused ones 403.
	Users []config.APIUser
	// Audit, when not nil, gets one JSON line per change the API accepted
	// (see audit.go), in one Write each.
	Audit io.Writer
	// Rollouts starts and moves rollouts; nil: their changes answer 404.
	Rollouts Rollouts
	// Stats are the proxy's own per-tag counts; nil: GET /api/v1/stats
	// answers 404.
	Stats Stats
}

// maxBody bounds a request body; larger ones get 413.
const maxBody = 1 << 20

// API is the management API's http.Handler.
type API struct {
	o     Options
	users []user // from Options.Token and Options.Users; none: no authentication
	mux   *http.ServeMux
	h     http.Handler // authorize, then mux
	ui    http.Handler // the dashboard, under ui.Prefix
}

// New returns the API handler.
func New(o Options) *API {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := &API{o: o, mux: http.NewServeMux()}
	a.users = newUsers(o.Token, o.Users)
	a.ui = ui.New(ui.Options{TokenRequired: len(a.users) > 0})
	a.h = a.serve(func(w http.ResponseWriter, r *http.Request) error {
		r, err := a.authorize(w, r)
		if err != nil {
			return err
		}
		if err := canonicalPath(r); err != nil {
			return err
		}
		a.audited(w, r, a.mux)
		return nil
	})
	a.route("/api/v1/health", methods{http.MethodGet: a.health})
	a.route("/api/v1/metrics", methods{http.MethodGet: a.metrics})
	a.route("/api/v1/openapi.json", methods{http.MethodGet: a.openapi})
	a.route("/api/v1/domains", methods{http.MethodGet: a.listDomains, http.MethodPost: a.addDomain})
	a.route("/api/v1/domains/{domain}", methods{
		http.MethodGet: a.getDomain, http.MethodPut: a.updateDomain, http.MethodDelete: a.deleteDomain,
	})
	a.route("/api/v1/domains/{domain}/switch", methods{http.MethodPost: a.switchDomain})
	a.route("/api/v1/domains/{domain}/canary", methods{http.MethodPut: a.putCanary, http.MethodDelete: a.deleteCanary})
	a.route("/api/v1/domains/{domain}/explain", methods{http.MethodPost: a.explain})
	a.route("/api/v1/domains/{domain}/rollout", methods{http.MethodGet: a.getRollout, http.MethodPost: a.startRollout})
	a.route("/api/v1/domains/{domain}/rollout/pause", methods{http.MethodPost: a.rolloutAction(Rollouts.Pause)})
	a.route("/api/v1/domains/{domain}/rollout/resume", methods{http.MethodPost: a.rolloutAction(Rollouts.Resume)})
	a.route("/api/v1/domains/{domain}/rollout/promote", methods{http.MethodPost: a.rolloutAction(Rollouts.Promote)})
	a.route("/api/v1/domains/{domain}/rollout/abort", methods{http.MethodPost: a.rolloutAction(Rollouts.Abort)})
	a.route("/api/v1/backends", methods{http.MethodGet: a.listBackends, http.MethodPost: a.addBackend})
	a.route("/api/v1/backends/{id}", methods{
		http.MethodGet: a.getBackend, http.MethodPut: a.updateBackend, http.MethodDelete: a.deleteBackend,
	})
	a.route("/api/v1/cluster", methods{http.MethodGet: a.cluster})
	a.route("/api/v1/stats", methods{http.MethodGet: a.stats})
	a.route("/api/v1/certificates", methods{http.MethodGet: a.listCertificates})
	a.route("/api/v1/certificates/{domain}/reload", methods{http.MethodPost: a.reloadCertificate})
	a.route("/api/v1/certificates/{domain}/renew", methods{http.MethodPost: a.renewCertificate})
	a.mux.Handle("/", a.serve(func(_ http.ResponseWriter, r *http.Request) error {
		return notFound("no such endpoint: %s", r.URL.Path)
	}))
	return a
}

// ServeHTTP serves the API, and the dashboard under /ui/: its files hold
// no data and are served without a token; the page calls the API with one.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == strings.TrimSuffix(ui.Prefix, "/") || strings.HasPrefix(r.URL.Path, ui.Prefix) {
		a.ui.ServeHTTP(w, r)
		return
	}
	a.h.ServeHTTP(w, r)
}

// canonicalPath refuses a request path with empty, "." or ".." segments
// (as sent, before percent-decoding). ServeMux would answer those with a
// redirect to the cleaned path, which turns a mistyped or hostile write into
// one on another resource; the API answers 404 instead.
func canonicalPath(r *http.Request) error {
	p := r.URL.EscapedPath()
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/" // a trailing slash is kept; the mux's catch-all answers it
	}
	if !strings.HasPrefix(p, "/") || clean != p {
		return notFound("no such endpoint: %q (use the path without empty, \".\" or \"..\" segments)", p)
	}
	return nil
}

// handlerFunc is an API endpoint: it writes its answer, or returns an error
// for serve to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods maps HTTP methods to the endpoints of one path.
type methods map[string]handlerFunc

func (a *API) route(pattern string, m methods) {
	allow := make([]string, 0, len(m)+1)
	for k := range m {
		allow = append(allow, k)
	}
	if _, ok := m[http.MethodGet]; ok {
		if _, ok := m[http.MethodHead]; !ok {
			allow = append(allow, http.MethodHead) // served by the GET endpoint
		}
	}
	allowed := strings.Join(sortStrings(allow), ", ")
	a.mux.Handle(pattern, a.serve(func(w http.ResponseWriter, r *http.Request) error {
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", allowed)
			return &Error{Code: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("method %s not allowed; use %s", r.Method, allowed)}
		}
		return h(w, r)
	}))
}

// Error is an API error with its HTTP status.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &Error{Code: http.StatusNotFound, Msg: fmt.Sprintf(format, args...)}
}

// serve adapts an endpoint to http.Handler, writing its error as JSON.
func (a *API) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		code := status(err)
		if code >= 500 {
			a.o.Log.Error("management API request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		}
		writeJSON(w, code, map[string]string{"error": message(err)})
	})
}

// status maps an error to its HTTP status; the only place that does.
func status(err error) int {
	var apiErr *Error
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &apiErr):
		return apiErr.Code
	case errors.As(err, &maxErr):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, state.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, state.ErrExists), errors.Is(err, state.ErrConflict):
		// Before ErrInvalid: a stored state that cannot be applied (a hand
		// edit) is a conflict even when what is wrong with it is invalid.
		return http.StatusConflict
	case errors.Is(err, state.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, state.ErrNotFound):
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// message is the text an error is reported with: the state's sentinel
// words are kept ("not found: domain ..."), joined problems go on one line.
func message(err error) string {
	switch {
	case errors.Is(err, state.ErrPersist):
		return "could not save the configuration, nothing was changed: " + err.Error()
	case errors.Is(err, state.ErrUnavailable):
		return "the configuration store cannot be reached, nothing was changed: " + err.Error()
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) > maxProblems {
		lines = append(lines[:maxProblems], fmt.Sprintf("and %d more problems", len(lines)-maxProblems))
	}
	return strings.Join(lines, "; ")
}

// maxProblems bounds the problems one error answer lists, so its size stays
// proportionate whatever the request.
const maxProblems = 20

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error": "encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

func (a *API) health(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := io.WriteString(w, "OK")
	return err
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) error {
	if a.o.Metrics == nil {
		return notFound("metrics are not available")
	}
	a.o.Metrics.ServeHTTP(w, r)
	return nil
}

func (a *API) listCertificates(w http.ResponseWriter, _ *http.Request) error {
	if a.o.Certs == nil {
		writeJSON(w, http.StatusOK, []struct{}{})
		return nil
	}
	writeJSON(w, http.StatusOK, a.o.Certs.List())
	return nil
}

func (a *API) reloadCertificate(w http.ResponseWriter, r *http.Request) error {
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	if a.o.Certs == nil {
		return notFound("no certificate is configured for domain %q", domain)
	}
	if err := a.o.Certs.Reload(domain); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"message": "Certificate reloaded successfully for domain: " + domain,
		"domain":  domain,
	})
	return nil
}

// renewCertificate starts a new ACME order for the domain's certificate and
// answers 202 Accepted with the certificate entry (status "renewing", or
// "pending" while none is served) without waiting for the order, which can
// take minutes; GET /api/v1/certificates shows the outcome.
func (a *API) renewCertificate(w http.ResponseWriter, r *http.Request) error {
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	if a.o.Certs == nil {
		return notFound("no certificate is configured for domain %q", domain)
	}
	rn, ok := a.o.Certs.(CertificateRenewer)
	if !ok {
		return &Error{Code: http.StatusNotImplemented, Msg: "certificate renewal is not available"}
	}
	cert, err := rn.Renew(domain)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, cert)
	return nil
}
