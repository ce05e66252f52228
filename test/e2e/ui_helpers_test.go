package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"fronttier/internal/testutil"
)

// uiToken is the admin token of the dashboard tests' proxies.
const uiToken = "ui-e2e-admin-token"

// withToken adds management_api_token = token to a configuration file's
// [proxy] section.
func withToken(doc, token string) string {
	const anchor = "shutdown_timeout_secs = 10\n"
	if !strings.Contains(doc, anchor) {
		panic("withToken: no [proxy] anchor in the configuration")
	}
	return strings.Replace(doc, anchor, anchor+fmt.Sprintf("management_api_token = %q\n", token), 1)
}

// apiAs sends GET path with token and decodes the answer into out,
// requiring 200.
func (p *proxyProc) apiAs(t testing.TB, token, path string, out any) {
	t.Helper()
	code, body := p.asUser(t, token, http.MethodGet, path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// apiError returns the error message of the API's answer to a request.
func (p *proxyProc) apiError(t testing.TB, token, method, path, body string, want int) string {
	t.Helper()
	code, data := p.asUser(t, token, method, path, body)
	var e struct{ Error string }
	if code != want || json.Unmarshal(data, &e) != nil || e.Error == "" {
		t.Fatalf("%s %s: %d %s, want %d with an error message", method, path, code, data, want)
	}
	return e.Error
}

// allHealthy waits until the API reports every backend healthy.
func (p *proxyProc) allHealthy(t testing.TB, token string) {
	t.Helper()
	eventually(t, waitTimeout, func() bool {
		var bs []backendObj
		p.apiAs(t, token, "/backends", &bs)
		for _, b := range bs {
			if b.Health != "healthy" {
				return false
			}
		}
		return true
	}, "every backend healthy")
}

// signedInCanary starts canaryProxy for host with the token uiToken,
// waits for its backends to be healthy, and signs in to its dashboard.
func signedInCanary(t *testing.T, host string) (*proxyProc, *browser) {
	t.Helper()
	p, _ := canaryProxy(t, conf{ProxyExtra: fmt.Sprintf("management_api_token = %q\n", uiToken)}, host)
	p.allHealthy(t, uiToken)
	b := newBrowser(t)
	b.open(p)
	b.signIn(uiToken)
	b.waitRows(1)
	return p, b
}

// thousandDomains returns a configuration of n domains
// site-0000.example.com... on tag a, without a token (the page then asks
// for none), and the names.
func thousandDomains(t testing.TB, n int) (conf, []string) {
	t.Helper()
	a1 := startBackend(t, "a1")
	c := conf{Backends: []backendConf{be("a1", a1, "a")}}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("site-%04d.example.com", i)
		c.Domains = append(c.Domains, domainConf{names[i], "a"})
	}
	return c, names
}

// browserTimeout bounds one browser step (a wait for the page included):
// a ceiling for a loaded machine, not a delay.
const browserTimeout = time.Minute

// browser is a headless Chromium tab driven over the DevTools protocol,
// with every console error, uncaught exception and browser log error the
// page met recorded.
type browser struct {
	t   testing.TB
	ctx context.Context // the tab's; cancelled in t.Cleanup

	mu       sync.Mutex
	problems []problem
}

// problem is a console error, an uncaught exception or an error entry of
// the browser log.
type problem struct {
	network bool // a log entry of the network: a request answered 4xx/5xx
	text    string
}

// newBrowser starts Chromium (Debian's chromium; the test is skipped when
// it is missing, or fails when CI is set) with one tab. We may run as
// root, where Chromium needs --no-sandbox.
func newBrowser(t testing.TB) *browser {
	t.Helper()
	bin := testutil.FindTool(t, "chromium", "apt-get install chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(b.record))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first call starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

// record is the tab's event listener: it runs on the tab's reading loop
// and only takes notes.
func (b *browser) record(ev any) {
	var p problem
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var args []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		p.text = "console.error: " + strings.Join(args, " ")
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		p.text = fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, d.Text)
		if d.Exception != nil {
			p.text += " " + d.Exception.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		p.network = ev.Entry.Source == log.EntrySourceNetwork
		p.text = fmt.Sprintf("log %s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

// requireClean fails the test on any problem the page met so far; with
// allowNetwork, log entries of requests the API refused (a 401 or 403 the
// test provoked) are not counted.
func (b *browser) requireClean(allowNetwork bool) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		if allowNetwork && p.network {
			b.t.Logf("expected: %s", p.text)
			continue
		}
		b.t.Errorf("the page met %s", p.text)
	}
}

// do runs actions on the tab within browserTimeout, failing the test (with
// a screenshot) on an error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail(expr, err)
	}
	return v
}

// wait waits until the JavaScript expression is truthy in the page.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	b.do("wait for "+what, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(browserTimeout)))
}

// fail saves a screenshot of the page as it is and fails the test.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	b.screenshot("failed")
	b.t.Fatalf("%s: %v", what, err)
}

// screenshotDir is where the tests save their screenshots:
// $FRONTTIER_SCREENSHOTS, by default test/e2e/screenshots.
func screenshotDir() string {
	if d := os.Getenv("FRONTTIER_SCREENSHOTS"); d != "" {
		return d
	}
	return "screenshots"
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// screenshotTimeout bounds one screenshot: a page of 1,000 rows is a
// large image to encode on a loaded machine.
const screenshotTimeout = 2 * time.Minute

// screenshot saves a full-page image named after the test and what it
// shows, and logs its path: a PNG, or for a page taller than 4,000 px (the
// 1,000 domains) a JPEG, which Chromium encodes much faster.
func (b *browser) screenshot(what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, screenshotTimeout)
	defer cancel()
	quality, ext := 100, ".png"
	if h, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollHeight`)); err == nil && h > 4000 {
		quality, ext = 80, ".jpg"
	}
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(quality))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", what, err)
		return
	}
	dir := screenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Errorf("screenshot %s: %v", what, err)
		return
	}
	path := filepath.Join(dir, unsafeName.ReplaceAllString(b.t.Name()+"-"+what, "_")+ext)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", what, err)
		return
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	b.t.Logf("screenshot: %s", path)
}

// shown is a JavaScript expression, true when the element with the id is
// rendered: neither its hidden attribute nor a style hides it.
func shown(id string) string {
	return fmt.Sprintf(`(document.getElementById(%q).getClientRects().length > 0)`, id)
}

// open loads the dashboard of p.
func (b *browser) open(p *proxyProc) {
	b.t.Helper()
	b.do("open the dashboard", chromedp.Navigate("http://"+p.API+"/ui/"))
}

// signIn types token into the sign-in form and submits it.
func (b *browser) signIn(token string) {
	b.t.Helper()
	b.do("sign in",
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#signin button[type=submit]`)),
	)
}

// waitRows waits until the domains table has n rows, and requires the
// sign-in form out of sight then.
func (b *browser) waitRows(n int) {
	b.t.Helper()
	b.wait(fmt.Sprintf("%d domain rows", n), fmt.Sprintf(`document.querySelectorAll('#domains tbody tr').length === %d && %s`, n, shown("domains")))
	if eval[bool](b, shown("signin")) {
		b.fail("the domains", fmt.Errorf("the sign-in form is shown beside them"))
	}
}

// pageDomain is a row of the page's domains table.
type pageDomain struct {
	Domain string `json:"domain"`
	Tag    string `json:"tag"`
	Canary string `json:"canary"`
	Days   string `json:"days"`
	RPS    string `json:"rps"`
	Err    string `json:"err"`
	P99    string `json:"p99"`
}

func (b *browser) domainRows() []pageDomain {
	b.t.Helper()
	return eval[[]pageDomain](b, `[...document.querySelectorAll('#domains tbody tr')].map((tr) => ({
		domain: tr.dataset.domain,
		tag: tr.querySelector('.c-tag .t').textContent,
		canary: tr.querySelector('.c-canary').textContent,
		days: tr.querySelector('.c-days').textContent,
		rps: tr.querySelector('.c-rps').textContent,
		err: tr.querySelector('.c-err').textContent,
		p99: tr.querySelector('.c-p99').textContent,
	}))`)
}

// pageBackend is a row of the page's backends table.
type pageBackend struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Tags    string `json:"tags"`
	Health  string `json:"health"`
}

func (b *browser) backendRows() []pageBackend {
	b.t.Helper()
	return eval[[]pageBackend](b, `[...document.querySelectorAll('#backends tbody tr')].map((tr) => ({
		id: tr.querySelector('.c-id').textContent,
		address: tr.querySelector('.c-addr').textContent,
		tags: tr.querySelector('.c-tags').textContent,
		health: tr.querySelector('.c-health').textContent,
	}))`)
}

// act opens the dialog of action (switch, canary, rollout) on domain's
// row, sets the form's fields (name: value; a radio button's value is
// clicked), screenshots it and confirms it.
func (b *browser) act(domain, action string, fields map[string]string) {
	b.t.Helper()
	row := fmt.Sprintf(`#domains tr[data-domain=%q]`, domain)
	b.do("open the "+action+" dialog of "+domain,
		chromedp.Click(chromedp.CSS(row+` button[data-act=`+action+`]`)),
		chromedp.WaitVisible(chromedp.ID("dialog")),
	)
	for name, value := range fields {
		field := fmt.Sprintf(`#dialog [name=%q]`, name)
		if eval[bool](b, fmt.Sprintf(`document.querySelector(%q).type === 'radio'`, field)) {
			b.do("choose "+name+" "+value, chromedp.Click(chromedp.CSS(fmt.Sprintf(`%s[value=%q]`, field, value))))
			continue
		}
		b.do("set "+name, chromedp.SetValue(chromedp.CSS(field), value))
		b.do("tell the form", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`document.querySelector(%q).dispatchEvent(new Event('change', {bubbles: true}))`, field)))
	}
	b.wait("the dialog's summary", `document.getElementById('dialog-summary').textContent !== ''`)
	b.screenshot(action + "-dialog" + shotSuffix(fields))
	b.do("confirm", chromedp.Click(chromedp.ID("dialog-confirm")))
	b.wait("the dialog to close", `!document.getElementById('dialog').open`)
}

// shotSuffix names a dialog's screenshot after the radio choice op, when
// set.
func shotSuffix(fields map[string]string) string {
	if op := fields["op"]; op != "" {
		return "-" + op
	}
	return ""
}

// message waits for the message area to show and returns its text and
// class ("ok" or "error").
func (b *browser) message() (text, kind string) {
	b.t.Helper()
	b.wait("a message", shown("message"))
	m := eval[map[string]string](b, `({text: document.getElementById('message-text').textContent, kind: document.getElementById('message').className})`)
	return m["text"], m["kind"]
}
