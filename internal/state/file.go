package state

import "fronttier/internal/config"

// File persists the configuration into the configuration file it was loaded
// from, atomically and durably (see config.Save).
type File struct {
	Path string
}

var _ Persister = File{}

// Save implements Persister.
func (f File) Save(c *config.Config) error { return config.Save(f.Path, c) }
