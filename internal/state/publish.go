package state

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

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
	if sc.domains != nil && s.pools != nil {
		t, err = s.derive(next, sc.domains)
	} else {
		t, err = s.rebuild(next)
	}
	if err != nil {
		return err
	}
	s.table.Store(t)
	s.cfg.Store(next)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		var changed any = sc.domains
		if sc.domains == nil {
			changed = "all"
		}
		s.log.Debug("route table published", "domains", len(next.VirtualHosts), "backends", len(next.Backends),
			"changed", changed, "pools", len(s.pools))
	}
	if s.hooks.Published != nil {
		if sc.domains == nil {
			s.hooks.Published(old, next, "")
		}
		for _, d := range sc.domains {
			s.hooks.Published(old, next, d)
		}
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
	m := members{c: c, byTag: tagIndex(c), live: func(id string) *backend.Backend { return live[id] }}
	hosts := make([]*route.Host, 0, len(c.VirtualHosts))
	for i := range c.VirtualHosts {
		h, err := s.newHost(&c.VirtualHosts[i], &m)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return route.Build(hosts), nil
}

// derive returns the table in force with domains' hosts rebuilt from c
// (or removed); backends are unchanged, so pools are reused, and a pool a
// host needs for the first time is built from the registry.
func (s *Store) derive(c *config.Config, domains []string) (*route.Table, error) {
	cur := s.table.Load()
	m := members{c: c, byTag: tagIndex(c), live: s.reg.Get}
	var set []*route.Host
	var drop []string
	for _, domain := range domains {
		v := c.Host(domain)
		if v == nil {
			drop = append(drop, domain)
			continue
		}
		h, err := s.newHost(v, &m)
		if err != nil {
			return nil, err
		}
		set = append(set, h)
	}
	return cur.Derive(set, drop), nil
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

// newHost builds the route of v: its stable pool and, when it has a
// canary, overrides or backend affinity, its Split with the pools of
// every tag it names.
func (s *Store) newHost(v *config.VirtualHost, m *members) (*route.Host, error) {
	pool, err := s.pool(v.EnabledBackendsTag, v.LBPolicy, m)
	if err != nil {
		return nil, fmt.Errorf("virtual host %s: %w", v.Domain, err)
	}
	h := &route.Host{
		Domain:   v.Domain,
		Tag:      v.EnabledBackendsTag,
		Redirect: v.Redirect(),
		TLS:      v.TLS(),
		Pool:     pool,
	}
	affinity := v.Sticky != nil && v.Sticky.Backend
	if v.Canary == nil && len(v.Overrides) == 0 && !affinity {
		return h, nil // the plain path: no cookie read or set
	}
	sp := &route.Split{Affinity: affinity}
	switch kind, header := v.Sticky.Key(); kind {
	case config.StickyHeader:
		sp.Key, sp.Header = route.KeyHeader, http.CanonicalHeaderKey(header)
	case config.StickyIP:
		sp.Key = route.KeyIP
	case config.StickyNone:
		sp.Key = route.KeyNone
	default:
		sp.Key = route.KeyCookie
	}
	if c := v.Canary; c != nil {
		if sp.Canary, err = s.pool(c.Tag, v.LBPolicy, m); err != nil {
			return nil, fmt.Errorf("virtual host %s: %w", v.Domain, err)
		}
		sp.CanaryTag, sp.Percent, sp.Threshold = c.Tag, c.Percent, route.Threshold(c.Percent)
	}
	sp.Overrides = make([]route.Override, len(v.Overrides))
	for i := range v.Overrides {
		o := &v.Overrides[i]
		ro := &sp.Overrides[i]
		ro.Value, ro.Tag = o.Value, o.Tag
		switch kind, name := o.Match(); kind {
		case config.MatchHeader:
			ro.Kind, ro.Name = route.MatchHeader, http.CanonicalHeaderKey(name)
		case config.MatchCookie:
			ro.Kind, ro.Name = route.MatchCookie, name
		default:
			ro.Kind, ro.Name = route.MatchQuery, name
		}
		if ro.Pool, err = s.pool(o.Tag, v.LBPolicy, m); err != nil {
			return nil, fmt.Errorf("virtual host %s: %w", v.Domain, err)
		}
	}
	h.Split = sp
	return h, nil
}
