package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"fronttier/internal/config"
)

// etcdDoc is the shared document as read from etcd: what a snapshot takes
// from the store. Its slices are never modified once a snapshot shares
// them; a change makes new ones.
type etcdDoc struct {
	present  bool      // meta exists: there is a document
	rev      Revision  // meta's ModRevision
	written  time.Time // when meta was written, if it says
	health   config.HealthCheck
	hosts    []config.VirtualHost // sorted by domain
	backends []config.Backend     // sorted by id
}

// merge returns the snapshot of d for a node whose own configuration is
// local: a new Config that shares d's slices.
func merge(local *config.Config, d *etcdDoc) *config.Config {
	c := *local
	c.HealthCheck = d.health
	c.VirtualHosts = d.hosts
	c.Backends = d.backends
	return &c
}

// itemKind is what a key under doc/ holds.
type itemKind uint8

const (
	itemOther itemKind = iota // not ours: ignored
	itemMeta
	itemHealth
	itemDomain
	itemBackend
)

// kindOf returns what key holds and, for a domain or a backend, its name.
func (k *etcdKeys) kindOf(key string) (itemKind, string) {
	switch {
	case key == k.meta:
		return itemMeta, ""
	case key == k.health:
		return itemHealth, ""
	case strings.HasPrefix(key, k.domains):
		return itemDomain, key[len(k.domains):]
	case strings.HasPrefix(key, k.backends):
		return itemBackend, key[len(k.backends):]
	}
	return itemOther, ""
}

// decodeDoc builds the document from the keys under doc/ (in key order, as
// etcd returns them). bad holds, by key, every item that cannot be used
// and why, and is nil when there is none; such items are left out. With
// validate, each host and backend is also validated on its own (Load
// validates the whole configuration instead).
func (e *Etcd) decodeDoc(kvs []*mvccpb.KeyValue, validate bool) (d etcdDoc, bad map[string]error) {
	d.health = config.Default().HealthCheck
	problem := func(key string, err error) {
		if bad == nil {
			bad = make(map[string]error)
		}
		bad[key] = err
	}
	local := e.local.Load()
	for _, kv := range kvs {
		key := string(kv.Key)
		switch kind, name := e.keys.kindOf(key); kind {
		case itemMeta:
			d.present, d.rev = true, Revision(kv.ModRevision)
			var err error
			if d.written, err = decodeMeta(kv.Value); err != nil {
				problem(key, err)
			}
		case itemHealth:
			h, err := decodeHealth(kv.Value)
			if err != nil {
				problem(key, err)
				continue
			}
			d.health = h
		case itemDomain:
			h, err := decodeHost(name, kv.Value, validate, local)
			if err != nil {
				problem(key, err)
				continue
			}
			d.hosts = append(d.hosts, h)
		case itemBackend:
			b, err := decodeBackend(name, kv.Value, validate)
			if err != nil {
				problem(key, err)
				continue
			}
			d.backends = append(d.backends, b)
		}
	}
	// etcd returns keys in byte order, which is Sort's order already;
	// sorting again costs one pass and keeps the promise whatever the input.
	slices.SortFunc(d.hosts, func(a, b config.VirtualHost) int { return strings.Compare(a.Domain, b.Domain) })
	slices.SortFunc(d.backends, func(a, b config.Backend) int { return strings.Compare(a.ID, b.ID) })
	d.hosts, d.backends = slices.Clip(d.hosts), slices.Clip(d.backends)
	return d, bad
}

// encodeItem renders one item (a host, a backend, the health-check
// section) as a TOML document with the configuration file's keys.
func encodeItem(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// decodeItem decodes one item strictly: a key the configuration file does
// not know is an error.
func decodeItem(data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// meta is meta's content: the layout's format, and when the write that put
// it was made (for nodes to measure how long a change took to reach them;
// comparable across nodes whose clocks are synchronised).
type meta struct {
	Format    int       `json:"format"`
	WrittenAt time.Time `json:"written_at,omitzero"`
}

// newMeta is meta for a write made now.
func newMeta() string {
	data, _ := json.Marshal(meta{Format: etcdFormat, WrittenAt: time.Now().UTC()})
	return string(data)
}

func decodeMeta(data []byte) (time.Time, error) {
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return time.Time{}, fmt.Errorf("decode: %w", err)
	}
	if m.Format != etcdFormat {
		return time.Time{}, fmt.Errorf("format %d, this fronttier reads format %d only (written by another version?)", m.Format, etcdFormat)
	}
	return m.WrittenAt, nil
}

// decodeHealth decodes the [health_check] section; keys it omits keep
// their defaults, as in the file.
func decodeHealth(data []byte) (config.HealthCheck, error) {
	h := config.Default().HealthCheck
	err := decodeItem(data, &h)
	return h, err
}

// decodeHost decodes the host stored under the key of domain name.
func decodeHost(name string, data []byte, validate bool, local *config.Config) (config.VirtualHost, error) {
	var h config.VirtualHost
	if err := decodeItem(data, &h); err != nil {
		return h, err
	}
	if h.Domain != name {
		return h, fmt.Errorf("the key names domain %q, the value %q", name, h.Domain)
	}
	if validate {
		if err := h.Validate(local); err != nil {
			return h, err
		}
	}
	return h, nil
}

// decodeBackend decodes the backend stored under the key of id name.
func decodeBackend(name string, data []byte, validate bool) (config.Backend, error) {
	var b config.Backend
	if err := decodeItem(data, &b); err != nil {
		return b, err
	}
	if b.ID != name {
		return b, fmt.Errorf("the key names backend %q, the value %q", name, b.ID)
	}
	if validate {
		if err := b.Validate(); err != nil {
			return b, err
		}
	}
	return b, nil
}

// maxProblems bounds how many bad items an error names.
const maxProblems = 10

// joinProblems joins bad items' errors, by key, naming at most
// maxProblems of them.
func joinProblems(bad map[string]error) error {
	keys := slices.Sorted(maps.Keys(bad))
	errs := make([]error, 0, min(len(keys), maxProblems)+1)
	for i, k := range keys {
		if i == maxProblems {
			errs = append(errs, fmt.Errorf("and %d more", len(keys)-i))
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", k, bad[k]))
	}
	return errors.Join(errs...)
}

// applySorted returns a new slice: old (sorted by key) with changes
// applied, each a replacement or an addition, or a removal when nil. old
// is not modified. It costs one pass over old plus sorting the changes.
func applySorted[T any](old []T, changes map[string]*T, key func(*T) string) []T {
	names := slices.Sorted(maps.Keys(changes))
	out := make([]T, 0, len(old)+len(names))
	i := 0
	for _, n := range names {
		for i < len(old) && key(&old[i]) < n {
			out = append(out, old[i])
			i++
		}
		if i < len(old) && key(&old[i]) == n {
			i++
		}
		if v := changes[n]; v != nil {
			out = append(out, *v)
		}
	}
	out = append(out, old[i:]...)
	return slices.Clip(out)
}

func hostKey(h *config.VirtualHost) string { return h.Domain }
func backendKey(b *config.Backend) string  { return b.ID }
