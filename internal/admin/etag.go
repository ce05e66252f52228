package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"fronttier/internal/config"
	"fronttier/internal/state"
)

// etag returns the strong entity tag of v: the first 16 hex digits of the
// SHA-256 of its JSON encoding, quoted. v must hold configuration only,
// never live state, so the tag changes exactly when someone changes the
// item.
func etag(v any) string {
	body, err := json.Marshal(v)
	if err != nil {
		// Our own plain structs always encode; an empty tag matches no
		// If-Match, which fails safe.
		return ""
	}
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func domainETag(v config.VirtualHost) string { return etag(toDomainJSON(v)) }

// backendConfig is the configured part of a backend, the part its ETag
// covers: its health changes by itself and is not something an operator
// can overwrite.
type backendConfig struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Tags    []string `json:"tags"`
	Weight  int      `json:"weight"`
}

func toBackendConfig(b config.Backend) backendConfig {
	tags := b.Tags
	if tags == nil {
		tags = []string{}
	}
	return backendConfig{ID: b.ID, Address: b.Address, Tags: tags, Weight: b.Weight}
}

func backendETag(b config.Backend) string { return etag(toBackendConfig(b)) }

// ifMatch is a request's If-Match precondition (RFC 9110, 13.1.1).
type ifMatch struct {
	header string   // as received, for messages
	any    bool     // "*": the item must exist
	tags   []string // entity tags, one of which must be the item's (strong comparison)
}

// parseIfMatch returns the request's If-Match precondition, or nil when it
// has none.
func parseIfMatch(r *http.Request) *ifMatch {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return nil
	}
	m := &ifMatch{header: strings.Join(values, ", ")}
	if strings.TrimSpace(m.header) == "" {
		// Present but empty, e.g. a script's unset variable: it matches
		// nothing, rather than being taken for no precondition at all.
		m.header = "(empty)"
	}
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			switch t = strings.TrimSpace(t); t {
			case "":
			case "*":
				m.any = true
			default:
				m.tags = append(m.tags, t)
			}
		}
	}
	return m
}

// check returns nil when the item (kind name, current entity tag cur;
// exists false when there is none) satisfies the precondition, else a 412.
func (m *ifMatch) check(kind, name string, exists bool, cur string) error {
	if !exists {
		return &Error{Code: http.StatusPreconditionFailed, Msg: fmt.Sprintf(
			"%s %q does not exist, so If-Match %s does not hold; nothing was changed", kind, name, m.header)}
	}
	if m.any {
		return nil
	}
	for _, t := range m.tags {
		if t == cur { // a weak tag (W/"...") never equals ours: If-Match compares strongly
			return nil
		}
	}
	return &Error{Code: http.StatusPreconditionFailed, Msg: fmt.Sprintf(
		"%s %q has changed since it was read: its ETag is now %s, not If-Match %s; nothing was changed (GET it again and retry)",
		kind, name, cur, m.header)}
}

// domainCheck turns the request's If-Match into a precondition the store
// checks inside its commit; nil when there is none.
func domainCheck(r *http.Request, domain string) state.DomainCheck {
	m := parseIfMatch(r)
	if m == nil {
		return nil
	}
	domain = config.NormaliseDomain(domain)
	return func(cur *config.VirtualHost) error {
		if cur == nil {
			return m.check("domain", domain, false, "")
		}
		return m.check("domain", domain, true, domainETag(*cur))
	}
}

// backendCheck is domainCheck for a backend.
func backendCheck(r *http.Request, id string) state.BackendCheck {
	m := parseIfMatch(r)
	if m == nil {
		return nil
	}
	return func(cur *config.Backend) error {
		if cur == nil {
			return m.check("backend", id, false, "")
		}
		return m.check("backend", id, true, backendETag(*cur))
	}
}
