package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"fronttier/internal/config"
)

// healthPath is the one endpoint open without a token: load balancers and
// monitors probe it.
const healthPath = "/api/v1/health"

// user is a management API user as the API checks it: the SHA-256 of its
// token, its role and the domains it may change (nil: every domain).
type user struct {
	name    string
	role    string
	domains []string
	digest  []byte
}

// newUsers returns the API's users: the single token, when set, as the
// admin config.TokenUserName, then every configured user whose token is
// known.
func newUsers(token string, configured []config.APIUser) []user {
	var users []user
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		users = append(users, user{name: config.TokenUserName, role: config.RoleAdmin, digest: sum[:]})
	}
	for _, u := range configured {
		if d := u.Digest(); d != nil {
			users = append(users, user{name: u.Name, role: u.Role, domains: u.Domains, digest: d})
		}
	}
	return users
}

// roleRank orders the roles: each may do what the ones below it may.
func roleRank(role string) int {
	switch role {
	case config.RoleAdmin:
		return 2
	case config.RoleOperator:
		return 1
	default:
		return 0
	}
}

// userKey is the request context key of the authenticated *user.
type userKey struct{}

// requestUser returns the user r was authenticated as, or nil when the API
// asks for no token.
func requestUser(r *http.Request) *user {
	u, _ := r.Context().Value(userKey{}).(*user)
	return u
}

// authorize checks the bearer token of r when the API has users, and
// whether the user's role and domains allow the request. It returns r
// carrying the user (see requestUser) when the request may proceed. The
// token is never logged or echoed.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) (*http.Request, error) {
	if len(a.users) == 0 {
		return r, nil
	}
	if r.URL.Path == healthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return r, nil
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fronttier"`)
		return nil, &Error{Code: http.StatusUnauthorized, Msg: "missing bearer token: send the header \"Authorization: Bearer <token>\""}
	}
	// Compare digests, so neither the content nor the length of the token
	// shows in the time taken; every user is compared, so neither does
	// which one matched.
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	var u *user
	for i := range a.users {
		if subtle.ConstantTimeCompare(sum[:], a.users[i].digest) == 1 && u == nil {
			u = &a.users[i]
		}
	}
	if u == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fronttier"`)
		a.o.Log.Debug("management API request with a wrong token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return nil, &Error{Code: http.StatusUnauthorized, Msg: "invalid bearer token"}
	}
	if err := u.allow(r); err != nil {
		return nil, err
	}
	return r.WithContext(context.WithValue(r.Context(), userKey{}, u)), nil
}

// allow reports (as a 403 *Error) why u may not make request r:
//   - GET and HEAD need a viewer, whatever the path: every role reads every
//     domain and backend, a domains limit only limits changes;
//   - actions on an existing domain (switch, canary, explain, rollout...)
//     and certificate reload and renewal need an operator whose domains
//     include the domain;
//   - replacing or deleting a domain needs an admin whose domains include
//     it (adding one is checked by addDomain, which knows its name: see
//     allowDomain);
//   - everything else, backends included, needs an admin with no domains
//     limit: a backend may serve any domain, so it is in no domain's scope.
func (u *user) allow(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	role, domain, scoped := required(r)
	if roleRank(u.role) < roleRank(role) {
		return &Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("user %q has role %s; %s %s needs role %s", u.name, u.role, r.Method, r.URL.Path, role)}
	}
	if len(u.domains) == 0 {
		return nil
	}
	if !scoped {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/domains" {
			return nil // addDomain checks the new domain (allowDomain)
		}
		return &Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("user %q may change only domains %s; %s %s is in no domain's scope and needs a user with role %s and no domains limit",
			u.name, strings.Join(u.domains, ", "), r.Method, r.URL.Path, role)}
	}
	return u.allowDomain(domain)
}

// allowDomain reports (as a 403 *Error) when domain is outside u's
// domains. A nil user (no authentication) may change every domain.
func (u *user) allowDomain(domain string) error {
	if u == nil || len(u.domains) == 0 || config.MatchDomain(u.domains, domain) {
		return nil
	}
	return &Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("user %q may change only domains %s; %q is not one of them", u.name, strings.Join(u.domains, ", "), domain)}
}

// required returns the role a change request needs and, for a request on
// one domain, that domain (normalised) with scoped true.
func required(r *http.Request) (role, domain string, scoped bool) {
	seg := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/"), "/")
	if len(seg) < 2 || (seg[0] != "domains" && seg[0] != "certificates") {
		return config.RoleAdmin, "", false
	}
	d, err := url.PathUnescape(seg[1])
	if err != nil {
		return config.RoleAdmin, "", false
	}
	domain = config.NormaliseDomain(d)
	if seg[0] == "certificates" {
		if len(seg) == 3 && r.Method == http.MethodPost && (seg[2] == "reload" || seg[2] == "renew") {
			return config.RoleOperator, domain, true
		}
		return config.RoleAdmin, "", false
	}
	if len(seg) == 2 {
		return config.RoleAdmin, domain, true // PUT or DELETE of the domain
	}
	switch action := seg[2]; {
	case action == "switch" && len(seg) == 3 && r.Method == http.MethodPost,
		action == "explain" && len(seg) == 3 && r.Method == http.MethodPost,
		action == "canary" && len(seg) == 3 && (r.Method == http.MethodPut || r.Method == http.MethodDelete),
		strings.HasPrefix(action, "rollout") && r.Method == http.MethodPost:
		return config.RoleOperator, domain, true
	}
	return config.RoleAdmin, domain, true
}
