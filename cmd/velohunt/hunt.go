package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/store"
)

// HuntCommand hunts a case's IOCs now, from the command line.
type HuntCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt hunt`.
func (c *HuntCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-hunt", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	caseID := fs.Int64("case", 0, "IRIS case id")
	iocID := fs.Int64("ioc", 0, "IRIS IOC id (default: every IOC of the case)")
	path := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkHuntFlags(fs, *caseID, *iocID); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	return c.hunt(ctx, cfg, *caseID, *iocID)
}

// checkHuntFlags checks -case and -ioc before anything is opened.
func checkHuntFlags(fs *flag.FlagSet, caseID, iocID int64) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case !set["case"]:
		return errors.New("-case is required")
	case caseID <= 0:
		return fmt.Errorf("case must be a positive number (IRIS's case id), not %d", caseID)
	case iocID < 0:
		return fmt.Errorf("ioc must be a positive number (IRIS's IOC id), not %d", iocID)
	}
	return nil
}

// hunt syncs the case and hunts its IOCs (or one).
func (c *HuntCommand) hunt(ctx context.Context, cfg config.Config, caseID, iocID int64) error {
	app := &App{Config: cfg, Logger: newLogger(cfg.Log, c.Stderr), storeMode: storeExisting}
	if err := app.Build(ctx); err != nil {
		app.closeClients()
		return err
	}
	defer app.closeClients()
	res, err := app.Syncer.SyncCase(ctx, caseID, "cli")
	var se *iris.StatusError
	switch {
	case keyRefused(err):
		return errKeyRefused(err)
	case errors.As(err, &se) && (se.Status == http.StatusForbidden || se.Status == http.StatusNotFound):
		return &plainError{msg: fmt.Sprintf("case %d does not exist or the service user cannot see it (IRIS answered %d)", caseID, se.Status), err: err}
	case err != nil:
		return err
	}
	rows, err := app.Store.CaseIOCs(ctx, caseID)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if iocID != 0 && r.IRISID != iocID {
			continue
		}
		if _, err := app.Store.RequeueIOC(ctx, r.IRISID, []int64{r.CaseID}, "cli", false); err != nil {
			return err
		}
	}
	planned, err := app.Planner.Plan(ctx, true)
	if err != nil {
		return err
	}
	for _, h := range planned {
		if _, err := app.Planner.Launch(ctx, h); err != nil {
			return err
		}
	}
	rows, err = app.Store.CaseIOCs(ctx, caseID)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "case #%d: %d new, %d changed, %d refused IOC(s) synced from IRIS\n", caseID, res.Added, res.Changed, res.Refused)
	for _, r := range rows {
		if iocID != 0 && r.IRISID != iocID {
			continue
		}
		line := fmt.Sprintf("  ioc %d  %-16s %-40q %s", r.IRISID, r.TypeName, clip(r.Value, 38), r.State)
		if r.Reason != "" {
			line += ": " + r.Reason
		}
		fmt.Fprintln(c.Stdout, line)
	}
	for _, h := range planned {
		got, err := app.Store.FindHunt(ctx, h.ID)
		if err != nil {
			return err
		}
		msg := got.State
		if got.State != store.HuntRunning && got.LastError != "" {
			msg += " (will retry: " + clip(got.LastError, 100) + ")"
		}
		fmt.Fprintf(c.Stdout, "hunt %d on %s/%s: %s %s %s\n", got.ID, got.Server, orgName(got.Org), got.Kind, dash(got.VRHuntID), msg)
	}
	if len(planned) == 0 {
		fmt.Fprintln(c.Stdout, "no hunt started: nothing to hunt that is not already being hunted")
	}
	return nil
}

// plainError is an error whose message replaces its cause's (still
// reachable with errors.As): IRIS's own text would bury the point.
type plainError struct {
	msg string
	err error
}

func (e *plainError) Error() string { return e.msg }
func (e *plainError) Unwrap() error { return e.err }
