package state

import (
	"fmt"
	"slices"

	"fronttier/internal/config"
)

// SetCanary sends c.Percent of domain's traffic to the backends carrying
// c.Tag (a new canary, or a new share for the one in place: the change a
// rollout makes at each step). Unless force, it is refused when c.Tag has
// no backend, or only unhealthy ones, and the change would send it more
// traffic than before; lowering a share is never refused.
func (s *Store) SetCanary(domain string, c config.Canary, force bool) (config.VirtualHost, error) {
	return s.SetCanaryIf(domain, nil, c, force)
}

// SetCanaryIf is SetCanary when check passes.
func (s *Store) SetCanaryIf(domain string, check DomainCheck, c config.Canary, force bool) (config.VirtualHost, error) {
	old, v, err := s.editDomain(domain, check, func(v *config.VirtualHost) error {
		v.Canary = &c
		return nil
	}, force)
	if err != nil {
		return config.VirtualHost{}, err
	}
	s.logCanary(old, v, force)
	return v, nil
}

// ClearCanary sends all of domain's traffic back to its
// enabled_backends_tag (overrides still apply). A domain without a canary
// is left as it is.
func (s *Store) ClearCanary(domain string) (config.VirtualHost, error) {
	return s.ClearCanaryIf(domain, nil)
}

// ClearCanaryIf is ClearCanary when check passes.
func (s *Store) ClearCanaryIf(domain string, check DomainCheck) (config.VirtualHost, error) {
	old, v, err := s.editDomain(domain, check, func(v *config.VirtualHost) error {
		v.Canary = nil
		return nil
	}, true)
	if err != nil {
		return config.VirtualHost{}, err
	}
	s.logCanary(old, v, false)
	return v, nil
}

// logCanary logs a change of the host's canary, if there was one, and
// reports whether there was.
func (s *Store) logCanary(old, cur config.VirtualHost, force bool) bool {
	switch {
	case sameCanary(old.Canary, cur.Canary):
		return false
	case cur.Canary == nil:
		s.log.Info("Canary cleared", "domain", cur.Domain, "tag", old.Canary.Tag, "old_percent", old.Canary.Percent)
	default:
		args := []any{"domain", cur.Domain, "tag", cur.Canary.Tag, "percent", cur.Canary.Percent, "stable_tag", cur.EnabledBackendsTag}
		if old.Canary != nil {
			args = append(args, "old_tag", old.Canary.Tag, "old_percent", old.Canary.Percent)
		}
		s.log.Info("Canary set", append(args, "forced", force)...)
	}
	return true
}

// sameCanary reports whether two canaries are the same (both nil, or
// equal).
func sameCanary(a, b *config.Canary) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

// guardTags refuses a change of a host from was to is that sends traffic
// to a tag with no backend, or only unhealthy ones (see checkTag): a new
// enabled_backends_tag (a switch), a canary tag that is new or whose share
// rises, an override tag the host did not route to before. A change that
// only takes traffic away is never refused.
func (s *Store) guardTags(c *config.Config, was, is *config.VirtualHost) error {
	if is.EnabledBackendsTag != was.EnabledBackendsTag {
		if err := s.checkTag(c, is.EnabledBackendsTag); err != nil {
			return err
		}
	}
	if cn := is.Canary; cn != nil && cn.Percent > 0 {
		old := was.Canary
		if old == nil || old.Tag != cn.Tag || cn.Percent > old.Percent {
			if err := s.checkTag(c, cn.Tag); err != nil {
				return fmt.Errorf("canary: %w", err)
			}
		}
	}
	had := was.Tags()
	for i := range is.Overrides {
		tag := is.Overrides[i].Tag
		if slices.Contains(had, tag) {
			continue
		}
		if err := s.checkTag(c, tag); err != nil {
			return fmt.Errorf("overrides[%d]: %w", i, err)
		}
	}
	return nil
}

// checkCanaryOrphans refuses a change that leaves the tag of a canary
// with a share, which had backends, with none, as checkOrphans does for
// enabled tags.
func checkCanaryOrphans(old, next *config.Config) error {
	var had, has map[string][]int // built only when a canary is found
	var hit []string
	for i := range next.VirtualHosts {
		v := &next.VirtualHosts[i]
		c := v.Canary
		if c == nil || c.Percent == 0 {
			continue
		}
		if had == nil {
			had, has = tagIndex(old), tagIndex(next)
		}
		if len(had[c.Tag]) > 0 && len(has[c.Tag]) == 0 {
			hit = append(hit, v.Domain)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	return fmt.Errorf("%w: this would leave the canary of %v with no backend (pass force to do it anyway, or clear the canary first)", ErrConflict, hit)
}
