package balance

import "fronttier/internal/backend"

// AffinityKey returns the value a client's affinity cookie carries for the
// backend with id: 16 hex digits of a hash of the id, so the cookie pins a
// client without telling it the backend's name. It is the same in every
// pool and on every node.
func AffinityKey(id string) string {
	const hexDigits = "0123456789abcdef"
	h := Hash(id)
	var buf [16]byte
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = hexDigits[h&0xf]
		h >>= 4
	}
	return string(buf[:])
}

// Hash is 64-bit FNV-1a with a final avalanche (murmur3's fmix64), so
// that keys differing in one character differ in every bit: the hash that
// places a client by a key (an affinity key here, a canary bucket in
// package route). It does not allocate.
func Hash[T ~string | ~[]byte](s T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// affinity indexes a pool's members by AffinityKey. It is built with the
// pool and never changed.
type affinity struct {
	keys  []string       // keys[i] is Backends[i]'s
	index map[string]int // key -> index into Backends
}

func newAffinity(backends []*backend.Backend) affinity {
	a := affinity{keys: make([]string, len(backends)), index: make(map[string]int, len(backends))}
	for i, b := range backends {
		k := AffinityKey(b.ID)
		a.keys[i] = k
		if _, dup := a.index[k]; !dup { // a collision keeps the first
			a.index[k] = i
		}
	}
	return a
}

// PickAffine is Pick for a client that prefers the backend whose
// AffinityKey is key (its affinity cookie; "" for none): that backend when
// it is a member, routable and not in tried (kept is then true), else
// Pick's choice. It is lock-free and allocation-free, like Pick.
func (p *Pool) PickAffine(key string, tried []*backend.Backend) (b *backend.Backend, panicked, kept bool) {
	if key != "" {
		if i, ok := p.aff.index[key]; ok {
			if b := p.Backends[i]; usable(b, tried) {
				return b, false, true
			}
		}
	}
	b, panicked = p.Pick(tried)
	return b, panicked, false
}

// AffinityKey returns member b's AffinityKey without computing it, or ""
// when b is not a member of the pool.
func (p *Pool) AffinityKey(b *backend.Backend) string {
	for i, m := range p.Backends {
		if m == b {
			return p.aff.keys[i]
		}
	}
	return ""
}
