package acme

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fronttier/internal/certs"
	"fronttier/internal/clock/clocktest"
	tu "fronttier/internal/testutil"
)

// Tests of the renewal schedule (issue #12, point 6) against a real Pebble.
// Most move the Manager's fake clock through hours of a certificate's life;
// Pebble issues certificates on the real clock, which the fake one starts
// at.

// dueAt is when the schedule must renew leaf with RenewBefore before,
// without ARI: when the smaller of before and a third of its lifetime
// remains.
func dueAt(leaf *x509.Certificate, before time.Duration) time.Time {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-min(before, lifetime/3))
}

// TestShortLivedCertificateRenewsWithoutCheckTick: with certificates of 12
// seconds, the default 30 days before expiry and a check every 24 hours,
// renewal still happens in time, on the real clock.
func TestShortLivedCertificateRenewsWithoutCheckTick(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{validity: 12 * time.Second})
	tm := newTestManager(t, env, nil) // RenewBefore 30 days, RenewalCheck 24h
	const name = "short.example.test"
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "a renewed certificate", func(ev []event) bool {
		return len(serials(ev, name)) >= 2 && lastStatus(ev, name).status == StatusValid
	})
	want := []string{StatusPending, StatusValid, StatusRenewing, StatusValid}
	if got := statuses(events, name); !containsInOrder(got, want) {
		t.Errorf("statuses = %v, want %v in order", got, want)
	}
}

// TestRenewalWakesAtOneThirdOfLifetime: a 24-hour certificate with the
// default 30 days before expiry is renewed when 8 hours remain, by an alarm
// set for that instant, and its successor is scheduled the same way (not
// at once: no renewal loop).
func TestRenewalWakesAtOneThirdOfLifetime(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{validity: 24 * time.Hour})
	tm := newTestManager(t, env, nil)
	fc := clocktest.New(time.Now())
	tm.setClock(fc)
	tm.ari = false
	tm.retryBase = time.Hour
	const name = "third.example.test"
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool {
		return lastStatus(ev, name).status == StatusValid
	})
	first := puts(events, name)[0]
	due := dueAt(first.Leaf, DefaultRenewBefore)
	if got := due.Sub(first.Leaf.NotBefore); got < 15*time.Hour || got > 17*time.Hour {
		t.Fatalf("test assumption: due %v after issuance, want about 16h", got)
	}
	at := fc.WaitArmed(t, waitTimeout, "after issuance", func(at time.Time) bool { return at.After(fc.Now()) })
	if !at.Equal(due) {
		t.Fatalf("next check at %v (%v before expiry), want %v (a third of the lifetime before expiry)",
			at, first.Leaf.NotAfter.Sub(at), due)
	}

	fc.Set(at)
	events = tm.inst.waitFor(t, "a renewed certificate", func(ev []event) bool {
		return len(serials(ev, name)) >= 2 && lastStatus(ev, name).status == StatusValid
	})
	if got := statuses(events, name); !containsInOrder(got, []string{StatusValid, StatusRenewing, StatusValid}) {
		t.Errorf("statuses = %v, want valid, renewing, valid in order", got)
	}
	if got := testutil.ToFloat64(tm.metrics.operations.WithLabelValues(opRenew, "success")); got != 1 {
		t.Errorf("renew successes = %v, want 1", got)
	}

	// Pebble stamps the new certificate with the real time, hours behind
	// the fake clock: when both fall in the same second the new one is due
	// at once, and must then wait a retry interval rather than loop.
	all := puts(events, name)
	second := all[len(all)-1]
	want := dueAt(second.Leaf, DefaultRenewBefore)
	if now := fc.Now(); !want.After(now) {
		want = now.Add(tm.retryBase)
	}
	at = fc.WaitArmed(t, waitTimeout, "after renewal", func(at time.Time) bool { return at.After(fc.Now()) })
	if !at.Equal(want) {
		t.Errorf("next check after renewal at %v, want %v", at, want)
	}
}

// TestRenewalWakesAtARISelectedTime: when the CA's renewal information
// suggests a window earlier than the schedule's own time, the domain wakes
// at the time selected in it, not at the next check.
func TestRenewalWakesAtARISelectedTime(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{validity: 24 * time.Hour})
	tm := newTestManager(t, env, nil)
	fc := clocktest.New(time.Now())
	tm.setClock(fc)
	const name = "ari-window.example.test"
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool {
		return lastStatus(ev, name).status == StatusValid
	})
	first := puts(events, name)[0]
	start := fc.Now().Add(time.Hour)
	end := start.Add(10 * time.Second)
	env.setRenewalInfo(t, first.Leaf, start, end)
	if err := tm.Reload(name); err != nil { // refreshes the renewal information
		t.Fatal(err)
	}
	at := fc.WaitArmed(t, waitTimeout, "inside the ARI window", func(at time.Time) bool {
		return !at.Before(start) && !at.After(end)
	})
	fc.Set(at)
	tm.inst.waitFor(t, "a renewed certificate", func(ev []event) bool {
		return len(serials(ev, name)) >= 2 && lastStatus(ev, name).status == StatusValid
	})
}

// teeInstaller hands every call to each of its installers.
type teeInstaller []Installer

func (ti teeInstaller) Put(domain string, cert *tls.Certificate) {
	for _, i := range ti {
		i.Put(domain, cert)
	}
}

func (ti teeInstaller) SetStatus(domain, keyType, status string, err error) {
	for _, i := range ti {
		i.SetStatus(domain, keyType, status, err)
	}
}

// TestFailingRenewalRetriesBeforeExpiry: when renewal keeps failing, the
// backoff is capped by the remaining lifetime, so that several attempts
// are made before the certificate expires; once it has expired, the API
// says "expired" although the ACME side last said "renewing".
func TestFailingRenewalRetriesBeforeExpiry(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbleOptions{validity: 24 * time.Hour})
	fc := clocktest.New(time.Now())
	api := certs.New(certs.Options{Now: fc.Now})
	tm := newTestManager(t, env, func(o *Options) { o.Installer = teeInstaller{o.Installer, api} })
	tm.setClock(fc)
	tm.ari = false
	tm.retryBase, tm.retryMax = time.Hour, 24*time.Hour
	refuse := tm.refuseOrders()
	const name = "retry.example.test"
	api.Sync([]certs.Host{{Domain: name, Source: certs.SourceLetsEncrypt}})
	tm.Sync([]string{name})
	tm.run(t)
	events := tm.inst.waitFor(t, "certificate", func(ev []event) bool {
		return lastStatus(ev, name).status == StatusValid
	})
	first := puts(events, name)[0]
	notAfter := first.Leaf.NotAfter
	at := fc.WaitArmed(t, waitTimeout, "after issuance", func(at time.Time) bool { return at.After(fc.Now()) })

	refuse.Store(true)
	failures := func(ev []event) int {
		n := 0
		for _, e := range ev {
			if e.domain == name && e.status == StatusRenewing && e.err != nil {
				n++
			}
		}
		return n
	}
	attempts := 0
	for at.Before(notAfter) && attempts < 12 {
		fc.Set(at)
		attempts++
		tm.inst.waitFor(t, "a failed renewal", func(ev []event) bool { return failures(ev) >= attempts })
		at = fc.WaitArmed(t, waitTimeout, "after a failure", func(at time.Time) bool { return at.After(fc.Now()) })
	}
	if attempts < 5 {
		t.Errorf("%d renewal attempts before expiry, want at least 5", attempts)
	}
	if got := len(serials(tm.inst.snapshot(), name)); got != 1 {
		t.Errorf("%d serials put, want 1", got)
	}

	// The certificate expires before the next attempt.
	fc.Set(notAfter.Add(time.Second))
	in, err := api.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != certs.StatusExpired || in.DaysUntilExpiration == nil || *in.DaysUntilExpiration >= 0 {
		t.Errorf("API after expiry: status %q, days %v; want expired, negative", in.Status, in.DaysUntilExpiration)
	}
}

// TestLogDurationsAreStrings: JSON records give durations as Go duration
// strings ("1m0s"), not integer nanoseconds.
func TestLogDurationsAreStrings(t *testing.T) {
	t.Parallel()
	logs := &tu.SyncBuffer{}
	tm := newTestManager(t, nil, func(o *Options) { // the CA refuses connections
		o.Log = slog.New(slog.NewJSONHandler(logs, nil))
	})
	tm.retryBase, tm.retryMax = 1500*time.Millisecond, time.Hour
	const name = "log.example.test"
	tm.Sync([]string{name})
	stop := tm.run(t)
	tm.inst.waitFor(t, "a failure", func(ev []event) bool { return lastStatus(ev, name).status == StatusFailed })
	stop()
	var seen bool
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		if rec["msg"] != "ACME certificate request failed; retry scheduled" {
			continue
		}
		seen = true
		s, ok := rec["retry_in"].(string)
		if !ok {
			t.Fatalf("retry_in = %#v, want a duration string", rec["retry_in"])
		}
		if d, err := time.ParseDuration(s); err != nil || d != 1500*time.Millisecond {
			t.Errorf("retry_in %q (%v), want 1.5s", s, err)
		}
	}
	if !seen {
		t.Errorf("no retry record in\n%s", logs)
	}
}

func TestRetryWait(t *testing.T) {
	t.Parallel()
	const base, limit = time.Minute, time.Hour
	tests := []struct {
		name      string
		failures  int
		remaining time.Duration
		want      time.Duration
	}{
		{name: "first issuance", failures: 1, want: time.Minute},
		{name: "first issuance, many failures", failures: 10, want: time.Hour},
		{name: "long before expiry", failures: 3, remaining: 30 * 24 * time.Hour, want: 4 * time.Minute},
		{name: "capped by a quarter of what remains", failures: 7, remaining: 2 * time.Hour, want: 30 * time.Minute},
		{name: "never below base", failures: 7, remaining: 2 * time.Minute, want: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryWait(base, limit, tt.failures, tt.remaining); got != tt.want {
				t.Errorf("retryWait(%d, %v) = %v, want %v", tt.failures, tt.remaining, got, tt.want)
			}
		})
	}
}
