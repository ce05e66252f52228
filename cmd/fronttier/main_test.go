package main

import (
	"bytes"
	"os"
	"path/filepath"
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
