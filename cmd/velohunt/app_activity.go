package main

import (
	"context"
	"log/slog"

	"github.com/velohunt/velohunt/internal/store"
)

// The store records when a serve last finished a sync of IRIS's case list
// and a watcher pass, for `velohunt status` (another process) and the
// metrics. The loops' own packages know nothing of it: these wrappers of
// their store note the call that ends each run.

// syncStore is the syncer's store: CloseCasesExcept ends every sync of
// IRIS's case list (the reconcile, and the syncs for webhook events).
type syncStore struct{ *store.DB }

func (s syncStore) CloseCasesExcept(ctx context.Context, open []int64) ([]int64, error) {
	closed, err := s.DB.CloseCasesExcept(ctx, open)
	if err == nil {
		err = s.DB.MarkActivity(ctx, store.ActivitySync)
	}
	return closed, err
}

// watchStore is the watcher's store: EnqueueTabs ends every watcher pass
// (it queues the tab updates of the pass, none or some). It also logs each
// new hit as it is recorded.
type watchStore struct {
	*store.DB
	Logger *slog.Logger
	// NewHits, when set, is called after new hits were recorded (it wakes
	// the collector).
	NewHits func()
}

// RecordHits records hits and logs each new one at info: case, IOC, host;
// never the row or the evidence (they come from the endpoint).
func (s watchStore) RecordHits(ctx context.Context, h store.Hunt, hits []store.HitInput, cur store.FlowCursor, eventPerHost bool) (int, error) {
	fresh, err := s.DB.RecordNewHits(ctx, h, hits, cur, eventPerHost)
	for _, x := range fresh {
		s.Logger.Info("new hit", "case_id", x.CaseID, "ioc_id", x.IRISIOC, "server", x.Server, "client_id", x.ClientID,
			"hostname", x.Hostname, "hunt_id", h.VRHuntID)
	}
	if len(fresh) > 0 && s.NewHits != nil {
		s.NewHits()
	}
	return len(fresh), err
}

func (s watchStore) EnqueueTabs(ctx context.Context, iocIDs []int64) error {
	err := s.DB.EnqueueTabs(ctx, iocIDs)
	if err == nil {
		err = s.DB.MarkActivity(ctx, store.ActivityWatch)
	}
	return err
}
