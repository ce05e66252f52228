package state

import (
	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/config"
)

// members finds the live backends that carry a tag in c.
type members struct {
	c     *config.Config
	byTag map[string][]int // tagIndex(c), or nil to scan c's backends
	live  func(id string) *backend.Backend
}

// pool returns the pool of the backends carrying tag, balanced by policy:
// the one in force, or a new one. Hosts with the same tag and policy
// share it, whatever the role of the tag (enabled, canary, override).
func (s *Store) pool(tag, policy string, m *members) (*balance.Pool, error) {
	key := poolKey{tag, policy}
	if p := s.pools[key]; p != nil {
		return p, nil
	}
	idx := m.byTag[tag]
	if m.byTag == nil {
		for i := range m.c.Backends {
			if m.c.Backends[i].HasTag(tag) {
				idx = append(idx, i)
			}
		}
	}
	bs := make([]*backend.Backend, len(idx))
	weights := make([]int, len(idx))
	for j, k := range idx {
		bs[j] = m.live(m.c.Backends[k].ID)
		weights[j] = m.c.Backends[k].Weight
	}
	p, err := balance.NewPool(policy, bs, weights)
	if err != nil {
		return nil, err
	}
	s.pools[key] = p
	s.logPool(key, bs)
	return p, nil
}
