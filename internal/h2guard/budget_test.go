package h2guard

import (
	"testing"
	"time"

	"fronttier/internal/clock/clocktest"
)

func TestBucket(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Unix(0, 0))
	b := newBucket(Rate{Burst: 3, PerSecond: 2}, c.Now())
	takes := func(want int) {
		t.Helper()
		n := 0
		for b.take(c) {
			if n++; n > 100 {
				break
			}
		}
		if n != want || b.tokens < 0 {
			t.Fatalf("took %d tokens, want %d (%d left)", n, want, b.tokens)
		}
	}
	takes(3)
	c.Advance(400 * time.Millisecond) // not yet one token's worth
	takes(0)
	c.Advance(100 * time.Millisecond)
	takes(1)
	c.Advance(1200 * time.Millisecond) // two tokens, and 200ms towards a third
	takes(2)
	c.Advance(300 * time.Millisecond)
	takes(1)
	c.Advance(time.Hour) // refills to the burst, no more
	takes(3)

	free := newBucket(Rate{Burst: -1}, c.Now())
	for range 1000 {
		if !free.take(c) {
			t.Fatal("a bucket without limit ran out")
		}
	}
	never := newBucket(Rate{Burst: 1}, c.Now())
	never.take(c)
	c.Advance(time.Hour)
	if never.take(c) {
		t.Error("a bucket with no refill rate refilled")
	}
}

func TestStreams(t *testing.T) {
	t.Parallel()
	var w streams
	if w.ended(1) {
		t.Fatal("an idle stream has ended")
	}
	w.open(1)
	w.end(1)
	w.open(3)
	if !w.ended(1) || w.ended(3) {
		t.Fatalf("ended(1), ended(3) = %v, %v; want true, false", w.ended(1), w.ended(3))
	}
	w.end(5) // idle: not remembered
	w.open(5)
	if w.ended(5) {
		t.Error("stream 5 ended before it was opened")
	}
	// Streams a window away reuse the slots: a new stream starts open,
	// an old one is forgotten.
	far := uint32(1 + 2*streamWindow)
	w.open(far)
	if w.ended(far) || w.ended(1) {
		t.Errorf("ended(%d), ended(1) = %v, %v; want false, false", far, w.ended(far), w.ended(1))
	}
	w.end(far - 2) // opened, implicitly, by the jump
	if !w.ended(far - 2) {
		t.Errorf("stream %d did not end", far-2)
	}
	w.open(far + 4*streamWindow) // a jump past the whole window
	if w.ended(far - 2) {
		t.Errorf("stream %d remembered past the window", far-2)
	}
}
