package rehunt

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/store"
)

// Store is the part of the store the runner uses.
type Store interface {
	MarkRehuntDue(ctx context.Context, rule string) (bool, error)
	PendingRehuntRuns(ctx context.Context) ([]store.RehuntRun, error)
	LastRehuntRun(ctx context.Context, rule string) (store.RehuntRun, error)
	RehuntCandidates(ctx context.Context) ([]store.RehuntCandidate, error)
	FinishRehuntRun(ctx context.Context, runID int64, rule string, ids []int64, overlap bool, skipped int) (int, error)
}

// Runner executes due re-hunt runs.
type Runner struct {
	Store Store
	Rules []Rule
	// Queued is called when a run queued IOCs (it wakes the planner).
	Queued func()
	Logger *slog.Logger
	Now    func() time.Time

	mu   sync.Mutex
	wake chan struct{}
}

func (r *Runner) init() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// MarkDue is what a rule's cron job does: one store write, then a wake-up.
func (r *Runner) MarkDue(ctx context.Context, rule string) {
	r.init()
	if _, err := r.Store.MarkRehuntDue(ctx, rule); err != nil {
		r.Logger.Error("mark re-hunt due", "rule", rule, "error", err)
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Tick marks due every rule whose schedule fired since its last run (or
// since start when it never ran). Tests drive time with it; serve uses
// cron, which calls MarkDue itself.
func (r *Runner) Tick(ctx context.Context, start time.Time) error {
	r.init()
	now := r.Now()
	for _, rule := range r.Rules {
		from := start
		if last, err := r.Store.LastRehuntRun(ctx, rule.Name); err == nil {
			from = last.DueAt
		}
		if next := rule.Schedule.Next(from); !next.After(now) {
			if _, err := r.Store.MarkRehuntDue(ctx, rule.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run executes due runs whenever woken, until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	r.init()
	loop.Every(ctx, time.Minute, r.wake, r.Logger, "re-hunt", r.Step)
}

// Step executes every pending run: it selects the rule's IOCs and queues
// them for the planner.
func (r *Runner) Step(ctx context.Context) error {
	r.init()
	runs, err := r.Store.PendingRehuntRuns(ctx)
	if err != nil || len(runs) == 0 {
		return err
	}
	cands, err := r.Store.RehuntCandidates(ctx)
	if err != nil {
		return err
	}
	now := r.Now()
	for _, run := range runs {
		rule, ok := r.rule(run.Rule)
		if !ok {
			// The rule left the configuration; close its run.
			if _, err := r.Store.FinishRehuntRun(ctx, run.ID, run.Rule, nil, false, 0); err != nil {
				return err
			}
			continue
		}
		var ids []int64
		skipped := 0
		for _, c := range cands {
			switch rule.Select(c, now) {
			case Selected:
				ids = append(ids, c.IOC.ID)
			case StillHunting, TooRecent:
				skipped++
			}
		}
		n, err := r.Store.FinishRehuntRun(ctx, run.ID, rule.Name, ids, rule.Overlap, skipped)
		if err != nil {
			return err
		}
		r.Logger.Info("re-hunt run", "rule", rule.Name, "queued", n, "skipped", skipped)
		if n > 0 && r.Queued != nil {
			r.Queued()
		}
	}
	return nil
}

func (r *Runner) rule(name string) (Rule, bool) {
	for _, x := range r.Rules {
		if x.Name == name {
			return x, true
		}
	}
	return Rule{}, false
}
