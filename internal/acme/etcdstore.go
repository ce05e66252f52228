package acme

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdStore keeps the accounts and certificates of a fleet in etcd, so
// that every node serves the same certificates and orders with the same
// account (see "Fleet" in the package comment for the key layout). local,
// the node's CacheDir, keeps a copy of the certificates (never of the
// account) that this node served, read only when etcd cannot be reached,
// and is where a node coming from single-node mode finds what it had.
//
// A request to etcd waits at most timeout. down is set when one failed
// for want of etcd and cleared by the next one that succeeds (the watch
// retries on its own): while it is set, certificates are read from the
// local copy at once, so that starting with many domains while etcd is
// away costs one timeout, not one per domain.
type etcdStore struct {
	cli     *clientv3.Client
	keys    fleetKeys
	local   *fileStore
	timeout time.Duration
	log     *slog.Logger

	down atomic.Bool
	// since is the etcd revision of the first certificate read, from which
	// the watch catches up; 0 before any.
	since atomic.Int64
}

var _ store = (*etcdStore)(nil)

// fleetKeys are the etcd keys of a fleet's ACME state; each is a prefix
// followed by the name given.
type fleetKeys struct {
	accounts string // {prefix}/acme/accounts/<ca>/ + e-mail or "default"
	certs    string // {prefix}/acme/certificates/<ca>/ + domain
	attempts string // {prefix}/acme/attempts/<ca>/ + domain
	http01   string // {prefix}/acme/challenges/http-01/ + token
	alpn01   string // {prefix}/acme/challenges/tls-alpn-01/ + domain
	locks    string // {prefix}/locks/acme/ + domain
}

func newFleetKeys(prefix, ca string) fleetKeys {
	p := strings.TrimRight(prefix, "/")
	return fleetKeys{
		accounts: p + "/acme/accounts/" + ca + "/",
		certs:    p + "/acme/certificates/" + ca + "/",
		attempts: p + "/acme/attempts/" + ca + "/",
		http01:   p + "/acme/challenges/http-01/",
		alpn01:   p + "/acme/challenges/tls-alpn-01/",
		locks:    p + "/locks/acme/",
	}
}

// accountRecord is the value of an account key.
type accountRecord struct {
	Account acmeproto.Account `json:"account"`
	Key     string            `json:"key"` // PKCS #8 PEM
}

// certRecord is the value of a certificate key: chain, key and metadata
// in one value, so that no node ever reads a chain with another's key.
type certRecord struct {
	Chain string   `json:"chain"` // PEM, leaf first
	Key   string   `json:"key"`   // PKCS #8 PEM
	Meta  certMeta `json:"meta"`
}

// attemptRecord is the value of an attempts key: the fleet's failed
// attempts at a domain since its last certificate, so that the backoff is
// the fleet's and not each node's.
type attemptRecord struct {
	Failures int       `json:"failures"`
	RetryAt  time.Time `json:"retry_at"`
	Node     string    `json:"node"`
	Error    string    `json:"error"`
}

// errAccountTaken: another node registered the fleet's account first.
var errAccountTaken = errors.New("another node of the fleet registered the account first")

// newEtcdStore returns the store of the fleet's ACME state under prefix
// for the CA of directoryURL, with its local copy in cacheDir.
func newEtcdStore(cli *clientv3.Client, prefix, cacheDir, directoryURL string, timeout time.Duration, log *slog.Logger) (*etcdStore, error) {
	local, err := newFileStore(cacheDir, directoryURL)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(directoryURL)
	if err != nil {
		return nil, fmt.Errorf("etcd store: directory URL: %w", err)
	}
	return &etcdStore{cli: cli, keys: newFleetKeys(prefix, safeName(u.Host+u.Path)),
		local: local, timeout: timeout, log: log}, nil
}

// ctx returns a context for one request to etcd.
func (s *etcdStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// reached records whether a request reached etcd.
func (s *etcdStore) reached(err error) {
	if s.down.Swap(err != nil) != (err != nil) {
		if err != nil {
			s.log.Warn("etcd cannot be reached: serving the certificates this node has; no order until it is back", "error", err)
		} else {
			s.log.Info("etcd reached again: certificates are shared with the fleet")
		}
	}
}

func (s *etcdStore) accountKey(email string) string {
	return s.keys.accounts + safeName(strings.ToLower(email))
}

// loadAccount reads the fleet's account. When etcd has none, an account
// in the local cache (this node alone before it joined a fleet) becomes
// the fleet's, unless another node's got there first.
func (s *etcdStore) loadAccount(email string) (acmeproto.Account, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.accountKey(email))
	s.reached(err)
	if err != nil {
		return acmeproto.Account{}, fmt.Errorf("load account from etcd: %w", err)
	}
	if len(resp.Kvs) > 0 {
		return decodeAccount(resp.Kvs[0].Value)
	}
	acct, err := s.local.loadAccount(email)
	if err != nil {
		return acmeproto.Account{}, err // errNoAccount included
	}
	switch err := s.saveAccount(email, acct); {
	case errors.Is(err, errAccountTaken):
		return s.loadAccount(email)
	case err != nil:
		return acmeproto.Account{}, err
	}
	s.log.Info("This node's cached ACME account is now the fleet's", "account", acct.Location)
	return acct, nil
}

func decodeAccount(data []byte) (acmeproto.Account, error) {
	var rec accountRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return acmeproto.Account{}, fmt.Errorf("decode account from etcd: %w", err)
	}
	key, err := parsePrivateKey([]byte(rec.Key))
	if err != nil {
		return acmeproto.Account{}, fmt.Errorf("decode account key from etcd: %w", err)
	}
	rec.Account.PrivateKey = key
	return rec.Account, nil
}

// saveAccount writes acct unless etcd holds an account with another key
// (another node registered first): then it returns an error wrapping
// errAccountTaken and the caller uses that account.
func (s *etcdStore) saveAccount(email string, acct acmeproto.Account) error {
	keyPEM, err := marshalPrivateKey(acct.PrivateKey)
	if err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	data, err := json.Marshal(accountRecord{Account: acct, Key: string(keyPEM)})
	if err != nil {
		return fmt.Errorf("save account: %w", err)
	}
	key := s.accountKey(email)
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key)).
		Commit()
	s.reached(err)
	if err != nil {
		return fmt.Errorf("save account to etcd: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return s.saveAccount(email, acct) // deleted meanwhile
	}
	theirs, err := decodeAccount(kvs[0].Value)
	if err == nil && !samePublicKey(theirs, acct) {
		return fmt.Errorf("save account: %w", errAccountTaken)
	}
	// The same key (registered again), or a damaged value: replace it.
	if _, err := s.cli.Put(ctx, key, string(data)); err != nil {
		return fmt.Errorf("save account to etcd: %w", err)
	}
	return nil
}

func samePublicKey(a, b acmeproto.Account) bool {
	x, err1 := x509.MarshalPKIXPublicKey(a.PrivateKey.Public())
	y, err2 := x509.MarshalPKIXPublicKey(b.PrivateKey.Public())
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// loadCertificate reads the fleet's certificate for domain and refreshes
// the local copy. When etcd cannot be reached it reads the local copy;
// when etcd has no certificate, a usable one in the local cache (this
// node alone before it joined a fleet) becomes the fleet's.
func (s *etcdStore) loadCertificate(domain string) (*certificate, error) {
	if s.down.Load() {
		return s.local.loadCertificate(domain)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keys.certs+domain)
	s.reached(err)
	if err != nil {
		return s.local.loadCertificate(domain)
	}
	s.since.CompareAndSwap(0, resp.Header.Revision)
	if len(resp.Kvs) > 0 {
		c, rec, err := decodeCertificate(domain, resp.Kvs[0].Value)
		if err != nil {
			return nil, err
		}
		s.keepCopy(domain, c, rec)
		return c, nil
	}
	return s.importCertificate(ctx, domain)
}

// importCertificate makes the local cache's certificate for domain the
// fleet's when it is usable and etcd still has none.
func (s *etcdStore) importCertificate(ctx context.Context, domain string) (*certificate, error) {
	chainPEM, keyPEM, meta, err := s.local.readCertificate(domain)
	if err != nil {
		return nil, err
	}
	c, err := parseCertificate(chainPEM, keyPEM, meta)
	if err != nil {
		return nil, fmt.Errorf("load certificate for %s: %w", domain, err)
	}
	c.meta = checkedMeta(domain, c, meta)
	if c.usableFor(unitDomain(domain), time.Now()) != nil {
		return c, nil // the caller says why it is not used
	}
	data, err := json.Marshal(certRecord{Chain: string(chainPEM), Key: string(keyPEM), Meta: c.meta})
	if err != nil {
		return nil, fmt.Errorf("save certificate for %s: %w", domain, err)
	}
	key := s.keys.certs + domain
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key)).
		Commit()
	s.reached(err)
	switch {
	case err != nil:
		return c, nil // serve it; etcd gets it from the next order
	case resp.Succeeded:
		s.log.Info("This node's cached certificate is now the fleet's", "domain", domain, "serial", c.serial())
		return c, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return c, nil
	}
	theirs, rec, err := decodeCertificate(domain, kvs[0].Value)
	if err != nil {
		return nil, err
	}
	s.keepCopy(domain, theirs, rec)
	return theirs, nil
}

// decodeCertificate parses the value of domain's certificate key.
func decodeCertificate(domain string, data []byte) (*certificate, certRecord, error) {
	var rec certRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, rec, fmt.Errorf("load certificate for %s from etcd: %w", domain, err)
	}
	c, err := parseCertificate([]byte(rec.Chain), []byte(rec.Key), rec.Meta)
	if err != nil {
		return nil, rec, fmt.Errorf("load certificate for %s from etcd: %w", domain, err)
	}
	c.meta = checkedMeta(domain, c, rec.Meta)
	return c, rec, nil
}

// keepCopy writes c to the local copy unless it holds c already.
func (s *etcdStore) keepCopy(domain string, c *certificate, rec certRecord) {
	if s.local.cachedSerial(domain) == c.serial() {
		return
	}
	if err := s.local.saveCertificate(domain, []byte(rec.Chain), []byte(rec.Key), c.meta); err != nil {
		s.log.Warn("Keeping a local copy of the fleet's certificate failed", "domain", domain, "error", err)
	}
}

// saveCertificate writes the certificate to the local copy and to etcd,
// where it replaces the fleet's and ends the domain's failed attempts.
// The certificate is in the local copy even when etcd cannot be reached.
func (s *etcdStore) saveCertificate(domain string, chainPEM, keyPEM []byte, meta certMeta) error {
	localErr := s.local.saveCertificate(domain, chainPEM, keyPEM, meta)
	data, err := json.Marshal(certRecord{Chain: string(chainPEM), Key: string(keyPEM), Meta: meta})
	if err != nil {
		return fmt.Errorf("save certificate for %s: %w", domain, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err = s.cli.Txn(ctx).Then(
		clientv3.OpPut(s.keys.certs+domain, string(data)),
		clientv3.OpDelete(s.keys.attempts+domain),
	).Commit()
	s.reached(err)
	if err != nil {
		err = fmt.Errorf("save certificate for %s to etcd: %w", domain, err)
	}
	return errors.Join(err, localErr)
}

// saveMeta replaces the metadata of the fleet's certificate for domain
// if it is still the certificate meta describes (another node may have
// renewed it meanwhile), and that of the local copy.
func (s *etcdStore) saveMeta(domain string, meta certMeta) error {
	localErr := s.local.saveMeta(domain, meta)
	key := s.keys.certs + domain
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	s.reached(err)
	if err != nil {
		return errors.Join(fmt.Errorf("save metadata for %s to etcd: %w", domain, err), localErr)
	}
	if len(resp.Kvs) == 0 {
		return localErr
	}
	var rec certRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil || rec.Meta.Serial != meta.Serial {
		return localErr
	}
	rec.Meta = meta
	data, err := json.Marshal(rec)
	if err != nil {
		return errors.Join(fmt.Errorf("save metadata for %s: %w", domain, err), localErr)
	}
	_, err = s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		err = fmt.Errorf("save metadata for %s to etcd: %w", domain, err)
	}
	return errors.Join(err, localErr)
}

// latest reads, in one linearizable request, the fleet's certificate for
// domain (nil when it has none) and its failed attempts since.
func (s *etcdStore) latest(ctx context.Context, domain string) (*certificate, attemptRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.keys.certs+domain),
		clientv3.OpGet(s.keys.attempts+domain),
	).Commit()
	s.reached(err)
	if err != nil {
		return nil, attemptRecord{}, fmt.Errorf("read the fleet's certificate for %s: %w", domain, err)
	}
	var c *certificate
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var rec certRecord
		c, rec, err = decodeCertificate(domain, kvs[0].Value)
		if err != nil {
			// A damaged value is replaced by the next order.
			s.log.Warn("Ignoring the fleet's certificate", "domain", domain, "error", err)
			c = nil
		} else {
			s.keepCopy(domain, c, rec)
		}
	}
	var att attemptRecord
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if json.Unmarshal(kvs[0].Value, &att) != nil {
			att = attemptRecord{}
		}
	}
	return c, att, nil
}

// recordFailure writes the fleet's failed attempts at domain.
func (s *etcdStore) recordFailure(domain string, att attemptRecord) error {
	data, err := json.Marshal(att)
	if err != nil {
		return fmt.Errorf("record failed attempt at %s: %w", domain, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err = s.cli.Put(ctx, s.keys.attempts+domain, string(data))
	s.reached(err)
	if err != nil {
		return fmt.Errorf("record failed attempt at %s in etcd: %w", domain, err)
	}
	return nil
}
