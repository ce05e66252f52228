package admin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/config"
)

// backendJSON is a backend as the API shows it: the manual's fields, then
// its live health and load.
type backendJSON struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Tags    []string `json:"tags"`
	Weight  int      `json:"weight,omitempty"`
	// Healthy says the backend gets traffic: it passed its checks, or has
	// not been checked yet (Health "unknown").
	Healthy             bool       `json:"healthy"`
	Health              string     `json:"health"`
	LastCheckAt         *time.Time `json:"last_check_at"`
	LastError           string     `json:"last_error"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	ActiveRequests      int64      `json:"active_requests"`
}

func (a *API) toBackendJSON(b config.Backend) backendJSON {
	out := backendJSON{ID: b.ID, Address: b.Address, Tags: b.Tags, Weight: b.Weight, Healthy: true, Health: backend.Unknown.String()}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if live := a.o.Store.Backend(b.ID); live != nil && live.Addr == b.Address {
		st := live.Status()
		out.Healthy = live.Routable()
		out.Health = live.Health().String()
		if !st.LastCheck.IsZero() {
			t := st.LastCheck.UTC()
			out.LastCheckAt = &t
		}
		out.LastError = st.LastError
		out.ConsecutiveFailures = st.ConsecutiveFailures
		out.ActiveRequests = live.Active()
	}
	return out
}

// backendInput is the body of POST /backends and PUT /backends/{id}.
type backendInput struct {
	ID      *string   `json:"id"`
	Address *string   `json:"address"`
	Tags    *[]string `json:"tags"`
	Weight  *int      `json:"weight"`
	// Force lets a change leave a domain's enabled tag with no backend.
	Force bool `json:"force"`
}

func (in *backendInput) apply(b *config.Backend) error {
	if in.ID != nil {
		b.ID = *in.ID
	}
	if in.Address != nil {
		b.Address = strings.TrimSpace(*in.Address)
	}
	if in.Tags != nil {
		b.Tags = append([]string{}, *in.Tags...)
	}
	if in.Weight != nil {
		b.Weight = *in.Weight
	}
	return nil
}

func (a *API) listBackends(w http.ResponseWriter, _ *http.Request) error {
	bs := a.o.Store.Config().Backends
	out := make([]backendJSON, len(bs))
	conf := make([]backendConfig, len(bs))
	for i, b := range bs {
		out[i] = a.toBackendJSON(b)
		conf[i] = toBackendConfig(b)
	}
	w.Header().Set("ETag", etag(conf))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getBackend(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	b := a.o.Store.Config().Backend(id)
	if b == nil {
		return notFound("backend %q not found", id)
	}
	w.Header().Set("ETag", backendETag(*b))
	writeJSON(w, http.StatusOK, a.toBackendJSON(*b))
	return nil
}

func (a *API) addBackend(w http.ResponseWriter, r *http.Request) error {
	var in backendInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	var missing []string
	if in.ID == nil {
		missing = append(missing, "id")
	}
	if in.Address == nil {
		missing = append(missing, "address")
	}
	if len(missing) > 0 {
		return badRequest("missing required field(s): %s", strings.Join(missing, ", "))
	}
	var b config.Backend
	in.apply(&b)
	added, err := a.o.Store.AddBackend(b)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/backends/"+added.ID)
	w.Header().Set("ETag", backendETag(added))
	writeJSON(w, http.StatusCreated, a.toBackendJSON(added))
	return nil
}

func (a *API) updateBackend(w http.ResponseWriter, r *http.Request) error {
	var in backendInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	id := r.PathValue("id")
	b, err := a.o.Store.UpdateBackendIf(id, backendCheck(r, id), in.apply, in.Force)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", backendETag(b))
	writeJSON(w, http.StatusOK, a.toBackendJSON(b))
	return nil
}

func (a *API) deleteBackend(w http.ResponseWriter, r *http.Request) error {
	force := false
	if f := r.URL.Query().Get("force"); f != "" {
		var err error
		if force, err = strconv.ParseBool(f); err != nil {
			return badRequest("query parameter force=%q is not true or false", f)
		}
	}
	id := r.PathValue("id")
	if err := a.o.Store.DeleteBackendIf(id, backendCheck(r, id), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
