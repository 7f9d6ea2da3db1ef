package intake

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/store"
)

// Intake owns the loop that handles webhook events and reconcile requests.
type Intake struct {
	Syncer *Syncer
	Store  Store
	// OwnUserID is velohunt's IRIS user: its own IOC updates (the tab) fire
	// webhooks too, and must not feed the service.
	OwnUserID int64
	// Delay gathers events arriving close together into one sync.
	Delay time.Duration
	// FullEvery is how often a reconcile lists every open case's IOCs
	// (0: every reconcile); in between, unchanged counters are trusted.
	FullEvery time.Duration
	// ManualWait bounds how long a manual trigger of an IOC linked to
	// several cases waits for IRIS to list the trigger's task, which names
	// the case it came from (default 5s).
	ManualWait time.Duration
	// Queued is called when IOCs were queued for hunting.
	Queued func()
	Logger *slog.Logger
	Now    func() time.Time

	mu           sync.Mutex
	fullDue      bool
	lastComplete time.Time
	wake         chan struct{}
	errs         loop.ErrorLog
}

// New returns an Intake; call Run to start its loop.
func New(s *Syncer, st Store, ownUser int64, delay time.Duration, queued func(), logger *slog.Logger) *Intake {
	return &Intake{Syncer: s, Store: st, OwnUserID: ownUser, Delay: delay, Queued: queued, Logger: logger,
		Now: time.Now, wake: make(chan struct{}, 1), fullDue: true, ManualWait: 5 * time.Second}
}

// Wake asks the loop to handle stored webhook events soon.
func (in *Intake) Wake() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// RequestFullSync marks a full reconcile as due (the cron job calls it).
func (in *Intake) RequestFullSync() {
	in.mu.Lock()
	in.fullDue = true
	in.mu.Unlock()
	in.Wake()
}

// Run handles events until ctx ends. A full sync runs first.
func (in *Intake) Run(ctx context.Context) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.wake:
			// Gather events arriving close together into one sync.
			t := time.NewTimer(in.Delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		case <-retry.C:
		}
		err := in.Step(ctx)
		if ctx.Err() != nil {
			return
		}
		retry.Reset(in.afterStep(err))
	}
}

// afterStep logs the outcome (the same error at most every 30s) and returns
// the delay before the next try: 30s when idle, capped exponential backoff
// after failures.
func (in *Intake) afterStep(err error) time.Duration {
	failures := in.errs.Report(in.Logger, "intake", err)
	if failures == 0 {
		return 30 * time.Second
	}
	return max(loop.Backoff(failures, 5*time.Minute), min(iris.RetryAfter(err), 5*time.Minute))
}

// Step runs one iteration: a full sync if one is due, then the stored
// webhook events. Events stay stored until they are handled.
func (in *Intake) Step(ctx context.Context) error {
	in.mu.Lock()
	due := in.fullDue
	complete := in.lastComplete.IsZero() || in.Now().Sub(in.lastComplete) >= in.FullEvery
	in.mu.Unlock()
	if due {
		rep, err := in.Syncer.Sync(ctx, "reconcile", complete)
		in.notify(rep.Added + rep.Changed)
		if err != nil {
			return err
		}
		in.mu.Lock()
		in.fullDue = false
		if complete {
			in.lastComplete = in.Now()
		}
		in.mu.Unlock()
		in.Logger.Debug("reconcile done", "cases", rep.Cases, "added", rep.Added, "closed", rep.Closed)
	}
	return in.handleInbox(ctx)
}

func (in *Intake) handleInbox(ctx context.Context) error {
	for {
		items, err := in.Store.PeekInbox(ctx, 200)
		if err != nil || len(items) == 0 {
			return err
		}
		// IOCs the events name. Create and manual events always count:
		// user_id is the IOC's last writer, which is velohunt after it
		// wrote the tab, not whoever linked the IOC or clicked. Only
		// update events by velohunt's own user are echoes of its tab.
		named := map[int64]bool{}
		var ids, manual []int64
		for _, it := range items {
			iocs, err := iris.ParseWebhookIOCs(it.Payload)
			if err != nil {
				in.Logger.Warn("dropping unreadable webhook event", "event_id", it.ID, "error", err)
				continue
			}
			for _, x := range iocs {
				if it.Event == EventUpdate && x.UserID != 0 && x.UserID == in.OwnUserID {
					continue
				}
				if it.Event == EventManual {
					manual = append(manual, x.ID)
				}
				if !named[x.ID] {
					named[x.ID] = true
					ids = append(ids, x.ID)
				}
			}
		}
		if len(ids) > 0 {
			// New IOCs move their case's counter; links and updates made
			// from another case do not, so the named IOCs' cases are
			// synced whatever their counters say.
			rep, err := in.Syncer.SyncNamed(ctx, ids, "webhook")
			in.notify(rep.Added + rep.Changed)
			if err != nil {
				return err
			}
		}
		n, err := in.requeueManual(ctx, manual)
		if err != nil {
			return err
		}
		in.notify(n)
		if err := in.Store.DeleteInbox(ctx, items[len(items)-1].ID); err != nil {
			return err
		}
	}
}

func (in *Intake) notify(n int) {
	if n > 0 && in.Queued != nil {
		in.Queued()
	}
}

// Manual triggers of IOCs come from iris-webhooks-module's hook
// on_manual_trigger_ioc; IRIS runs it as a task of that module.
const (
	webhooksModule = "iris_webhooks_module"
	manualHook     = "on_manual_trigger_ioc"
)

// requeueManual re-hunts the IOCs of manual triggers, each in the case the
// analyst clicked in. The webhook names no case (IRIS does not pass it to
// modules), but IRIS's task list names the case of each module task: for
// an IOC linked to several open cases, the cases of the manual-trigger
// tasks velohunt has not used yet, among that IOC's cases, are the ones
// hunted. When IRIS lists no such task in time (or the list cannot be
// read), every open case that links the IOC is hunted, and the log says so.
func (in *Intake) requeueManual(ctx context.Context, ids []int64) (int, error) {
	linked := map[int64][]int64{}
	ambiguous := false
	for _, id := range ids {
		rows, err := in.Store.FindIOCs(ctx, id)
		if err != nil {
			return 0, err
		}
		for _, r := range rows {
			if r.State != store.StateRemoved && !slices.Contains(linked[id], r.CaseID) {
				linked[id] = append(linked[id], r.CaseID)
			}
		}
		ambiguous = ambiguous || len(linked[id]) > 1
	}
	var from map[int64]bool
	var used []string
	if ambiguous {
		from, used = in.triggerCases(ctx, func(from map[int64]bool) bool {
			for _, id := range ids {
				if len(linked[id]) > 1 && !slices.ContainsFunc(linked[id], func(c int64) bool { return from[c] }) {
					return false
				}
			}
			return true
		})
	}
	n := 0
	for _, id := range ids {
		var cases []int64 // nil: every open case that links it
		if len(linked[id]) > 1 {
			for _, c := range linked[id] {
				if from[c] {
					cases = append(cases, c)
				}
			}
			if cases == nil {
				in.Logger.Info("manual trigger: IRIS does not say which case it came from; hunting in every open case that links the IOC",
					"ioc_id", id, "cases", linked[id])
			}
		}
		c, err := in.Store.RequeueIOC(ctx, id, cases, "manual", true)
		if err != nil {
			return n, err
		}
		n += c
	}
	if len(used) > 0 {
		if err := in.Store.UseHookTasks(ctx, used); err != nil {
			return n, err
		}
	}
	return n, nil
}

// triggerCases reads the cases of the manual-trigger tasks IRIS lists that
// velohunt has not used yet, finished within five minutes of the newest
// one, until enough says they suffice or ManualWait has passed: IRIS lists
// a task once it finished, just after the webhook was sent.
func (in *Intake) triggerCases(ctx context.Context, enough func(map[int64]bool) bool) (map[int64]bool, []string) {
	deadline := in.Now().Add(in.ManualWait)
	for {
		from, ids, err := in.unusedTriggers(ctx)
		if err != nil {
			in.Logger.Warn("cannot read IRIS's module tasks to find the case of a manual trigger", "error", err)
			return nil, nil
		}
		if enough(from) || !in.Now().Before(deadline) {
			return from, ids
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return from, ids
		case <-t.C:
		}
	}
}

func (in *Intake) unusedTriggers(ctx context.Context) (map[int64]bool, []string, error) {
	tasks, err := in.Syncer.IRIS.HookTasks(ctx, 100)
	if err != nil {
		return nil, nil, err
	}
	var manual []iris.HookTask
	var ids []string
	for _, t := range tasks {
		if t.Module == webhooksModule && t.Hook == manualHook && t.CaseID != 0 {
			manual = append(manual, t)
			ids = append(ids, t.ID)
		}
	}
	if len(manual) == 0 {
		return map[int64]bool{}, nil, nil
	}
	used, err := in.Store.UsedHookTasks(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	newest := manual[0].Done
	for _, t := range manual {
		if t.Done.After(newest) {
			newest = t.Done
		}
	}
	from := map[int64]bool{}
	var fresh []string
	for _, t := range manual {
		if !used[t.ID] && newest.Sub(t.Done) <= 5*time.Minute {
			from[t.CaseID] = true
			fresh = append(fresh, t.ID)
		}
	}
	return from, fresh, nil
}
