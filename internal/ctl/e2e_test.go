package ctl_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"fronttier/internal/admin"
	"fronttier/internal/backend"
	"fronttier/internal/config"
	"fronttier/internal/ctl"
	"fronttier/internal/state"
	"fronttier/internal/testutil"
)

// TestAgainstTheRealAPI drives domains add, switch and domains get through
// internal/admin's handler, with a token.
func TestAgainstTheRealAPI(t *testing.T) {
	cfg := config.Default()
	cfg.Proxy.ListenAddrHTTP = "127.0.0.1:0"
	cfg.Backends = []config.Backend{
		{ID: "blue-1", Address: "127.0.0.1:3001", Tags: []string{"blue"}},
		{ID: "green-1", Address: "127.0.0.1:3002", Tags: []string{"green"}},
	}
	st, err := state.New(cfg, backend.NewRegistry(nil, nil), &testutil.Persister{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.New(admin.Options{Store: st, Token: "t0k"}))
	defer srv.Close()

	run := func(token string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		c := &ctl.CLI{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
			if k == "FRONTTIER_TOKEN" {
				return token
			}
			return ""
		}}
		code := c.Run(context.Background(), append([]string{"--api", srv.URL}, args...))
		return code, out.String(), errb.String()
	}

	if code, out, errs := run("t0k", "domains", "add", "shop.example.com", "blue"); code != 0 || !strings.Contains(out, "shop.example.com") {
		t.Fatalf("add: exit %d, %s %s", code, out, errs)
	}
	if code, out, errs := run("t0k", "switch", "shop.example.com", "green"); code != 0 || !strings.Contains(out, "green") {
		t.Fatalf("switch: exit %d, %s %s", code, out, errs)
	}
	code, out, errs := run("t0k", "domains", "get", "shop.example.com")
	if code != 0 || !strings.Contains(out, "tag:") || !strings.Contains(out, "green") {
		t.Fatalf("get: exit %d, %s %s", code, out, errs)
	}
	code, out, _ = run("t0k", "-o", "json", "domains", "get", "shop.example.com")
	if code != 0 || !strings.Contains(out, `"enabled_backends_tag": "green"`) {
		t.Errorf("get -o json: %s", out)
	}
	// The API's own messages and exit code 1.
	if code, _, errs := run("t0k", "domains", "get", "nope.example.com"); code != 1 || !strings.Contains(errs, "HTTP 404") {
		t.Errorf("missing domain: exit %d, %s", code, errs)
	}
	if code, _, errs := run("wrong", "domains", "ls"); code != 1 || !strings.Contains(errs, "HTTP 401") {
		t.Errorf("bad token: exit %d, %s", code, errs)
	}
	if code, out, errs := run("t0k", "domains", "rm", "shop.example.com"); code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("rm: exit %d, %s %s", code, out, errs)
	}
}
