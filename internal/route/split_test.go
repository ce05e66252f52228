package route

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
)

// testPool returns a pool of one backend with id.
func testPool(t testing.TB, id string) *balance.Pool {
	t.Helper()
	p, err := balance.NewPool("", []*backend.Backend{{ID: id, Addr: "127.0.0.1:1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// splitHost returns a host with tag "a", a canary "b" at percent keyed by
// key, and the overrides X-Canary: 1 -> b, cookie beta=yes -> b and query
// canary=0 -> a.
func splitHost(t testing.TB, percent float64, key KeyKind) *Host {
	t.Helper()
	a, b := testPool(t, "a1"), testPool(t, "b1")
	return &Host{Domain: "example.com", Tag: "a", Pool: a, Split: &Split{
		Canary: b, CanaryTag: "b", Percent: percent, Threshold: Threshold(percent),
		Key: key, Header: "X-User-Id",
		Overrides: []Override{
			{Kind: MatchHeader, Name: "X-Canary", Value: "1", Tag: "b", Pool: b},
			{Kind: MatchCookie, Name: "beta", Value: "yes", Tag: "b", Pool: b},
			{Kind: MatchQuery, Name: "canary", Value: "0", Tag: "a", Pool: a},
		},
	}}
}

// req builds a request from a remote address, a raw query and header
// lines "Name: value".
func req(remote, query string, lines ...string) *http.Request {
	r := &http.Request{Header: http.Header{}, RemoteAddr: remote, URL: &url.URL{Path: "/", RawQuery: query}}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ": ")
		r.Header.Add(k, v)
	}
	return r
}

func TestDecide(t *testing.T) {
	t.Parallel()
	const ip = "192.0.2.7:5555"
	ipB := ipBucket(ip)
	userB := int(balance.Hash("alice") % Buckets)
	tests := []struct {
		name    string
		percent float64
		key     KeyKind
		r       *http.Request
		noSplit bool
		want    Decision // Pool is not compared
	}{
		{name: "no split", noSplit: true, r: req(ip, ""), want: Decision{Tag: "a", Bucket: -1}},
		{name: "header override beats 0%", r: req(ip, "", "X-Canary: 1"), want: Decision{Tag: "b", Cause: CauseOverride, Bucket: -1}},
		{name: "header override, second value", r: req(ip, "", "X-Canary: 0", "X-Canary: 1"), want: Decision{Tag: "b", Cause: CauseOverride, Bucket: -1}},
		{name: "header override, other value", r: req(ip, "", "X-Canary: 2"), want: Decision{Tag: "a", Bucket: -1}},
		{name: "cookie override", r: req(ip, "", "Cookie: a=b; beta=yes"), want: Decision{Tag: "b", Cause: CauseOverride, Override: 1, Bucket: -1}},
		{name: "quoted cookie override", r: req(ip, "", `Cookie: beta="yes"`), want: Decision{Tag: "b", Cause: CauseOverride, Override: 1, Bucket: -1}},
		{name: "query override beats 100%", percent: 100, r: req(ip, "x=1&canary=0"), want: Decision{Tag: "a", Cause: CauseOverride, Override: 2, Bucket: -1}},
		{name: "escaped query override", percent: 100, r: req(ip, "can%61ry=%30"), want: Decision{Tag: "a", Cause: CauseOverride, Override: 2, Bucket: -1}},
		{name: "canary at 0%", r: req(ip, "", "Cookie: fronttier_bucket=0"), want: Decision{Tag: "a", Bucket: -1}},
		{name: "canary at 100%", percent: 100, r: req(ip, ""), want: Decision{Tag: "b", Cause: CauseCanary, Bucket: -1}},
		{name: "cookie below", percent: 10, r: req(ip, "", "Cookie: fronttier_bucket=999"), want: Decision{Tag: "b", Cause: CauseCanary, Bucket: 999, Source: SourceCookie}},
		{name: "cookie at threshold", percent: 10, r: req(ip, "", "Cookie: x=y; fronttier_bucket=1000"), want: Decision{Tag: "a", Cause: CauseBucket, Bucket: 1000, Source: SourceCookie}},
		{name: "fine share", percent: 0.5, r: req(ip, "", "Cookie: fronttier_bucket=49"), want: Decision{Tag: "b", Cause: CauseCanary, Bucket: 49, Source: SourceCookie}},
		{name: "header key", percent: 50, key: KeyHeader, r: req(ip, "", "X-User-Id: alice"),
			want: Decision{Tag: map[bool]string{true: "b", false: "a"}[userB < 5000], Cause: map[bool]Cause{true: CauseCanary, false: CauseBucket}[userB < 5000], Bucket: userB, Source: SourceHeader}},
		{name: "header key missing: by IP", percent: 50, key: KeyHeader, r: req(ip, ""),
			want: Decision{Tag: map[bool]string{true: "b", false: "a"}[ipB < 5000], Cause: map[bool]Cause{true: CauseCanary, false: CauseBucket}[ipB < 5000], Bucket: ipB, Source: SourceIP}},
		{name: "IP key", percent: 50, key: KeyIP, r: req(ip, "", "Cookie: fronttier_bucket=1"),
			want: Decision{Tag: map[bool]string{true: "b", false: "a"}[ipB < 5000], Cause: map[bool]Cause{true: CauseCanary, false: CauseBucket}[ipB < 5000], Bucket: ipB, Source: SourceIP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := splitHost(t, tt.percent, tt.key)
			if tt.noSplit {
				h.Split = nil
			}
			got := h.Decide(tt.r)
			wantPool := h.Pool
			if tt.want.Tag == "b" {
				wantPool = h.Split.Canary
			}
			if got.Pool != wantPool {
				t.Errorf("pool of tag %q not chosen", tt.want.Tag)
			}
			got.Pool = nil
			if got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDecideNewBucket checks that a client without a valid bucket cookie
// gets a new bucket, to be set.
func TestDecideNewBucket(t *testing.T) {
	t.Parallel()
	h := splitHost(t, 10, KeyCookie)
	for _, cookie := range []string{"", "fronttier_bucket=", "fronttier_bucket=10000", "fronttier_bucket=-1", "fronttier_bucket=0042", "fronttier_bucket=abc"} {
		r := req("192.0.2.1:1", "")
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		d := h.Decide(r)
		if d.Source != SourceNew || d.Bucket < 0 || d.Bucket >= Buckets {
			t.Errorf("cookie %q: Decide = %+v, want a new bucket", cookie, d)
		}
	}
}

// TestMonotonic checks the split's promise: raising the percentage only
// moves clients onto the canary, lowering it only moves them back.
func TestMonotonic(t *testing.T) {
	t.Parallel()
	steps := []float64{0.5, 1, 5, 10, 25, 33.33, 50, 75, 99.99}
	for _, key := range []KeyKind{KeyHeader, KeyIP, KeyCookie} {
		onCanary := make([]bool, 2000)
		for _, p := range steps {
			h := splitHost(t, p, key)
			for i := range onCanary {
				r := req(fmt.Sprintf("10.%d.%d.1:80", i/256, i%256), "", "X-User-Id: user-"+strconv.Itoa(i),
					"Cookie: fronttier_bucket="+strconv.Itoa(i*5))
				now := h.Decide(r).Tag == "b"
				if onCanary[i] && !now {
					t.Fatalf("key %d: client %d left the canary when the share rose to %v%%", key, i, p)
				}
				onCanary[i] = now
			}
		}
		for i := len(steps) - 1; i >= 0; i-- {
			h := splitHost(t, steps[i], key)
			for j := range onCanary {
				r := req(fmt.Sprintf("10.%d.%d.1:80", j/256, j%256), "", "X-User-Id: user-"+strconv.Itoa(j),
					"Cookie: fronttier_bucket="+strconv.Itoa(j*5))
				now := h.Decide(r).Tag == "b"
				if !onCanary[j] && now {
					t.Fatalf("key %d: client %d joined the canary when the share fell to %v%%", key, j, steps[i])
				}
				onCanary[j] = now
			}
		}
	}
}

// TestShares checks that each key gives the canary its share: exactly
// (within a few clients) for the spread, within a point for hashes.
func TestShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     KeyKind
		n       int
		percent float64
		slack   float64 // points
		req     func(i int) *http.Request
	}{
		{"new cookie clients", KeyCookie, 1000, 5, 0.3, func(int) *http.Request { return req("192.0.2.1:1", "") }},
		{"new cookie clients at 0.5%", KeyCookie, 10000, 0.5, 0.02, func(int) *http.Request { return req("192.0.2.1:1", "") }},
		{"requests by none", KeyNone, 1000, 25, 0.3, func(int) *http.Request { return req("192.0.2.1:1", "") }},
		{"user ids", KeyHeader, 20000, 10, 1, func(i int) *http.Request {
			return req("192.0.2.1:1", "", "X-User-Id: "+strconv.Itoa(i))
		}},
		{"IPv4 clients", KeyIP, 20000, 10, 1, func(i int) *http.Request {
			return req(fmt.Sprintf("10.0.%d.%d:443", i/256, i%256), "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := splitHost(t, tt.percent, tt.key)
			canary := 0
			for i := range tt.n {
				if h.Decide(tt.req(i)).Tag == "b" {
					canary++
				}
			}
			if share := 100 * float64(canary) / float64(tt.n); share < tt.percent-tt.slack || share > tt.percent+tt.slack {
				t.Errorf("canary share %.2f%% of %d, want %v%% ± %v", share, tt.n, tt.percent, tt.slack)
			}
		})
	}
}

func TestIPBucketIgnoresMapping(t *testing.T) {
	t.Parallel()
	if a, b := ipBucket("192.0.2.7:1"), ipBucket("[::ffff:192.0.2.7]:2"); a != b {
		t.Errorf("IPv4 %d and IPv4-mapped %d buckets differ", a, b)
	}
	if a, b := ipBucket("192.0.2.7:1"), ipBucket("192.0.2.8:1"); a == b {
		t.Logf("neighbouring addresses share bucket %d (possible, unlikely)", a)
	}
}

func TestParseBucket(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v    string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"7", 7, true}, {"412", 412, true}, {"9999", 9999, true},
		{"", 0, false}, {"10000", 0, false}, {"00", 0, false}, {"042", 0, false}, {"+1", 0, false},
		{"-1", 0, false}, {"1a", 0, false}, {" 1", 0, false}, {"99999", 0, false},
	} {
		got, ok := ParseBucket(tt.v)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("ParseBucket(%q) = %d, %v; want %d, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCookie(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		lines  []string
		cookie string
		want   string
		ok     bool
	}{
		{"none", nil, "a", "", false},
		{"only", []string{"a=1"}, "a", "1", true},
		{"among others", []string{"x=9; a=1; b=2"}, "a", "1", true},
		{"no spaces", []string{"x=9;a=1"}, "a", "1", true},
		{"first wins", []string{"a=1; a=2"}, "a", "1", true},
		{"second line", []string{"x=9", "a=1"}, "a", "1", true},
		{"quoted", []string{`a="1"`}, "a", "1", true},
		{"empty value", []string{"a="}, "a", "", true},
		{"prefix is not the name", []string{"ab=1"}, "a", "", false},
		{"no equals", []string{"a"}, "a", "", false},
		{"case matters", []string{"A=1"}, "a", "", false},
	} {
		h := http.Header{"Cookie": tt.lines}
		got, ok := Cookie(h, tt.cookie)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: Cookie = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestQueryHas(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		raw, name, value string
		want             bool
	}{
		{"canary=1", "canary", "1", true},
		{"a=2&canary=1", "canary", "1", true},
		{"canary=2&canary=1", "canary", "1", true},
		{"canary=2", "canary", "1", false},
		{"canary", "canary", "1", false},
		{"canary1=1", "canary", "1", false},
		{"c%61nary=%31", "canary", "1", true},
		{"canary=a+b", "canary", "a b", true},
		{"canary=%zz", "canary", "%zz", true},
		{"", "canary", "1", false},
	} {
		if got := queryHas(tt.raw, tt.name, tt.value); got != tt.want {
			t.Errorf("queryHas(%q, %q, %q) = %v, want %v", tt.raw, tt.name, tt.value, got, tt.want)
		}
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	const ip = "192.0.2.7:5555"
	tests := []struct {
		name    string
		percent float64
		key     KeyKind
		noSplit bool
		r       *http.Request
		want    string // a prefix of the explanation
	}{
		{name: "no split", noSplit: true, r: req(ip, ""), want: "no canary"},
		{name: "override", percent: 10, r: req(ip, "", "X-Canary: 1"), want: "override header X-Canary=1"},
		{name: "cookie override", percent: 10, r: req(ip, "", "Cookie: beta=yes"), want: "override cookie beta=yes"},
		{name: "query override", percent: 10, r: req(ip, "canary=0"), want: "override query canary=0"},
		{name: "at 0%", r: req(ip, ""), want: "stable: canary b at 0%"},
		{name: "at 100%", percent: 100, r: req(ip, ""), want: "canary b at 100%"},
		{name: "canary", percent: 10, r: req(ip, "", "Cookie: fronttier_bucket=412"),
			want: "canary bucket 412 < threshold 1000 (10%); bucket from cookie fronttier_bucket"},
		{name: "stable", percent: 10, r: req(ip, "", "Cookie: fronttier_bucket=5120"),
			want: "stable: bucket 5120 >= threshold 1000 (10%); bucket from cookie fronttier_bucket"},
		{name: "fine", percent: 0.5, r: req(ip, "", "Cookie: fronttier_bucket=5120"),
			want: "stable: bucket 5120 >= threshold 50 (0.5%)"},
		{name: "new client", percent: 10, r: req(ip, ""), want: ""},
		{name: "header", percent: 10, key: KeyHeader, r: req(ip, "", "X-User-Id: alice"), want: ""},
		{name: "header missing", percent: 10, key: KeyHeader, r: req(ip, ""), want: ""},
		{name: "ip", percent: 10, key: KeyIP, r: req(ip, ""), want: ""},
		{name: "none", percent: 10, key: KeyNone, r: req(ip, ""), want: ""},
	}
	suffix := map[string]string{
		"new client":     "; a new client (no valid fronttier_bucket cookie): a new bucket, set in that cookie",
		"header":         "; bucket from header X-User-Id",
		"header missing": "; bucket from client IP 192.0.2.7 (no X-User-Id header)",
		"ip":             "; bucket from client IP 192.0.2.7",
		"none":           "; sticky by none: a bucket for this request alone",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := splitHost(t, tt.percent, tt.key)
			if tt.noSplit {
				h.Split = nil
			}
			got := h.Explain(tt.r, h.Decide(tt.r))
			if !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, suffix[tt.name]) {
				t.Errorf("Explain = %q, want it to start with %q and end with %q", got, tt.want, suffix[tt.name])
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		percent float64
		want    int
	}{{0, 0}, {0.01, 1}, {0.29, 29}, {0.5, 50}, {10, 1000}, {33.33, 3333}, {99.99, 9999}, {100, Buckets}} {
		if got := Threshold(tt.percent); got != tt.want {
			t.Errorf("Threshold(%v) = %d, want %d", tt.percent, got, tt.want)
		}
	}
}
