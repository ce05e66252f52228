package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"fronttier/internal/config"
)

// domainJSON is a domain as the API shows it: the manual's fields first.
type domainJSON struct {
	Domain             string                    `json:"domain"`
	EnabledBackendsTag string                    `json:"enabled_backends_tag"`
	HTTPToHTTPS        bool                      `json:"http_to_https"`
	TLSEnabled         bool                      `json:"tls_enabled"`
	LBPolicy           string                    `json:"lb_policy,omitempty"`
	CertificateSource  *config.CertificateSource `json:"certificate_source,omitempty"`
	Canary             *config.Canary            `json:"canary,omitempty"`
	Sticky             *config.Sticky            `json:"sticky,omitempty"`
	Overrides          []config.Override         `json:"overrides,omitempty"`
}

func toDomainJSON(v config.VirtualHost) domainJSON {
	return domainJSON{
		Domain:             v.Domain,
		EnabledBackendsTag: v.EnabledBackendsTag,
		HTTPToHTTPS:        v.Redirect(),
		TLSEnabled:         v.TLS(),
		LBPolicy:           v.LBPolicy,
		CertificateSource:  v.CertificateSource,
		Canary:             v.Canary,
		Sticky:             v.Sticky,
		Overrides:          v.Overrides,
	}
}

// domainInput is the body of POST /domains and PUT /domains/{domain}.
// Absent fields are nil; certificate_source, canary and sticky null
// remove the section, overrides [] removes every override.
type domainInput struct {
	Domain             *string            `json:"domain"`
	EnabledBackendsTag *string            `json:"enabled_backends_tag"`
	HTTPToHTTPS        *bool              `json:"http_to_https"`
	TLSEnabled         *bool              `json:"tls_enabled"`
	LBPolicy           *string            `json:"lb_policy"`
	CertificateSource  json.RawMessage    `json:"certificate_source"`
	Canary             json.RawMessage    `json:"canary"`
	Sticky             json.RawMessage    `json:"sticky"`
	Overrides          *[]config.Override `json:"overrides"`
	// Force makes a change of tag go through even when no healthy backend
	// carries the new tag.
	Force bool `json:"force"`
}

// apply writes the fields present in in onto v.
func (in *domainInput) apply(v *config.VirtualHost) error {
	if in.Domain != nil {
		if d := *in.Domain; d != strings.TrimSpace(d) {
			return badRequest("domain: %q has white space around it", d)
		}
		v.Domain = *in.Domain
	}
	if in.EnabledBackendsTag != nil {
		v.EnabledBackendsTag = *in.EnabledBackendsTag
	}
	if in.HTTPToHTTPS != nil {
		b := *in.HTTPToHTTPS
		v.HTTPToHTTPS = &b
	}
	if in.TLSEnabled != nil {
		b := *in.TLSEnabled
		v.TLSEnabled = &b
	}
	if in.LBPolicy != nil {
		v.LBPolicy = *in.LBPolicy
	}
	if in.Overrides != nil {
		v.Overrides = *in.Overrides
		if len(v.Overrides) == 0 {
			v.Overrides = nil // as the file has it: no section
		}
	}
	if err := decodeSection("certificate_source", in.CertificateSource, &v.CertificateSource); err != nil {
		return err
	}
	if err := decodeSection("canary", in.Canary, &v.Canary); err != nil {
		return err
	}
	return decodeSection("sticky", in.Sticky, &v.Sticky)
}

// decodeSection sets *dst from raw, a field of a PUT or POST body: left as
// it is when the field is absent, removed when it is null, else decoded
// strictly.
func decodeSection[T any](field string, raw json.RawMessage, dst **T) error {
	switch {
	case len(raw) == 0:
		return nil
	case bytes.Equal(raw, []byte("null")):
		*dst = nil
		return nil
	}
	v := new(T)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s: %s", field, strings.TrimPrefix(err.Error(), "json: "))
	}
	*dst = v
	return nil
}

func (a *API) listDomains(w http.ResponseWriter, _ *http.Request) error {
	hosts := a.o.Store.Config().VirtualHosts
	out := make([]domainJSON, len(hosts))
	for i, v := range hosts {
		out[i] = toDomainJSON(v)
	}
	w.Header().Set("ETag", etag(out))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getDomain(w http.ResponseWriter, r *http.Request) error {
	_, v, err := a.pathHost(r)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", domainETag(*v))
	writeJSON(w, http.StatusOK, toDomainJSON(*v))
	return nil
}

func (a *API) addDomain(w http.ResponseWriter, r *http.Request) error {
	var in domainInput
	if err := decode(w, r, &in, "certificate_source", "canary", "sticky"); err != nil {
		return err
	}
	var missing []string
	if in.Domain == nil {
		missing = append(missing, "domain")
	}
	if in.EnabledBackendsTag == nil {
		missing = append(missing, "enabled_backends_tag")
	}
	if len(missing) > 0 {
		return badRequest("missing required field(s): %s", strings.Join(missing, ", "))
	}
	var v config.VirtualHost
	if err := in.apply(&v); err != nil {
		return err
	}
	if err := requestUser(r).allowDomain(config.NormaliseDomain(v.Domain)); err != nil {
		return err
	}
	added, err := a.o.Store.AddDomain(v)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/domains/"+added.Domain)
	w.Header().Set("ETag", domainETag(added))
	writeJSON(w, http.StatusCreated, toDomainJSON(added))
	return nil
}

func (a *API) updateDomain(w http.ResponseWriter, r *http.Request) error {
	var in domainInput
	if err := decode(w, r, &in, "certificate_source", "canary", "sticky"); err != nil {
		return err
	}
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	v, err := a.o.Store.UpdateDomainIf(domain, domainCheck(r, domain), in.apply, in.Force)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", domainETag(v))
	writeJSON(w, http.StatusOK, toDomainJSON(v))
	return nil
}

func (a *API) deleteDomain(w http.ResponseWriter, r *http.Request) error {
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	if err := a.o.Store.DeleteDomainIf(domain, domainCheck(r, domain)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// switchInput is the body of POST /domains/{domain}/switch.
type switchInput struct {
	NewTag *string `json:"new_tag"`
	Force  bool    `json:"force"`
}

func (a *API) switchDomain(w http.ResponseWriter, r *http.Request) error {
	var in switchInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.NewTag == nil {
		return badRequest("missing required field: new_tag")
	}
	domain, err := pathDomain(r)
	if err != nil {
		return err
	}
	v, err := a.o.Store.SwitchIf(domain, domainCheck(r, domain), *in.NewTag, in.Force)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", domainETag(v))
	writeJSON(w, http.StatusOK, toDomainJSON(v))
	return nil
}

// pathDomain returns the {domain} of r's path, normalised. A value with
// white space around it names no domain (NormaliseDomain would trim it).
func pathDomain(r *http.Request) (string, error) {
	d := r.PathValue("domain")
	if d != strings.TrimSpace(d) {
		return "", notFound("domain %q not found", d)
	}
	return config.NormaliseDomain(d), nil
}

// pathHost returns the domain named by r's path and its configured
// virtual host, or a 404 naming the domain.
func (a *API) pathHost(r *http.Request) (string, *config.VirtualHost, error) {
	domain, err := pathDomain(r)
	if err != nil {
		return "", nil, err
	}
	v := a.o.Store.Config().Host(domain)
	if v == nil {
		return "", nil, notFound("domain %q not found", domain)
	}
	return domain, v, nil
}

func sortStrings(s []string) []string {
	slices.Sort(s)
	return s
}
