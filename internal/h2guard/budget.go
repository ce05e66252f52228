package h2guard

import (
	"time"

	"fronttier/internal/clock"
)

// The attacks the guard closes a connection for, as OnCalm reports them
// (and the log line of Configure names them).
const (
	// AttackRapidReset: the client resets streams it opened (RST_STREAM),
	// faster than its Resets budget allows (CVE-2023-44487).
	AttackRapidReset = "rapid_reset"
	// AttackMadeYouReset: the client sends frames that make the server
	// reset a stream (CVE-2025-8671); they spend the Resets budget too.
	AttackMadeYouReset = "made_you_reset"
	// AttackPingFlood: PING frames faster than the Pings budget.
	AttackPingFlood = "ping_flood"
	// AttackSettingsFlood: SETTINGS frames faster than the Settings budget.
	AttackSettingsFlood = "settings_flood"
	// AttackWindowUpdateFlood: small WINDOW_UPDATE increments faster than
	// the WindowUpdates budget.
	AttackWindowUpdateFlood = "window_update_flood"
	// AttackContinuationFlood: a header block in more CONTINUATION frames
	// than MaxContinuations (CVE-2023-45288).
	AttackContinuationFlood = "continuation_flood"
	// AttackHPACKBomb: a header block that decodes to more than the
	// header list size limit and to more than hpackBombRatio times its
	// size on the wire.
	AttackHPACKBomb = "hpack_bomb"
)

// Rate is a per-connection budget of frames of one kind: Burst of them at
// once, refilled at PerSecond (none when zero) up to Burst again. Zero
// Rate fields in Limits take the defaults; a negative Burst means no
// limit.
type Rate struct {
	Burst     int
	PerSecond int
}

// Default budgets. A browser leaving a page cancels its streams in flight
// (at most the server's 250 concurrent ones); clients ping and send
// SETTINGS a few times a connection; flow-control updates from real
// clients are kilobytes, not bytes.
var (
	defaultResets        = Rate{Burst: 500, PerSecond: 50}
	defaultPings         = Rate{Burst: 100, PerSecond: 10}
	defaultSettings      = Rate{Burst: 100, PerSecond: 2}
	defaultWindowUpdates = Rate{Burst: 1000, PerSecond: 100}
)

const (
	// defaultMaxContinuations is the default of Limits.MaxContinuations: a
	// 64 KiB block in frames of 1 KiB.
	defaultMaxContinuations = 64
	// defaultMaxHeaderListSize is golang.org/x/net/http2's for an
	// http.Server without MaxHeaderBytes: net/http's 1 MiB plus 10 fields'
	// overhead.
	defaultMaxHeaderListSize = 1<<20 + 10*32
	// smallIncrement is the WINDOW_UPDATE increment below which an update
	// spends the WindowUpdates budget.
	smallIncrement = 1 << 10
	// hpackBombRatio is how many times its size on the wire a header
	// block over the list size limit must decode to to be a bomb, rather
	// than an honest request the server answers 431.
	hpackBombRatio = 16
)

// orDefault returns r, or d when r is the zero Rate.
func (r Rate) orDefault(d Rate) Rate {
	if r == (Rate{}) {
		return d
	}
	return r
}

// bucket is a Rate's state on one connection. It refills lazily, when it
// runs out, so that the clock is read only by a client spending a budget
// to its end.
type bucket struct {
	rate   Rate
	tokens int
	last   time.Time // when the bucket was last refilled
}

// newBucket returns a full bucket of rate r at now.
func newBucket(r Rate, now time.Time) bucket {
	return bucket{rate: r, tokens: r.Burst, last: now}
}

// take spends one token, refilling the bucket first when it is empty, and
// reports whether there was one.
func (b *bucket) take(c clock.Clock) bool {
	if b.rate.Burst < 0 {
		return true
	}
	if b.tokens == 0 && b.rate.PerSecond > 0 {
		now := c.Now()
		per := time.Second / time.Duration(b.rate.PerSecond)
		if n := now.Sub(b.last) / per; n > 0 {
			b.tokens = int(min(n, time.Duration(b.rate.Burst)))
			b.last = b.last.Add(n * per)
			if b.tokens == b.rate.Burst {
				b.last = now
			}
		}
	}
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}
