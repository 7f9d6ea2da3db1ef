package writeback

import (
	"context"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
)

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	th := newThrottle(4, 10*time.Millisecond, 200*time.Millisecond)
	for range 4 {
		if err := th.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	if err := th.acquire(short); err == nil {
		t.Fatal("a fifth request got a slot of four")
	}
	cancel()
	for range 4 {
		th.release()
	}

	t.Run("TooBusyHalvesAndPauses", func(t *testing.T) {
		th.observe(20*time.Millisecond, 4, &iris.StatusError{Status: 429, Retryable: true, RetryAfter: 100 * time.Millisecond})
		if l, _ := th.state(); l != 2 {
			t.Fatalf("bound %d after a 429, want 2", l)
		}
		start := time.Now()
		if err := th.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		th.release()
		if d := time.Since(start); d < 80*time.Millisecond {
			t.Fatalf("acquired after %v, want the 100ms Retry-After", d)
		}
		th.observe(20*time.Millisecond, 1, &iris.StatusError{Status: 503, Retryable: true, RetryAfter: time.Hour})
		if l, _ := th.state(); l != 1 {
			t.Fatalf("bound %d after a 503, want 1", l)
		}
		if wait := time.Until(th.pause); wait > 200*time.Millisecond {
			t.Fatalf("paused for %v, want at most maxPause", wait)
		}
		// A refusal says nothing about load.
		th.observe(20*time.Millisecond, 1, &iris.StatusError{Status: 400})
		time.Sleep(210 * time.Millisecond)
	})
	t.Run("RecoversWhenAtEase", func(t *testing.T) {
		for range 40 {
			th.observe(20*time.Millisecond, 1, nil)
		}
		if l, _ := th.state(); l != 4 {
			t.Fatalf("bound %d after 40 quick answers, want back to 4", l)
		}
	})
	t.Run("LatencyRisingCuts", func(t *testing.T) {
		// Four in flight on a server that serves one at a time: 80ms each is
		// 20ms per slot, IRIS at ease.
		for range 20 {
			th.observe(80*time.Millisecond, 4, nil)
		}
		if l, _ := th.state(); l != 4 {
			t.Fatalf("bound %d at the usual latency, want 4", l)
		}
		// IRIS slows down for everyone (analysts, other modules).
		th.lastCut = time.Time{}
		for range 20 {
			th.observe(400*time.Millisecond, 4, nil)
		}
		if l, _ := th.state(); l >= 4 {
			t.Fatalf("bound %d while latency is five times the usual, want lower", l)
		}
		th.observe(11*time.Second, 1, nil)
		if l, _ := th.state(); l != 1 {
			t.Fatalf("bound %d after an 11s answer, want 1", l)
		}
	})
}
