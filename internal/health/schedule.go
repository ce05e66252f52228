package health

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"time"
)

// minWorkers is how many checks may run at once before a due check has to
// wait; see schedule.
const minWorkers = 64

// schedule is the checker's timetable. Backends waiting for their next
// check sit in a heap ordered by due time; the scheduler goroutine (Run's)
// takes each check off the heap when it is due and runs it on a goroutine
// of its own, which puts the backend back with its next due time when the
// check ends. A backend is in the heap or being checked, never both, so it
// is never checked twice at once.
//
// Worker bound: with n backends, up to min(64, n) checks start as soon as
// they are due. When that many are in flight, further due checks wait in
// the heap, earliest first, for one to end: a few slow backends (checks
// waiting for their timeout) hold a worker each and delay nobody else.
// Only when waiting makes a check late by a tenth of the interval (the
// jitter) do more start at once, up to ceil(n × Timeout / (Timeout +
// Interval)) in all: the number that keeps every backend on time even when
// every check takes its full timeout, since a backend's next check is due
// an Interval after its last one ended. That bound never exceeds n.
//
// The workers are not a standing pool: each check gets a goroutine started
// for it, which exits when the check ends (the runtime reuses goroutine
// descriptors and stacks; starting one costs about a microsecond, a check
// at least a network round trip). So there is no hand-off channel and no
// idle worker to retire, and a checker between checks is one goroutine
// however many backends it has.
//
// Ejection holds: while a backend is held out of rotation (see hold.go),
// its next check is due when the hold ends if that comes before the
// interval does, so that a backend which passed its checks during the hold
// is re-admitted as the hold ends, not up to an interval later.
//
// Times are the checker's clock (see Checker.clock); the schedule's methods take
// the current time from their caller.
type schedule struct {
	// wake (capacity 1) tells the scheduler that the heap or the number
	// of checks in flight changed.
	wake chan struct{}

	mu      sync.Mutex // guards the fields below and every probe's slot
	queue   queue      // backends waiting for their next check
	n       int        // backends scheduled (queued or being checked)
	running int        // checks in flight
	since   time.Time  // when the scheduler started; no check is late before

	// Test hooks: minWorkers and maxWorkers, set before Run, replace the
	// worker bound's two figures (min(64, n) and the late-check maximum)
	// when not zero; peak is the most checks ever in flight at once.
	minWorkers, maxWorkers int
	peak                   int
}

// slot is one backend's place in the schedule, guarded by schedule.mu.
type slot struct {
	due    time.Time          // when the next check is due
	last   time.Time          // when the last check started; zero before the first
	hold   time.Time          // when the hold seen by the last check ends; zero when none
	index  int                // position in the heap; -1 when not in it
	busy   bool               // a check is in flight
	again  bool               // kicked while busy: check again when it ends
	kicked bool               // due was brought forward by a kick; SetOptions keeps it
	gone   bool               // removed: never queued again
	cancel context.CancelFunc // abandons the check in flight; nil when idle
}

func newSchedule() schedule {
	return schedule{wake: make(chan struct{}, 1)}
}

// poke wakes the scheduler without blocking.
func (s *schedule) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// add schedules p's first check at once (now).
func (s *schedule) add(p *probe, now time.Time) {
	s.mu.Lock()
	p.slot.due = now
	heap.Push(&s.queue, p)
	s.n++
	s.mu.Unlock()
	s.poke()
}

// remove takes p off the schedule for good and abandons its check in
// flight, if any.
func (s *schedule) remove(p *probe) {
	s.mu.Lock()
	if p.slot.gone {
		s.mu.Unlock()
		return
	}
	p.slot.gone = true
	s.n--
	if p.slot.index >= 0 {
		heap.Remove(&s.queue, p.slot.index)
	}
	cancel := p.slot.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// kick makes p's next check due now, or, if a check is in flight, asks for
// another as soon as it ends.
func (s *schedule) kick(p *probe, now time.Time) {
	s.mu.Lock()
	switch {
	case p.slot.gone:
	case p.slot.busy:
		p.slot.again = true
	case p.slot.index >= 0:
		if p.slot.due.After(now) {
			p.slot.due = now
			heap.Fix(&s.queue, p.slot.index)
		}
		p.slot.kicked = true
	}
	s.mu.Unlock()
	s.poke()
}

// rearm re-times every waiting backend that has been checked: its next
// check is due interval (with jitter) after its last one started, or when
// its hold ends if that is sooner. Kicked backends and those never checked
// stay due at once.
func (s *schedule) rearm(interval time.Duration) {
	s.mu.Lock()
	for _, p := range s.queue {
		if !p.slot.last.IsZero() && !p.slot.kicked {
			p.slot.due = soonest(p.slot.last.Add(jitter(interval)), p.slot.hold)
		}
	}
	heap.Init(&s.queue)
	s.mu.Unlock()
	s.poke()
}

// len returns the number of backends scheduled.
func (s *schedule) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// bounds returns how many checks may run at once as soon as they are due,
// and how many when checks are late (see schedule). s.mu must be held.
func (s *schedule) bounds(o *Options) (now, late int) {
	now = min(minWorkers, s.n)
	if s.minWorkers > 0 {
		now = s.minWorkers
	}
	share := float64(o.Timeout) / float64(o.Timeout+o.Interval)
	late = max(now, int(math.Ceil(float64(s.n)*share)))
	if s.maxWorkers > 0 {
		late = s.maxWorkers
	}
	return now, late
}

// done puts p back on the schedule after a check that ended at now: due an
// Interval (with jitter) from now, or when hold ends if that is sooner (hold
// is when the hold the check saw ends, zero when none), or at once if it
// was kicked meanwhile.
func (s *schedule) done(p *probe, now time.Time, interval time.Duration, hold time.Time) {
	s.mu.Lock()
	s.running--
	p.slot.busy, p.slot.cancel = false, nil
	if !p.slot.gone {
		p.slot.hold = hold
		p.slot.due = soonest(now.Add(jitter(interval)), hold)
		if p.slot.again {
			p.slot.due, p.slot.again, p.slot.kicked = now, false, true
		}
		heap.Push(&s.queue, p)
	}
	s.mu.Unlock()
	s.poke()
}

// loop is the scheduler: it starts checks as they fall due until ctx is
// done, then waits for the checks in flight, which ctx cancels.
func (c *Checker) loop(ctx context.Context) {
	c.sched.mu.Lock()
	c.sched.since = c.clock.Now()
	c.sched.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	wake := c.clock.Alarm()
	defer wake.Stop()
	for {
		if at, ok := c.startDue(ctx, &wg); ok {
			wake.Set(at)
		} else {
			wake.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-c.sched.wake:
		case <-wake.C():
		}
	}
}

// startDue starts every check that is due and may start now (see
// schedule), each on its own goroutine in wg. It returns when the next
// check falls due or becomes late enough to start, and false when only a
// wake can change anything.
func (c *Checker) startDue(ctx context.Context, wg *sync.WaitGroup) (time.Time, bool) {
	o := c.options()
	s := &c.sched
	now := c.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	atOnce, late := s.bounds(o)
	for len(s.queue) > 0 {
		p := s.queue[0]
		if p.slot.due.After(now) {
			return p.slot.due, true
		}
		if s.running >= atOnce {
			if s.running >= late {
				return time.Time{}, false // a check ending wakes the scheduler
			}
			// Backends queued before Run are late only from its start.
			if at := later(p.slot.due, s.since).Add(o.Interval / 10); at.After(now) {
				return at, true
			}
		}
		heap.Pop(&s.queue)
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		p.slot.busy, p.slot.kicked, p.slot.last, p.slot.cancel = true, false, now, cancel
		s.running++
		s.peak = max(s.peak, s.running)
		wg.Go(func() {
			defer cancel()
			c.workers.Add(1)
			defer c.workers.Add(-1)
			hold := c.check(cctx, p, o)
			s.done(p, c.clock.Now(), c.options().Interval, hold)
		})
	}
	return time.Time{}, false
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// soonest returns the earlier of t and hold, ignoring a zero hold.
func soonest(t, hold time.Time) time.Time {
	if !hold.IsZero() && hold.Before(t) {
		return hold
	}
	return t
}

// queue is a min-heap of probes by due time (container/heap).
type queue []*probe

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].slot.due.Before(q[j].slot.due) }

func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].slot.index = i
	q[j].slot.index = j
}

func (q *queue) Push(x any) {
	p := x.(*probe)
	p.slot.index = len(*q)
	*q = append(*q, p)
}

func (q *queue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	p.slot.index = -1
	*q = old[:len(old)-1]
	return p
}
