package route

import (
	"math"
	"net/http"
	"sync/atomic"

	"fronttier/internal/balance"
)

// Buckets is how many buckets a canary split places clients in: one bucket
// is 0.01% of the clients.
const Buckets = 10000

// The cookies the data path reads and sets.
const (
	// BucketCookie carries a client's bucket (decimal, 0 to Buckets-1)
	// when its host is keyed by cookie.
	BucketCookie = "fronttier_bucket"
	// AffinityCookie carries balance.AffinityKey of the backend a client
	// is pinned to when its host has backend affinity.
	AffinityCookie = "fronttier_backend"
)

// KeyKind says what a client's bucket is derived from.
type KeyKind uint8

// The keys of config.Sticky.
const (
	KeyCookie KeyKind = iota // BucketCookie; a client without one gets a bucket from the spread
	KeyHeader                // a hash of a header's value (of the client's address when it has none)
	KeyIP                    // a hash of the client's address
	KeyNone                  // a bucket per request, from the spread
)

// MatchKind says what an override looks at.
type MatchKind uint8

// The kinds of config.Override.
const (
	MatchHeader MatchKind = iota
	MatchCookie
	MatchQuery
)

// Override sends the requests whose header, cookie or query parameter
// Name has the value Value to Tag's Pool.
type Override struct {
	Kind  MatchKind
	Name  string // a header's canonical name, a cookie's or a query parameter's
	Value string
	Tag   string
	Pool  *balance.Pool // never nil, possibly empty
}

// Split is how a host places a request beyond its stable pool: overrides,
// checked first, then an optional canary that takes the buckets below
// Threshold. A Split is built with its table and never changed, but for
// the spread counter. A Host without one sends every request to its Pool.
type Split struct {
	// Canary is the canary tag's pool; nil when the host has no canary.
	Canary    *balance.Pool
	CanaryTag string
	// Percent is the canary's share as configured; Threshold is the
	// number of buckets it takes (Percent*Buckets/100): a client whose
	// bucket is below it goes to the canary. Raising it moves only
	// clients onto the canary, lowering it only moves them back.
	Percent   float64
	Threshold int
	// Key is what a client's bucket comes from; Header the header's
	// canonical name for KeyHeader.
	Key    KeyKind
	Header string
	// Overrides are checked in order; the first that matches wins.
	Overrides []Override
	// Affinity pins a client to one backend of its tag's pool by
	// AffinityCookie.
	Affinity bool

	// spread numbers the buckets handed out to new clients and, with
	// KeyNone, to requests (see next).
	spread atomic.Uint64
}

// Cause says why a request went where it did.
type Cause uint8

// The causes of a Decision.
const (
	CauseStable   Cause = iota // no canary takes traffic (none, or at 0%), and no override matched
	CauseOverride              // an override matched
	CauseCanary                // the canary: at 100%, or the bucket is below the threshold
	CauseBucket                // the stable tag: the bucket is at or above the threshold
)

// Source says where a request's bucket came from.
type Source uint8

// The sources of a bucket.
const (
	SourceNone   Source = iota // no bucket was needed
	SourceCookie               // the client's BucketCookie
	SourceNew                  // a new bucket, for the data path to set in BucketCookie
	SourceHeader               // a hash of the Split's Header
	SourceIP                   // a hash of the client's address
	SourceSpread               // a bucket for this request alone (KeyNone)
)

// Decision is where a request goes and why.
type Decision struct {
	Pool *balance.Pool
	Tag  string
	// Cause says why; Override is the index of the override that
	// matched (CauseOverride).
	Cause    Cause
	Override int
	// Bucket is the client's bucket and Source where it came from; -1
	// and SourceNone when none was needed.
	Bucket int
	Source Source
}

// Decide places r: on the first override it matches, else by its bucket
// against the canary's threshold, else on the stable pool. It is the one
// decision both the data path and the explain endpoint use. It takes no
// lock and does not allocate, but for a query parameter with escapes
// that an override must decode.
func (h *Host) Decide(r *http.Request) Decision {
	s := h.Split
	stable := Decision{Pool: h.Pool, Tag: h.Tag, Bucket: -1}
	if s == nil {
		return stable
	}
	for i := range s.Overrides {
		if o := &s.Overrides[i]; o.matches(r) {
			return Decision{Pool: o.Pool, Tag: o.Tag, Cause: CauseOverride, Override: i, Bucket: -1}
		}
	}
	switch {
	case s.Canary == nil || s.Threshold <= 0:
		return stable
	case s.Threshold >= Buckets:
		return Decision{Pool: s.Canary, Tag: s.CanaryTag, Cause: CauseCanary, Bucket: -1}
	}
	bucket, src := s.bucket(r)
	if bucket < s.Threshold {
		return Decision{Pool: s.Canary, Tag: s.CanaryTag, Cause: CauseCanary, Bucket: bucket, Source: src}
	}
	stable.Cause, stable.Bucket, stable.Source = CauseBucket, bucket, src
	return stable
}

// Threshold returns the buckets a canary of percent (0 to 100) takes.
func Threshold(percent float64) int {
	return min(Buckets, max(0, int(math.Round(percent*Buckets/100))))
}

// bucket returns r's bucket by the split's key.
func (s *Split) bucket(r *http.Request) (int, Source) {
	switch s.Key {
	case KeyCookie:
		if v, ok := Cookie(r.Header, BucketCookie); ok {
			if b, ok := ParseBucket(v); ok {
				return b, SourceCookie
			}
		}
		return s.next(), SourceNew
	case KeyHeader:
		if v := r.Header[s.Header]; len(v) > 0 && v[0] != "" {
			return int(balance.Hash(v[0]) % Buckets), SourceHeader
		}
	case KeyNone:
		return s.next(), SourceSpread
	}
	return ipBucket(r.RemoteAddr), SourceIP
}

// next returns the next bucket of the spread: the Weyl sequence of the
// golden ratio, whose every run of consecutive values is spread over the
// buckets almost evenly (a low-discrepancy sequence). So the canary's
// share of new clients is its percentage within a few clients, not
// within the noise of random draws, however few clients come.
func (s *Split) next() int {
	x := s.spread.Add(1) * 0x9e3779b97f4a7c15 // 2^64 / the golden ratio
	return int((x >> 32) * Buckets >> 32)
}

// ParseBucket returns the bucket a BucketCookie value holds: a decimal
// number below Buckets without a sign or leading zeros. ok is false for
// anything else, which the data path replaces with a new bucket.
func ParseBucket(v string) (bucket int, ok bool) {
	if len(v) == 0 || len(v) > 4 || (v[0] == '0' && len(v) > 1) {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		bucket = bucket*10 + int(c-'0')
	}
	return bucket, bucket < Buckets
}

// matches reports whether r carries the override's header, cookie or
// query parameter with its value.
func (o *Override) matches(r *http.Request) bool {
	switch o.Kind {
	case MatchHeader:
		for _, v := range r.Header[o.Name] {
			if v == o.Value {
				return true
			}
		}
		return false
	case MatchCookie:
		v, ok := Cookie(r.Header, o.Name)
		return ok && v == o.Value
	case MatchQuery:
		return r.URL != nil && queryHas(r.URL.RawQuery, o.Name, o.Value)
	}
	return false
}
