package state

import (
	"context"
	"errors"
	"fmt"

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
		err = s.replaceLocked(u.Config)
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
	if err := n.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := checkServing(old, &n); err != nil {
		return err
	}
	if s.hooks.Check != nil {
		if err := s.hooks.Check(old, &n); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return s.publish(old, &n, scope{domain: domain})
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
