// Package gcgoal keeps the garbage collector's goal a bounded distance
// above the live heap. Go's goal is the live heap plus GOGC percent of the
// live heap and the collector's roots (goroutine stacks, globals). A
// proxy's live heap is small and its garbage is per request, so collecting
// late (GOGC=400) buys throughput for little memory while the heap and
// stacks are small; but with a thousand busy connections their stacks
// alone (~10 MiB) made a 400% goal of ~90 MiB for ~7 MiB of live objects.
// Run lets the garbage above the live heap grow to Headroom (32 MiB), no
// more, within the bounds MinPercent and MaxPercent of GOGC: while the
// live heap and roots are under 8 MiB it is MaxPercent (400), from 32 MiB
// MinPercent (100, Go's default), and in between the goal is the live
// heap plus 32 MiB.
package gcgoal

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"fronttier/internal/clock"
)

// Options configures Run. Zero fields take the defaults.
type Options struct {
	// Headroom is the garbage allowed above the live heap while the
	// percentage lies between the bounds. Default 32 MiB.
	Headroom uint64
	// MinPercent and MaxPercent bound the GOGC percentage. Defaults 100
	// and 400.
	MinPercent, MaxPercent int
	// Every is how often the live heap is looked at. Default 1s.
	Every time.Duration
	// Clock drives the looks; nil: the system clock.
	Clock clock.Clock
	// Live returns what the percentage applies to, in bytes: the live
	// heap as of the last collection plus the stacks and globals; nil:
	// the runtime's /gc/heap/live, /gc/scan/stack and /gc/scan/globals.
	Live func() uint64
	// Set sets the GOGC percentage; nil: debug.SetGCPercent.
	Set func(percent int) int
}

func (o *Options) defaults() {
	if o.Headroom == 0 {
		o.Headroom = 32 << 20
	}
	if o.MinPercent == 0 {
		o.MinPercent = 100
	}
	if o.MaxPercent == 0 {
		o.MaxPercent = 400
	}
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Live == nil {
		o.Live = liveHeap()
	}
	if o.Set == nil {
		o.Set = debug.SetGCPercent
	}
}

// Percent is the GOGC percentage for live bytes of live heap and roots:
// the one that allows Headroom of garbage, bounded by MinPercent and
// MaxPercent.
func Percent(live uint64, o Options) int {
	o.defaults()
	if live == 0 {
		return o.MaxPercent
	}
	p := o.Headroom * 100 / live
	switch {
	case p >= uint64(o.MaxPercent):
		return o.MaxPercent
	case p <= uint64(o.MinPercent):
		return o.MinPercent
	}
	return int(p)
}

// Run sets the percentage for the live heap now and then every o.Every
// until ctx ends. A change of less than a tenth is not made (each change
// makes the runtime recompute its pacing).
func Run(ctx context.Context, o Options) {
	o.defaults()
	cur := -1
	look := func() {
		p := Percent(o.Live(), o)
		if cur < 0 || p*10 < cur*9 || p*10 > cur*11 || (p != cur && (p == o.MinPercent || p == o.MaxPercent)) {
			o.Set(p)
			cur = p
		}
	}
	look()
	alarm := o.Clock.Alarm()
	defer alarm.Stop()
	for {
		alarm.Set(o.Clock.Now().Add(o.Every))
		select {
		case <-ctx.Done():
			return
		case <-alarm.C():
			look()
		}
	}
}

// liveHeap returns a reader of the runtime's live heap and roots (what
// GOGC's percentage applies to).
func liveHeap() func() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	return func() uint64 {
		metrics.Read(s)
		var n uint64
		for _, v := range s {
			if v.Value.Kind() == metrics.KindUint64 {
				n += v.Value.Uint64()
			}
		}
		return n
	}
}
