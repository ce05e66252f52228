package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fronttier/internal/backend"
	"fronttier/internal/balance"
	"fronttier/internal/route"
)

// tagged records the tag of each finished request.
type tagged struct {
	mu   sync.Mutex
	tags []string // "tag backend code"
}

func (o *tagged) Request(_, tag, backend string, code int, _ bool, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tags = append(o.tags, fmt.Sprintf("%s %s %d", tag, backend, code))
}
func (o *tagged) Retry(string, string) {}
func (o *tagged) Panic(string)         {}

func (o *tagged) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tags[len(o.tags)-1]
}

// canarySetup routes example.com to tag a (a1, a2) with a canary b (b1) at
// percent keyed by cookie, with backend affinity, and the override
// X-Canary: 1 -> b; plain.example.com has no split. Backends answer with
// their id in X-Backend-Id and a Set-Cookie of their own.
type canarySetup struct {
	h    *Handler
	obs  *tagged
	live map[string]*backend.Backend
}

func newCanarySetup(t testing.TB, percent float64, extra ...[2]string) *canarySetup {
	t.Helper()
	ids := []string{"a1", "a2", "b1"}
	specs := make([]backend.Spec, 0, len(ids)+len(extra))
	for _, id := range ids {
		addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend-Id", id)
			w.Header().Add("Set-Cookie", "app=1; Path=/")
			io.WriteString(w, id)
		}))
		specs = append(specs, backend.Spec{ID: id, Addr: addr})
	}
	for _, e := range extra {
		specs = append(specs, backend.Spec{ID: e[0], Addr: e[1]})
	}
	reg := backend.NewRegistry(NewFactory(UpstreamOptions{}), nil)
	live := reg.Sync(specs)
	t.Cleanup(func() { reg.Sync(nil) })
	pool := func(ids ...string) *balance.Pool {
		bs := make([]*backend.Backend, len(ids))
		for i, id := range ids {
			bs[i] = live[id]
		}
		p, err := balance.NewPool("", bs, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	aIDs := []string{"a1", "a2"}
	for _, e := range extra {
		aIDs = append([]string{e[0]}, aIDs...)
	}
	a, b := pool(aIDs...), pool("b1")
	table := route.Build([]*route.Host{
		{Domain: "example.com", Tag: "a", Pool: a, Split: &route.Split{
			Canary: b, CanaryTag: "b", Percent: percent, Threshold: route.Threshold(percent), Affinity: true,
			Overrides: []route.Override{{Kind: route.MatchHeader, Name: "X-Canary", Value: "1", Tag: "b", Pool: b}},
		}},
		{Domain: "plain.example.com", Tag: "a", Pool: a},
	})
	obs := &tagged{}
	return &canarySetup{h: New(Options{Routes: fixedRoutes{table}, Observer: obs}), obs: obs, live: live}
}

// get sends GET / for host with the given Cookie field ("" for none) and
// returns the answer.
func (s *canarySetup) get(t *testing.T, target, host, cookie string, hdr ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Host = host
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	for _, l := range hdr {
		k, v, _ := strings.Cut(l, ": ")
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w.Result()
}

// ours returns the Set-Cookie lines the proxy added (not the backend's).
func ours(resp *http.Response) []string {
	var out []string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "fronttier_") {
			out = append(out, c)
		}
	}
	return out
}

func TestPlacementCookies(t *testing.T) {
	t.Parallel()
	affA1 := route.AffinityCookie + "=" + balance.AffinityKey("a1")
	tests := []struct {
		name       string
		percent    float64
		target     string
		host       string
		cookie     string
		hdr        []string
		wantTag    string
		wantIDs    string   // backends that may answer, space-separated
		wantCookie []string // prefixes of the proxy's Set-Cookie lines, in order
	}{
		{name: "no split", host: "plain.example.com", cookie: "fronttier_bucket=1", wantTag: "a", wantIDs: "a1 a2"},
		{name: "new client", percent: 100, host: "example.com", wantTag: "b", wantIDs: "b1",
			wantCookie: []string{"fronttier_backend=" + balance.AffinityKey("b1") + "; Path=/; HttpOnly; SameSite=Lax"}},
		{name: "returning client on the canary", percent: 10, host: "example.com",
			cookie: "fronttier_bucket=999; fronttier_backend=" + balance.AffinityKey("b1"), wantTag: "b", wantIDs: "b1"},
		{name: "returning client on stable, pinned", percent: 10, host: "example.com",
			cookie: "fronttier_bucket=1000; " + affA1, wantTag: "a", wantIDs: "a1"},
		{name: "moved to the canary: new backend", percent: 50, host: "example.com",
			cookie: "fronttier_bucket=4999; " + affA1, wantTag: "b", wantIDs: "b1",
			wantCookie: []string{"fronttier_backend=" + balance.AffinityKey("b1")}},
		{name: "bad bucket replaced", percent: 10, host: "example.com",
			cookie: "fronttier_bucket=abc; " + affA1, wantIDs: "a1 b1",
			wantCookie: []string{"fronttier_bucket="}},
		{name: "new bucket", percent: 10, host: "example.com", cookie: affA1, wantIDs: "a1 b1",
			wantCookie: []string{"fronttier_bucket="}},
		{name: "override at 0%", host: "example.com", cookie: "fronttier_bucket=0; fronttier_backend=" + balance.AffinityKey("b1"),
			hdr: []string{"X-Canary: 1"}, wantTag: "b", wantIDs: "b1"},
		{name: "over HTTPS", percent: 10, target: "https://example.com/", host: "example.com", cookie: "fronttier_bucket=5000",
			wantTag: "a", wantIDs: "a1 a2", wantCookie: []string{"fronttier_backend="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newCanarySetup(t, tt.percent)
			target := tt.target
			if target == "" {
				target = "http://" + tt.host + "/"
			}
			resp := s.get(t, target, tt.host, tt.cookie, tt.hdr...)
			id := resp.Header.Get("X-Backend-Id")
			if resp.StatusCode != 200 || !strings.Contains(" "+tt.wantIDs+" ", " "+id+" ") {
				t.Fatalf("status %d from %q, want 200 from one of %s", resp.StatusCode, id, tt.wantIDs)
			}
			tag := id[:1]
			if tt.wantTag != "" && tag != tt.wantTag {
				t.Errorf("served by tag %s, want %s", tag, tt.wantTag)
			}
			if got, want := s.obs.last(), fmt.Sprintf("%s %s 200", tag, id); got != want {
				t.Errorf("observed %q, want %q", got, want)
			}
			got := ours(resp)
			if len(got) != len(tt.wantCookie) {
				t.Fatalf("proxy's Set-Cookie %q, want %d lines starting %q", got, len(tt.wantCookie), tt.wantCookie)
			}
			for i, c := range got {
				if !strings.HasPrefix(c, tt.wantCookie[i]) {
					t.Errorf("Set-Cookie %q, want it to start with %q", c, tt.wantCookie[i])
				}
				if secure := strings.HasSuffix(c, "; Secure"); secure != strings.HasPrefix(target, "https") {
					t.Errorf("Set-Cookie %q: Secure %v over %s", c, secure, target)
				}
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), "\n"), "app=1") {
				t.Errorf("the backend's own Set-Cookie was lost: %q", resp.Header.Values("Set-Cookie"))
			}
		})
	}
}

// TestNewBucketCookie: the bucket set for a new client is the one that
// placed it, with the attributes the README promises.
func TestNewBucketCookie(t *testing.T) {
	t.Parallel()
	s := newCanarySetup(t, 30)
	for range 50 {
		resp := s.get(t, "http://example.com/", "example.com", "")
		cookies := ours(resp)
		var bucket int
		if len(cookies) != 2 || !strings.HasSuffix(cookies[0], "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax") {
			t.Fatalf("Set-Cookie %q, want a bucket and a backend", cookies)
		}
		if _, err := fmt.Sscanf(cookies[0], "fronttier_bucket=%d;", &bucket); err != nil {
			t.Fatalf("%q: %v", cookies[0], err)
		}
		if onCanary := resp.Header.Get("X-Backend-Id") == "b1"; onCanary != (bucket < 3000) {
			t.Errorf("bucket %d served by %s", bucket, resp.Header.Get("X-Backend-Id"))
		}
	}
}

// TestAffinityMoves: a client pinned to a backend that is unhealthy, or
// that cannot be reached, is served by another and pinned to it.
func TestAffinityMoves(t *testing.T) {
	t.Parallel()
	t.Run("unhealthy", func(t *testing.T) {
		t.Parallel()
		s := newCanarySetup(t, 0)
		s.live["a1"].SetHealth(backend.Unhealthy)
		resp := s.get(t, "http://example.com/", "example.com", "fronttier_backend="+balance.AffinityKey("a1"))
		if id := resp.Header.Get("X-Backend-Id"); id != "a2" {
			t.Fatalf("served by %s, want a2", id)
		}
		if got := ours(resp); len(got) != 1 || !strings.HasPrefix(got[0], "fronttier_backend="+balance.AffinityKey("a2")+";") {
			t.Errorf("Set-Cookie %q, want the client pinned to a2", got)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		s := newCanarySetup(t, 0, [2]string{"a0", closedAddr(t)})
		resp := s.get(t, "http://example.com/", "example.com", "fronttier_backend="+balance.AffinityKey("a0"))
		id := resp.Header.Get("X-Backend-Id")
		if resp.StatusCode != 200 || (id != "a1" && id != "a2") {
			t.Fatalf("status %d from %q, want a retry on a1 or a2", resp.StatusCode, id)
		}
		if got := ours(resp); len(got) != 1 || !strings.HasPrefix(got[0], "fronttier_backend="+balance.AffinityKey(id)+";") {
			t.Errorf("Set-Cookie %q, want the client pinned to %s", got, id)
		}
	})
}

// BenchmarkProxyCanary is BenchmarkProxy for a host with a 10% canary by
// cookie and backend affinity, sent by a client that has both cookies:
// the split must cost no allocation over the plain path.
func BenchmarkProxyCanary(b *testing.B) {
	up := serveB(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"64"}
		w.Write(make([]byte, 64))
	}))
	reg := backend.NewRegistry(NewFactory(UpstreamOptions{MaxIdleConns: 64}), nil)
	live := reg.Sync([]backend.Spec{{ID: "up", Addr: up}, {ID: "canary", Addr: up}})
	b.Cleanup(func() { reg.Sync(nil) })
	stable, _ := balance.NewPool("", []*backend.Backend{live["up"]}, nil)
	canary, _ := balance.NewPool("", []*backend.Backend{live["canary"]}, nil)
	table := route.Build([]*route.Host{{Domain: "example.com", Tag: "a", Pool: stable, Split: &route.Split{
		Canary: canary, CanaryTag: "b", Percent: 10, Threshold: 1000, Affinity: true,
	}}})
	front := frontServer(b, New(Options{Routes: fixedRoutes{table}}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	req, _ := http.NewRequest("GET", "http://"+front+"/", nil)
	req.Host = "example.com"
	req.Header.Set("Cookie", "fronttier_bucket=5000; fronttier_backend="+balance.AffinityKey("up"))
	runRequests(b, client, req, func(resp *http.Response) string {
		if len(resp.Header["Set-Cookie"]) != 0 {
			return "a client with its cookies was sent Set-Cookie"
		}
		return ""
	})
}
