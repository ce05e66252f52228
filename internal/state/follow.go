package state

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"fronttier/internal/config"
	"fronttier/internal/store"
)

// Follow puts in force, in order, the changes the store reports that this
// store did not make itself (a hand edit of the configuration file,
// another node's change), until ctx ends. A change that touches one domain
// and nothing else is applied to the route table in force (no rebuild); any
// other is applied whole. One that cannot be applied is logged at error
// and the configuration in force stays; for the file store, API changes
// are then refused until it is fixed (see commit).
func (s *Store) Follow(ctx context.Context) {
	for u := range s.st.Watch(ctx, s.Revision()) {
		s.apply(u)
	}
}

// apply puts one update in force.
func (s *Store) apply(u store.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Err != nil {
		s.log.Error("the stored configuration changed but cannot be applied; keeping the running configuration "+
			"(API changes are refused until it is fixed or reverted)", "error", u.Err)
		return
	}
	if u.Rev <= s.rev {
		return // already in force: this store's own write, or an older state
	}
	var err error
	if d, ok := oneDomain(u); ok {
		err = s.applyDomainLocked(u.Config, d)
	} else {
		// A whole state read again (a hand edit of the file): what lives
		// outside the store follows, as after a reload.
		err = s.applyChangedLocked(u.Config, u.Full)
	}
	if err != nil {
		s.log.Error("the stored configuration changed and was refused; keeping the running configuration",
			"revision", u.Rev, "error", err)
		return
	}
	s.setRevLocked(u.Rev)
	if s.hooks.Followed != nil {
		s.hooks.Followed(u)
	}
	s.log.Debug("stored configuration applied", "revision", u.Rev, "domains", u.Domains, "backends", u.Backends, "full", u.Full)
}

// oneDomain reports whether u changed exactly one virtual host and nothing
// else, and which.
func oneDomain(u store.Update) (string, bool) {
	if u.Full || u.Settings || len(u.Backends) > 0 || len(u.Domains) != 1 {
		return "", false
	}
	return u.Domains[0], true
}

// applyDomainLocked puts next in force where it differs from the
// configuration in force by domain's virtual host only: the route table
// is derived from the one in force, every pool reused.
func (s *Store) applyDomainLocked(next *config.Config, domain string) error {
	old := s.cfg.Load()
	n := *next
	n.Backends = old.Backends // unchanged: keep the slice the pools were built from
	// Only what the change can have broken is checked (as a local change
	// is), so that one domain's change costs the same with 10,000 others.
	if err := n.ValidateShared(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if v := n.Host(domain); v != nil {
		if err := v.Validate(&n); err != nil {
			return fmt.Errorf("%w: virtual host %s: %w", ErrInvalid, domain, err)
		}
		if err := checkServingHost(old, &n, v); err != nil {
			return err
		}
	}
	if s.hooks.Check != nil {
		if err := s.hooks.Check(old, &n); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return s.publish(old, &n, scope{domains: []string{domain}})
}

// maxIncremental is the share of the virtual hosts above which a change
// of hosts only is applied by a rebuild rather than host by host.
const maxIncremental = 4

// applyChangedLocked puts next in force by what it changes: when only
// virtual hosts differ from the configuration in force (the usual catch-up
// after another node's change, or a watch's Full update), those hosts are
// applied to the route table in force, each checked as a local change is;
// anything else (backends, settings, a quarter of the hosts or more) is a
// whole replacement (replaceLocked). 10,000 domains cost a rebuild only
// when they all changed. With reloaded, the Reloaded hook is told as a
// whole replacement tells it.
func (s *Store) applyChangedLocked(next *config.Config, reloaded bool) error {
	old := s.cfg.Load()
	n := next.Clone()
	n.Sort()
	domains, ok := changedHosts(old, n)
	if !ok || len(domains)*maxIncremental > len(n.VirtualHosts)+1 {
		return s.replaceLocked(next)
	}
	if len(domains) == 0 {
		return nil
	}
	defer func() {
		if reloaded && s.hooks.Reloaded != nil && s.cfg.Load() != old {
			s.hooks.Reloaded(old, s.cfg.Load())
		}
	}()
	n.Backends = old.Backends // equal: keep the slice the pools were built from
	if err := n.ValidateShared(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, d := range domains {
		v := n.Host(d)
		if v == nil {
			continue
		}
		if err := v.Validate(n); err != nil {
			return fmt.Errorf("%w: virtual host %s: %w", ErrInvalid, d, err)
		}
		if err := checkServingHost(old, n, v); err != nil {
			return err
		}
	}
	if s.hooks.Check != nil {
		if err := s.hooks.Check(old, n); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return s.publish(old, n, scope{domains: domains})
}

// changedHosts returns the domains whose virtual hosts differ between old
// and next (both sorted), and false when anything but virtual hosts
// differs.
func changedHosts(old, next *config.Config) ([]string, bool) {
	a, b := *old, *next
	a.VirtualHosts, b.VirtualHosts = nil, nil
	if !reflect.DeepEqual(a, b) {
		return nil, false
	}
	domains := []string{}
	i, j := 0, 0
	for i < len(old.VirtualHosts) || j < len(next.VirtualHosts) {
		switch {
		case j == len(next.VirtualHosts) || (i < len(old.VirtualHosts) && old.VirtualHosts[i].Domain < next.VirtualHosts[j].Domain):
			domains = append(domains, old.VirtualHosts[i].Domain) // removed
			i++
		case i == len(old.VirtualHosts) || next.VirtualHosts[j].Domain < old.VirtualHosts[i].Domain:
			domains = append(domains, next.VirtualHosts[j].Domain) // added
			j++
		default:
			if !reflect.DeepEqual(old.VirtualHosts[i], next.VirtualHosts[j]) {
				domains = append(domains, next.VirtualHosts[j].Domain)
			}
			i++
			j++
		}
	}
	return domains, true
}

// ReloadStore loads the store's state and puts it in force, whether or not
// it changed (SIGHUP). It returns the configurations before and after; on
// error nothing changed.
func (s *Store) ReloadStore(ctx context.Context) (old, cur *config.Config, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.st.Load(ctx)
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return nil, nil, err
	}
	old = s.cfg.Load()
	if err := s.replaceLocked(snap.Config); err != nil {
		return nil, nil, err
	}
	s.setRevLocked(snap.Rev)
	return old, s.cfg.Load(), nil
}
