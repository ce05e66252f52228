package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want bool
	}{
		{addr: "127.0.0.1:9090", want: true},
		{addr: "127.1.2.3:9090", want: true},
		{addr: "[::1]:9090", want: true},
		{addr: "localhost:9090", want: true},
		{addr: "LocalHost:0", want: true},
		{addr: "[::ffff:127.0.0.1]:9090", want: true},
		{addr: ":9090", want: false},
		{addr: "0.0.0.0:9090", want: false},
		{addr: "[::]:9090", want: false},
		{addr: "192.168.1.5:9090", want: false},
		{addr: "128.0.0.1:9090", want: false},
		{addr: "localhost.example.com:9090", want: false},
		{addr: "127.0.0.1", want: false},
		{addr: "", want: false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestManagementAPIAccess checks that an API reachable from the network
// needs a token, and the token keys' own rules.
func TestManagementAPIAccess(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-t0ken"
	tests := []struct {
		name  string
		proxy string // lines added to minimal's [proxy]
		// wantErrs must each appear in the error; none means valid.
		wantErrs []string
		// notInErr must not appear in the error (the secret).
		notInErr string
	}{
		{name: "default address, no token"},
		{name: "loopback v4, no token", proxy: `management_api_addr = "127.0.0.2:9090"`},
		{name: "loopback v6, no token", proxy: `management_api_addr = "[::1]:9090"`},
		{name: "localhost, no token", proxy: `management_api_addr = "localhost:9090"`},
		{name: "loopback with token", proxy: `management_api_token = "` + secret + `"`},
		{name: "all interfaces with token", proxy: "management_api_addr = \"0.0.0.0:9090\"\nmanagement_api_token = \"" + secret + "\""},
		{name: "LAN address with token file", proxy: "management_api_addr = \"10.0.0.5:9090\"\nmanagement_api_token_file = \"/run/secrets/api\""},
		{
			name:     "empty host, no token",
			proxy:    `management_api_addr = ":9090"`,
			wantErrs: []string{`proxy.management_api_addr: ":9090" is not a loopback address`, "proxy.management_api_token"},
		},
		{
			name:     "0.0.0.0, no token",
			proxy:    `management_api_addr = "0.0.0.0:9090"`,
			wantErrs: []string{`proxy.management_api_addr: "0.0.0.0:9090" is not a loopback address`, "bearer token"},
		},
		{
			name:     "IPv6 any, no token",
			proxy:    `management_api_addr = "[::]:9090"`,
			wantErrs: []string{"proxy.management_api_addr:", "not a loopback address"},
		},
		{
			name:     "LAN address, no token",
			proxy:    `management_api_addr = "192.168.1.5:9090"`,
			wantErrs: []string{"proxy.management_api_addr:", "not a loopback address"},
		},
		{
			name:     "token and token file",
			proxy:    "management_api_token = \"" + secret + "\"\nmanagement_api_token_file = \"/run/secrets/api\"",
			wantErrs: []string{"proxy.management_api_token_file: cannot be used together with proxy.management_api_token"},
			notInErr: secret,
		},
		{
			name:     "token with a space",
			proxy:    `management_api_token = "` + secret + ` x"`,
			wantErrs: []string{"proxy.management_api_token: character 13 is not printable ASCII"},
			notInErr: secret,
		},
		{
			name:     "token with a newline",
			proxy:    `management_api_token = "` + secret + `\n"`,
			wantErrs: []string{"proxy.management_api_token:"},
			notInErr: secret,
		},
		{
			name:     "token too long",
			proxy:    `management_api_token = "` + strings.Repeat(secret, 100) + `"`,
			wantErrs: []string{"proxy.management_api_token: longer than 1024 characters"},
			notInErr: secret,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(minimal + tt.proxy + "\n"))
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want errors %q", c.Proxy, tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\ndoes not contain %q", err, want)
				}
			}
			if tt.notInErr != "" && strings.Contains(err.Error(), tt.notInErr) {
				t.Errorf("error reveals the token: %v", err)
			}
		})
	}
}

func TestLoadTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	unreadable := write("unreadable", "token\n")
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		tokenFile string
		wantToken string
		wantErr   []string // each must appear in Load's error
	}{
		{name: "trimmed", tokenFile: write("ok", "  s3cr3t-t0ken\n\n"), wantToken: "s3cr3t-t0ken"},
		{name: "missing", tokenFile: filepath.Join(dir, "missing"),
			wantErr: []string{"proxy.management_api_token_file: cannot read the token file", filepath.Join(dir, "missing")}},
		{name: "empty", tokenFile: write("empty", ""),
			wantErr: []string{"proxy.management_api_token_file: token file " + filepath.Join(dir, "empty") + " is empty"}},
		{name: "white space only", tokenFile: write("blank", " \n\t\n"),
			wantErr: []string{"token file " + filepath.Join(dir, "blank") + " is empty"}},
		{name: "two words", tokenFile: write("words", "s3cr3t t0ken\n"),
			wantErr: []string{"token file " + filepath.Join(dir, "words") + ": character 7 is not printable ASCII"}},
		{name: "too large", tokenFile: write("large", strings.Repeat("x", maxTokenFile+1)),
			wantErr: []string{"is larger than 4096 bytes"}},
		{name: "a directory", tokenFile: dir, wantErr: []string{"cannot read the token file", dir}},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name      string
			tokenFile string
			wantToken string
			wantErr   []string
		}{name: "unreadable", tokenFile: unreadable, wantErr: []string{"cannot read the token file", unreadable, "permission denied"}})
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := minimal + "management_api_addr = \"0.0.0.0:9090\"\nmanagement_api_token_file = \"" + tt.tokenFile + "\"\n"
			path := write("config"+string(rune('a'+i))+".toml", doc)
			c, err := Load(path)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Load succeeded, want error %q", tt.wantErr)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error reveals the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := c.Proxy.APIToken(); got != tt.wantToken {
				t.Errorf("APIToken() = %q, want %q", got, tt.wantToken)
			}
			// The token read from the file is never written back.
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), tt.wantToken) {
				t.Errorf("Marshal wrote the file's token into the config:\n%s", out)
			}
			if !strings.Contains(string(out), "management_api_token_file = ") {
				t.Errorf("Marshal lost management_api_token_file:\n%s", out)
			}
		})
	}
}

func TestAPITokenInline(t *testing.T) {
	t.Parallel()
	c := mustParse(t, []byte(minimal+"management_api_token = \"abc.DEF-123_~+/=\"\n"))
	if got := c.Proxy.APIToken(); got != "abc.DEF-123_~+/=" {
		t.Errorf("APIToken() = %q", got)
	}
	if got := mustParse(t, []byte(minimal)).Proxy.APIToken(); got != "" {
		t.Errorf("APIToken() without a token = %q, want empty", got)
	}
}
