package state

import (
	"fmt"
	"slices"
	"strings"

	"fronttier/internal/config"
)

// DomainCheck is a precondition on the virtual host a change concerns, as
// it is when the change is applied (nil when there is none). It runs inside
// the serialised commit, so nothing can change between the check and the
// change. Its error fails the change and is returned as is. A nil
// DomainCheck always passes.
type DomainCheck func(cur *config.VirtualHost) error

// BackendCheck is DomainCheck for a backend.
type BackendCheck func(cur *config.Backend) error

// AddDomain adds a virtual host. Its domain is normalised first.
func (s *Store) AddDomain(v config.VirtualHost) (config.VirtualHost, error) {
	v.Domain = config.NormaliseDomain(v.Domain)
	if err := v.Validate(nil); err != nil {
		return config.VirtualHost{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	next, err := s.commit(scope{domains: []string{v.Domain}}, func(c *config.Config) error {
		if c.Host(v.Domain) != nil {
			return fmt.Errorf("%w: domain %q", ErrExists, v.Domain)
		}
		c.VirtualHosts = insertSorted(c.VirtualHosts, v.Clone(), func(h config.VirtualHost) string { return h.Domain })
		return nil
	}, nil)
	if err != nil {
		return config.VirtualHost{}, err
	}
	s.log.Info("Domain added", "domain", v.Domain, "tag", v.EnabledBackendsTag)
	return next.Host(v.Domain).Clone(), nil
}

// UpdateDomain applies edit to the virtual host of domain. A change of tag
// is a switch, which clears the canary (unless edit set one): refused,
// unless force, when no backend (or no healthy one) carries the new tag,
// as is a canary or an override that sends traffic to such a tag (see
// guardTags). The domain itself cannot be renamed.
func (s *Store) UpdateDomain(domain string, edit func(v *config.VirtualHost) error, force bool) (config.VirtualHost, error) {
	return s.UpdateDomainIf(domain, nil, edit, force)
}

// UpdateDomainIf is UpdateDomain when check passes.
func (s *Store) UpdateDomainIf(domain string, check DomainCheck, edit func(v *config.VirtualHost) error, force bool) (config.VirtualHost, error) {
	old, v, err := s.editDomain(domain, check, edit, force)
	if err != nil {
		return config.VirtualHost{}, err
	}
	if v.EnabledBackendsTag != old.EnabledBackendsTag {
		args := []any{"domain", v.Domain, "old_tag", old.EnabledBackendsTag, "new_tag", v.EnabledBackendsTag, "forced", force}
		if old.Canary != nil && v.Canary == nil {
			args = append(args, "canary_cleared", old.Canary.Tag)
		}
		s.log.Info("Switched backend tag", args...)
		if v.Canary != nil {
			s.logCanary(old, v, force)
		}
	} else if !s.logCanary(old, v, force) {
		s.log.Info("Domain updated", "domain", v.Domain)
	}
	return v, nil
}

// editDomain applies edit to domain's host and returns the host as it was
// and as it is now.
func (s *Store) editDomain(domain string, check DomainCheck, edit func(v *config.VirtualHost) error, force bool) (was, is config.VirtualHost, err error) {
	domain = config.NormaliseDomain(domain)
	next, err := s.commit(scope{domains: []string{domain}}, func(c *config.Config) error {
		v := c.Host(domain)
		if check != nil {
			if err := check(v); err != nil {
				return err
			}
		}
		if v == nil {
			return fmt.Errorf("%w: domain %q", ErrNotFound, domain)
		}
		was = *v       // c is a shallow copy: v's pointers are shared with
		*v = v.Clone() // the configuration in force; edit our own
		if err := edit(v); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		v.Domain = config.NormaliseDomain(v.Domain)
		if v.Domain != domain {
			return fmt.Errorf("%w: domain: cannot rename %q to %q (delete and add instead)", ErrInvalid, domain, v.Domain)
		}
		if v.EnabledBackendsTag != was.EnabledBackendsTag && sameCanary(v.Canary, was.Canary) {
			v.Canary = nil // a switch ends the canary
		}
		if err := v.Validate(c); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil
	}, func(_, next *config.Config) error {
		if force {
			return nil
		}
		return s.guardTags(next, &was, next.Host(domain))
	})
	if err != nil {
		return config.VirtualHost{}, config.VirtualHost{}, err
	}
	return was, next.Host(domain).Clone(), nil
}

// Switch points domain at the backends carrying tag (the A/B switch). It
// clears the domain's canary.
func (s *Store) Switch(domain, tag string, force bool) (config.VirtualHost, error) {
	return s.SwitchIf(domain, nil, tag, force)
}

// SwitchIf is Switch when check passes.
func (s *Store) SwitchIf(domain string, check DomainCheck, tag string, force bool) (config.VirtualHost, error) {
	if err := config.CheckTag(tag); err != nil {
		return config.VirtualHost{}, fmt.Errorf("%w: new_tag: %w", ErrInvalid, err)
	}
	return s.UpdateDomainIf(domain, check, func(v *config.VirtualHost) error {
		v.EnabledBackendsTag = tag
		return nil
	}, force)
}

// DeleteDomain removes the virtual host of domain.
func (s *Store) DeleteDomain(domain string) error {
	return s.DeleteDomainIf(domain, nil)
}

// DeleteDomainIf is DeleteDomain when check passes.
func (s *Store) DeleteDomainIf(domain string, check DomainCheck) error {
	domain = config.NormaliseDomain(domain)
	_, err := s.commit(scope{domains: []string{domain}}, func(c *config.Config) error {
		if check != nil {
			if err := check(c.Host(domain)); err != nil {
				return err
			}
		}
		for i := range c.VirtualHosts {
			if c.VirtualHosts[i].Domain == domain {
				c.VirtualHosts = append(c.VirtualHosts[:i], c.VirtualHosts[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("%w: domain %q", ErrNotFound, domain)
	}, nil)
	if err == nil {
		s.log.Info("Domain deleted", "domain", domain)
	}
	return err
}

// AddBackend registers a backend.
func (s *Store) AddBackend(b config.Backend) (config.Backend, error) {
	if b.Tags == nil {
		b.Tags = []string{}
	}
	if err := b.Validate(); err != nil {
		return config.Backend{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	next, err := s.commit(scope{}, func(c *config.Config) error {
		if c.Backend(b.ID) != nil {
			return fmt.Errorf("%w: backend %q", ErrExists, b.ID)
		}
		c.Backends = insertSorted(c.Backends, b.Clone(), func(b config.Backend) string { return b.ID })
		return nil
	}, nil)
	if err != nil {
		return config.Backend{}, err
	}
	s.log.Info("Backend added", "backend", b.ID, "address", b.Address, "tags", b.Tags)
	return next.Backend(b.ID).Clone(), nil
}

// UpdateBackend applies edit to the backend with id. Unless force, it is
// refused when it would leave a domain's enabled tag with no backend.
func (s *Store) UpdateBackend(id string, edit func(b *config.Backend) error, force bool) (config.Backend, error) {
	return s.UpdateBackendIf(id, nil, edit, force)
}

// UpdateBackendIf is UpdateBackend when check passes.
func (s *Store) UpdateBackendIf(id string, check BackendCheck, edit func(b *config.Backend) error, force bool) (config.Backend, error) {
	next, err := s.commit(scope{}, func(c *config.Config) error {
		b := c.Backend(id)
		if check != nil {
			if err := check(b); err != nil {
				return err
			}
		}
		if b == nil {
			return fmt.Errorf("%w: backend %q", ErrNotFound, id)
		}
		*b = b.Clone() // c is a shallow copy: edit our own
		if err := edit(b); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if b.ID != id {
			return fmt.Errorf("%w: id: cannot rename %q to %q (delete and add instead)", ErrInvalid, id, b.ID)
		}
		if b.Tags == nil {
			b.Tags = []string{}
		}
		if err := b.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil
	}, s.orphanGuard(force))
	if err != nil {
		return config.Backend{}, err
	}
	b := next.Backend(id).Clone()
	s.log.Info("Backend updated", "backend", id, "address", b.Address, "tags", b.Tags)
	return b, nil
}

// DeleteBackend removes the backend with id. Its requests in flight finish.
// Unless force, it is refused when it would leave a domain's enabled tag
// with no backend.
func (s *Store) DeleteBackend(id string, force bool) error {
	return s.DeleteBackendIf(id, nil, force)
}

// DeleteBackendIf is DeleteBackend when check passes.
func (s *Store) DeleteBackendIf(id string, check BackendCheck, force bool) error {
	_, err := s.commit(scope{}, func(c *config.Config) error {
		if check != nil {
			if err := check(c.Backend(id)); err != nil {
				return err
			}
		}
		for i := range c.Backends {
			if c.Backends[i].ID == id {
				c.Backends = append(c.Backends[:i], c.Backends[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("%w: backend %q", ErrNotFound, id)
	}, s.orphanGuard(force))
	if err == nil {
		s.log.Info("Backend deleted", "backend", id)
	}
	return err
}

func (s *Store) orphanGuard(force bool) func(old, next *config.Config) error {
	if force {
		return nil
	}
	return func(old, next *config.Config) error {
		if err := checkOrphans(old, next); err != nil {
			return err
		}
		return checkCanaryOrphans(old, next)
	}
}

// insertSorted inserts item into items, kept sorted by key.
func insertSorted[T any](items []T, item T, key func(T) string) []T {
	k := key(item)
	i, _ := slices.BinarySearchFunc(items, k, func(e T, k string) int { return strings.Compare(key(e), k) })
	return slices.Insert(items, i, item)
}
