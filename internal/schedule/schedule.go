// Package schedule wires robfig/cron for velohunt. Cron jobs only mark work
// as due (a flag or a store row); the loops of intake, planner and watcher
// do the work, so a slow IRIS never piles up overlapping jobs.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// Scheduler runs cron jobs in one time zone.
type Scheduler struct {
	c *cron.Cron
}

// New returns a stopped scheduler.
func New(loc *time.Location, logger *slog.Logger) *Scheduler {
	l := cronLogger{logger}
	return &Scheduler{
		c: cron.New(cron.WithLocation(loc), cron.WithLogger(l), cron.WithChain(cron.Recover(l), cron.SkipIfStillRunning(l))),
	}
}

// Add registers a named job with a standard 5-field spec.
func (s *Scheduler) Add(name, spec string, job func()) error {
	if _, err := s.c.AddFunc(spec, job); err != nil {
		return fmt.Errorf("schedule %s: %w", name, err)
	}
	return nil
}

// Start starts the scheduler's goroutine.
func (s *Scheduler) Start() { s.c.Start() }

// Stop stops the scheduler and waits for running jobs or ctx.
func (s *Scheduler) Stop(ctx context.Context) error {
	done := s.c.Stop()
	select {
	case <-done.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop scheduler: %w", ctx.Err())
	}
}

// cronLogger adapts slog to cron's logger.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "error", err)...)
}
