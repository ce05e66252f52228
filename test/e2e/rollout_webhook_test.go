package e2e

import (
	"strings"
	"syscall"
	"testing"
)

// TestRolloutWebhookReload: [rollouts] webhook_url changed in the file
// and reloaded (SIGHUP) receives the transitions made after; the old URL
// gets none of them.
func TestRolloutWebhookReload(t *testing.T) {
	t.Parallel()
	before, after := newWebhook(t), newWebhook(t)
	p := rolloutProxy(t, before)
	from := len(p.out.Lines())
	writeFile(t, p.Config, strings.Replace(string(readFile(t, p.Config)), before.srv.URL, after.srv.URL, 1))
	p.signal(t, syscall.SIGHUP)
	if _, _, ok := p.out.waitFor(from, waitTimeout, p.done, msgIs("configuration reloaded")); !ok {
		t.Fatalf("no \"configuration reloaded\" after SIGHUP:\n%s", tail(p.out.String(), 20))
	}
	startRollout(t, p, 5)
	eventually(t, waitTimeout, func() bool { return after.has("started") }, "the new webhook told of the start")
	if before.has("started") {
		t.Error("the old webhook was told of the start")
	}
}
