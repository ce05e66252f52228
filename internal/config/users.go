package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// The roles of a management API user, from least to most allowed.
const (
	// RoleViewer may only read (GET and HEAD).
	RoleViewer = "viewer"
	// RoleOperator may also act on existing domains: switch, canary,
	// explain, rollouts, certificate reload and renewal.
	RoleOperator = "operator"
	// RoleAdmin may do everything, including adding, replacing and
	// deleting domains and backends.
	RoleAdmin = "admin"
)

// TokenUserName is the name the single proxy.management_api_token (or
// its file) is known by: an admin user.
const TokenUserName = "token"

// APIUser is one user of the management API ([[api_users]]): a name for
// the audit log, a bearer token, a role and optionally the domains it may
// change. It belongs to this node's own file, never to a fleet's shared
// document.
type APIUser struct {
	// Name identifies the user in the audit log and in 403 answers.
	Name string `toml:"name"`
	// TokenFile names a file holding the user's token (surrounding white
	// space ignored); Load reads it. It excludes TokenSHA256.
	TokenFile string `toml:"token_file,omitempty"`
	// TokenSHA256 is the hex SHA-256 of the user's token, so the file
	// never holds the token itself. It excludes TokenFile.
	TokenSHA256 string `toml:"token_sha256,omitempty"`
	// Role is RoleAdmin, RoleOperator or RoleViewer.
	Role string `toml:"role"`
	// Domains, when not empty, limits the domains the user may change:
	// exact names or wildcards ("*.example.com" matches one further
	// label, as a wildcard virtual host does). Empty means every domain.
	Domains []string `toml:"domains,omitempty"`

	// digest is the SHA-256 of TokenFile's content, read by Load. It is
	// never written back.
	digest []byte
}

// Digest returns the SHA-256 of the user's token: TokenSHA256 decoded, or
// the digest of TokenFile's content as read by Load. It is nil when
// neither is known (a TokenFile not read, or a malformed TokenSHA256).
func (u *APIUser) Digest() []byte {
	if u.TokenSHA256 != "" {
		d, err := hex.DecodeString(u.TokenSHA256)
		if err != nil || len(d) != sha256.Size {
			return nil
		}
		return d
	}
	return u.digest
}

// APIUsers returns every user of the management API: the [[api_users]],
// and the single proxy token, when set, as an admin named TokenUserName.
// Users whose token is not known (see Digest) are left out.
func (c *Config) APIUsers() []APIUser {
	users := make([]APIUser, 0, len(c.Users)+1)
	if t := c.Proxy.APIToken(); t != "" {
		sum := sha256.Sum256([]byte(t))
		users = append(users, APIUser{Name: TokenUserName, Role: RoleAdmin, digest: sum[:]})
	}
	for _, u := range c.Users {
		if u.Digest() != nil {
			users = append(users, u)
		}
	}
	return users
}

// readUserTokens reads the token file of every user that has one.
func (c *Config) readUserTokens() error {
	var errs []error
	for i := range c.Users {
		u := &c.Users[i]
		if u.TokenFile == "" || u.TokenSHA256 != "" {
			continue
		}
		t, err := readToken(u.TokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("api_users[%d].token_file: %w", i, err))
			continue
		}
		sum := sha256.Sum256([]byte(t))
		u.digest = sum[:]
	}
	return errors.Join(errs...)
}

// validateUsers checks [[api_users]]: names unique, one token source
// each, a known role, well-formed domain patterns.
func (c *Config) validateUsers(v *validator) {
	seen := make(map[string]int, len(c.Users))
	for i := range c.Users {
		u := &c.Users[i]
		key := fmt.Sprintf("api_users[%d]", i)
		if err := CheckID(u.Name); err != nil {
			v.add(key+".name", err)
		} else if u.Name == TokenUserName && (c.Proxy.ManagementAPIToken != "" || c.Proxy.ManagementAPITokenFile != "") {
			v.add(key+".name", fmt.Errorf("%q is the name of proxy.management_api_token's user", u.Name))
		} else if j, dup := seen[u.Name]; dup {
			v.add(key+".name", fmt.Errorf("%q is already used by api_users[%d]", u.Name, j))
		}
		seen[u.Name] = i
		switch {
		case u.TokenFile == "" && u.TokenSHA256 == "":
			v.add(key, errors.New("set token_file or token_sha256"))
		case u.TokenFile != "" && u.TokenSHA256 != "":
			v.add(key+".token_sha256", errors.New("cannot be used together with token_file; set only one of them"))
		case u.TokenSHA256 != "":
			if d, err := hex.DecodeString(u.TokenSHA256); err != nil || len(d) != sha256.Size {
				v.add(key+".token_sha256", errors.New("must be 64 hexadecimal digits (the SHA-256 of the token, e.g. from sha256sum)"))
			}
		}
		v.oneOf(key+".role", u.Role, RoleAdmin, RoleOperator, RoleViewer)
		for j, d := range u.Domains {
			if err := CheckDomain(NormaliseDomain(d)); err != nil {
				v.add(fmt.Sprintf("%s.domains[%d]", key, j), err)
			}
		}
	}
}

// MatchDomain reports whether domain (normalised) is one of patterns:
// an exact name, or "*.suffix", which matches a name with exactly one
// label before suffix, and the wildcard name "*.suffix" itself.
func MatchDomain(patterns []string, domain string) bool {
	for _, p := range patterns {
		p = NormaliseDomain(p)
		if p == domain {
			return true
		}
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			label, rest, found := strings.Cut(domain, ".")
			if found && rest == suffix && label != "" && label != "*" {
				return true
			}
		}
	}
	return false
}
