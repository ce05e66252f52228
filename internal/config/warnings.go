package config

import "fmt"

// Warnings lists what in a valid configuration is probably a mistake, one
// sentence each naming the key: a domain whose tag no backend carries
// answers 503 (a typo in a tag must not pass unnoticed). `fronttier
// validate` prints them, the proxy logs them at start and on reload.
func (c *Config) Warnings() []string {
	tags := make(map[string]bool)
	for _, b := range c.Backends {
		for _, t := range b.Tags {
			tags[t] = true
		}
	}
	var out []string
	for i, v := range c.VirtualHosts {
		if !tags[v.EnabledBackendsTag] {
			out = append(out, fmt.Sprintf("virtual_hosts[%d].enabled_backends_tag: no backend carries tag %q, so %s answers 503",
				i, v.EnabledBackendsTag, v.Domain))
		}
	}
	return out
}
