package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"
)

// accountCache holds the registered ACME account. lock is a one-slot
// semaphore (so that waiting for it honours contexts) guarding acct and
// stale.
type accountCache struct {
	lock  chan struct{}
	acct  *acmeproto.Account
	stale bool // the CA no longer knows the cached account: register again
}

// account returns the registered account, loading it from the cache or
// registering it with the CA on first use.
func (m *Manager) account(ctx context.Context) (acmeproto.Account, error) {
	select {
	case m.acct.lock <- struct{}{}:
	case <-ctx.Done():
		return acmeproto.Account{}, ctx.Err()
	}
	defer func() { <-m.acct.lock }()
	if m.acct.acct != nil {
		return *m.acct.acct, nil
	}

	acct, err := m.store.loadAccount(m.email)
	switch {
	case errors.Is(err, errNoAccount):
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return acmeproto.Account{}, fmt.Errorf("generate account key: %w", err)
		}
		acct = acmeproto.Account{PrivateKey: key}
	case err != nil:
		return acmeproto.Account{}, err
	case !m.acct.stale && acct.Status == acmeproto.StatusValid && acct.Location != "":
		m.acct.acct = &acct
		return acct, nil
	}

	// New key, or a known key whose registration is missing or gone:
	// newAccount creates the account or finds the existing one.
	acct = acmeproto.Account{PrivateKey: acct.PrivateKey, TermsOfServiceAgreed: true}
	if m.email != "" {
		acct.Contact = []string{"mailto:" + m.email}
	}
	created, err := m.client.NewAccount(ctx, acct)
	if err != nil {
		return acmeproto.Account{}, fmt.Errorf("register ACME account: %w", err)
	}
	switch err := m.store.saveAccount(m.email, created); {
	case errors.Is(err, errAccountTaken):
		// Another node of the fleet registered at the same time: every
		// node orders with the account the fleet kept.
		theirs, lerr := m.store.loadAccount(m.email)
		if lerr != nil {
			m.log.Error("Reading the fleet's ACME account failed; ordering with this node's", "error", lerr)
			break
		}
		m.acct.acct, m.acct.stale = &theirs, false
		m.log.Info("Using the fleet's ACME account, registered by another node", "account", theirs.Location, "email", m.email)
		return theirs, nil
	case err != nil:
		// Usable in memory; the next start registers the key again.
		m.log.Error("Caching ACME account failed", "error", err)
	}
	m.acct.acct, m.acct.stale = &created, false
	m.log.Info("ACME account registered", "account", created.Location, "email", m.email)
	return created, nil
}

// forgetAccount makes the next account call register again.
func (m *Manager) forgetAccount(ctx context.Context) error {
	select {
	case m.acct.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	m.acct.acct, m.acct.stale = nil, true
	<-m.acct.lock
	return nil
}

// issuedCert is a freshly obtained certificate with the PEM to cache.
type issuedCert struct {
	*certificate
	chainPEM, keyPEM []byte
}

// obtain orders a certificate for d with a new key of d's type (P-256
// ECDSA unless RSA was asked for). cur, when not nil, is
// the certificate being replaced; it is named in the order (ARI "replaces")
// except on every other retry, in case the CA rejects the reference.
func (m *Manager) obtain(ctx context.Context, d *domain, cur *certificate) (*issuedCert, error) {
	dir, err := m.client.GetDirectory(ctx)
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	m.gate.newOrder.CompareAndSwap(nil, &dir.NewOrder)
	acct, err := m.account(ctx)
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	key, err := generateKey(d.keyType)
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: generate %s key: %w", d.name, d.keyType, err)
	}
	csr, err := acmez.NewCSR(key, []string{d.name})
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	params, err := acmez.OrderParametersFromCSR(acct, csr)
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	if cur != nil && d.failures%2 == 0 && cur.meta.RenewalInfo != nil && cur.meta.RenewalInfo.HasWindow() {
		params.Replaces = cur.leaf
	}
	params.Profile = m.orderProfile(dir)

	chains, err := m.client.ObtainCertificate(ctx, params)
	var problem acmeproto.Problem
	if errors.As(err, &problem) && problem.Type == acmeproto.ProblemTypeAccountDoesNotExist {
		m.log.Warn("ACME account unknown to the CA; registering again", "error", err)
		if err = m.forgetAccount(ctx); err == nil {
			params.Account, err = m.account(ctx)
		}
		if err == nil {
			chains, err = m.client.ObtainCertificate(ctx, params)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	if len(chains) == 0 {
		return nil, fmt.Errorf("obtain certificate for %s: the CA returned no certificate chain", d.name)
	}
	chain, matched := preferredChain(chains, m.chainName)
	if m.chainName != "" && !matched {
		m.log.Warn("The CA offered no chain with the preferred name; serving its default chain",
			"domain", d.name, "key_type", d.keyType, "preferred_chain", m.chainName, "chains", len(chains))
	}

	keyPEM, err := marshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	c, err := parseCertificate(chain.ChainPEM, keyPEM, certMeta{})
	if err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	now := m.clock.Now()
	if err := c.usableFor(d.name, now); err != nil {
		return nil, fmt.Errorf("obtain certificate for %s: %w", d.name, err)
	}
	c.meta = certMeta{
		Domain:    d.name,
		Directory: m.directory,
		URL:       chain.URL,
		Serial:    c.serial(),
		NotAfter:  c.leaf.NotAfter,
		Obtained:  now.UTC(),
	}
	if ri := chain.RenewalInfo; m.ari && ri != nil && ri.HasWindow() {
		c.meta.RenewalInfo = ri
	}
	return &issuedCert{certificate: c, chainPEM: chain.ChainPEM, keyPEM: keyPEM}, nil
}

// orderProfile returns the profile to name in a new order: Options.Profile
// if the CA's directory offers it, else "" (the CA's default).
func (m *Manager) orderProfile(dir acmeproto.Directory) string {
	if m.profile == "" {
		return ""
	}
	var offered []string
	if dir.Meta != nil {
		if _, ok := dir.Meta.Profiles[m.profile]; ok {
			return m.profile
		}
		offered = slices.Sorted(maps.Keys(dir.Meta.Profiles))
	}
	if m.noProfile.CompareAndSwap(false, true) {
		m.log.Warn("The CA does not offer the configured certificate profile; ordering its default",
			"profile", m.profile, "offered", offered)
	}
	return ""
}
