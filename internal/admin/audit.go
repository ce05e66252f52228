package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"fronttier/internal/config"
)

// auditRecord is one line of the audit log: a change the API accepted,
// who made it, and the item it changed as the API shows it just before and
// just after (null when the item was added or deleted, or when the change
// is not of a domain or backend, such as a certificate reload).
type auditRecord struct {
	Time       time.Time       `json:"time"`
	User       string          `json:"user"`
	RemoteAddr string          `json:"remote_addr"`
	Method     string          `json:"method"`
	Path       string          `json:"path"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
}

// anonymousUser is the audit log's user when the API asks for no token.
const anonymousUser = "anonymous"

// auditItem names the domain or backend a request changes.
type auditItem struct {
	kind string // "domain", "backend" or "" (none)
	key  string // the domain or backend id; "" for an add, known only after
}

// changes reports whether r is a request the audit log records: every
// method but GET and HEAD, except explain, which only reads.
func changes(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return !strings.HasSuffix(r.URL.Path, "/explain")
}

// itemOf returns the item r changes, from its path.
func itemOf(r *http.Request) auditItem {
	seg := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/"), "/")
	if seg[0] != "domains" && seg[0] != "backends" {
		return auditItem{}
	}
	it := auditItem{kind: strings.TrimSuffix(seg[0], "s")}
	if len(seg) > 1 {
		k, err := url.PathUnescape(seg[1])
		if err != nil {
			return auditItem{}
		}
		it.key = k
	}
	return it
}

// itemJSON returns the item as the API shows it now (a domain, or a
// backend's configuration without its live health), or null when it does
// not exist.
func (a *API) itemJSON(it auditItem) json.RawMessage {
	var v any
	switch c := a.o.Store.Config(); it.kind {
	case "domain":
		if h := c.Host(config.NormaliseDomain(it.key)); h != nil {
			v = toDomainJSON(*h)
		}
	case "backend":
		if b := c.Backend(it.key); b != nil {
			v = struct {
				ID      string   `json:"id"`
				Address string   `json:"address"`
				Tags    []string `json:"tags"`
				Weight  int      `json:"weight,omitempty"`
			}{b.ID, b.Address, b.Tags, b.Weight}
		}
	}
	if v == nil {
		return json.RawMessage("null")
	}
	out, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return out
}

// audited serves r with next and, when r is a change answered 2xx and the
// API has an audit log, writes its line once the change is committed.
// Refused changes write nothing.
func (a *API) audited(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if a.o.Audit == nil || !changes(r) {
		next.ServeHTTP(w, r)
		return
	}
	it := itemOf(r)
	before := json.RawMessage("null")
	if it.key != "" {
		before = a.itemJSON(it)
	}
	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if rec.code < 200 || rec.code > 299 {
		return
	}
	if it.key == "" && it.kind != "" && r.Method == http.MethodPost {
		it.key = createdKey(rec.Header().Get("Location"))
	}
	after := json.RawMessage("null")
	if it.key != "" && r.Method != http.MethodDelete {
		after = a.itemJSON(it)
	}
	name := anonymousUser
	if u := requestUser(r); u != nil {
		name = u.name
	}
	line, err := json.Marshal(auditRecord{
		Time: time.Now().UTC(), User: name, RemoteAddr: r.RemoteAddr, Method: r.Method, Path: r.URL.Path,
		Before: before, After: after,
	})
	if err == nil {
		_, err = a.o.Audit.Write(append(line, '\n'))
	}
	if err != nil {
		a.o.Log.Error("cannot write the audit log; the change was applied", "method", r.Method, "path", r.URL.Path, "user", name, "error", err)
	}
}

// createdKey is the domain or backend id that ends location, the Location
// header of a 201 answer to an add.
func createdKey(location string) string {
	i := strings.LastIndexByte(location, '/')
	k, err := url.PathUnescape(location[i+1:])
	if err != nil {
		return ""
	}
	return k
}

// statusRecorder remembers the status an endpoint answered with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}
