package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAPIUsersValidation(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("s3cret"))
	hash := hex.EncodeToString(sum[:])
	const head = "[proxy]\nlisten_addr_http = \"127.0.0.1:8080\"\n"
	tests := []struct {
		name    string
		doc     string
		wantErr []string // substrings; none means valid
	}{
		{name: "hashed operator", doc: "[[api_users]]\nname = \"ops\"\ntoken_sha256 = \"" + hash + "\"\nrole = \"operator\"\ndomains = [\"*.example.com\", \"b.test\"]\n"},
		{name: "viewer", doc: "[[api_users]]\nname = \"v\"\ntoken_sha256 = \"" + strings.ToUpper(hash) + "\"\nrole = \"viewer\"\n"},
		{name: "no token", doc: "[[api_users]]\nname = \"ops\"\nrole = \"admin\"\n", wantErr: []string{"api_users[0]: set token_file or token_sha256"}},
		{name: "both tokens", doc: "[[api_users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_file = \"/x\"\ntoken_sha256 = \"" + hash + "\"\n",
			wantErr: []string{"api_users[0].token_sha256: cannot be used together with token_file"}},
		{name: "bad hash", doc: "[[api_users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"abc\"\n", wantErr: []string{"api_users[0].token_sha256: must be 64 hexadecimal digits"}},
		{name: "bad role", doc: "[[api_users]]\nname = \"ops\"\nrole = \"root\"\ntoken_sha256 = \"" + hash + "\"\n", wantErr: []string{`api_users[0].role: "root" is not one of`}},
		{name: "missing role", doc: "[[api_users]]\nname = \"ops\"\ntoken_sha256 = \"" + hash + "\"\n", wantErr: []string{`api_users[0].role: "" is not one of`}},
		{name: "duplicate names", doc: "[[api_users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"" + hash + "\"\n[[api_users]]\nname = \"ops\"\nrole = \"viewer\"\ntoken_sha256 = \"" + hash + "\"\n",
			wantErr: []string{`api_users[1].name: "ops" is already used by api_users[0]`}},
		{name: "empty name", doc: "[[api_users]]\nrole = \"admin\"\ntoken_sha256 = \"" + hash + "\"\n", wantErr: []string{"api_users[0].name"}},
		{name: "name of the proxy token", doc: "[proxy]\nmanagement_api_token = \"abc\"\n[[api_users]]\nname = \"token\"\nrole = \"admin\"\ntoken_sha256 = \"" + hash + "\"\n",
			wantErr: []string{`api_users[0].name: "token" is the name of proxy.management_api_token's user`}},
		{name: "bad domain", doc: "[[api_users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"" + hash + "\"\ndomains = [\"ok.test\", \"a b\"]\n", wantErr: []string{"api_users[0].domains[1]"}},
		{name: "unknown key", doc: "[[api_users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"" + hash + "\"\ntoken = \"x\"\n", wantErr: []string{"api_users.token: unknown key"}},
		{name: "users allow a non-loopback API", doc: "[proxy]\nlisten_addr_http = \"127.0.0.1:8080\"\nmanagement_api_addr = \"0.0.0.0:9090\"\n[[api_users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"" + hash + "\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := tt.doc
			if !strings.HasPrefix(doc, "[proxy]") {
				doc = head + doc
			} else if !strings.Contains(doc, "listen_addr_http") {
				doc = strings.Replace(doc, "[proxy]\n", head, 1)
			}
			c, err := Parse([]byte(doc))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got := c.APIUsers(); len(got) != 1 || !bytes.Equal(got[0].Digest(), sum[:]) {
					t.Fatalf("APIUsers = %+v", got)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse accepted the document")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Error("the error reveals a token")
			}
		})
	}
}

func TestAPIUsersTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "ops.token")
	if err := os.WriteFile(tokenFile, []byte("  ops-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "fronttier.toml")
	doc := "[proxy]\nlisten_addr_http = \"127.0.0.1:8080\"\nmanagement_api_token = \"admin-secret\"\n" +
		"[[api_users]]\nname = \"ops\"\ntoken_file = \"" + tokenFile + "\"\nrole = \"operator\"\n"
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	users := c.APIUsers()
	if len(users) != 2 {
		t.Fatalf("APIUsers = %d users, want 2", len(users))
	}
	admin, ops := sha256.Sum256([]byte("admin-secret")), sha256.Sum256([]byte("ops-secret"))
	if users[0].Name != TokenUserName || users[0].Role != RoleAdmin || !bytes.Equal(users[0].Digest(), admin[:]) {
		t.Errorf("the proxy token's user = %+v", users[0])
	}
	if users[1].Name != "ops" || users[1].Role != RoleOperator || !bytes.Equal(users[1].Digest(), ops[:]) {
		t.Errorf("ops = %+v", users[1])
	}
	// Written back, the file names the token file and never holds the token.
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("ops-secret")) || !bytes.Contains(out, []byte(tokenFile)) {
		t.Errorf("written back:\n%s", out)
	}

	if err := os.WriteFile(tokenFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "api_users[0].token_file") {
		t.Errorf("Load with an empty token file: %v", err)
	}
}

func TestMatchDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns []string
		domain   string
		want     bool
	}{
		{patterns: []string{"example.com"}, domain: "example.com", want: true},
		{patterns: []string{"Example.COM."}, domain: "example.com", want: true},
		{patterns: []string{"example.com"}, domain: "a.example.com", want: false},
		{patterns: []string{"*.example.com"}, domain: "a.example.com", want: true},
		{patterns: []string{"*.example.com"}, domain: "*.example.com", want: true},
		{patterns: []string{"*.example.com"}, domain: "example.com", want: false},
		{patterns: []string{"*.example.com"}, domain: "a.b.example.com", want: false},
		{patterns: []string{"*.example.com"}, domain: "aexample.com", want: false},
		{patterns: []string{"*.example.com"}, domain: "other.test", want: false},
		{patterns: []string{"x.test", "*.example.com"}, domain: "x.test", want: true},
		{patterns: nil, domain: "x.test", want: false},
	}
	for _, tt := range tests {
		if got := MatchDomain(tt.patterns, tt.domain); got != tt.want {
			t.Errorf("MatchDomain(%q, %q) = %v, want %v", tt.patterns, tt.domain, got, tt.want)
		}
	}
}
