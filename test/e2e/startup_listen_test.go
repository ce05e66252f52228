package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tests in this file start the binary in conditions an operator meets
// on the first day: a port another process holds, and the temporary files
// a crash left beside the configuration file.

// TestStartupPortTaken: started on an HTTP port another socket holds, the
// proxy exits 1 with a message naming the listener, its key and address,
// and the reason.
func TestStartupPortTaken(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	path := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, path, `[proxy]
listen_addr_http = "`+addr+`"
management_api_addr = "127.0.0.1:0"

[logging]
format = "json"

[[virtual_hosts]]
domain = "example.com"
enabled_backends_tag = "prod"

[[backends]]
id = "web-server"
address = "127.0.0.1:9"
tags = ["prod"]
`)
	p := startProcess(t, fronttierBin, "--config", path)
	if code := p.wait(t, startTimeout); code != 1 {
		t.Fatalf("exit code %d with its port held, want 1:\n%s", code, p.out.String())
	}
	out := p.out.String()
	for _, want := range []string{"http listener", "proxy.listen_addr_http", addr, "address already in use", "another process"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q:\n%s", want, out)
		}
	}
}

// TestStartupRemovesCrashLeftovers: the temporary files of a config write
// cut short by a crash (".config.toml.tmp-<digits>" beside config.toml) are
// removed at start and logged at info with their names; files that only
// look alike, or belong to another file, stay.
func TestStartupRemovesCrashLeftovers(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, conf{Domains: []domainConf{{"example.com", "a"}}})
	dir := filepath.Dir(path)
	stale := []string{".config.toml.tmp-2718281828", ".config.toml.tmp-7"}
	others := []string{".other.toml.tmp-7", ".config.toml.tmp-backup", "config.toml.tmp-7", "notes.txt"}
	for _, name := range append(slices.Clone(stale), others...) {
		writeFile(t, filepath.Join(dir, name), "[proxy]\nlisten_addr_h")
	}

	p := startProxy(t, path)
	line := p.waitLog(t, msgHasPrefix("removed temporary files"), "the removal of the crash's temporary files")
	m, _ := jsonLine(line)
	if m["level"] != "INFO" {
		t.Errorf("logged at %v, want INFO: %s", m["level"], line)
	}
	files, _ := m["files"].([]any)
	var named []string
	for _, f := range files {
		s, _ := f.(string)
		named = append(named, filepath.Base(s))
	}
	slices.Sort(named)
	if !slices.Equal(named, stale) {
		t.Errorf("the log line names %q, want %q: %s", named, stale, line)
	}
	for _, name := range stale {
		if _, err := os.Lstat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", name, err)
		}
	}
	for _, name := range others {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
	// The proxy is up on the file.
	if resp, _ := p.get(t, "example.com", "/"); resp.StatusCode != 503 {
		t.Errorf("example.com (a tag with no backend) answered %d, want 503", resp.StatusCode)
	}
}
