package main

import (
	"context"

	"github.com/velohunt/velohunt/internal/metrics"
	"github.com/velohunt/velohunt/internal/store"
)

// storeMode says how a command opens the database.
type storeMode int

const (
	// storeServe creates the database when missing and refuses a damaged
	// one (serve, demo).
	storeServe storeMode = iota
	// storeExisting opens an existing database only (hunt, retry-parked):
	// a mistyped path is an error, not a new empty store.
	storeExisting
	// storeNone opens no database (check).
	storeNone
)

// openStore opens the database as the app's mode says, and the metrics
// that read it.
func (a *App) openStore(ctx context.Context) error {
	if a.storeMode == storeNone {
		a.Metrics = metrics.New(nil)
		a.Metrics.BuildInfo(version())
		return nil
	}
	opts := store.Options{QuickCheck: true, Logger: a.Logger}
	if a.storeMode == storeExisting {
		opts = store.Options{MustExist: true, Logger: a.Logger}
	}
	db, err := store.OpenWith(ctx, a.Config.Database, opts)
	if err != nil {
		return err
	}
	a.Store = db
	a.Metrics = metrics.New(db)
	a.Metrics.BuildInfo(version())
	return nil
}

// storeProblem is what is wrong with the store, or nil: the counts that
// /metrics reads (velohunt_store_up) must answer, not only the connection.
func (a *App) storeProblem(ctx context.Context) error {
	if _, err := a.Store.Stats(ctx); err != nil {
		return err
	}
	if _, err := a.Store.OutboxStats(ctx); err != nil {
		return err
	}
	_, err := a.Store.Fleets(ctx)
	return err
}
