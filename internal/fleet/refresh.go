package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// DefaultEvery is how often serve reads each fleet's versions: one
// clients() query per server and org, grouped on the server, so one row
// per version comes back whatever the fleet's size; releases change with
// upgrades, not by the minute.
const DefaultEvery = time.Hour

// Velociraptor is what the refresher asks each server.
type Velociraptor interface {
	// ClientVersions counts the org's clients by the version they report.
	ClientVersions(ctx context.Context, org string) ([]velociraptor.VersionCount, error)
}

// Store keeps each fleet's last read.
type Store interface {
	SaveFleet(ctx context.Context, server, org string, versions []store.FleetVersion) error
	SaveFleetError(ctx context.Context, server, org, msg string) error
	ForgetFleetsExcept(ctx context.Context, keep []ioc.Route) error
}

// Refresher reads the client versions of every configured server and org
// and stores their assessment, for `velohunt status` and the metrics.
type Refresher struct {
	Servers  map[string]Velociraptor
	Targets  []ioc.Route
	Store    Store
	Assessor *Assessor
	// Every is the time between reads (DefaultEvery when 0).
	Every  time.Duration
	Logger *slog.Logger
}

// Refresh reads and stores every fleet. A fleet whose read fails keeps its
// last versions, with the error; the errors are returned joined.
func (r *Refresher) Refresh(ctx context.Context) error {
	var errs []error
	for _, t := range r.Targets {
		cl, ok := r.Servers[t.Server]
		if !ok {
			continue
		}
		counts, err := cl.ClientVersions(ctx, t.Org)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("fleet of %s org %s: %w", t.Server, orgName(t.Org), err))
			if err := r.Store.SaveFleetError(ctx, t.Server, t.Org, ioc.ErrorMessage(err)); err != nil {
				return err
			}
			continue
		}
		if err := r.Store.SaveFleet(ctx, t.Server, t.Org, Rows(r.Assessor.Summarize(counts))); err != nil {
			return err
		}
	}
	if err := r.Store.ForgetFleetsExcept(ctx, r.Targets); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// Run refreshes at once, then every Every, until ctx ends.
func (r *Refresher) Run(ctx context.Context) {
	every := r.Every
	if every <= 0 {
		every = DefaultEvery
	}
	now := make(chan struct{}, 1)
	now <- struct{}{}
	loop.Every(ctx, every, now, r.Logger, "fleet versions", r.Refresh)
}

// Rows turns a summary into the store's rows.
func Rows(s Summary) []store.FleetVersion {
	out := make([]store.FleetVersion, 0, len(s.Versions))
	for _, v := range s.Versions {
		out = append(out, store.FleetVersion{Version: v.Version, Clients: v.Clients, Support: string(v.Support), Release: v.Release,
			Missing: strings.Join(v.Missing, "; "), Why: v.Why})
	}
	return out
}

func orgName(o string) string {
	if o == "" {
		return "root"
	}
	return o
}
