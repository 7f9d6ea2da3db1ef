package intake

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/loop"
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
		Now: time.Now, wake: make(chan struct{}, 1), fullDue: true}
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
			rep, err := in.Syncer.Sync(ctx, "webhook", false)
			in.notify(rep.Added + rep.Changed)
			if err != nil {
				return err
			}
			rep, err = in.Syncer.SyncNamed(ctx, ids, "webhook")
			in.notify(rep.Added + rep.Changed)
			if err != nil {
				return err
			}
		}
		n := 0
		for _, id := range manual {
			c, err := in.Store.RequeueIOC(ctx, id, "manual", true)
			if err != nil {
				return err
			}
			n += c
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
