package acme

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	acmeproto "github.com/mholt/acmez/v3/acme"
)

// store keeps accounts and certificates: fileStore on a node alone,
// etcdStore in a fleet.
type store interface {
	// loadAccount returns the account for email with its private key, or an
	// error wrapping errNoAccount.
	loadAccount(email string) (acmeproto.Account, error)
	saveAccount(email string, acct acmeproto.Account) error
	// loadCertificate returns the cached certificate for domain, or an error
	// wrapping ErrNoCertificate when there is none.
	loadCertificate(domain string) (*certificate, error)
	saveCertificate(domain string, chainPEM, keyPEM []byte, meta certMeta) error
	saveMeta(domain string, meta certMeta) error
}

var errNoAccount = errors.New("no cached account")

// File and directory modes in the cache.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// fileStore keeps the cache in a directory tree (see the package comment).
// Files are replaced atomically: written to a temporary file in the same
// directory, synced, renamed over the old one, and the directory synced.
type fileStore struct {
	root string
	ca   string // directory name derived from the ACME directory URL
}

var _ store = (*fileStore)(nil)

// newFileStore returns the store rooted at root. The directory (0700) is
// created by the first write, so a proxy with no ACME domain leaves no
// trace on disk.
func newFileStore(root, directoryURL string) (*fileStore, error) {
	u, err := url.Parse(directoryURL)
	if err != nil {
		return nil, fmt.Errorf("cache: directory URL: %w", err)
	}
	return &fileStore{root: root, ca: safeName(u.Host + u.Path)}, nil
}

// safeName maps s to a single path element of [A-Za-z0-9._@+-].
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '_', r == '@', r == '+', r == '-':
			return r
		}
		return '-'
	}, s)
	s = strings.Trim(s, "-.")
	if s == "" {
		return "default"
	}
	return s
}

func (s *fileStore) accountDir(email string) string {
	return filepath.Join(s.root, "accounts", s.ca, safeName(strings.ToLower(email)))
}

// certDir is the directory of a unit's files (see unitKey): the
// domain's, for every key type.
func (s *fileStore) certDir(key string) string {
	return filepath.Join(s.root, "certificates", s.ca, unitDomain(key))
}

func (s *fileStore) loadAccount(email string) (acmeproto.Account, error) {
	dir := s.accountDir(email)
	keyPEM, err := os.ReadFile(filepath.Join(dir, "account.key"))
	if errors.Is(err, fs.ErrNotExist) {
		return acmeproto.Account{}, fmt.Errorf("load account: %w", errNoAccount)
	}
	if err != nil {
		return acmeproto.Account{}, fmt.Errorf("load account: %w", err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return acmeproto.Account{}, fmt.Errorf("load account key in %s: %w", dir, err)
	}
	var acct acmeproto.Account
	data, err := os.ReadFile(filepath.Join(dir, "account.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The key alone is enough: registering it again finds the account.
	case err != nil:
		return acmeproto.Account{}, fmt.Errorf("load account: %w", err)
	default:
		if err := json.Unmarshal(data, &acct); err != nil {
			return acmeproto.Account{}, fmt.Errorf("load account in %s: %w", dir, err)
		}
	}
	acct.PrivateKey = key
	return acct, nil
}

func (s *fileStore) saveAccount(email string, acct acmeproto.Account) error {
	dir := s.accountDir(email)
	keyPEM, err := marshalPrivateKey(acct.PrivateKey)
	if err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	data, err := json.MarshalIndent(acct, "", "  ")
	if err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "account.key"), keyPEM); err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "account.json"), data); err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	return nil
}

func (s *fileStore) loadCertificate(domain string) (*certificate, error) {
	chainPEM, keyPEM, meta, err := s.readCertificate(domain)
	if err != nil {
		return nil, err
	}
	c, err := parseCertificate(chainPEM, keyPEM, meta)
	if err != nil {
		return nil, fmt.Errorf("load certificate for %s: %w", domain, err)
	}
	c.meta = checkedMeta(domain, c, meta)
	return c, nil
}

// readCertificate returns the cached chain, key and metadata of domain,
// unparsed; an error wraps ErrNoCertificate when either file is missing.
func (s *fileStore) readCertificate(domain string) (chainPEM, keyPEM []byte, meta certMeta, err error) {
	dir := s.certDir(domain)
	chainPEM, err = os.ReadFile(filepath.Join(dir, domain+".crt"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, meta, fmt.Errorf("load certificate for %s: %w", domain, ErrNoCertificate)
	}
	if err != nil {
		return nil, nil, meta, fmt.Errorf("load certificate for %s: %w", domain, err)
	}
	keyPEM, err = os.ReadFile(filepath.Join(dir, domain+".key"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, meta, fmt.Errorf("load key for %s: %w", domain, ErrNoCertificate)
	}
	if err != nil {
		return nil, nil, meta, fmt.Errorf("load key for %s: %w", domain, err)
	}
	// The metadata only adds the ARI window; a missing or damaged file
	// leaves the schedule to RenewBefore.
	if data, err := os.ReadFile(filepath.Join(dir, domain+".json")); err == nil {
		if json.Unmarshal(data, &meta) != nil {
			meta = certMeta{}
		}
	}
	return chainPEM, keyPEM, meta, nil
}

// cachedSerial returns the serial number the cached metadata of domain
// names, "" when there is none.
func (s *fileStore) cachedSerial(domain string) string {
	data, err := os.ReadFile(filepath.Join(s.certDir(domain), domain+".json"))
	if err != nil {
		return ""
	}
	var meta certMeta
	if json.Unmarshal(data, &meta) != nil {
		return ""
	}
	return meta.Serial
}

// checkedMeta returns meta if it describes c, else metadata made from c
// alone (the metadata of another certificate: a crash between two
// writes).
func checkedMeta(domain string, c *certificate, meta certMeta) certMeta {
	if meta.Serial != c.serial() {
		return certMeta{Domain: domain, Serial: c.serial(), NotAfter: c.leaf.NotAfter}
	}
	return meta
}

// saveCertificate writes the key, then the chain, then the metadata. A crash
// in between leaves a pair that fails to load, which only means a new
// certificate is obtained.
func (s *fileStore) saveCertificate(domain string, chainPEM, keyPEM []byte, meta certMeta) error {
	dir := s.certDir(domain)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("save certificate for %s: %w", domain, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, domain+".key"), keyPEM); err != nil {
		return fmt.Errorf("save key for %s: %w", domain, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, domain+".crt"), chainPEM); err != nil {
		return fmt.Errorf("save certificate for %s: %w", domain, err)
	}
	return s.saveMeta(domain, meta)
}

func (s *fileStore) saveMeta(domain string, meta certMeta) error {
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("save metadata for %s: %w", domain, err)
	}
	dir := s.certDir(domain)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("save metadata for %s: %w", domain, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, domain+".json"), data); err != nil {
		return fmt.Errorf("save metadata for %s: %w", domain, err)
	}
	return nil
}

// writeFileAtomic replaces path with data (mode 0600) so that readers and
// crashes see either the old or the new content.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(fileMode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func marshalPrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PKCS #8 PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}
