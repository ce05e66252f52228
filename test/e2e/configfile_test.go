package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestHandEditsAreNeverLost walks the manual's Q6/Q7 workflow without
// SIGHUP: a valid hand edit is applied by the file watcher; a broken one
// (syntax, or a tag typo that would take a serving domain off the air) is
// refused with a log line, the domain keeps serving, and every API change
// is refused with 409 naming the file instead of overwriting the edit;
// once fixed, the edit applies and the API works again.
func TestHandEditsAreNeverLost(t *testing.T) {
	t.Parallel()
	a1, n1 := startBackend(t, "a1"), startBackend(t, "n1")
	c := conf{
		Domains:  []domainConf{{"old.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a"), be("n1", n1, "n")},
		CacheDir: filepath.Join(t.TempDir(), "acme-cache"),
	}
	p := newProxy(t, c)
	edit := func(content, wantMsg string) {
		t.Helper()
		from := len(p.out.Lines())
		writeFile(t, p.Config, content)
		if _, _, ok := p.out.waitFor(from, waitTimeout, p.done, msgHasPrefix(wantMsg)); !ok {
			t.Fatalf("no %q after a hand edit:\n%s", wantMsg, tail(p.out.String(), 20))
		}
	}

	// A valid edit: applied by itself.
	c.Domains = append(c.Domains, domainConf{"new.example.com", "n"})
	edit(c.String(), "configuration reloaded")
	if id := p.backendOf(t, "new.example.com"); id != "n1" {
		t.Fatalf("new.example.com went to %q after a hand edit, want n1", id)
	}

	// Broken edits: refused, serving goes on, the API will not write.
	typo := c
	typo.Domains = []domainConf{{"old.example.com", "aa"}, {"new.example.com", "n"}}
	for _, bad := range []struct{ name, content, inError string }{
		{"syntax error", c.String() + "\n[[virtual_hosts]\n", "toml"},
		{"tag typo", typo.String(), `tag "aa"`},
	} {
		edit(bad.content, "the stored configuration changed")
		if id := p.backendOf(t, "old.example.com"); id != "a1" {
			t.Errorf("%s: old.example.com went to %q, want a1 still", bad.name, id)
		}
		status, body, err := p.tryAPI(http.MethodPost, "/domains/new.example.com/switch", map[string]string{"new_tag": "a"})
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		if status != http.StatusConflict || !strings.Contains(e.Error, p.Config) || !strings.Contains(e.Error, bad.inError) {
			t.Errorf("%s: API switch answered %d %s; want 409 naming %s and %q", bad.name, status, body, p.Config, bad.inError)
		}
		if got := string(readFile(t, p.Config)); got != bad.content {
			t.Errorf("%s: the hand edit was overwritten:\n%s", bad.name, got)
		}
	}

	// Fixed: applied, and the API writes again, on top of the edit.
	c.Domains[0].Tag = "n"
	edit(c.String(), "configuration reloaded")
	if id := p.backendOf(t, "old.example.com"); id != "n1" {
		t.Errorf("after the fix old.example.com went to %q, want n1", id)
	}
	p.mustAPI(t, http.StatusOK, http.MethodPost, "/domains/new.example.com/switch", map[string]string{"new_tag": "a"}, nil)
	if id := p.backendOf(t, "new.example.com"); id != "a1" {
		t.Errorf("after the API switch new.example.com went to %q, want a1", id)
	}
	if file := string(readFile(t, p.Config)); !strings.Contains(file, "old.example.com") || strings.Count(file, "[[virtual_hosts]]") != 2 {
		t.Errorf("the file lost a domain:\n%s", file)
	}
}

// TestValidateWarnsOfTagTypos: validate still says ok for a file whose
// domain's tag no backend carries, but prints a warning naming both; the
// proxy logs the same warning at start.
func TestValidateWarnsOfTagTypos(t *testing.T) {
	t.Parallel()
	c := conf{
		Domains:  []domainConf{{"typo.example.com", "aa"}},
		Backends: []backendConf{{ID: "a1", Addr: freeAddr(t), Tags: []string{"a"}}},
		CacheDir: filepath.Join(t.TempDir(), "acme-cache"),
	}
	path := writeConfig(t, c)
	code, stdout, stderr := validateFile(t, path)
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(stdout), "ok") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want ok", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "warning:") || !strings.Contains(stdout, `tag "aa"`) || !strings.Contains(stdout, "typo.example.com") {
		t.Errorf("no warning naming the domain and tag: %q", stdout)
	}
	p := startProxy(t, path)
	p.waitLog(t, func(line string) bool {
		m, ok := jsonLine(line)
		return ok && m["level"] == "WARN" && strings.Contains(m["msg"].(string), `tag "aa"`)
	}, "a start-up warning about the tag")
}
