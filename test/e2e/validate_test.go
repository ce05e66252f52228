package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateCommand runs fronttier validate on good and bad files.
func TestValidateCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	t.Run("several problems", func(t *testing.T) {
		path := filepath.Join(dir, "bad.toml")
		writeFile(t, path, `[proxy]
listen_addr_http = "127.0.0.1:0"
management_api_addr = "127.0.0.1:0"
bogus_option = true

[logging]
format = "xml"

[[virtual_hosts]]
domain = "dup.example.com"
enabled_backends_tag = "a"

[[virtual_hosts]]
domain = "DUP.example.com."
enabled_backends_tag = "a"

[[backends]]
id = "b1"
address = "nohost"
tags = ["a"]

[[backends]]
id = "b2"
address = "127.0.0.1:8080"
tags = ["a"]
colour = "blue"
`)
		code, stdout, stderr := validateFile(t, path)
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if strings.TrimSpace(stdout) == "ok" {
			t.Errorf("printed ok for an invalid file")
		}
		out := stdout + stderr
		lines := strings.Split(out, "\n")
		// Each problem on its own line, naming its key.
		problems := []struct{ key, about string }{
			{"proxy.bogus_option", "unknown key"},
			{"backends.colour", "unknown key"},
			{"logging.format", "bad enum value"},
			{"virtual_hosts[1].domain", "duplicate domain"},
			{"backends[0].address", "bad address"},
		}
		used := map[int]string{}
		for _, p := range problems {
			found := -1
			for i, l := range lines {
				if strings.Contains(l, p.key) {
					found = i
					break
				}
			}
			if found < 0 {
				t.Errorf("no line names %s (%s); output:\n%s", p.key, p.about, out)
				continue
			}
			if other, dup := used[found]; dup {
				t.Errorf("%s and %s are reported on the same line %q", other, p.key, lines[found])
			}
			used[found] = p.key
		}
		if strings.Contains(out, "backends[1].address") {
			t.Errorf("a good address is reported:\n%s", out)
		}
	})

	t.Run("syntax error", func(t *testing.T) {
		path := filepath.Join(dir, "syntax.toml")
		writeFile(t, path, "[proxy\nlisten_addr_http = \"127.0.0.1:0\"\n")
		code, stdout, stderr := validateFile(t, path)
		if code != 1 || strings.TrimSpace(stdout) == "ok" {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and an error", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "line 1") {
			t.Errorf("the syntax error does not give its line: %q", stderr)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		code, stdout, stderr := validateFile(t, filepath.Join(dir, "does-not-exist.toml"))
		if code == 0 || strings.TrimSpace(stdout) == "ok" {
			t.Errorf("exit %d, stdout %q, stderr %q for a missing file", code, stdout, stderr)
		}
	})

	t.Run("good file", func(t *testing.T) {
		path := filepath.Join(dir, "good.toml")
		writeFile(t, path, conf{
			Metrics:  true,
			Domains:  []domainConf{{"good.example.com", "a"}},
			Backends: []backendConf{{ID: "a1", Addr: "127.0.0.1:9527", Tags: []string{"a"}}},
		}.String())
		code, stdout, stderr := validateFile(t, path)
		if code != 0 || strings.TrimSpace(stdout) != "ok" {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and ok", code, stdout, stderr)
		}
	})

	t.Run("shipped example", func(t *testing.T) {
		path, err := filepath.Abs(filepath.Join("..", "..", "config.example.toml"))
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := validateFile(t, path)
		if code != 0 || strings.TrimSpace(stdout) != "ok" {
			t.Errorf("config.example.toml: exit %d, stdout %q, stderr %q; want exit 0 and ok", code, stdout, stderr)
		}
	})
}
