package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"fronttier/internal/config"
	"fronttier/internal/state"
)

// canaryInput is the body of PUT /domains/{domain}/canary.
type canaryInput struct {
	Tag     *string  `json:"tag"`
	Percent *float64 `json:"percent"`
	// Force sends traffic to the tag even when no healthy backend carries
	// it.
	Force bool `json:"force"`
}

// putCanary sets the domain's canary (a new one, or a new share) and
// answers 200 with the domain.
func (a *API) putCanary(w http.ResponseWriter, r *http.Request) error {
	var in canaryInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	var missing []string
	if in.Tag == nil {
		missing = append(missing, "tag")
	}
	if in.Percent == nil {
		missing = append(missing, "percent")
	}
	if len(missing) > 0 {
		return badRequest("missing required field(s): %s", strings.Join(missing, ", "))
	}
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	v, err := a.o.Store.SetCanaryIf(domain, allOf(domainCheck(r, domain), rolloutAllows(*in.Tag)), config.Canary{Tag: *in.Tag, Percent: *in.Percent}, in.Force)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", domainETag(v))
	writeJSON(w, http.StatusOK, toDomainJSON(v))
	return nil
}

// deleteCanary sends all of the domain's traffic back to its
// enabled_backends_tag and answers 200 with the domain (also when it had
// no canary).
func (a *API) deleteCanary(w http.ResponseWriter, r *http.Request) error {
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	v, err := a.o.Store.ClearCanaryIf(domain, allOf(domainCheck(r, domain), rolloutAllows("")))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", domainETag(v))
	writeJSON(w, http.StatusOK, toDomainJSON(v))
	return nil
}

// rolloutAllows refuses a canary set by hand (to tag; "" to clear it)
// while the domain has a running rollout, which sets the share at each
// step and would overwrite it: pause or abort the rollout first. While it
// is paused the share may be set (or cleared) by hand for the rollout's
// to_tag only, as the rollout judges that tag; resuming puts the step's
// share back. It is checked with the change, so a rollout started
// meanwhile is not missed.
func rolloutAllows(tag string) state.DomainCheck {
	return func(cur *config.VirtualHost) error {
		if cur == nil {
			return nil
		}
		switch ro := cur.Rollout; {
		case ro == nil:
		case ro.State == config.RolloutRunning:
			return fmt.Errorf("%w: domain %q has a running rollout (to %q); pause or abort it first", state.ErrConflict, cur.Domain, ro.ToTag)
		case ro.State == config.RolloutPaused && tag != "" && tag != ro.ToTag:
			return fmt.Errorf("%w: domain %q has a paused rollout to %q: a canary set meanwhile must be of that tag; abort the rollout first", state.ErrConflict, cur.Domain, ro.ToTag)
		}
		return nil
	}
}

// allOf is a check that passes when every one of checks (nil ones pass)
// does.
func allOf(checks ...state.DomainCheck) state.DomainCheck {
	return func(cur *config.VirtualHost) error {
		for _, c := range checks {
			if c == nil {
				continue
			}
			if err := c(cur); err != nil {
				return err
			}
		}
		return nil
	}
}

// explainInput is the body of POST /domains/{domain}/explain: a request as
// the data path would see it. Every field is optional.
type explainInput struct {
	Headers  map[string]string `json:"headers"`
	Cookies  map[string]string `json:"cookies"`
	ClientIP string            `json:"client_ip"`
	Query    string            `json:"query"`
}

// explainJSON is explain's answer.
type explainJSON struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
	// Bucket is the client's bucket, when the decision needed one.
	Bucket *int `json:"bucket,omitempty"`
}

// explain answers where the data path would send a request with the
// given headers, cookies, client address and query, and why: the route
// table in force decides, with the data path's own code. A request
// without the bucket cookie is a new client, placed as the next one would
// be.
func (a *API) explain(w http.ResponseWriter, r *http.Request) error {
	var in explainInput
	if err := decodeFree(w, r, &in, "headers", "cookies"); err != nil {
		return err
	}
	domain, _, err := a.pathHost(r)
	if err != nil {
		return err
	}
	host := a.o.Store.Table().Lookup(domain)
	if host == nil || host.Domain != domain {
		return notFound("domain %q not found", domain)
	}
	req, err := in.request()
	if err != nil {
		return err
	}
	d := host.Decide(req)
	out := explainJSON{Tag: d.Tag, Reason: host.Explain(req, d)}
	if d.Bucket >= 0 {
		out.Bucket = &d.Bucket
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// request builds the request explain decides on.
func (in *explainInput) request() (*http.Request, error) {
	req := &http.Request{Method: http.MethodGet, Header: http.Header{}, URL: &url.URL{Path: "/", RawQuery: in.Query}}
	for name, value := range in.Headers {
		if !validName(name) {
			return nil, badRequest("headers: %q is not a header name", name)
		}
		req.Header.Add(name, value)
	}
	if len(in.Cookies) > 0 {
		if req.Header.Get("Cookie") != "" {
			return nil, badRequest("give cookies either in \"cookies\" or as a Cookie header, not both")
		}
		names := make([]string, 0, len(in.Cookies))
		for name := range in.Cookies {
			if !validName(name) {
				return nil, badRequest("cookies: %q is not a cookie name", name)
			}
			names = append(names, name)
		}
		slices.Sort(names)
		pairs := make([]string, len(names))
		for i, name := range names {
			pairs[i] = name + "=" + in.Cookies[name]
		}
		req.Header.Set("Cookie", strings.Join(pairs, "; "))
	}
	if in.ClientIP != "" {
		ip, err := netip.ParseAddr(in.ClientIP)
		if err != nil {
			return nil, badRequest("client_ip: %q is not an IP address", in.ClientIP)
		}
		req.RemoteAddr = net.JoinHostPort(ip.Unmap().String(), "0")
	}
	return req, nil
}

// validName reports whether s can be a header or cookie name: a token
// (RFC 9110, section 5.6.2).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
