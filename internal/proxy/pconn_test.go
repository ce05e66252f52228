package proxy

import (
	"context"
	"net"
	"testing"
	"time"
)

// pauseSignal is a pauser that reports each pause on a channel.
type pauseSignal chan struct{}

func (p pauseSignal) pause() {
	select {
	case p <- struct{}{}:
	default:
	}
}

// TestPconnTellsClientOfSilence: a read from a backend that sends nothing
// for a watch tick tells the exchange's client, and goes on reading.
func TestPconnTellsClientOfSilence(t *testing.T) {
	c, backend := net.Pipe()
	defer c.Close()
	defer backend.Close()
	pc := newPconn(c, defaultMaxHead)
	paused := make(pauseSignal, 1)
	pc.watch(context.Background(), paused, 0, 0, time.Now())
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-paused: // the silence was seen: now the backend answers
			backend.Write([]byte("late"))
		case <-done:
		}
	}()
	buf := make([]byte, 8)
	n, err := pc.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("Read = %q, %v; want the late answer", buf[:n], err)
	}
	pc.unwatch()
	if pc.client != nil {
		t.Error("unwatch left the client")
	}
}
