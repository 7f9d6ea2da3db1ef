// Package loop holds what velohunt's background loops share: logging a
// failing iteration at most every 30 seconds for the same error, counting
// failures for backoff, and saying once that the loop recovered.
package loop

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// ErrorLog throttles the error log of one loop.
type ErrorLog struct {
	mu       sync.Mutex
	last     string
	at       time.Time
	failures int
}

// Report records an iteration's outcome: a nil error after failures logs
// "recovered"; an error is logged unless the same one was logged less than
// 30 seconds ago. It returns the number of consecutive failures.
func (l *ErrorLog) Report(logger *slog.Logger, msg string, err error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		if l.failures > 0 {
			logger.Info(msg+" recovered", "after_failures", l.failures)
		}
		l.failures, l.last = 0, ""
		return 0
	}
	l.failures++
	if err.Error() != l.last || time.Since(l.at) > 30*time.Second {
		logger.Error(msg, "error", err, "failures", l.failures)
		l.last, l.at = err.Error(), time.Now()
	}
	return l.failures
}

// Backoff is the delay after n consecutive failures: one second doubling,
// capped.
func Backoff(n int, limit time.Duration) time.Duration {
	return min(time.Second<<min(n, 16), limit)
}

// Every runs step every interval and whenever wake receives, until ctx
// ends; failures are logged through an ErrorLog under name.
func Every(ctx context.Context, interval time.Duration, wake <-chan struct{}, logger *slog.Logger, name string, step func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var errs ErrorLog
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		if err := step(ctx); ctx.Err() == nil {
			errs.Report(logger, name, err)
		}
	}
}
