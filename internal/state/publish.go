package state

import (
	"context"
	"fmt"
	"log/slog"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/config"
	"fronttier/internal/route"
)

// poolKey identifies a pool: hosts with the same tag and policy share one,
// and so share its balancing state.
type poolKey struct{ tag, policy string }

// publish puts next in force: it builds its route table (or, when only one
// domain changed, derives it from the table in force, reusing every pool),
// syncs the backend registry when backends may have changed, swaps the
// pointers and tells the Published hook.
func (s *Store) publish(old, next *config.Config, sc scope) error {
	var t *route.Table
	var err error
	if sc.domain != "" && s.pools != nil {
		t, err = s.derive(next, sc.domain)
	} else {
		t, err = s.rebuild(next)
	}
	if err != nil {
		return err
	}
	s.table.Store(t)
	s.cfg.Store(next)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		changed := sc.domain
		if changed == "" {
			changed = "all"
		}
		s.log.Debug("route table published", "domains", len(next.VirtualHosts), "backends", len(next.Backends),
			"changed", changed, "pools", len(s.pools))
	}
	if s.hooks.Published != nil {
		s.hooks.Published(old, next, sc.domain)
	}
	return nil
}

// rebuild builds the whole table for c and syncs the registry with c's
// backends.
func (s *Store) rebuild(c *config.Config) (*route.Table, error) {
	specs := make([]backend.Spec, len(c.Backends))
	for i, b := range c.Backends {
		specs[i] = backend.Spec{ID: b.ID, Addr: b.Address}
	}
	live := s.reg.Sync(specs)
	s.pools = make(map[poolKey]*balance.Pool)
	byTag := tagIndex(c)
	hosts := make([]*route.Host, 0, len(c.VirtualHosts))
	for i := range c.VirtualHosts {
		v := &c.VirtualHosts[i]
		key := poolKey{v.EnabledBackendsTag, v.LBPolicy}
		pool := s.pools[key]
		if pool == nil {
			idx := byTag[v.EnabledBackendsTag]
			members := make([]*backend.Backend, len(idx))
			weights := make([]int, len(idx))
			for j, k := range idx {
				members[j] = live[c.Backends[k].ID]
				weights[j] = c.Backends[k].Weight
			}
			var err error
			if pool, err = balance.NewPool(v.LBPolicy, members, weights); err != nil {
				return nil, fmt.Errorf("virtual host %s: %w", v.Domain, err)
			}
			s.pools[key] = pool
			s.logPool(key, members)
		}
		hosts = append(hosts, newHost(v, pool))
	}
	return route.Build(hosts), nil
}

// derive returns the table in force with domain's host rebuilt from c (or
// removed); backends are unchanged, so pools are reused, and a pool a
// switch needs for the first time is built from the registry.
func (s *Store) derive(c *config.Config, domain string) (*route.Table, error) {
	cur := s.table.Load()
	v := c.Host(domain)
	if v == nil {
		return cur.Derive(nil, []string{domain}), nil
	}
	key := poolKey{v.EnabledBackendsTag, v.LBPolicy}
	pool := s.pools[key]
	if pool == nil {
		var members []*backend.Backend
		var weights []int
		for i := range c.Backends {
			if b := &c.Backends[i]; b.HasTag(v.EnabledBackendsTag) {
				members = append(members, s.reg.Get(b.ID))
				weights = append(weights, b.Weight)
			}
		}
		var err error
		if pool, err = balance.NewPool(v.LBPolicy, members, weights); err != nil {
			return nil, fmt.Errorf("virtual host %s: %w", v.Domain, err)
		}
		s.pools[key] = pool
		s.logPool(key, members)
	}
	return cur.Derive([]*route.Host{newHost(v, pool)}, nil), nil
}

// logPool logs, at debug, the members of a pool just built: the
// backends a tag's domains are balanced over.
func (s *Store) logPool(key poolKey, members []*backend.Backend) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	ids := make([]string, len(members))
	for i, b := range members {
		ids[i] = b.ID
	}
	policy := key.policy
	if policy == "" {
		policy = "round_robin"
	}
	s.log.Debug("backend pool", "tag", key.tag, "policy", policy, "backends", ids)
}

func newHost(v *config.VirtualHost, pool *balance.Pool) *route.Host {
	return &route.Host{
		Domain:   v.Domain,
		Tag:      v.EnabledBackendsTag,
		Redirect: v.Redirect(),
		TLS:      v.TLS(),
		Pool:     pool,
	}
}
