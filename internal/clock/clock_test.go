package clock

import (
	"testing"
	"time"
)

// TestSystemAlarm checks that a system alarm goes off at once for a past
// instant, not before a future one, and never once stopped.
func TestSystemAlarm(t *testing.T) {
	t.Parallel()
	a := System{}.Alarm()
	select {
	case <-a.C():
		t.Fatal("a new alarm went off")
	case <-time.After(10 * time.Millisecond):
	}

	a.Set(System{}.Now().Add(-time.Second))
	select {
	case <-a.C():
	case <-time.After(5 * time.Second):
		t.Fatal("an alarm set in the past did not go off")
	}

	at := System{}.Now().Add(20 * time.Millisecond)
	a.Set(at)
	select {
	case <-a.C():
		if now := time.Now(); now.Before(at) {
			t.Fatalf("alarm for %v went off early, at %v", at, now)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an alarm set 20ms ahead did not go off")
	}

	a.Set(System{}.Now().Add(10 * time.Millisecond))
	a.Stop()
	select {
	case <-a.C():
		t.Fatal("a stopped alarm went off")
	case <-time.After(50 * time.Millisecond):
	}
}
