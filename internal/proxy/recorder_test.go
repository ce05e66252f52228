package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineWriter is a ResponseWriter that records the write deadlines set
// on it.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	set []time.Time
}

func (d *deadlineWriter) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// TestRecorderArm: over HTTP/1.x the send timeout is armed before every
// write; over HTTP/2 it is set once with send/lazySlack of slack, and
// moved only when it has come within send of now, so that every write
// still has at least send.
func TestRecorderArm(t *testing.T) {
	const send = time.Hour
	tests := []struct {
		name  string
		major int
		send  time.Duration
		want  int // deadlines set by WriteHeader, 3 writes and the final arm
	}{
		{name: "HTTP/1.1", major: 1, send: send, want: 5},
		{name: "HTTP/2", major: 2, send: send, want: 1},
		{name: "no send timeout", major: 2, send: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.ProtoMajor = tt.major
			var rp recorderPool
			rec := rp.get(w, r, tt.send)
			rec.WriteHeader(http.StatusOK)
			for range 3 {
				rec.Write([]byte("x"))
			}
			now := time.Now()
			rec.arm()
			if len(w.set) != tt.want {
				t.Fatalf("%d deadlines set, want %d", len(w.set), tt.want)
			}
			if tt.want == 0 {
				return
			}
			if last := w.set[len(w.set)-1]; last.Before(now.Add(tt.send)) {
				t.Errorf("deadline %v after the last arm, want at least now+send %v", last, now.Add(tt.send))
			}
			if tt.major != 2 {
				return
			}
			// The answer took longer than the slack: the deadline is now
			// less than send away, and the next write moves it.
			rec.until = rec.until.Add(-send/lazySlack - time.Millisecond)
			now = time.Now()
			rec.Write([]byte("x"))
			if len(w.set) != 2 {
				t.Fatalf("%d deadlines set after the slack, want 2", len(w.set))
			}
			if last := w.set[1]; last.Before(now.Add(send)) {
				t.Errorf("deadline %v after the slack, want at least now+send %v", last, now.Add(send))
			}
		})
	}
}

// TestRecorderPause: on HTTP/2 a silent backend clears the write deadline
// and the next write sets it again; over HTTP/1.x, where the deadline only
// matters to writes, it is left alone.
func TestRecorderPause(t *testing.T) {
	for _, major := range []int{1, 2} {
		w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.ProtoMajor = major
		var rp recorderPool
		rec := rp.get(w, r, time.Hour)
		rec.Write([]byte("x"))
		rec.pause()
		rec.pause()
		now := time.Now()
		rec.Write([]byte("x"))
		want := []bool{false, false} // whether each deadline set is zero
		if major == 2 {
			want = []bool{false, true, false}
		}
		if len(w.set) != len(want) {
			t.Fatalf("HTTP/%d: %d deadlines set, want %d", major, len(w.set), len(want))
		}
		for i, zero := range want {
			if w.set[i].IsZero() != zero {
				t.Errorf("HTTP/%d: deadline %d is %v", major, i, w.set[i])
			}
		}
		if last := w.set[len(w.set)-1]; last.Before(now.Add(time.Hour)) {
			t.Errorf("HTTP/%d: deadline %v after the pause, want at least now+send", major, last)
		}
	}
}
