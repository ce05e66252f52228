package app

import (
	"slices"
	"testing"

	"fronttier/internal/config"
)

// TestRestartNeeded: a reload names exactly the changed sections it cannot
// apply, and stays quiet about those it does (hosts, backends, level,
// default certificate, health-check timing).
func TestRestartNeeded(t *testing.T) {
	t.Parallel()
	base := config.Default()
	for _, tc := range []struct {
		name   string
		change func(c *config.Config)
		want   []string
	}{
		{"nothing", func(c *config.Config) {}, nil},
		{"applied at once", func(c *config.Config) {
			c.Logging.Level = "debug"
			c.Proxy.DefaultCertificate = "example.com"
			c.HealthCheck.IntervalSecs = 1
			c.VirtualHosts = append(c.VirtualHosts, config.VirtualHost{Domain: "example.com", EnabledBackendsTag: "a"})
		}, nil},
		{"listener", func(c *config.Config) { c.Proxy.ListenAddrHTTP = "127.0.0.1:81" }, []string{"proxy"}},
		{"trusted proxies", func(c *config.Config) { c.Proxy.TrustedProxies = []string{"10.0.0.0/8"} }, []string{"proxy"}},
		{"log format", func(c *config.Config) { c.Logging.Format = "json" }, []string{"logging"}},
		{"several", func(c *config.Config) {
			c.Metrics.Enabled = true
			c.Debug.PprofAddr = "127.0.0.1:6060"
			c.LetsEncrypt.Email = "a@example.com"
			c.HealthCheck.Passive5xx = true
		}, []string{"metrics", "debug", "lets_encrypt", "health_check.passive_5xx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cur := base.Clone()
			tc.change(cur)
			if got := restartNeeded(base, cur); !slices.Equal(got, tc.want) {
				t.Errorf("restartNeeded = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	got := trustedProxies([]string{"10.0.0.0/8", "192.0.2.7"})
	if len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "192.0.2.7/32" {
		t.Errorf("trustedProxies = %v", got)
	}
}
