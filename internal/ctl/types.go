package ctl

import "time"

// The API's shapes, as far as the tables need them (internal/admin/openapi.json).

type certSource struct {
	Type     string `json:"type"`
	CertPath string `json:"cert_path,omitempty"`
	KeyPath  string `json:"key_path,omitempty"`
}

type canary struct {
	Tag     string  `json:"tag"`
	Percent float64 `json:"percent"`
}

type domain struct {
	Domain            string      `json:"domain"`
	Tag               string      `json:"enabled_backends_tag"`
	HTTPToHTTPS       bool        `json:"http_to_https"`
	TLSEnabled        bool        `json:"tls_enabled"`
	LBPolicy          string      `json:"lb_policy"`
	CertificateSource *certSource `json:"certificate_source"`
	Canary            *canary     `json:"canary"`
	Sticky            *struct {
		By      string `json:"by"`
		Backend bool   `json:"backend"`
	} `json:"sticky"`
	Overrides []struct {
		Header string `json:"header"`
		Cookie string `json:"cookie"`
		Query  string `json:"query"`
		Value  string `json:"value"`
		Tag    string `json:"tag"`
	} `json:"overrides"`
}

type backendJSON struct {
	ID                  string     `json:"id"`
	Address             string     `json:"address"`
	Tags                []string   `json:"tags"`
	Weight              int        `json:"weight"`
	Healthy             bool       `json:"healthy"`
	Health              string     `json:"health"`
	LastCheckAt         *time.Time `json:"last_check_at"`
	LastError           string     `json:"last_error"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	ActiveRequests      int        `json:"active_requests"`
}

type certificate struct {
	Domain    string     `json:"domain"`
	ExpiresAt *time.Time `json:"expires_at"`
	DaysLeft  *int       `json:"days_until_expiration"`
	Source    string     `json:"source"`
	Status    string     `json:"status"`
	Issuer    string     `json:"issuer"`
	LastError string     `json:"last_error"`
	// Chains are the domain's certificates (ECDSA and RSA side by side).
	Chains []certChain `json:"chains"`
}

type certChain struct {
	KeyType string `json:"key_type"`
}

type clusterNode struct {
	Name      string    `json:"name"`
	APIAddr   string    `json:"api_addr"`
	Version   string    `json:"version"`
	Revision  int64     `json:"revision"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
}

type clusterInfo struct {
	Store    string        `json:"store"`
	Revision int64         `json:"revision"`
	Nodes    []clusterNode `json:"nodes"`
	// RolloutLeader is the node that drives the rollouts' gates ("" while
	// none is elected).
	RolloutLeader string `json:"rollout_leader"`
}

type figures struct {
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P99Ms     float64 `json:"p99_ms"`
}

type rollout struct {
	Domain       string     `json:"domain"`
	FromTag      string     `json:"from_tag"`
	ToTag        string     `json:"to_tag"`
	Steps        []float64  `json:"steps"`
	StepSecs     int        `json:"step_secs"`
	MaxErrorRate float64    `json:"max_error_rate"`
	MaxP99Ms     float64    `json:"max_p99_ms"`
	MinRequests  int        `json:"min_requests"`
	State        string     `json:"state"`
	Step         int        `json:"step"`
	Percent      float64    `json:"percent"`
	StartedAt    time.Time  `json:"started_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	NextStepAt   *time.Time `json:"next_step_at"`
	Reason       string     `json:"reason"`
	Canary       figures    `json:"canary"`
	Baseline     figures    `json:"baseline"`
}

// final reports whether a rollout in state s moves no more.
func final(s string) bool {
	switch s {
	case "completed", "rolled_back", "aborted":
		return true
	}
	return false
}
