package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Canary sends a share of a virtual host's traffic to a second tag. Each
// client is placed in one of many buckets by its sticky key (see Sticky);
// buckets below the share go to Tag, the rest to enabled_backends_tag, so
// raising the share only moves clients onto Tag and lowering it only moves
// them back.
type Canary struct {
	// Tag is the tag of the new version; it must differ from
	// enabled_backends_tag.
	Tag string `toml:"tag" json:"tag"`
	// Percent is Tag's share, 0 to 100, in steps of 0.01.
	Percent float64 `toml:"percent" json:"percent"`
}

// PercentStep is the finest canary share: one bucket in 10,000.
const PercentStep = 0.01

// Sticky keys, as in [virtual_hosts.sticky] by. A header key is written
// "header:" followed by the header's name.
const (
	StickyCookie = "cookie" // a long-lived cookie set by the proxy carries the bucket (the default)
	StickyHeader = "header" // a hash of a request header's value
	StickyIP     = "ip"     // a hash of the client's address
	StickyNone   = "none"   // no key: each request is placed on its own
)

// Sticky says how a virtual host keeps a client in place: on one side of
// its canary split (By) and, with Backend, on one backend of its tag.
type Sticky struct {
	// By is the key a client is placed by: "cookie" (the default when
	// empty), "header:<name>", "ip" or "none".
	By string `toml:"by,omitempty" json:"by,omitempty"`
	// Backend pins a client to one backend of its tag by a cookie while
	// that backend is healthy and carries the tag.
	Backend bool `toml:"backend,omitempty" json:"backend,omitempty"`
}

// Key returns the kind of By (one of the Sticky constants, StickyCookie
// when By is empty) and, for StickyHeader, the header's name. It does not
// validate.
func (s *Sticky) Key() (kind, header string) {
	if s == nil || s.By == "" {
		return StickyCookie, ""
	}
	if h, ok := strings.CutPrefix(s.By, StickyHeader+":"); ok {
		return StickyHeader, h
	}
	return s.By, ""
}

// Override sends the requests that match it to Tag, before any split:
// exactly one of Header, Cookie and Query names what is matched, and Value
// is the value it must have (exactly, case-sensitively).
type Override struct {
	Header string `toml:"header,omitempty" json:"header,omitempty"`
	Cookie string `toml:"cookie,omitempty" json:"cookie,omitempty"`
	Query  string `toml:"query,omitempty" json:"query,omitempty"`
	Value  string `toml:"value" json:"value"`
	Tag    string `toml:"tag" json:"tag"`
}

// Override kinds, as Override.Match names them.
const (
	MatchHeader = "header"
	MatchCookie = "cookie"
	MatchQuery  = "query"
)

// Match returns what the override matches: its kind (MatchHeader,
// MatchCookie or MatchQuery; "" when none is set) and name. With more than
// one set (which Validate refuses) the first in that order wins.
func (o *Override) Match() (kind, name string) {
	switch {
	case o.Header != "":
		return MatchHeader, o.Header
	case o.Cookie != "":
		return MatchCookie, o.Cookie
	case o.Query != "":
		return MatchQuery, o.Query
	}
	return "", ""
}

// MaxOverrides bounds a host's overrides: each is checked on every request.
const MaxOverrides = 32

// Tags returns every tag the host routes to: enabled_backends_tag, then the
// canary's and the overrides' tags, each once.
func (v *VirtualHost) Tags() []string {
	tags := []string{v.EnabledBackendsTag}
	add := func(t string) {
		for _, have := range tags {
			if have == t {
				return
			}
		}
		tags = append(tags, t)
	}
	if v.Canary != nil {
		add(v.Canary.Tag)
	}
	for i := range v.Overrides {
		add(v.Overrides[i].Tag)
	}
	return tags
}

// validateSplit checks the host's canary, sticky, rollout and overrides sections;
// keys are relative to the host.
func (h *VirtualHost) validateSplit(v *validator) {
	if c := h.Canary; c != nil {
		v.check("canary.tag", CheckTag(c.Tag))
		if c.Tag != "" && c.Tag == h.EnabledBackendsTag {
			v.add("canary.tag", fmt.Errorf("%q is enabled_backends_tag already; a canary needs another tag (to move every request, switch instead)", c.Tag))
		}
		v.check("canary.percent", CheckPercent(c.Percent))
	}
	if s := h.Sticky; s != nil {
		v.check("sticky.by", checkStickyBy(s.By))
	}
	if r := h.Rollout; r != nil {
		var rv validator
		r.validate(&rv)
		v.check("rollout", rv.err())
	}
	if len(h.Overrides) > MaxOverrides {
		v.add("overrides", fmt.Errorf("%d overrides; a host may have at most %d", len(h.Overrides), MaxOverrides))
		return
	}
	for i := range h.Overrides {
		o := &h.Overrides[i]
		key := fmt.Sprintf("overrides[%d]", i)
		set := 0
		for _, m := range []struct{ kind, name string }{{MatchHeader, o.Header}, {MatchCookie, o.Cookie}, {MatchQuery, o.Query}} {
			if m.name == "" {
				continue
			}
			set++
			if m.kind == MatchQuery {
				v.check(key+"."+m.kind, checkText(m.name))
			} else {
				v.check(key+"."+m.kind, checkFieldName(m.name))
			}
		}
		if set != 1 {
			v.add(key, fmt.Errorf("set exactly one of header, cookie and query (%d are set)", set))
		}
		if o.Value == "" {
			v.add(key+".value", errors.New("must not be empty"))
		} else {
			v.check(key+".value", checkText(o.Value))
		}
		v.check(key+".tag", CheckTag(o.Tag))
	}
}

// CheckPercent reports why p is not a canary share: a number from 0 to 100
// in steps of PercentStep.
func CheckPercent(p float64) error {
	if !(p >= 0 && p <= 100) { // NaN fails too
		return fmt.Errorf("%v is not between 0 and 100", p)
	}
	if b := p / PercentStep; math.Abs(b-math.Round(b)) > 1e-6 {
		return fmt.Errorf("%v is finer than %v (the split has 10,000 buckets)", p, PercentStep)
	}
	return nil
}

// checkStickyBy reports why by is not a sticky key.
func checkStickyBy(by string) error {
	s := Sticky{By: by}
	switch kind, header := s.Key(); kind {
	case StickyCookie, StickyIP, StickyNone:
		return nil
	case StickyHeader:
		if err := checkFieldName(header); err != nil {
			return fmt.Errorf("%q: %w", by, err)
		}
		return nil
	}
	return fmt.Errorf("%q is not one of \"cookie\", \"header:<name>\", \"ip\", \"none\"", by)
}

// checkFieldName reports why s is not a header or cookie name: 1 to 256
// token characters (RFC 9110, section 5.6.2).
func checkFieldName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 256 {
		return errors.New("longer than 256 characters")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isTokenChar(c) {
			return fmt.Errorf("%q has %q; a name is letters, digits and !#$%%&'*+-.^_`|~", s, c)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkText reports why s cannot be matched against a request: longer than
// 1024 bytes, or holding a control character.
func checkText(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 1024 {
		return errors.New("longer than 1024 characters")
	}
	return checkPath(s)
}

// cloneSplit deep-copies the host's canary, sticky, overrides and rollout
// sections.
func (v *VirtualHost) cloneSplit() {
	if v.Canary != nil {
		c := *v.Canary
		v.Canary = &c
	}
	if v.Sticky != nil {
		s := *v.Sticky
		v.Sticky = &s
	}
	if v.Overrides != nil {
		v.Overrides = append([]Override(nil), v.Overrides...)
	}
	v.Rollout = v.Rollout.clone()
}
