package main

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestStatusProbeDoesNotBlockServeStart: `velohunt plan` and `status`
// probe the serve lock with a shared flock for an instant (lockHolder); a
// serve starting at that instant still takes its lock (an adversary review
// saw 9 of 2,000 starts refused as "another serve is running").
func TestStatusProbeDoesNotBlockServeStart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "v.db")
	// A lock file left by a serve that ended.
	if err := os.WriteFile(lockPath(db), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				lockHolder(db)
			}
		}
	}()
	for range 2000 {
		l, err := acquireLock(db)
		if err != nil {
			refused.Add(1)
			continue
		}
		l.f.Close()
	}
	close(stop)
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Fatalf("serve refused to start %d time(s) in 2000 while no serve ran: a concurrent plan/status probe's LOCK_SH looked like a running serve", n)
	}
}
