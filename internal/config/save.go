package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
	tmp, err := os.CreateTemp(dir, tempPattern(path))
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

// tempPattern is the os.CreateTemp pattern of WriteFileAtomic's temporary
// files for path: ".config.toml.tmp-*" beside config.toml.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-*"
}

// RemoveStaleTemps removes the temporary files that a write of the config
// file at path left behind when the process died between creating and
// renaming one, and returns their names. Only regular files beside the
// file path resolves to (where WriteFileAtomic writes), named as it names
// them (".config.toml.tmp-" and decimal digits), are removed; anything
// else is left alone. Call it at start, before anything writes the file:
// a write in progress would lose its temporary file.
func RemoveStaleTemps(path string) ([]string, error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("remove temporary files of %s: %w", path, err)
	}
	prefix := strings.TrimSuffix(tempPattern(path), "*")
	var removed []string
	var errs []error
	for _, e := range entries {
		random, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !isDigits(random) || !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove temporary file: %w", err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// isDigits reports whether s is a non-empty run of ASCII digits, the
// random part os.CreateTemp puts in a name.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
