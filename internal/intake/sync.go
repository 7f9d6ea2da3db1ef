// Package intake learns about IOCs: from IRIS's webhooks module (persisted
// first, answered at once, handled by a loop), from a full reconcile of the
// IOCs of every open case, and on demand (the hunt command). All three end in
// the same idempotent sync of a case's IOC list into the store.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/store"
)

// IRIS is what intake reads from IRIS.
type IRIS interface {
	// ListCases returns every case the service user can see.
	ListCases(ctx context.Context) ([]ioc.Case, error)
	// Case returns one case with its tags.
	Case(ctx context.Context, id int64) (ioc.Case, error)
	// IOCState returns the case's IOC change counter.
	IOCState(ctx context.Context, cid int64) (int64, error)
	// ListIOCs returns the IOCs linked to a case.
	ListIOCs(ctx context.Context, cid int64) ([]ioc.IOC, error)
	// HookTasks returns IRIS's newest module tasks, newest first.
	HookTasks(ctx context.Context, n int) ([]iris.HookTask, error)
}

// Store is the part of the store intake writes.
type Store interface {
	UpsertCase(ctx context.Context, c ioc.Case, r ioc.Route) error
	FindCase(ctx context.Context, id int64) (store.Case, error)
	CloseCasesExcept(ctx context.Context, open []int64) ([]int64, error)
	SetCaseIOCState(ctx context.Context, caseID, state int64) error
	SyncCaseIOCs(ctx context.Context, caseID int64, list []store.IOCInput, source string, complete bool) (store.SyncResult, error)
	RequeueIOC(ctx context.Context, irisID int64, cases []int64, source string, overlap bool) (int, error)
	FindIOCs(ctx context.Context, irisID int64) ([]store.IOC, error)
	UsedHookTasks(ctx context.Context, ids []string) (map[string]bool, error)
	UseHookTasks(ctx context.Context, ids []string) error
	AddInbox(ctx context.Context, event string, payload []byte) error
	PeekInbox(ctx context.Context, limit int) ([]store.InboxItem, error)
	DeleteInbox(ctx context.Context, upTo int64) error
}

// Recorder counts what intake learns (metrics).
type Recorder interface {
	IOCsReceived(source, outcome string, n int)
	WebhookEvent(event, result string)
}

type noRecorder struct{}

func (noRecorder) IOCsReceived(string, string, int) {}
func (noRecorder) WebhookEvent(string, string)      {}

// Syncer copies the IOCs of open IRIS cases into the store.
type Syncer struct {
	IRIS  IRIS
	Store Store
	// Route picks the Velociraptor server and org of a case.
	Route func(ioc.Case) ioc.Route
	// NeedDetails makes the syncer read each case's details (tags, custom
	// attributes: the case list has neither) because routing uses them.
	NeedDetails bool
	// Override, when set, reads a case's routing attribute; an error (a
	// value naming no server) is logged and the routes apply.
	Override func(ioc.Case) (ioc.Route, bool, error)
	Recorder Recorder
	Logger   *slog.Logger
}

// Report summarises a sync.
type Report struct {
	Cases, Synced, Closed int
	store.SyncResult
}

func (r *Report) add(synced bool, res store.SyncResult) {
	if synced {
		r.Synced++
	}
	r.Added += res.Added
	r.Changed += res.Changed
	r.Removed += res.Removed
	r.Refused += res.Refused
}

// Sync lists the cases, records the open ones with their route, and syncs
// the IOCs of each case whose IOC counter moved (every case when full). A
// failure on one case does not stop the others; the errors are joined.
func (s *Syncer) Sync(ctx context.Context, source string, full bool) (Report, error) {
	return s.sync(ctx, source, full, nil)
}

// SyncNamed is Sync for webhook events: besides the cases whose counter
// moved, it syncs, whatever their IOC counters say, every open case that
// links one of the named IRIS IOCs. IRIS moves no counter when an existing
// IOC is linked to another case, and an update moves only the counter of
// the case it was made from (contract, "Observed on a real IRIS"; IRIS's
// add_ioc and business/iocs.py), so a webhook naming an IOC is the only
// sign that those cases changed. The cases are found from the store's rows
// of each IOC and the "link" entries of the case IOC lists; an IOC the store
// has never seen makes it list every open case. Each case's list is read
// once.
func (s *Syncer) SyncNamed(ctx context.Context, ids []int64, source string) (Report, error) {
	return s.sync(ctx, source, false, ids)
}

func (s *Syncer) sync(ctx context.Context, source string, full bool, named []int64) (Report, error) {
	var rep Report
	cases, err := s.IRIS.ListCases(ctx)
	if err != nil {
		return rep, fmt.Errorf("list cases: %w", err)
	}
	var openIDs []int64
	open := map[int64]ioc.Case{}
	lists := map[int64][]ioc.IOC{} // IOC lists read by this sync
	var errs []error
	syncOne := func(c ioc.Case, full bool) error {
		synced, res, list, err := s.syncCase(ctx, c, source, full)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("case %d: %w", c.ID, err))
			return nil
		}
		if synced {
			lists[c.ID] = list
		}
		rep.add(synced, res)
		return nil
	}
	for _, c := range cases {
		if !c.Open {
			continue
		}
		openIDs = append(openIDs, c.ID)
		open[c.ID] = c
		rep.Cases++
		if err := syncOne(c, full); err != nil {
			return rep, err
		}
	}
	closed, err := s.Store.CloseCasesExcept(ctx, openIDs)
	if err != nil {
		errs = append(errs, err)
	}
	rep.Closed = len(closed)
	if len(named) > 0 {
		if err := s.syncNamed(ctx, named, open, lists, syncOne); err != nil {
			return rep, err
		}
	}
	return rep, errors.Join(errs...)
}

// syncNamed syncs the open cases that link the named IOCs and whose list
// this sync has not read yet.
func (s *Syncer) syncNamed(ctx context.Context, ids []int64, open map[int64]ioc.Case, lists map[int64][]ioc.IOC,
	syncOne func(ioc.Case, bool) error) error {
	want := map[int64]bool{}
	var queue []int64
	for _, id := range ids {
		want[id] = true
		rows, err := s.Store.FindIOCs(ctx, id)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			s.Logger.Debug("webhook names an IOC of no known case; listing every open case", "ioc_id", id)
			for cid := range open {
				queue = append(queue, cid)
			}
			break
		}
		for _, r := range rows {
			queue = append(queue, r.CaseID)
		}
	}
	done := map[int64]bool{}
	for len(queue) > 0 {
		cid := queue[0]
		queue = queue[1:]
		c, ok := open[cid]
		if !ok || done[cid] {
			continue
		}
		done[cid] = true
		if _, read := lists[cid]; !read {
			if err := syncOne(c, true); err != nil {
				return err
			}
		}
		for _, x := range lists[cid] {
			if want[x.ID] {
				queue = append(queue, x.LinkedCases...)
			}
		}
	}
	return nil
}

// SyncCase syncs one case's IOCs now, whatever its counter says.
func (s *Syncer) SyncCase(ctx context.Context, id int64, source string) (store.SyncResult, error) {
	c, err := s.IRIS.Case(ctx, id)
	if err != nil {
		return store.SyncResult{}, fmt.Errorf("case %d: %w", id, err)
	}
	if !c.Open {
		return store.SyncResult{}, ioc.Errorf(ioc.EINVALID, "case %d is closed", id)
	}
	_, res, _, err := s.syncCase(ctx, c, source, true)
	return res, err
}

// syncCase syncs one case; it returns whether the IOC list was read, what
// changed, and the list read.
func (s *Syncer) syncCase(ctx context.Context, c ioc.Case, source string, full bool) (bool, store.SyncResult, []ioc.IOC, error) {
	prev, err := s.Store.FindCase(ctx, c.ID)
	known := err == nil
	if err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
		return false, store.SyncResult{}, nil, err
	}
	route := ioc.Route{}
	switch {
	case s.NeedDetails && c.Tags == nil && (full || !known):
		detail, err := s.IRIS.Case(ctx, c.ID)
		if err != nil {
			return false, store.SyncResult{}, nil, err
		}
		c.Tags, c.Custom = detail.Tags, detail.Custom
		if s.Override != nil {
			if _, _, err := s.Override(c); err != nil {
				s.Logger.Warn("routing attribute ignored", "case_id", c.ID, "error", err)
			}
		}
		route = s.Route(c)
	case known && c.Tags == nil && s.NeedDetails:
		// Tags and attributes are read on full syncs; keep the stored route.
		c.Tags, route = prev.Tags, prev.Route
	default:
		route = s.Route(c)
	}
	if err := s.Store.UpsertCase(ctx, c, route); err != nil {
		return false, store.SyncResult{}, nil, err
	}
	// Read the counter before the list: a change made in between is seen
	// again next time instead of being lost.
	state, err := s.IRIS.IOCState(ctx, c.ID)
	if err != nil {
		return false, store.SyncResult{}, nil, err
	}
	if !full && known && prev.IOCState == state {
		return false, store.SyncResult{}, nil, nil
	}
	list, err := s.IRIS.ListIOCs(ctx, c.ID)
	if err != nil {
		return false, store.SyncResult{}, nil, err
	}
	inputs := make([]store.IOCInput, len(list))
	for i, x := range list {
		inputs[i] = Parse(x)
	}
	res, err := s.Store.SyncCaseIOCs(ctx, c.ID, inputs, source, true)
	if err != nil {
		return false, res, nil, err
	}
	rec := s.Recorder
	if rec == nil {
		rec = noRecorder{}
	}
	rec.IOCsReceived(source, "queued", res.Added-res.Refused)
	rec.IOCsReceived(source, "refused", res.Refused)
	rec.IOCsReceived(source, "changed", res.Changed)
	rec.IOCsReceived(source, "removed", res.Removed)
	if res.Added+res.Changed+res.Removed > 0 {
		s.Logger.Info("case synced", "case_id", c.ID, "added", res.Added, "changed", res.Changed,
			"removed", res.Removed, "refused", res.Refused, "source", source)
	}
	return true, res, list, s.Store.SetCaseIOCState(ctx, c.ID, state)
}

// Parse validates an IRIS IOC into a store input: a hunt target, or the
// reason it is refused.
func Parse(x ioc.IOC) store.IOCInput {
	in := store.IOCInput{IOC: x}
	t, err := ioc.Parse(x.TypeName, x.Value)
	if err != nil {
		in.Reason = ioc.ErrorMessage(err)
		return in
	}
	in.Target = t
	return in
}
