package admin

import (
	_ "embed"
	"io"
	"net/http"
)

// openapiDoc is the OpenAPI 3.1 document of /api/v1, served at
// GET /api/v1/openapi.json. openapi_test.go checks it against the routes
// and against real answers, so the two cannot drift.
//
//go:embed openapi.json
var openapiDoc string

// openapi answers GET /api/v1/openapi.json with the API's own description.
func (a *API) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, err := io.WriteString(w, openapiDoc)
	return err
}
