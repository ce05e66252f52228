package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// healthPath is the one endpoint open without a token: load balancers and
// monitors probe it.
const healthPath = "/api/v1/health"

// authorize checks the bearer token of r when the API has one. It returns
// nil when the request may proceed. The token is never logged or echoed.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) error {
	if a.token == nil {
		return nil
	}
	if r.URL.Path == healthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return nil
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fronttier"`)
		return &Error{Code: http.StatusUnauthorized, Msg: "missing bearer token: send the header \"Authorization: Bearer <token>\""}
	}
	// Compare digests, so neither the content nor the length of the token
	// shows in the time taken.
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	if subtle.ConstantTimeCompare(sum[:], a.token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fronttier"`)
		a.o.Log.Debug("management API request with a wrong token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return &Error{Code: http.StatusUnauthorized, Msg: "invalid bearer token"}
	}
	return nil
}
