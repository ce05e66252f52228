package admin

import (
	"net/http"
	"strings"
	"testing"

	"fronttier/internal/config"
)

// TestDashboardMounted checks the API serves the dashboard's shell under
// /ui/ without a token while its data still needs one, and tells the page
// whether the API asks for a token.
func TestDashboardMounted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		o        Options
		dataCode int    // GET /api/v1/domains without a token
		auth     string // the page's data-auth
	}{
		{name: "token", o: Options{Token: "s3cret"}, dataCode: http.StatusUnauthorized, auth: `data-auth="token"`},
		{name: "users only", o: Options{Users: []config.APIUser{{Name: "v", Role: config.RoleViewer, TokenSHA256: hashHex("v-token")}}}, dataCode: http.StatusUnauthorized, auth: `data-auth="token"`},
		{name: "no token", o: Options{}, dataCode: http.StatusOK, auth: `data-auth="none"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWith(t, tc.o)
			page := e.get(t, "/ui/")
			if page.code != http.StatusOK || !strings.Contains(string(page.body), tc.auth) {
				t.Errorf("GET /ui/ without a token: %d, want 200 with %s:\n%.300s", page.code, tc.auth, page.body)
			}
			if got := e.get(t, "/ui/app.js"); got.code != http.StatusOK {
				t.Errorf("GET /ui/app.js: %d", got.code)
			}
			if got := e.get(t, "/ui"); got.code != http.StatusMovedPermanently || got.header.Get("Location") != "/ui/" {
				t.Errorf("GET /ui: %d Location %q, want a redirect to /ui/", got.code, got.header.Get("Location"))
			}
			if got := e.get(t, "/api/v1/domains"); got.code != tc.dataCode {
				t.Errorf("GET /api/v1/domains without a token: %d, want %d", got.code, tc.dataCode)
			}
			if got := e.get(t, "/uix"); got.code != http.StatusNotFound && got.code != tc.dataCode {
				t.Errorf("GET /uix: %d, want the API's answer (not the dashboard)", got.code)
			}
		})
	}
}
