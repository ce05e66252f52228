package state

import "fronttier/internal/config"

// replace puts c in force as a SIGHUP does, through Reload.
func replace(s *Store, c *config.Config) error {
	_, _, err := s.Reload(func() (*config.Config, error) { return c, nil })
	return err
}
