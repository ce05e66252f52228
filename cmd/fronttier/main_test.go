package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[proxy]\nlisten_addr_http = \"127.0.0.1:0\"\n"), 0o600)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[proxy]\nlisten_addr_http = \"nohost\"\nbogus = 1\n[logging]\nformat = \"xml\"\n"), 0o600)

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err string   // substrings of stdout and stderr
		errLines []string // each must be on its own line of stderr
	}{
		{name: "validate ok", args: []string{"validate", "--config", good}, code: 0, out: "ok\n"},
		{name: "validate -c shorthand", args: []string{"validate", "-c", good}, code: 0, out: "ok\n"},
		{name: "validate lists every problem", args: []string{"validate", "--config", bad}, code: 1,
			errLines: []string{"proxy.bogus: unknown key", "proxy.listen_addr_http", "logging.format"}},
		{name: "missing file", args: []string{"validate", "-c", filepath.Join(dir, "none.toml")}, code: 1, err: "none.toml"},
		{name: "version", args: []string{"version"}, code: 0, out: "fronttier "},
		{name: "unknown command", args: []string{"serve"}, code: 2, err: `unknown command "serve"`},
		{name: "stray argument", args: []string{"validate", "-c", good, "extra"}, code: 2, err: `unexpected argument "extra"`},
		{name: "unknown flag", args: []string{"--nope"}, code: 2, err: "flag provided but not defined"},
		{name: "help", args: []string{"-h"}, code: 0, err: "usage: fronttier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("stdout %q (want %q), stderr %q (want %q)", &stdout, tc.out, &stderr, tc.err)
			}
			lines := strings.Split(stderr.String(), "\n")
			for _, want := range tc.errLines {
				n := 0
				for _, l := range lines {
					if strings.Contains(l, want) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%q on %d lines of stderr, want exactly one:\n%s", want, n, &stderr)
				}
			}
		})
	}
}

func TestVersionLine(t *testing.T) {
	t.Parallel()
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "fronttier", Version: "v0.0.0-20261203180000-abc123def4567890"}}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	full := vcs("vcs", "git", "vcs.revision", "abc123def4567890abc123def4567890abc12345",
		"vcs.time", "2026-12-03T18:00:00Z", "vcs.modified", "true")
	for _, tc := range []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    string
	}{
		{name: "module version and VCS", version: "dev", bi: full,
			want: "fronttier v0.0.0-20261203180000-abc123def4567890 (revision abc123def456, 2026-12-03T18:00:00Z, modified)"},
		{name: "ldflags version wins", version: "v1.2.3", bi: full,
			want: "fronttier v1.2.3 (revision abc123def456, 2026-12-03T18:00:00Z, modified)"},
		{name: "clean tree", version: "dev", bi: vcs("vcs.revision", "abc123", "vcs.time", "2026-12-03T18:00:00Z", "vcs.modified", "false"),
			want: "fronttier v0.0.0-20261203180000-abc123def4567890 (revision abc123, 2026-12-03T18:00:00Z)"},
		{name: "no VCS information", version: "dev", bi: vcs(), want: "fronttier v0.0.0-20261203180000-abc123def4567890"},
		{name: "no build information", version: "dev", bi: nil, want: "fronttier dev"},
		{name: "ldflags, no build information", version: "v1.2.3", bi: nil, want: "fronttier v1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := versionLine(tc.version, tc.bi); got != tc.want {
				t.Errorf("versionLine(%q) = %q, want %q", tc.version, got, tc.want)
			}
		})
	}
}

// TestVersionBuilt builds the command as a release would, with VCS stamping
// and -X main.version, and checks that `fronttier version` shows both.
func TestVersionBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "fronttier")
	for _, tc := range []struct {
		name    string
		ldflags string
		prefix  string
	}{
		{name: "module version", prefix: "fronttier v"},
		{name: "ldflags version", ldflags: "-X main.version=v9.8.7-test", prefix: "fronttier v9.8.7-test "},
	} {
		build := exec.Command("go", "build", "-buildvcs=true", "-ldflags", tc.ldflags, "-o", bin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%s: go build: %v\n%s", tc.name, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s: fronttier version: %v", tc.name, err)
		}
		got := string(out)
		if want := "(revision " + string(head[:12]) + ", "; !strings.HasPrefix(got, tc.prefix) || !strings.Contains(got, want) {
			t.Errorf("%s: fronttier version = %q, want prefix %q and %q", tc.name, got, tc.prefix, want)
		}
	}
}
