// Package config is fronttier's configuration file: the TOML schema of the
// operator's manual as plain structs, its defaults, strict loading, validation
// that names every bad key, and atomic write-back.
//
// The file is the single source of truth: every change accepted by the
// management API is written back here (see Save) before it is acknowledged.
// config imports nothing else of fronttier.
package config

import (
	"slices"
	"strings"
)

// Config is the whole configuration file. The zero value is not useful; start
// from Default or Load.
type Config struct {
	Proxy       Proxy       `toml:"proxy"`
	LetsEncrypt LetsEncrypt `toml:"lets_encrypt"`
	Logging     Logging     `toml:"logging"`
	Metrics     Metrics     `toml:"metrics"`
	HealthCheck HealthCheck `toml:"health_check"`
	Debug       Debug       `toml:"debug"`
	// Rollouts configures what this node's rollout controller tells
	// others; nil means nothing.
	Rollouts *Rollouts `toml:"rollouts,omitempty"`
	// Cluster, when set, makes this node one of a fleet sharing its
	// routing state; nil means a single node whose file is the store.
	Cluster      *Cluster      `toml:"cluster,omitempty"`
	VirtualHosts []VirtualHost `toml:"virtual_hosts"`
	Backends     []Backend     `toml:"backends"`
	// Users are the management API's users ([[api_users]]), this node's
	// own; see APIUsers for every user, the proxy token's included.
	Users []APIUser `toml:"api_users,omitempty"`
}

// Proxy holds the listeners and server-wide limits. An empty listen address
// disables that listener.
type Proxy struct {
	// ListenAddr is the HTTPS listener, host:port.
	ListenAddr string `toml:"listen_addr"`
	// ListenAddrHTTP is the plain HTTP listener, host:port.
	ListenAddrHTTP string `toml:"listen_addr_http"`
	// ManagementAPIAddr is the REST API listener; default 127.0.0.1:9090.
	// An address that is not loopback needs a token (see APIToken).
	ManagementAPIAddr string `toml:"management_api_addr"`
	// ManagementAPIToken, when set, is the bearer token every management
	// API request but GET /api/v1/health must carry. Empty means none.
	ManagementAPIToken string `toml:"management_api_token,omitempty"`
	// ManagementAPITokenFile names a file holding the token instead
	// (surrounding white space ignored), so the secret need not live in
	// this file. Load reads it; it excludes ManagementAPIToken.
	ManagementAPITokenFile string `toml:"management_api_token_file,omitempty"`
	// tokenFromFile is ManagementAPITokenFile's content, read by Load.
	// It is never written back.
	tokenFromFile string
	// ShutdownTimeoutSecs bounds how long SIGTERM waits for in-flight
	// requests to finish before closing connections; default 30.
	ShutdownTimeoutSecs int `toml:"shutdown_timeout_secs"`
	// HTTPSPort is the port written into HTTP->HTTPS redirects. Zero means
	// the port of ListenAddr; set it when a port mapping puts the HTTPS
	// listener behind another port (443 is never written).
	HTTPSPort int `toml:"https_port"`
	// DefaultCertificate names the virtual host whose certificate is served
	// to TLS clients whose SNI matches no certificate (or that send none).
	// Empty means such handshakes fail.
	DefaultCertificate string `toml:"default_certificate,omitempty"`
	// ReadHeaderTimeoutSecs bounds reading a client's request headers; default 10.
	ReadHeaderTimeoutSecs int `toml:"read_header_timeout_secs"`
	// IdleTimeoutSecs closes idle client keep-alive connections; default 120.
	IdleTimeoutSecs int `toml:"idle_timeout_secs"`
	// MaxHeaderBytes limits a request's header size; default 1 MiB.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxBodyBytes limits a request body forwarded upstream; 0 means no limit.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// UpstreamTimeoutSecs bounds the wait for a backend's response head
	// once the request is sent (nginx's proxy_read_timeout for the first
	// byte); default 60, 0 means no limit. Past it: 504.
	UpstreamTimeoutSecs int `toml:"upstream_timeout_secs"`
	// UpstreamReadTimeoutSecs bounds each pause while reading a backend's
	// answer, head and body (nginx's proxy_read_timeout); default 60, 0
	// means no limit. An answer that keeps moving (a server-sent event
	// stream, a long download) is never cut; one that stalls is: 504 if
	// nothing was sent to the client yet, else the client connection is
	// closed so the client can tell a cut answer from a whole one.
	UpstreamReadTimeoutSecs int `toml:"upstream_read_timeout_secs"`
	// UpstreamMaxHeaderBytes bounds a backend's response head (status line
	// and every field, any one line up to all of it); default 1 MiB. A
	// larger head is answered with 502.
	UpstreamMaxHeaderBytes int `toml:"upstream_max_header_bytes"`
	// DialTimeoutSecs bounds connecting to a backend; default 5.
	DialTimeoutSecs int `toml:"dial_timeout_secs"`
	// MaxIdleConnsPerBackend is the size of each backend's keep-alive pool;
	// default 256.
	MaxIdleConnsPerBackend int `toml:"max_idle_conns_per_backend"`
	// ClientBodyTimeoutSecs is the longest a client may pause while sending
	// a request body (between two reads, like nginx's client_body_timeout),
	// so a slowly trickled upload cannot hold a connection forever; default
	// 60.
	ClientBodyTimeoutSecs int `toml:"client_body_timeout_secs"`
	// SendTimeoutSecs bounds each pause while writing the answer to the
	// client (each write must make progress within it, like nginx's
	// send_timeout), so a client that stops reading cannot hold a
	// connection forever; the backend's time to answer does not count.
	// Default 60.
	SendTimeoutSecs int `toml:"send_timeout_secs"`
	// MaxConnections caps open client connections per data-path listener;
	// further clients wait in the accept queue. 0 means no cap.
	MaxConnections int `toml:"max_connections"`
	// TrustedProxies lists addresses or CIDR ranges of proxies in front of
	// fronttier (load balancers, CDNs) whose X-Forwarded-For is kept and
	// extended. From anyone else it is replaced by the client's address.
	TrustedProxies []string `toml:"trusted_proxies,omitempty"`
}

// APIToken returns the management API's bearer token: ManagementAPIToken,
// or the content of ManagementAPITokenFile as read by Load. Empty means the
// API asks for none.
func (p *Proxy) APIToken() string {
	if p.ManagementAPIToken != "" {
		return p.ManagementAPIToken
	}
	return p.tokenFromFile
}

// LetsEncrypt configures ACME issuance for hosts whose certificate source is
// lets_encrypt.
type LetsEncrypt struct {
	Email   string `toml:"email"`
	Staging bool   `toml:"staging"`
	// CacheDir holds the account, certificates and keys.
	CacheDir                 string `toml:"cache_dir"`
	RenewalCheckIntervalSecs int    `toml:"renewal_check_interval_secs"`
	RenewalDaysBeforeExpiry  int    `toml:"renewal_days_before_expiry"`
	// DirectoryURL overrides the ACME directory; empty means Let's Encrypt
	// production or staging, as Staging says.
	DirectoryURL string `toml:"directory_url,omitempty"`
	// CARoot is a PEM file trusted for the ACME server's HTTPS.
	CARoot string `toml:"ca_root,omitempty"`
	// PreferredChain names the common name of the root (or an
	// intermediate) the served chain should end at, when the CA offers
	// alternate chains (Caddy's and Traefik's preferred_chain); empty
	// means the CA's default chain.
	PreferredChain string `toml:"preferred_chain,omitempty"`
	// Profile is the ACME certificate profile to order (draft
	// ietf-acme-profiles, e.g. Let's Encrypt's "tlsserver" or
	// "shortlived"), used only when the CA's directory offers it; empty
	// means the CA's default.
	Profile string `toml:"profile,omitempty"`
	// KeyTypes are the key types of the certificates each lets_encrypt
	// host gets, in order: KeyTypeECDSA (P-256) and KeyTypeRSA (2048
	// bits), each at most once. With both, each host gets, caches and
	// renews one certificate of each, and every client that can verify
	// ECDSA is served that one. Empty means ["ecdsa"].
	KeyTypes []string `toml:"key_types,omitempty"`
}

// Key types of [lets_encrypt] key_types.
const (
	KeyTypeECDSA = "ecdsa"
	KeyTypeRSA   = "rsa"
)

// Logging configures the process log and the optional access log.
type Logging struct {
	Level    string `toml:"level"`     // trace, debug, info, warn, error
	Format   string `toml:"format"`    // text, json
	Output   string `toml:"output"`    // console, file
	FilePath string `toml:"file_path"` // required when Output is file
	// Rotation of FilePath and AccessLogPath.
	MaxSizeMB  int  `toml:"max_size_mb"`
	MaxBackups int  `toml:"max_backups"`
	MaxAgeDays int  `toml:"max_age_days"`
	Compress   bool `toml:"compress"`
	// AccessLog turns on one JSON line per proxied request.
	AccessLog bool `toml:"access_log"`
	// AccessLogPath is the access log's file; empty means standard output.
	AccessLogPath string `toml:"access_log_path"`
	// AuditLogPath, when set, is the file (rotated as FilePath is) that
	// gets one JSON line per change accepted by the management API.
	AuditLogPath string `toml:"audit_log_path,omitempty"`
}

// Metrics configures the optional dedicated Prometheus listener. The metrics
// are always served at /api/v1/metrics on the management API too.
type Metrics struct {
	Enabled    bool   `toml:"enabled"`
	ListenAddr string `toml:"listen_addr"`
}

// Cluster configures where the routing state lives: this file (store =
// "file", the default: one node) or etcd, shared by a fleet of nodes
// (store = "etcd"). With etcd, the fleet shares [health_check],
// [[virtual_hosts]] and [[backends]] (this file's seed the store once,
// when it is empty); every other section stays this node's own.
type Cluster struct {
	Store         string   `toml:"store"`          // "file" (default) or "etcd"
	EtcdEndpoints []string `toml:"etcd_endpoints"` // host:port of etcd members
	// EtcdPrefix is where every key lives; default "/fronttier". Fleets
	// sharing one etcd cluster need prefixes of their own.
	EtcdPrefix string `toml:"etcd_prefix"`
	// NodeName identifies this node in the fleet; default the host name.
	NodeName string `toml:"node_name"`
	// TLS to etcd (a CA to verify its members, and a client certificate
	// if they ask for one) and authentication.
	EtcdCAFile       string `toml:"etcd_ca_file,omitempty"`
	EtcdCertFile     string `toml:"etcd_cert_file,omitempty"`
	EtcdKeyFile      string `toml:"etcd_key_file,omitempty"`
	EtcdUsername     string `toml:"etcd_username,omitempty"`
	EtcdPasswordFile string `toml:"etcd_password_file,omitempty"`
	// SnapshotPath is this node's last-known-good copy of the fleet's
	// state, from which it starts and serves when etcd cannot be reached;
	// default: beside this file, "<file>.fleet-snapshot".
	SnapshotPath string `toml:"snapshot_path,omitempty"`
	// EtcdDialTimeoutSecs bounds each attempt to reach etcd; default 5.
	EtcdDialTimeoutSecs int `toml:"etcd_dial_timeout_secs"`
}

// Cluster store kinds.
const (
	StoreFile = "file"
	StoreEtcd = "etcd"
)

// Fleet reports whether the node shares its state through etcd.
func (c *Config) Fleet() bool { return c.Cluster != nil && c.Cluster.Store == StoreEtcd }

// Debug configures diagnostics that are off by default.
type Debug struct {
	// PprofAddr, when set, serves Go's profiler (/debug/pprof/) on its own
	// listener. It exposes internals: bind it to loopback.
	PprofAddr string `toml:"pprof_addr"`
}

// HealthCheck configures active and passive health checking of backends.
type HealthCheck struct {
	IntervalSecs       int `toml:"interval_secs"`
	TimeoutSecs        int `toml:"timeout_secs"`
	UnhealthyThreshold int `toml:"unhealthy_threshold"`
	HealthyThreshold   int `toml:"healthy_threshold"`
	// Path is the URL path probed on each backend; default /health.
	Path string `toml:"path"`
	// PassiveFailures real-traffic failures within PassiveWindowSecs eject a
	// backend at once; 0 turns passive checking off. Default 5 in 10 s.
	PassiveFailures   int `toml:"passive_failures"`
	PassiveWindowSecs int `toml:"passive_window_secs"`
	// Passive5xx counts 5xx answers from a backend as passive failures.
	Passive5xx bool `toml:"passive_5xx"`
	// EjectionBaseSecs is how long an ejected backend is kept out of
	// rotation at least, after its first ejection; each further ejection
	// that follows before it stayed healthy for EjectionMaxSecs doubles it,
	// up to EjectionMaxSecs (Envoy's outlier detection). Default 10 and
	// 300; 0 turns the hold off (a backend returns after HealthyThreshold
	// passes).
	EjectionBaseSecs int `toml:"ejection_base_secs"`
	EjectionMaxSecs  int `toml:"ejection_max_secs"`
}

// VirtualHost routes one domain to the backends carrying its tag.
type VirtualHost struct {
	Domain             string `toml:"domain"`
	EnabledBackendsTag string `toml:"enabled_backends_tag"`
	// HTTPToHTTPS redirects plain HTTP to HTTPS; nil means true.
	HTTPToHTTPS *bool `toml:"http_to_https,omitempty"`
	// TLSEnabled serves the host on the HTTPS listener; nil means true.
	TLSEnabled *bool `toml:"tls_enabled,omitempty"`
	// LBPolicy is the balancing policy: round_robin (default),
	// least_conn or weighted.
	LBPolicy          string             `toml:"lb_policy,omitempty"`
	CertificateSource *CertificateSource `toml:"certificate_source,omitempty"`
	// Canary, when set, sends a share of the traffic to a second tag;
	// nil means every request goes to EnabledBackendsTag (but overrides).
	Canary *Canary `toml:"canary,omitempty"`
	// Sticky says how clients keep their place; nil means by cookie, with
	// no backend affinity.
	Sticky *Sticky `toml:"sticky,omitempty"`
	// Overrides send matching requests to a tag of their own, checked in
	// order before the canary split.
	Overrides []Override `toml:"overrides,omitempty"`
	// Rollout, when set, is the host's rollout: under way, or the last
	// one, ended (see Rollout).
	Rollout *Rollout `toml:"rollout,omitempty"`
}

// Redirect reports whether the host wants HTTP redirected to HTTPS.
func (v *VirtualHost) Redirect() bool { return v.HTTPToHTTPS == nil || *v.HTTPToHTTPS }

// TLS reports whether the host is served over HTTPS.
func (v *VirtualHost) TLS() bool { return v.TLSEnabled == nil || *v.TLSEnabled }

// Certificate source types.
const (
	SourceFile        = "file"
	SourceLetsEncrypt = "lets_encrypt"
)

// CertificateSource says where a host's certificate comes from.
type CertificateSource struct {
	Type string `toml:"type" json:"type"`
	// CertPath and KeyPath are the primary chain of a file source: the
	// one served to a client that supports none of the host's chains.
	CertPath string `toml:"cert_path,omitempty" json:"cert_path,omitempty"`
	KeyPath  string `toml:"key_path,omitempty" json:"key_path,omitempty"`
	// Additional are further chains of a file source for the same domain,
	// each with another key type (an RSA chain beside an ECDSA one).
	Additional []CertificateFiles `toml:"additional,omitempty" json:"additional,omitempty"`
}

// CertificateFiles is one further chain of a file certificate source.
type CertificateFiles struct {
	CertPath string `toml:"cert_path" json:"cert_path"`
	KeyPath  string `toml:"key_path" json:"key_path"`
}

// Equal reports whether s and o are the same source (nil equals nil).
func (s *CertificateSource) Equal(o *CertificateSource) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Type == o.Type && s.CertPath == o.CertPath && s.KeyPath == o.KeyPath &&
		slices.Equal(s.Additional, o.Additional)
}

// Backend is one upstream server.
type Backend struct {
	ID      string   `toml:"id"`
	Address string   `toml:"address"`
	Tags    []string `toml:"tags"`
	// Weight is used by the weighted policy; 0 means 1.
	Weight int `toml:"weight,omitempty"`
}

// HasTag reports whether the backend carries tag.
func (b *Backend) HasTag(tag string) bool { return slices.Contains(b.Tags, tag) }

// Load balancing policies.
const (
	PolicyRoundRobin = "round_robin"
	PolicyLeastConn  = "least_conn"
	PolicyWeighted   = "weighted"
)

// Default returns a configuration with every default filled in and no hosts
// or backends.
func Default() *Config {
	return &Config{
		Proxy: Proxy{
			ManagementAPIAddr:       "127.0.0.1:9090",
			ShutdownTimeoutSecs:     30,
			ReadHeaderTimeoutSecs:   10,
			IdleTimeoutSecs:         120,
			MaxHeaderBytes:          1 << 20,
			DialTimeoutSecs:         5,
			MaxIdleConnsPerBackend:  256,
			ClientBodyTimeoutSecs:   60,
			SendTimeoutSecs:         60,
			UpstreamTimeoutSecs:     60,
			UpstreamReadTimeoutSecs: 60,
			UpstreamMaxHeaderBytes:  1 << 20,
		},
		LetsEncrypt: LetsEncrypt{
			CacheDir:                 "acme-cache",
			RenewalCheckIntervalSecs: 86400,
			RenewalDaysBeforeExpiry:  30,
		},
		Logging: Logging{
			Level:      "info",
			Format:     "text",
			Output:     "console",
			MaxSizeMB:  100,
			MaxBackups: 5,
			MaxAgeDays: 30,
		},
		Metrics: Metrics{ListenAddr: "127.0.0.1:9091"},
		HealthCheck: HealthCheck{
			IntervalSecs:       10,
			TimeoutSecs:        5,
			UnhealthyThreshold: 3,
			HealthyThreshold:   2,
			Path:               "/health",
			PassiveFailures:    5,
			PassiveWindowSecs:  10,
			EjectionBaseSecs:   10,
			EjectionMaxSecs:    300,
		},
	}
}

// Clone returns a deep copy, so a change can be built and validated without
// touching the configuration in use.
func (c *Config) Clone() *Config {
	n := *c
	if c.Cluster != nil {
		cl := *c.Cluster
		cl.EtcdEndpoints = slices.Clone(c.Cluster.EtcdEndpoints)
		n.Cluster = &cl
	}
	n.Users = slices.Clone(c.Users)
	n.VirtualHosts = make([]VirtualHost, len(c.VirtualHosts))
	for i, v := range c.VirtualHosts {
		n.VirtualHosts[i] = v.Clone()
	}
	n.Backends = make([]Backend, len(c.Backends))
	for i, b := range c.Backends {
		n.Backends[i] = b.Clone()
	}
	return &n
}

// CloneShallow returns a copy whose host and backend slices are its own,
// so items can be added, removed and replaced, but whose items share
// pointers and tag slices with c: an item to be edited in place must be
// replaced by its Clone first.
func (c *Config) CloneShallow() *Config {
	n := *c
	n.VirtualHosts = slices.Clone(c.VirtualHosts)
	n.Backends = slices.Clone(c.Backends)
	return &n
}

// Clone returns a deep copy of the host.
func (v VirtualHost) Clone() VirtualHost {
	if v.HTTPToHTTPS != nil {
		b := *v.HTTPToHTTPS
		v.HTTPToHTTPS = &b
	}
	if v.TLSEnabled != nil {
		b := *v.TLSEnabled
		v.TLSEnabled = &b
	}
	if v.CertificateSource != nil {
		s := *v.CertificateSource
		s.Additional = slices.Clone(s.Additional)
		v.CertificateSource = &s
	}
	v.cloneSplit()
	return v
}

// Clone returns a deep copy of the backend.
func (b Backend) Clone() Backend {
	b.Tags = slices.Clone(b.Tags)
	return b
}

// Host returns the virtual host for domain (already normalised), or nil.
func (c *Config) Host(domain string) *VirtualHost {
	for i := range c.VirtualHosts {
		if c.VirtualHosts[i].Domain == domain {
			return &c.VirtualHosts[i]
		}
	}
	return nil
}

// Backend returns the backend with id, or nil.
func (c *Config) Backend(id string) *Backend {
	for i := range c.Backends {
		if c.Backends[i].ID == id {
			return &c.Backends[i]
		}
	}
	return nil
}

// Sort orders hosts by domain and backends by id, the order the API lists
// them in and Save writes them in.
func (c *Config) Sort() {
	slices.SortFunc(c.VirtualHosts, func(a, b VirtualHost) int { return strings.Compare(a.Domain, b.Domain) })
	slices.SortFunc(c.Backends, func(a, b Backend) int { return strings.Compare(a.ID, b.ID) })
}
