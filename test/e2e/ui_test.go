package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The dashboard's tests drive the real page (/ui/ on the management
// listener) in a real headless Chromium against a real fronttier, and save
// screenshots of what they saw (see screenshotDir).

// TestDashboardShowsAPI signs in with the token and checks the page shows
// what the API says (domains with their tag, canary and certificate days;
// backends with their address, tags and health; the request rate and p99
// from the proxy's counters) without a single console error.
func TestDashboardShowsAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	_, crt, key := ca.issueFiles(t, "shop", []string{"shop.example.com"}, leafOpts{NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	a1, b1 := startBackend(t, "a1"), startBackend(t, "b1")
	c1 := startBackend(t, "c1", "-fail-rate", "0.5") // half its answers are 500
	c := tlsConf{
		Hosts: []tlsHost{
			{Domain: "shop.example.com", Tag: "a", Cert: crt, Key: key, NoRedirect: true},
			{Domain: "plain.example.com", Tag: "a"},
			{Domain: "beta.example.com", Tag: "b"},
			{Domain: "flaky.example.com", Tag: "c"},
		},
		Backends: []backendConf{be("a1", a1, "a"), be("b1", b1, "b", "beta"), be("c1", c1, "c")},
		CacheDir: filepath.Join(dir, "acme-cache"),
	}
	path := filepath.Join(dir, "config.toml")
	writeFile(t, path, withToken(c.String(), uiToken))
	p := startProxy(t, path)
	if code, body := p.asUser(t, uiToken, http.MethodPut, "/domains/beta.example.com/canary", `{"tag": "a", "percent": 20}`); code != http.StatusOK {
		t.Fatalf("PUT canary: %d %s", code, body)
	}
	p.allHealthy(t, uiToken)

	b := newBrowser(t)
	b.open(p)
	b.wait("the sign-in form", shown("signin")+" && !"+shown("main"))
	b.screenshot("signin")
	b.signIn(uiToken)
	b.waitRows(4)

	// Domains, in the API's order, with their tag, canary and certificate.
	var domains []canaryDomain
	p.apiAs(t, uiToken, "/domains", &domains)
	var certs []certInfo
	p.apiAs(t, uiToken, "/certificates", &certs)
	days := map[string]string{}
	for _, c := range certs {
		if c.DaysUntilExpiration != nil {
			days[c.Domain] = strconv.Itoa(*c.DaysUntilExpiration)
		}
	}
	if days["shop.example.com"] == "" {
		t.Fatalf("the API shows no certificate days for shop.example.com: %+v", certs)
	}
	rows := b.domainRows()
	if len(rows) != len(domains) {
		t.Fatalf("the page shows %d domains, the API %d", len(rows), len(domains))
	}
	for i, d := range domains {
		want := pageDomain{Domain: d.Domain, Tag: d.EnabledBackendsTag, Days: days[d.Domain]}
		if d.Canary != nil {
			want.Canary = fmt.Sprintf("%s %v%%", d.Canary.Tag, d.Canary.Percent)
		}
		got := rows[i]
		got.RPS, got.Err, got.P99 = "", "", ""
		if got != want {
			t.Errorf("domain row %d: the page shows %+v, the API says %+v", i, got, want)
		}
	}

	// Backends, with the health the API reports (all healthy by now).
	var backends []backendObj
	p.apiAs(t, uiToken, "/backends", &backends)
	want := make([]pageBackend, len(backends))
	for i, be := range backends {
		want[i] = pageBackend{ID: be.ID, Address: be.Address, Tags: strings.Join(be.Tags, " "), Health: be.Health}
	}
	eventually(t, waitTimeout, func() bool {
		got := b.backendRows()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return true
		}
		t.Logf("backends: the page shows %+v, the API says %+v", got, want)
		return false
	}, "the page's backends equal the API's")

	// Traffic shows as a request rate, an error share and a p99 from the
	// proxy's counters: none of shop's requests fail, half of flaky's.
	figures := func(domain string) (rps, errPct, p99 float64, ok bool) {
		for _, r := range b.domainRows() {
			if r.Domain == domain {
				var err1, err2, err3 error
				rps, err1 = strconv.ParseFloat(r.RPS, 64)
				errPct, err2 = strconv.ParseFloat(r.Err, 64)
				p99, err3 = strconv.ParseFloat(r.P99, 64)
				return rps, errPct, p99, err1 == nil && err2 == nil && err3 == nil
			}
		}
		return 0, 0, 0, false
	}
	eventually(t, browserTimeout, func() bool {
		for range 10 {
			p.getEcho(t, "shop.example.com", "/")
			p.get(t, "flaky.example.com", "/")
		}
		rps, errPct, p99, ok := figures("shop.example.com")
		frps, ferr, fp99, fok := figures("flaky.example.com")
		return ok && rps > 0 && errPct == 0 && p99 > 0 && fok && frps > 0 && ferr > 0 && fp99 > 0
	}, "a request rate, an error share and a p99 for shop.example.com and flaky.example.com")
	b.screenshot("dashboard")

	// Hidden, the tab stops reading; shown again, it reads at once.
	setHidden := func(hidden bool) {
		b.do("hide or show the tab", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`Object.defineProperty(document, 'hidden', {value: %t, configurable: true}); document.dispatchEvent(new Event('visibilitychange'))`, hidden)))
	}
	const reads = `performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/api/v1/domains')).length`
	setHidden(true)
	b.wait("the status to say paused", `document.getElementById('status').textContent === 'paused while the tab is hidden'`)
	n := eval[int](b, reads)
	setHidden(false)
	b.wait("a read when the tab shows again", fmt.Sprintf(`%s > %d && document.getElementById('status').textContent.startsWith('updated')`, reads, n))
	b.requireClean(false)
}

// TestDashboardSwitchAndCanary switches a domain and sets its canary in
// the page, confirming each in the dialog, and checks the API and the
// traffic follow.
func TestDashboardSwitchAndCanary(t *testing.T) {
	t.Parallel()
	const host = "shop.example.com"
	p, b := signedInCanary(t, host)
	b.screenshot("before")

	b.act(host, "switch", map[string]string{"tag": "b"})
	if text, kind := b.message(); kind != "ok" || !strings.Contains(text, "switched to b") {
		t.Fatalf("after the switch the page says %q (%s)", text, kind)
	}
	var d canaryDomain
	p.apiAs(t, uiToken, "/domains/"+host, &d)
	if d.EnabledBackendsTag != "b" {
		t.Fatalf("after the switch in the page the API shows tag %q, want b", d.EnabledBackendsTag)
	}
	if id := p.backendOf(t, host); !strings.HasPrefix(id, "b") {
		t.Fatalf("after the switch a request reached %q, want a backend of tag b", id)
	}
	b.wait("the row to show tag b", fmt.Sprintf(`document.querySelector('#domains tr[data-domain=%q] .c-tag .t').textContent === 'b'`, host))
	b.screenshot("switched")

	b.act(host, "canary", map[string]string{"tag": "a", "percent": "50"})
	if text, kind := b.message(); kind != "ok" || !strings.Contains(text, "50% to a") {
		t.Fatalf("after setting the canary the page says %q (%s)", text, kind)
	}
	p.apiAs(t, uiToken, "/domains/"+host, &d)
	if d.EnabledBackendsTag != "b" || d.Canary == nil || d.Canary.Tag != "a" || d.Canary.Percent != 50 {
		t.Fatalf("after the canary in the page the API shows tag %q, canary %+v; want b, a at 50%%", d.EnabledBackendsTag, d.Canary)
	}
	// Each new client (no cookie) is placed at random: at 50%, 200
	// requests all missing tag a would be a 2^-200 chance.
	reached := false
	for i := 0; i < 200 && !reached; i++ {
		reached = strings.HasPrefix(p.backendOf(t, host), "a")
	}
	if !reached {
		t.Fatal("with a 50% canary of tag a, no request reached tag a")
	}
	b.wait("the row to show the canary", fmt.Sprintf(`document.querySelector('#domains tr[data-domain=%q] .c-canary').textContent === 'a 50%%'`, host))
	b.screenshot("canary")
	b.requireClean(false)
}

// TestDashboardRollout starts a rollout in the page, pauses and aborts it,
// and checks the API and the row's progress follow.
func TestDashboardRollout(t *testing.T) {
	t.Parallel()
	const host = "shop.example.com"
	p, b := signedInCanary(t, host)

	state := func() (r struct {
		State   string  `json:"state"`
		Percent float64 `json:"percent"`
		ToTag   string  `json:"to_tag"`
	}) {
		t.Helper()
		p.apiAs(t, uiToken, "/domains/"+host+"/rollout", &r)
		return r
	}
	row := fmt.Sprintf(`document.querySelector('#domains tr[data-domain=%q] .c-rollout')`, host)
	steps := []struct {
		fields   map[string]string
		said     string // in the message
		state    string // the API's
		rowShows string // in the row's rollout cell
		progress bool   // the row has a progress bar
	}{
		{map[string]string{"to_tag": "b", "steps": "10, 100", "step_secs": "3600"}, "to b started", "running", "step 1 of 2, 10%", true},
		{map[string]string{"op": "pause"}, "rollout of " + host + " paused", "paused", "step 1 of 2, 10%", true},
		{map[string]string{"op": "abort"}, "rollout of " + host + " aborted", "aborted", "aborted", false},
	}
	for _, s := range steps {
		b.act(host, "rollout", s.fields)
		if text, kind := b.message(); kind != "ok" || !strings.Contains(text, s.said) {
			t.Fatalf("rollout %v: the page says %q (%s)", s.fields, text, kind)
		}
		if r := state(); r.State != s.state || r.ToTag != "b" {
			t.Fatalf("rollout %v: the API shows %+v, want state %s", s.fields, r, s.state)
		}
		b.wait("the row's rollout to show "+s.rowShows, fmt.Sprintf(`%s.textContent.includes(%q) && (%s.querySelector('progress') !== null) === %t`,
			row, s.rowShows, row, s.progress))
		b.screenshot("rollout-" + s.state)
	}
	b.requireClean(false)
}

// TestDashboardAuth checks a wrong token brings the API's 401 message to
// the sign-in form, and that a viewer sees the data but its switch is
// refused with the API's 403 message (the page does not know roles: the
// API decides, and the page shows what it says).
func TestDashboardAuth(t *testing.T) {
	t.Parallel()
	const viewerToken = "ui-e2e-viewer-token"
	sum := sha256.Sum256([]byte(viewerToken))
	p := newProxy(t, conf{
		Domains:    []domainConf{{Domain: "a.example.com", Tag: "a"}},
		Backends:   []backendConf{{ID: "b1", Addr: "127.0.0.1:9", Tags: []string{"a"}}, {ID: "b2", Addr: "127.0.0.1:9", Tags: []string{"b"}}},
		ProxyExtra: fmt.Sprintf("management_api_token = %q\n", uiToken),
		Extra:      fmt.Sprintf("\n[[api_users]]\nname = \"watcher\"\ntoken_sha256 = %q\nrole = \"viewer\"\n", hex.EncodeToString(sum[:])),
	})
	wrong := p.apiError(t, "wrong-token", http.MethodGet, "/domains", "", http.StatusUnauthorized)
	refused := p.apiError(t, viewerToken, http.MethodPost, "/domains/a.example.com/switch", `{"new_tag": "b"}`, http.StatusForbidden)

	b := newBrowser(t)
	b.open(p)
	b.signIn("wrong-token")
	b.wait("the sign-in form's error", shown("signin-error"))
	if got := eval[string](b, `document.getElementById('signin-error').textContent`); got != wrong {
		t.Errorf("with a wrong token the form says %q, the API %q", got, wrong)
	}
	if eval[bool](b, shown("main")) {
		t.Error("with a wrong token the page shows its data section")
	}
	b.screenshot("wrong-token")

	b.signIn(viewerToken)
	b.waitRows(1)
	b.act("a.example.com", "switch", map[string]string{"tag": "b"})
	text, kind := b.message()
	if kind != "error" || text != refused {
		t.Errorf("a viewer's switch: the page says %q (%s), the API %q", text, kind, refused)
	}
	b.screenshot("viewer-refused")
	var d domainObj
	p.apiAs(t, uiToken, "/domains/a.example.com", &d)
	if d.EnabledBackendsTag != "a" {
		t.Errorf("after a viewer's refused switch the tag is %q", d.EnabledBackendsTag)
	}

	b.do("sign out", chromedp.Click(chromedp.ID("signout")))
	b.wait("the sign-in form", shown("signin")+" && !"+shown("main"))
	if eval[bool](b, `sessionStorage.length > 0`) {
		t.Error("after signing out the tab still keeps the token")
	}
	b.requireClean(true) // the 401 and the 403 were asked for
}

// TestDashboardThousandDomains checks the page renders all of 1,000
// domains and that the filter narrows them; the API asks for no token, so
// the page asks for none either.
func TestDashboardThousandDomains(t *testing.T) {
	t.Parallel()
	c, _ := thousandDomains(t, 1000)
	p := newProxy(t, c)

	b := newBrowser(t)
	b.open(p)
	b.waitRows(1000)
	b.screenshot("1000-domains")

	b.do("filter", chromedp.SendKeys(chromedp.ID("filter"), "site-09"))
	b.waitRows(100) // site-0900 ... site-0999
	if got := eval[string](b, `document.getElementById('domain-count').textContent`); got != "100 of 1000" {
		t.Errorf("the count says %q, want \"100 of 1000\"", got)
	}
	b.do("filter more", chromedp.SendKeys(chromedp.ID("filter"), "42"))
	b.waitRows(1)
	if rows := b.domainRows(); rows[0].Domain != "site-0942.example.com" {
		t.Errorf("filtered by site-0942 the page shows %q", rows[0].Domain)
	}
	b.screenshot("filtered")
	b.requireClean(false)
}

// BenchmarkDashboardFirstPaint loads the dashboard of 1,000 domains in
// Chromium, with its cache off, b.N times and reports the first
// contentful paint and the time until the domain table holds its 1,000
// rows (the page's performance mark), both from the navigation's start.
//
//	go test -run XXX -bench BenchmarkDashboardFirstPaint -benchtime 5x ./test/e2e/
func BenchmarkDashboardFirstPaint(bm *testing.B) {
	c, _ := thousandDomains(bm, 1000)
	p := newProxy(bm, c)
	b := newBrowser(bm)
	if _, err := chromedp.Call(b.ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		bm.Fatalf("turn the cache off: %v", err)
	}
	var fcp, rows float64
	bm.ResetTimer()
	for range bm.N {
		b.open(p)
		b.waitRows(1000)
		m := eval[map[string]float64](b, `({
			fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1,
			rows: performance.getEntriesByName('fronttier:domains-rendered')[0]?.startTime ?? -1,
		})`)
		if m["fcp"] < 0 || m["rows"] < 0 {
			bm.Fatalf("the page has no paint or no mark: %v", m)
		}
		fcp += m["fcp"]
		rows += m["rows"]
	}
	bm.StopTimer()
	bm.ReportMetric(fcp/float64(bm.N), "fcp-ms")
	bm.ReportMetric(rows/float64(bm.N), "1000rows-ms")
	bm.ReportMetric(0, "ns/op")
}
