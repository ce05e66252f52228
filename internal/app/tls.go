package app

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"fronttier/internal/acme"
	"fronttier/internal/admin"
	"fronttier/internal/certs"
	"fronttier/internal/config"
)

// buildTLS creates the certificate store and the ACME manager feeding it.
// The ACME manager exists even with no lets_encrypt host: one may be added
// over the API, and an idle manager contacts no one.
func (a *App) buildTLS(cfg *config.Config) error {
	log := a.log.Logger
	a.certs = certs.New(certs.Options{
		Log:            log,
		Registerer:     a.metrics.Registry(),
		RenewalWarning: time.Duration(cfg.LetsEncrypt.RenewalDaysBeforeExpiry) * 24 * time.Hour,
	})
	le := cfg.LetsEncrypt
	dir := le.DirectoryURL
	if dir == "" {
		dir = acme.LetsEncryptProduction
		if le.Staging {
			dir = acme.LetsEncryptStaging
		}
	}
	var err error
	a.acme, err = acme.New(acme.Options{
		Email:          le.Email,
		DirectoryURL:   dir,
		CARoot:         le.CARoot,
		CacheDir:       le.CacheDir,
		RenewalCheck:   secs(le.RenewalCheckIntervalSecs),
		RenewBefore:    time.Duration(le.RenewalDaysBeforeExpiry) * 24 * time.Hour,
		PreferredChain: le.PreferredChain,
		Profile:        le.Profile,
		KeyTypes:       le.KeyTypes,
		Installer:      a.certs,
		Log:            log,
		Registerer:     a.metrics.Registry(),
		Fleet:          a.fleetACME(cfg),
	})
	if err != nil {
		return fmt.Errorf("lets_encrypt: %w", err)
	}
	a.certs.SetACME(a.acme)
	if len(acmeDomains(cfg)) > 0 {
		// Fail at start, not at the first issuance, when the cache cannot
		// be created (in a fleet it keeps a copy of the certificates, for
		// a start while etcd is away).
		if err := os.MkdirAll(le.CacheDir, 0o700); err != nil {
			return fmt.Errorf("lets_encrypt.cache_dir: %w", err)
		}
	}
	return nil
}

// published follows the configuration in force: certificates, ACME domains
// and the metrics of domains that are gone. The store calls it in order,
// under its lock. When only one domain changed and not in a way that
// concerns certificates (a switch), nothing needs doing: with tens of
// thousands of domains a switch must stay cheap.
func (a *App) published(old, next *config.Config, domain string) {
	if domain != "" && old != nil {
		was, is := old.Host(domain), next.Host(domain)
		if was != nil && is != nil && sameTLS(was, is) {
			return
		}
		if is == nil {
			a.metrics.Forget(domain)
		}
	} else if old != nil {
		for _, v := range old.VirtualHosts {
			if next.Host(v.Domain) == nil {
				a.metrics.Forget(v.Domain)
			}
		}
	}
	a.certs.Sync(certHosts(next, a.acme.KeyTypes()))
	a.certs.SetDefault(next.Proxy.DefaultCertificate)
	a.acme.Sync(acmeDomains(next))
}

// sameTLS reports whether two versions of a host need the same
// certificate handling.
func sameTLS(a, b *config.VirtualHost) bool {
	if a.TLS() != b.TLS() || (a.CertificateSource == nil) != (b.CertificateSource == nil) {
		return false
	}
	return a.CertificateSource.Equal(b.CertificateSource)
}

// certHosts lists the hosts served on HTTPS with their certificate
// sources; lets_encrypt hosts get the ACME side's key types.
func certHosts(c *config.Config, keyTypes []string) []certs.Host {
	hosts := make([]certs.Host, 0, len(c.VirtualHosts))
	for _, v := range c.VirtualHosts {
		h := certs.Host{Domain: v.Domain}
		if s := v.CertificateSource; s != nil && v.TLS() {
			h = certHost(v.Domain, s)
			if s.Type == config.SourceLetsEncrypt {
				h.KeyTypes = keyTypes
			}
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// certHost is the certificate manager's view of a host's source.
func certHost(domain string, s *config.CertificateSource) certs.Host {
	h := certs.Host{Domain: domain, Source: s.Type, CertPath: s.CertPath, KeyPath: s.KeyPath}
	for _, f := range s.Additional {
		h.Additional = append(h.Additional, certs.Pair{CertPath: f.CertPath, KeyPath: f.KeyPath})
	}
	return h
}

// acmeDomains lists the hosts whose certificates come from ACME.
func acmeDomains(c *config.Config) []string {
	var ds []string
	for _, v := range c.VirtualHosts {
		if s := v.CertificateSource; s != nil && s.Type == config.SourceLetsEncrypt && v.TLS() {
			ds = append(ds, v.Domain)
		}
	}
	return ds
}

// checkCertFiles loads the file certificates of next whose source is new or
// changed since old (all of them when old is nil) and returns every failure,
// expired certificates included, each naming its host: an API change or a
// reload must not install a certificate that does not load, and `fronttier
// validate` reports every one. Start-up does not call it: there a file that
// does not load is reported by the certificate manager as at run time, so
// that one domain's file cannot keep every other domain down.
func checkCertFiles(old, next *config.Config, now time.Time) error {
	var errs []error
	for i, v := range next.VirtualHosts {
		s := v.CertificateSource
		if s == nil || s.Type != config.SourceFile || !v.TLS() {
			continue
		}
		if old != nil {
			if o := old.Host(v.Domain); o != nil && o.CertificateSource.Equal(s) && o.TLS() {
				continue
			}
		}
		if err := certs.CheckFiles(certHost(v.Domain, s), now); err != nil {
			key := fmt.Sprintf("virtual_hosts[%d].certificate_source", i)
			var ce *certs.ChainError
			if errors.As(err, &ce) && ce.Chain > 0 {
				key += fmt.Sprintf(".additional[%d]", ce.Chain-1)
			}
			errs = append(errs, &config.FieldError{Key: key, Err: fmt.Errorf("%s: %w", v.Domain, err)})
		}
	}
	return errors.Join(errs...)
}

// Validate loads the configuration at path and checks it as `fronttier
// validate` does: the file itself, then every certificate file it names
// (expired ones included).
func Validate(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	return checkCertFiles(nil, cfg, time.Now())
}

// certsAPI adapts the certificate store to the management API, mapping its
// errors to statuses.
type certsAPI struct{ m *certs.Manager }

func (c certsAPI) List() any { return c.m.List() }

func (c certsAPI) Reload(domain string) error {
	err := c.m.Reload(domain)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, certs.ErrNotFound), errors.Is(err, acme.ErrNotManaged):
		return &admin.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("no certificate is configured for domain %q", domain)}
	case errors.Is(err, acme.ErrNoCertificate):
		return &admin.Error{Code: http.StatusConflict, Msg: err.Error()}
	default: // the files do not load: the old certificate is still served
		return &admin.Error{Code: http.StatusBadRequest, Msg: "certificate not reloaded, the previous one is still served: " + err.Error()}
	}
}

// renewableCertsAPI is certsAPI that also renews ACME certificates on
// request (POST /api/v1/certificates/{domain}/renew).
type renewableCertsAPI struct {
	certsAPI
	acme *acme.Manager
}

var _ admin.CertificateRenewer = renewableCertsAPI{}

// Renew starts a new ACME order for domain and returns its certificate
// entry, now "renewing" (or "pending" while none is served): 404 for a
// domain without a certificate, 409 for one whose certificate is not from
// ACME or that ACME cannot manage (a wildcard, an IP address).
func (c renewableCertsAPI) Renew(domain string) (any, error) {
	in, err := c.m.Info(domain)
	switch {
	case errors.Is(err, certs.ErrNotFound):
		return nil, &admin.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("no certificate is configured for domain %q", domain)}
	case err != nil:
		return nil, err
	case in.Source != certs.SourceLetsEncrypt:
		return nil, &admin.Error{Code: http.StatusConflict, Msg: fmt.Sprintf(
			"the certificate of %q comes from a %s, not from ACME; reload it with POST /api/v1/certificates/%s/reload",
			in.Domain, in.Source, in.Domain)}
	}
	if err := c.acme.Renew(in.Domain); err != nil {
		if errors.Is(err, acme.ErrNotManaged) {
			return nil, &admin.Error{Code: http.StatusConflict, Msg: "certificate not renewed: " + err.Error()}
		}
		return nil, err
	}
	return c.m.Info(in.Domain)
}
