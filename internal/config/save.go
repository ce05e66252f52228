package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// header starts every file fronttier writes, so an operator who opens it
// knows why their comments are gone and where the original went.
const header = `# fronttier configuration.
# This file is rewritten by fronttier whenever the management API changes
# domains or backends (comments are not kept). Hand edits are applied with
# SIGHUP or a restart.

`

// Marshal renders c as a TOML document, hosts and backends in the order c
// holds them.
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// Save writes c to path atomically and durably: it writes a temporary file
// in the same directory, fsyncs it, renames it over path and fsyncs the
// directory. After a crash at any instant path holds either the old or the
// new document, never a mix. The file keeps path's permission bits (0o600 for
// a new file).
func Save(path string, c *Config) error {
	data, err := Marshal(c)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// WriteFileAtomic replaces path with data as Save does. When path is a
// symbolic link the file it points to is replaced, so the link stays; the
// file keeps its permission bits and, where the process may set them, its
// owner and group.
func WriteFileAtomic(path string, data []byte) (err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	dir := filepath.Dir(path)
	mode := os.FileMode(0o600)
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		uid, gid = owner(fi)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the random temporary name tells the operator nothing
		}
		return fmt.Errorf("save config: create a temporary file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("save config: write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	if uid >= 0 {
		tmp.Chown(uid, gid) // best effort: only root may give a file away
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("save config: fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("save config: close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save config: rename to %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save config: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("save config: fsync directory %s: %w", dir, err)
	}
	return nil
}
