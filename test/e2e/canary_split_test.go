package e2e

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
)

// TestCanaryShareByHeader is issue 14's proof for header keys, through the
// binary: at 10% over 20,000 distinct X-User-Id values the canary's share
// is 10% ± 1 point; the same value always lands on the same tag; and 1,000
// users keep their version while the share rises 5 → 25 → 50, none moving
// back, each step's share within ± 3 points.
func TestCanaryShareByHeader(t *testing.T) {
	t.Parallel()
	const host = "user.canary.example.com"
	p, _ := canaryProxy(t, conf{}, host)
	d := p.putDomain(t, host, map[string]any{"sticky": map[string]any{"by": "header:X-User-Id"}})
	if d.Sticky == nil || d.Sticky.By != "header:X-User-Id" {
		t.Fatalf("PUT sticky: the answer shows %+v", d.Sticky)
	}
	p.setCanary(t, host, 10)

	const n = 20000
	var canary atomic.Int64
	parallel(t, n, 16, func(i int) error {
		pl, err := p.place(host, "/", "X-User-Id: user-"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		if len(pl.cookies) != 0 {
			return fmt.Errorf("a client keyed by header was sent cookies %q", pl.cookies)
		}
		if pl.tag == "b" {
			canary.Add(1)
		}
		return nil
	})
	within(t, "20,000 user ids at 10%", share(int(canary.Load()), n), 10, 1)

	onCanary := make([]bool, 1000)
	for _, percent := range []float64{5, 25, 50} {
		p.setCanary(t, host, percent)
		var k atomic.Int64
		parallel(t, len(onCanary), 16, func(i int) error {
			user := "X-User-Id: member-" + strconv.Itoa(i)
			first, err := p.place(host, "/", user)
			if err != nil {
				return err
			}
			again, err := p.place(host, "/again", user)
			if err != nil {
				return err
			}
			if again.tag != first.tag {
				return fmt.Errorf("at %v%% user %d went to %s, then to %s", percent, i, first.tag, again.tag)
			}
			now := first.tag == "b"
			if onCanary[i] && !now {
				return fmt.Errorf("user %d left the canary when the share rose to %v%%", i, percent)
			}
			onCanary[i] = now
			if now {
				k.Add(1)
			}
			return nil
		})
		within(t, fmt.Sprintf("1,000 user ids at %v%%", percent), share(int(k.Load()), len(onCanary)), percent, 3)
	}
}

// TestCanaryShareByCookie is the same proof for the default key, the
// bucket cookie: 20,000 new clients (no cookie: each gets one) at 10%
// split 10% ± 1; then 1,000 clients keep their cookie, and their version,
// while the share rises 5 → 25 → 50.
func TestCanaryShareByCookie(t *testing.T) {
	t.Parallel()
	const host = "cookie.canary.example.com"
	p, _ := canaryProxy(t, conf{}, host)
	p.setCanary(t, host, 10)

	const n = 20000
	var canary atomic.Int64
	parallel(t, n, 16, func(int) error {
		pl, err := p.place(host, "/")
		if err != nil {
			return err
		}
		if pl.bucket < 0 || pl.bucket >= 10000 {
			return fmt.Errorf("a new client got no bucket cookie: %q", pl.cookies)
		}
		if (pl.tag == "b") != (pl.bucket < 1000) {
			return fmt.Errorf("bucket %d was served by %s", pl.bucket, pl.id)
		}
		if pl.tag == "b" {
			canary.Add(1)
		}
		return nil
	})
	within(t, "20,000 new clients at 10%", share(int(canary.Load()), n), 10, 1)

	cookies := make([]string, 1000) // each client's Cookie field
	onCanary := make([]bool, len(cookies))
	for _, percent := range []float64{5, 25, 50} {
		p.setCanary(t, host, percent)
		var k atomic.Int64
		parallel(t, len(cookies), 16, func(i int) error {
			var lines []string
			if cookies[i] != "" {
				lines = []string{"Cookie: " + cookies[i]}
			}
			pl, err := p.place(host, "/", lines...)
			if err != nil {
				return err
			}
			switch {
			case cookies[i] == "" && pl.bucket < 0:
				return fmt.Errorf("client %d got no bucket at %v%%", i, percent)
			case cookies[i] == "":
				cookies[i] = "fronttier_bucket=" + strconv.Itoa(pl.bucket)
			case len(pl.cookies) != 0:
				return fmt.Errorf("client %d with %q was sent %q", i, cookies[i], pl.cookies)
			}
			now := pl.tag == "b"
			if onCanary[i] && !now {
				return fmt.Errorf("client %d (%s) left the canary when the share rose to %v%%", i, cookies[i], percent)
			}
			onCanary[i] = now
			if now {
				k.Add(1)
			}
			return nil
		})
		within(t, fmt.Sprintf("1,000 clients with cookies at %v%%", percent), share(int(k.Load()), len(cookies)), percent, 3)
	}

	// A cookie that is not a bucket is replaced.
	pl, err := p.place(host, "/", "Cookie: fronttier_bucket=banana")
	if err != nil || pl.bucket < 0 {
		t.Errorf("a client with a bad bucket cookie: %+v, %v; want a new bucket", pl, err)
	}
}
