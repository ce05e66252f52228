package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Validate checks the whole configuration and returns every problem, joined,
// each naming its key: "virtual_hosts[2].domain: ...". Names must already be
// normalised (Parse does it).
func (c *Config) Validate() error {
	var v validator
	c.validateShared(&v)
	seenDomain := make(map[string]int, len(c.VirtualHosts))
	for i := range c.VirtualHosts {
		h := &c.VirtualHosts[i]
		if j, dup := seenDomain[h.Domain]; dup && h.Domain != "" {
			v.add(fmt.Sprintf("virtual_hosts[%d].domain", i), fmt.Errorf("%q is already defined by virtual_hosts[%d]", h.Domain, j))
		}
		seenDomain[h.Domain] = i
		if err := h.Validate(c); err != nil { // the key is built only for a problem
			v.check(fmt.Sprintf("virtual_hosts[%d]", i), err)
		}
	}
	seenID := make(map[string]int, len(c.Backends))
	for i := range c.Backends {
		b := &c.Backends[i]
		if j, dup := seenID[b.ID]; dup && b.ID != "" {
			v.add(fmt.Sprintf("backends[%d].id", i), fmt.Errorf("%q is already used by backends[%d]", b.ID, j))
		}
		seenID[b.ID] = i
		if err := b.Validate(); err != nil {
			v.check(fmt.Sprintf("backends[%d]", i), err)
		}
	}
	return v.err()
}

// ValidateShared checks what a change to one host or backend can break
// beyond that item itself: the sections and the references between them
// (proxy.default_certificate naming a host, lets_encrypt hosts needing a
// cache). A change of a valid configuration that validates its own item and
// keeps ids and domains unique needs only this; it costs no allocation per
// host or backend, so it stays cheap with tens of thousands of them.
func (c *Config) ValidateShared() error {
	var v validator
	c.validateShared(&v)
	return v.err()
}

func (c *Config) validateShared(v *validator) {
	c.validateProxy(v)
	c.validateUsers(v)
	c.validateLogging(v)
	c.validateHealth(v)
	c.validateLetsEncrypt(v)
	c.validateRollouts(v)
	if c.Debug.PprofAddr != "" {
		v.check("debug.pprof_addr", CheckListenAddr(c.Debug.PprofAddr))
	}
	if c.Metrics.Enabled {
		v.check("metrics.listen_addr", CheckListenAddr(c.Metrics.ListenAddr))
	}
	if c.Cluster != nil {
		c.validateCluster(v)
	}
}

func (c *Config) validateCluster(v *validator) {
	cl := c.Cluster
	v.oneOf("cluster.store", cl.Store, StoreFile, StoreEtcd)
	if cl.Store != StoreEtcd {
		return
	}
	if len(cl.EtcdEndpoints) == 0 {
		v.add("cluster.etcd_endpoints", errors.New("at least one etcd member (host:port) is required with store = \"etcd\""))
	}
	for i, e := range cl.EtcdEndpoints {
		v.check(fmt.Sprintf("cluster.etcd_endpoints[%d]", i), CheckHostPort(e))
	}
	if !strings.HasPrefix(cl.EtcdPrefix, "/") || strings.HasSuffix(cl.EtcdPrefix, "/") || strings.Contains(cl.EtcdPrefix, "//") {
		v.add("cluster.etcd_prefix", fmt.Errorf("%q must start with / and not end with one", cl.EtcdPrefix))
	}
	if err := CheckID(cl.NodeName); err != nil {
		v.add("cluster.node_name", err)
	}
	if (cl.EtcdCertFile == "") != (cl.EtcdKeyFile == "") {
		v.add("cluster.etcd_key_file", errors.New("etcd_cert_file and etcd_key_file go together"))
	}
	if (cl.EtcdUsername == "") != (cl.EtcdPasswordFile == "") {
		v.add("cluster.etcd_password_file", errors.New("etcd_username and etcd_password_file go together"))
	}
	v.min("cluster.etcd_dial_timeout_secs", cl.EtcdDialTimeoutSecs, 1)
}

func (c *Config) validateProxy(v *validator) {
	p := &c.Proxy
	if p.ListenAddr != "" {
		v.check("proxy.listen_addr", CheckListenAddr(p.ListenAddr))
	}
	if p.ListenAddrHTTP != "" {
		v.check("proxy.listen_addr_http", CheckListenAddr(p.ListenAddrHTTP))
	}
	if p.ListenAddr == "" && p.ListenAddrHTTP == "" {
		v.add("proxy", errors.New("set listen_addr (HTTPS), listen_addr_http (HTTP) or both"))
	}
	if p.ManagementAPIAddr == "" {
		v.add("proxy.management_api_addr", errors.New("must not be empty"))
	} else if err := CheckListenAddr(p.ManagementAPIAddr); err != nil {
		v.add("proxy.management_api_addr", err)
	} else if !IsLoopback(p.ManagementAPIAddr) && p.ManagementAPIToken == "" && p.ManagementAPITokenFile == "" && len(c.Users) == 0 {
		v.add("proxy.management_api_addr", fmt.Errorf("%q is not a loopback address, so anyone who can reach it could change "+
			"every domain and backend; bind it to 127.0.0.1 or ::1, or set proxy.management_api_token or "+
			"proxy.management_api_token_file to require a bearer token", p.ManagementAPIAddr))
	}
	if p.ManagementAPIToken != "" {
		if p.ManagementAPITokenFile != "" {
			v.add("proxy.management_api_token_file", errors.New("cannot be used together with proxy.management_api_token; set only one of them"))
		}
		v.check("proxy.management_api_token", CheckToken(p.ManagementAPIToken))
	}
	if d := p.DefaultCertificate; d != "" && c.Host(NormaliseDomain(d)) == nil {
		v.add("proxy.default_certificate", fmt.Errorf("%q is not a configured virtual host", d))
	}
	v.min("proxy.shutdown_timeout_secs", p.ShutdownTimeoutSecs, 0)
	v.between("proxy.https_port", p.HTTPSPort, 0, 65535)
	v.min("proxy.read_header_timeout_secs", p.ReadHeaderTimeoutSecs, 1)
	v.min("proxy.idle_timeout_secs", p.IdleTimeoutSecs, 1)
	v.min("proxy.max_header_bytes", p.MaxHeaderBytes, 1024)
	if p.MaxBodyBytes < 0 {
		v.add("proxy.max_body_bytes", errors.New("must not be negative (0 means no limit)"))
	}
	v.min("proxy.upstream_timeout_secs", p.UpstreamTimeoutSecs, 0)
	v.min("proxy.upstream_read_timeout_secs", p.UpstreamReadTimeoutSecs, 0)
	v.min("proxy.upstream_max_header_bytes", p.UpstreamMaxHeaderBytes, 1024)
	v.min("proxy.dial_timeout_secs", p.DialTimeoutSecs, 1)
	v.min("proxy.max_idle_conns_per_backend", p.MaxIdleConnsPerBackend, 1)
	v.min("proxy.client_body_timeout_secs", p.ClientBodyTimeoutSecs, 1)
	v.min("proxy.send_timeout_secs", p.SendTimeoutSecs, 1)
	v.min("proxy.max_connections", p.MaxConnections, 0)
	for i, tp := range p.TrustedProxies {
		if _, err := ParsePrefix(tp); err != nil {
			v.add(fmt.Sprintf("proxy.trusted_proxies[%d]", i), err)
		}
	}
}

func (c *Config) validateLogging(v *validator) {
	l := &c.Logging
	v.oneOf("logging.level", strings.ToLower(l.Level), "trace", "debug", "info", "warn", "error")
	v.oneOf("logging.format", l.Format, "text", "json")
	v.oneOf("logging.output", l.Output, "console", "file")
	if l.Output == "file" && l.FilePath == "" {
		v.add("logging.file_path", errors.New("required when output is \"file\""))
	}
	v.min("logging.max_size_mb", l.MaxSizeMB, 1)
	v.min("logging.max_backups", l.MaxBackups, 0)
	v.min("logging.max_age_days", l.MaxAgeDays, 0)
}

func (c *Config) validateHealth(v *validator) {
	h := &c.HealthCheck
	v.min("health_check.interval_secs", h.IntervalSecs, 1)
	v.min("health_check.timeout_secs", h.TimeoutSecs, 1)
	v.min("health_check.unhealthy_threshold", h.UnhealthyThreshold, 1)
	v.min("health_check.healthy_threshold", h.HealthyThreshold, 1)
	if !strings.HasPrefix(h.Path, "/") {
		v.add("health_check.path", fmt.Errorf("%q must start with /", h.Path))
	}
	v.min("health_check.passive_failures", h.PassiveFailures, 0)
	v.min("health_check.passive_window_secs", h.PassiveWindowSecs, 1)
	v.min("health_check.ejection_base_secs", h.EjectionBaseSecs, 0)
	v.min("health_check.ejection_max_secs", h.EjectionMaxSecs, 0)
	if h.EjectionBaseSecs > 0 && h.EjectionMaxSecs < h.EjectionBaseSecs {
		v.add("health_check.ejection_max_secs", fmt.Errorf("%d must not be below ejection_base_secs (%d)", h.EjectionMaxSecs, h.EjectionBaseSecs))
	}
}

func (c *Config) validateLetsEncrypt(v *validator) {
	le := &c.LetsEncrypt
	v.min("lets_encrypt.renewal_check_interval_secs", le.RenewalCheckIntervalSecs, 1)
	v.min("lets_encrypt.renewal_days_before_expiry", le.RenewalDaysBeforeExpiry, 1)
	if le.DirectoryURL != "" && !strings.HasPrefix(le.DirectoryURL, "https://") {
		v.add("lets_encrypt.directory_url", fmt.Errorf("%q must be an https:// URL", le.DirectoryURL))
	}
	for i, kt := range le.KeyTypes {
		key := fmt.Sprintf("lets_encrypt.key_types[%d]", i)
		v.oneOf(key, kt, KeyTypeECDSA, KeyTypeRSA)
		if slices.Contains(le.KeyTypes[:i], kt) {
			v.add(key, fmt.Errorf("%q is listed twice", kt))
		}
	}
	for i := range c.VirtualHosts {
		s := c.VirtualHosts[i].CertificateSource
		if s != nil && s.Type == SourceLetsEncrypt && le.CacheDir == "" {
			v.add("lets_encrypt.cache_dir", fmt.Errorf("required by virtual_hosts[%d] (%s)", i, c.VirtualHosts[i].Domain))
			break
		}
	}
}

// Validate checks one virtual host on its own; keys are relative to it.
// The configuration is consulted for settings the host depends on.
func (h *VirtualHost) Validate(_ *Config) error {
	var v validator
	v.check("domain", CheckDomain(h.Domain))
	v.check("enabled_backends_tag", CheckTag(h.EnabledBackendsTag))
	if h.LBPolicy != "" {
		v.oneOf("lb_policy", h.LBPolicy, PolicyRoundRobin, PolicyLeastConn, PolicyWeighted)
	}
	if s := h.CertificateSource; s != nil {
		switch s.Type {
		case SourceFile:
			if s.CertPath == "" {
				v.add("certificate_source.cert_path", errors.New("required when type is \"file\""))
			} else {
				v.check("certificate_source.cert_path", checkPath(s.CertPath))
			}
			if s.KeyPath == "" {
				v.add("certificate_source.key_path", errors.New("required when type is \"file\""))
			} else {
				v.check("certificate_source.key_path", checkPath(s.KeyPath))
			}
			s.validateAdditional(&v)
		case SourceLetsEncrypt:
			if s.CertPath != "" || s.KeyPath != "" {
				v.add("certificate_source", errors.New("cert_path and key_path apply only to type \"file\""))
			}
			if len(s.Additional) > 0 {
				v.add("certificate_source.additional", errors.New("applies only to type \"file\"; lets_encrypt hosts get the key types of [lets_encrypt] key_types"))
			}
			if strings.HasPrefix(h.Domain, "*.") {
				v.add("certificate_source.type", errors.New("lets_encrypt cannot issue wildcard certificates over HTTP-01"))
			}
		default:
			v.add("certificate_source.type", fmt.Errorf("%q is not one of \"file\", \"lets_encrypt\"", s.Type))
		}
	}
	h.validateSplit(&v)
	return v.err()
}

// MaxAdditionalChains bounds certificate_source.additional: one chain per
// key type (ECDSA, RSA, Ed25519) is all a host can serve.
const MaxAdditionalChains = 2

// validateAdditional checks the further chains of a file source: both
// paths given, and no chain listed twice (the primary included). That
// each chain has its own key type and covers the domain is checked when
// the files are loaded.
func (s *CertificateSource) validateAdditional(v *validator) {
	if len(s.Additional) > MaxAdditionalChains {
		v.add("certificate_source.additional", fmt.Errorf("%d chains; a domain serves at most one chain per key type (ECDSA, RSA, Ed25519), so at most %d besides cert_path", len(s.Additional), MaxAdditionalChains))
		return
	}
	for i, a := range s.Additional {
		key := fmt.Sprintf("certificate_source.additional[%d]", i)
		for _, f := range []struct{ name, path string }{{"cert_path", a.CertPath}, {"key_path", a.KeyPath}} {
			if f.path == "" {
				v.add(key+"."+f.name, errors.New("required"))
			} else {
				v.check(key+"."+f.name, checkPath(f.path))
			}
		}
		switch {
		case a.CertPath != "" && a.CertPath == s.CertPath:
			v.add(key+".cert_path", fmt.Errorf("%q is the primary chain (cert_path) already", a.CertPath))
		case a.CertPath != "" && slices.ContainsFunc(s.Additional[:i], func(b CertificateFiles) bool { return b.CertPath == a.CertPath }):
			v.add(key+".cert_path", fmt.Errorf("%q is listed twice", a.CertPath))
		}
	}
}

// checkPath reports why p cannot be a file path: it holds a control
// character (a NUL cuts it short for the system; a newline forges lines in
// logs and in the saved file's readers).
func checkPath(p string) error {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < ' ' || c == 0x7f {
			return fmt.Errorf("%q has a control character", p)
		}
	}
	return nil
}

// MaxTags bounds the tags of one backend, so a hostile list cannot make
// validation report (and the API answer) one problem per entry by the
// hundred thousand.
const MaxTags = 100

// Validate checks one backend on its own; keys are relative to it.
func (b *Backend) Validate() error {
	var v validator
	v.check("id", CheckID(b.ID))
	if b.Address == "" {
		v.add("address", errors.New("must not be empty"))
	} else {
		v.check("address", CheckHostPort(b.Address))
	}
	if len(b.Tags) > MaxTags {
		v.add("tags", fmt.Errorf("%d tags; a backend may carry at most %d", len(b.Tags), MaxTags))
		return v.err()
	}
	seen := make(map[string]bool, len(b.Tags))
	for i, t := range b.Tags {
		key := fmt.Sprintf("tags[%d]", i)
		v.check(key, CheckTag(t))
		if seen[t] {
			v.add(key, fmt.Errorf("%q is listed twice", t))
		}
		seen[t] = true
	}
	v.between("weight", b.Weight, 0, 1000)
	return v.err()
}

// FieldError is a problem with one key of the configuration. Key is a dotted
// path such as "virtual_hosts[2].certificate_source.type".
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// validator collects problems, each under the key it concerns.
type validator struct{ errs []error }

func (v *validator) add(key string, err error) {
	v.errs = append(v.errs, &FieldError{Key: key, Err: err})
}

// check adds err under key. A FieldError (or several, joined) coming from a
// nested validation keeps its own key below key.
func (v *validator) check(key string, err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if fe, ok := e.(*FieldError); ok {
			v.add(key+"."+fe.Key, fe.Err)
		} else {
			v.add(key, e)
		}
	}
}

func (v *validator) min(key string, n, lo int) {
	if n < lo {
		v.add(key, fmt.Errorf("%d is less than %d", n, lo))
	}
}

func (v *validator) between(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, fmt.Errorf("%d is not between %d and %d", n, lo, hi))
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.add(key, fmt.Errorf("%q is not one of %s", s, quoteList(allowed)))
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = `"` + x + `"`
	}
	return strings.Join(q, ", ")
}

func (v *validator) err() error { return errors.Join(v.errs...) }
