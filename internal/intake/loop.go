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
	// ManualWait bounds how long manual triggers wait for IRIS to list
	// their tasks, which name the cases they came from (default 5s).
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
	// The request is taken before the sync runs: one made while it runs
	// (a cron tick, an IOC added meanwhile) makes another sync after it,
	// instead of being cleared by this one's end.
	in.mu.Lock()
	due := in.fullDue
	in.fullDue = false
	complete := in.lastComplete.IsZero() || in.Now().Sub(in.lastComplete) >= in.FullEvery
	in.mu.Unlock()
	if due {
		rep, err := in.Syncer.Sync(ctx, "reconcile", complete)
		in.notify(rep.Added + rep.Changed)
		if err != nil {
			in.mu.Lock()
			in.fullDue = true
			in.mu.Unlock()
			return err
		}
		in.mu.Lock()
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
		var ids []int64
		var manual [][]int64 // the IOCs of each manual trigger
		for _, it := range items {
			iocs, err := iris.ParseWebhookIOCs(it.Payload)
			if err != nil {
				in.Logger.Warn("dropping unreadable webhook event", "event_id", it.ID, "error", err)
				continue
			}
			var trigger []int64
			for _, x := range iocs {
				if it.Event == EventUpdate && x.UserID != 0 && x.UserID == in.OwnUserID {
					continue
				}
				if it.Event == EventManual && !slices.Contains(trigger, x.ID) {
					trigger = append(trigger, x.ID)
				}
				if !named[x.ID] {
					named[x.ID] = true
					ids = append(ids, x.ID)
				}
			}
			if len(trigger) > 0 {
				manual = append(manual, trigger)
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
// modules), and IRIS's task list names the case of each module task but
// not its IOC. So every trigger is matched to one task of its own, never
// used before, whose case links the trigger's IOCs: every task serves one
// trigger at most, whatever the number of cases, and a task is not taken
// by another IOC's trigger when a matching exists that gives each trigger
// one. IRIS lists a task once it finished, just after the webhook was
// sent: velohunt waits up to ManualWait for a task per trigger. A trigger
// left without one is hunted in its IOC's case when it has one, else in
// every open case that links it, and the log says so.
func (in *Intake) requeueManual(ctx context.Context, triggers [][]int64) (int, error) {
	if len(triggers) == 0 {
		return 0, nil
	}
	// The open cases that link every IOC of each trigger.
	cands := make([][]int64, len(triggers))
	for k, t := range triggers {
		for j, id := range t {
			rows, err := in.Store.FindIOCs(ctx, id)
			if err != nil {
				return 0, err
			}
			var linked []int64
			for _, r := range rows {
				if r.State != store.StateRemoved && !slices.Contains(linked, r.CaseID) {
					linked = append(linked, r.CaseID)
				}
			}
			if j == 0 {
				cands[k] = linked
			} else {
				cands[k] = slices.DeleteFunc(cands[k], func(c int64) bool { return !slices.Contains(linked, c) })
			}
		}
	}
	caseOf, used := in.matchTriggers(ctx, cands)
	n := 0
	for k, t := range triggers {
		var cases []int64 // nil: every open case that links the IOC
		switch {
		case caseOf[k] != 0:
			cases = []int64{caseOf[k]}
		case len(cands[k]) == 1:
			cases = cands[k]
		case len(cands[k]) > 1:
			in.Logger.Info("manual trigger: IRIS lists no task of it, which would name its case; hunting in every open case that links the IOC",
				"ioc_ids", t, "cases", cands[k])
		}
		for _, id := range t {
			c, err := in.Store.RequeueIOC(ctx, id, cases, "manual", true)
			if err != nil {
				return n, err
			}
			n += c
		}
	}
	if len(used) > 0 {
		if err := in.Store.UseHookTasks(ctx, used); err != nil {
			return n, err
		}
	}
	return n, nil
}

// matchTriggers gives each trigger (by its candidate cases) a manual-trigger
// task of IRIS not used yet, in one of its cases, each task to one trigger
// at most: a maximum matching, the oldest tasks tried first. It reads the
// task list again until every trigger with a candidate has a task or
// ManualWait has passed. It returns the case of each trigger (0: none) and
// the ids of the tasks used.
func (in *Intake) matchTriggers(ctx context.Context, cands [][]int64) ([]int64, []string) {
	want := 0
	for _, c := range cands {
		if len(c) > 0 {
			want++
		}
	}
	caseOf := make([]int64, len(cands))
	if want == 0 {
		return caseOf, nil
	}
	deadline := in.Now().Add(in.ManualWait)
	for {
		tasks, err := in.unusedTriggers(ctx)
		if err != nil {
			in.Logger.Warn("cannot read IRIS's module tasks to find the case of a manual trigger", "error", err)
			return caseOf, nil
		}
		owner := make([]int, len(tasks)) // trigger of each task, -1: free
		for j := range owner {
			owner[j] = -1
		}
		var augment func(k int, seen []bool) bool
		augment = func(k int, seen []bool) bool {
			for j, t := range tasks {
				if seen[j] || !slices.Contains(cands[k], t.CaseID) {
					continue
				}
				seen[j] = true
				if owner[j] < 0 || augment(owner[j], seen) {
					owner[j] = k
					return true
				}
			}
			return false
		}
		matched := 0
		for k := range cands {
			if augment(k, make([]bool, len(tasks))) {
				matched++
			}
		}
		if matched == want || !in.Now().Before(deadline) {
			var used []string
			for j, k := range owner {
				if k >= 0 {
					caseOf[k] = tasks[j].CaseID
					used = append(used, tasks[j].ID)
				}
			}
			return caseOf, used
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return caseOf, nil
		case <-t.C:
		}
	}
}

// unusedTriggers returns IRIS's manual-trigger tasks of the webhooks module
// that velohunt has not used, finished within five minutes of the newest
// one, oldest first.
func (in *Intake) unusedTriggers(ctx context.Context) ([]iris.HookTask, error) {
	tasks, err := in.Syncer.IRIS.HookTasks(ctx, 100)
	if err != nil {
		return nil, err
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
		return nil, nil
	}
	used, err := in.Store.UsedHookTasks(ctx, ids)
	if err != nil {
		return nil, err
	}
	newest := manual[0].Done
	for _, t := range manual {
		if t.Done.After(newest) {
			newest = t.Done
		}
	}
	var fresh []iris.HookTask
	for _, t := range manual {
		if !used[t.ID] && newest.Sub(t.Done) <= 5*time.Minute {
			fresh = append(fresh, t)
		}
	}
	// IRIS lists the newest first.
	slices.Reverse(fresh)
	slices.SortStableFunc(fresh, func(a, b iris.HookTask) int { return a.Done.Compare(b.Done) })
	return fresh, nil
}
