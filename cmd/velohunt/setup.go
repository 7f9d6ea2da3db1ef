package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
)

// SetupCommand adds the "Velociraptor hunt" tab to IRIS's IOC attribute
// template and pushes it onto existing IOCs, and repairs the IOCs of open
// cases whose custom attributes are null. It needs an administrator's API
// key for the push and is idempotent.
type SetupCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt setup`.
func (c *SetupCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-setup", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	admin, err := adminClient(cfg)
	if err != nil {
		return err
	}
	svc, err := iris.New(iris.Options{URL: cfg.IRIS.URL, APIKey: cfg.IRIS.APIKey.Reveal(), CAFile: cfg.IRIS.CAFile,
		InsecureSkipVerify: cfg.IRIS.InsecureSkipVerify, Timeout: cfg.IRIS.Timeout.D()})
	if err != nil {
		return err
	}
	// IOCs created through IRIS's API without custom attributes hold
	// null, and every tab write to them fails. No write of the service
	// user can fix that (IRIS 2.4 reads the stored tabs to merge into);
	// the template push below gives them the whole template.
	nulls, err := nullIOCs(ctx, svc)
	if err != nil {
		return fmt.Errorf("look for IOCs with null custom attributes (service user's key): %w", err)
	}
	changed, err := pushTab(ctx, admin, cfg.Writeback.TabName, len(nulls) > 0)
	if err != nil {
		return err
	}
	switch {
	case changed && len(nulls) == 0:
		fmt.Fprintf(c.Stdout, "added the %q tab to IRIS's IOC template and pushed it onto existing IOCs\n", cfg.Writeback.TabName)
	case changed:
		fmt.Fprintf(c.Stdout, "pushed IRIS's IOC template, with the %q tab, onto existing IOCs\n", cfg.Writeback.TabName)
	default:
		fmt.Fprintf(c.Stdout, "IRIS's IOC template already has the %q tab; nothing to push\n", cfg.Writeback.TabName)
	}
	if len(nulls) == 0 {
		fmt.Fprintln(c.Stdout, "no IOC of an open case has null custom attributes")
		return nil
	}
	var still []string
	for _, n := range nulls {
		null, err := svc.IOCAttributesNull(ctx, n.caseID, n.iocID)
		if err != nil {
			return fmt.Errorf("read IOC %d after the push: %w", n.iocID, err)
		}
		if null {
			still = append(still, fmt.Sprint(n.iocID))
		}
	}
	fmt.Fprintf(c.Stdout, "repaired %d of %d IOC(s) of open cases whose custom attributes were null; "+
		"run `velohunt retry-parked` to write tabs parked meanwhile\n", len(nulls)-len(still), len(nulls))
	if len(still) > 0 {
		return fmt.Errorf("IOC(s) %s still have null custom attributes after the template push", strings.Join(still, ", "))
	}
	return nil
}

// nullIOC is an IOC whose custom attributes are null, with a case that
// links it.
type nullIOC struct{ caseID, iocID int64 }

// nullIOCs reads every IOC of the open cases the service user sees, each
// once (an IOC can be linked to several cases), four at a time: IRIS's IOC
// list does not carry the attributes. An IOC deleted or unlinked since the
// list was read is skipped.
func nullIOCs(ctx context.Context, svc *iris.Client) ([]nullIOC, error) {
	cases, err := svc.ListCases(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	var todo []nullIOC
	for _, cs := range cases {
		if !cs.Open {
			continue
		}
		list, err := svc.ListIOCs(ctx, cs.ID)
		if err != nil {
			return nil, fmt.Errorf("case %d: %w", cs.ID, err)
		}
		for _, x := range list {
			if !seen[x.ID] {
				seen[x.ID] = true
				todo = append(todo, nullIOC{cs.ID, x.ID})
			}
		}
	}
	var (
		mu    sync.Mutex
		nulls []nullIOC
		errs  []error // the first few
		fails int
		wg    sync.WaitGroup
		next  = make(chan nullIOC)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				null, err := svc.IOCAttributesNull(ctx, n.caseID, n.iocID)
				var se *iris.StatusError
				if errors.As(err, &se) && (se.Status == 400 || se.Status == 404) {
					// Deleted or unlinked since the list was read.
					continue
				}
				mu.Lock()
				if err != nil {
					fails++
					if len(errs) < 3 {
						errs = append(errs, fmt.Errorf("IOC %d of case %d: %w", n.iocID, n.caseID, err))
					}
				} else if null {
					nulls = append(nulls, n)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, n := range todo {
		select {
		case next <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fails > 0 {
		return nil, fmt.Errorf("%d of %d IOC(s) could not be read: %w", fails, len(todo), errors.Join(errs...))
	}
	slices.SortFunc(nulls, func(a, b nullIOC) int { return cmp.Compare(a.iocID, b.iocID) })
	return nulls, nil
}

func adminClient(cfg config.Config) (*iris.Client, error) {
	if cfg.IRIS.AdminAPIKey == "" {
		return nil, fmt.Errorf("setup needs an IRIS administrator key: set %s or iris.admin_api_key_file", config.EnvIRISAdminAPIKey)
	}
	return iris.New(iris.Options{URL: cfg.IRIS.URL, APIKey: cfg.IRIS.AdminAPIKey.Reveal(), CAFile: cfg.IRIS.CAFile,
		InsecureSkipVerify: cfg.IRIS.InsecureSkipVerify, Timeout: cfg.IRIS.Timeout.D()})
}

// ensureTab adds the tab's text fields to the IOC template when missing
// (keeping every other tab and field as it is) and pushes the template onto
// existing IOCs, which also repairs IOCs whose custom attributes are null.
// No value stored on any IOC is changed.
func ensureTab(ctx context.Context, admin *iris.Client, tab string) (bool, error) {
	return pushTab(ctx, admin, tab, false)
}

// pushTab is ensureTab; force pushes even when the template already has
// every field (the repair of IOCs with null attributes).
func pushTab(ctx context.Context, admin *iris.Client, tab string, force bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return admin.EnsureIOCTab(ctx, tab, render.TabTemplate(), force)
}
