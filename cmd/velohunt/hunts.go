package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/stopper"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// The adapters satisfy the stopper's interfaces.
var (
	_ stopper.Store        = (*store.DB)(nil)
	_ stopper.Velociraptor = (*velociraptor.Client)(nil)
)

// HuntsCommand lists velohunt's hunts and stops them (`velohunt hunts list`,
// `velohunt hunts stop`).
type HuntsCommand struct {
	Stdout, Stderr io.Writer
}

const huntsUsage = "velohunt hunts list -config FILE [-case N] [-ended]\n" +
	"       velohunt hunts stop -config FILE (-all | -case N) [-force] [-yes]"

// Run implements `velohunt hunts`.
func (c *HuntsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("list or stop?\n" + huntsUsage)
	}
	switch args[0] {
	case "list":
		return c.list(ctx, args[1:])
	case "stop":
		return c.stop(ctx, args[1:])
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], huntsUsage)
}

// list prints velohunt's hunts not ended (with -ended, the recent ended
// ones too), of every case or of one.
func (c *HuntsCommand) list(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-hunts-list", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	caseID := fs.Int64("case", 0, "only the hunts that hunt IOCs of this IRIS case")
	ended := fs.Bool("ended", false, "also the last 200 hunts that ended, with why")
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	if *caseID < 0 {
		return fmt.Errorf("case must be a positive number (IRIS's case id), not %d", *caseID)
	}
	db, err := store.OpenWith(ctx, cfg.Database, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	hunts, err := db.OpenHunts(ctx)
	if err != nil {
		return err
	}
	if *ended {
		recent, err := db.RecentHunts(ctx, 200+len(hunts))
		if err != nil {
			return err
		}
		for _, h := range recent {
			if h.EndedAt.IsZero() {
				continue
			}
			hunts = append(hunts, h)
		}
	}
	tw := tabwriter.NewWriter(c.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "hunt\tvelociraptor id\tserver\torg\tkind\tIOCs\tcases\tstate\thosts done\tcreated\tended")
	n := 0
	for _, h := range hunts {
		rows, err := db.HuntIOCs(ctx, h.ID)
		if err != nil {
			return err
		}
		var cases []int64
		for _, r := range rows {
			if !slices.Contains(cases, r.CaseID) {
				cases = append(cases, r.CaseID)
			}
		}
		if *caseID != 0 && !slices.Contains(cases, *caseID) {
			continue
		}
		p, err := db.HuntProgress(ctx, h.ID)
		if err != nil {
			return err
		}
		end := "-"
		if !h.EndedAt.IsZero() {
			end = h.EndedAt.Format(time.RFC3339)
			if h.EndReason != "" {
				end += " (" + h.EndReason + ")"
			}
		}
		slices.Sort(cases)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\t%s\t%s\n", h.ID, dash(h.VRHuntID), h.Server, orgName(h.Org), h.Kind,
			len(rows), caseIDs(cases, 5), h.State, p.Finished, p.Scheduled, h.CreatedAt.Format(time.RFC3339), end)
		n++
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintln(c.Stdout, "no hunt")
	}
	return nil
}

// stop stops velohunt's own hunts of every case or of one; without -yes
// it says what it would do and does nothing.
func (c *HuntsCommand) stop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-hunts-stop", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	all := fs.Bool("all", false, "every hunt of velohunt's not ended")
	caseID := fs.Int64("case", 0, "the hunts that hunt IOCs of this IRIS case")
	force := fs.Bool("force", false, "with -case: also stop hunts that hunt IOCs of other cases too")
	yes := fs.Bool("yes", false, "stop them (without it: show what would be stopped and change nothing)")
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *all == (*caseID != 0):
		return errors.New("give -all or -case N (one of them)\n" + huntsUsage)
	case *caseID < 0:
		return fmt.Errorf("case must be a positive number (IRIS's case id), not %d", *caseID)
	}
	log := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Read-write beside a running serve: each stop is one short
	// transaction (WAL; the store waits for serve's writes to end).
	db, err := store.OpenWith(ctx, cfg.Database, store.Options{MustExist: true, Logger: log})
	if err != nil {
		return err
	}
	defer db.Close()
	servers, closeAll := stopperServers(cfg)
	defer closeAll()
	s := &stopper.Stopper{Store: db, Servers: servers, Logger: log}
	sel := stopper.Selection{All: *all, CaseID: *caseID, Force: *force}
	items, err := s.Select(ctx, sel)
	if err != nil {
		return err
	}
	what := "every hunt of velohunt's not ended"
	if !*all {
		what = fmt.Sprintf("velohunt's hunts of case #%d not ended", *caseID)
	}
	if len(items) == 0 {
		fmt.Fprintf(c.Stdout, "%s: none\n", what)
		return nil
	}
	if !*yes {
		fmt.Fprintf(c.Stdout, "%s:\n", what)
		printStopItems(c.Stdout, items, false)
		n := 0
		for _, it := range items {
			if it.Action == stopper.Stop || it.Action == stopper.Record {
				n++
			}
		}
		fmt.Fprintf(c.Stdout, "dry run: nothing was stopped. Run again with -yes to stop %d hunt(s).\n", n)
		return nil
	}
	items, err = s.Stop(ctx, items)
	fmt.Fprintf(c.Stdout, "%s:\n", what)
	printStopItems(c.Stdout, items, true)
	if err != nil {
		return err
	}
	c.afterStop(ctx, cfg, db, sel)
	left := 0
	for _, it := range items {
		if !it.Done && !it.Ended {
			left++
		}
	}
	if left > 0 {
		return fmt.Errorf("%d hunt(s) not stopped (see above)", left)
	}
	return nil
}

// afterStop says what can still hunt: serve, if it runs, and the IOCs of
// the selection still queued.
func (c *HuntsCommand) afterStop(ctx context.Context, cfg config.Config, db *store.DB, sel stopper.Selection) {
	queued := 0
	if sel.All {
		if st, err := db.Stats(ctx); err == nil {
			queued = st.IOCs[store.StateQueued]
		}
	} else if rows, err := db.CaseIOCs(ctx, sel.CaseID); err == nil {
		for _, r := range rows {
			if r.State == store.StateQueued {
				queued++
			}
		}
	}
	holder, held, _ := lockHolder(cfg.Database)
	switch {
	case held && queued > 0:
		fmt.Fprintf(c.Stdout, "note: serve (pid %d) runs on this database: it never launches the hunts stopped here, but it hunts the %d IOC(s) still queued, new IOCs, and what re-hunt rules select; stop serve too for a quiet fleet\n",
			holder.PID, queued)
	case held:
		fmt.Fprintf(c.Stdout, "note: serve (pid %d) runs on this database: it never launches the hunts stopped here, but it hunts new IOCs and what re-hunt rules select; stop serve too for a quiet fleet\n",
			holder.PID)
	case queued > 0:
		fmt.Fprintf(c.Stdout, "note: %d IOC(s) are still queued: the next serve hunts them\n", queued)
	}
}

func printStopItems(w io.Writer, items []stopper.Item, done bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	last := "would"
	if done {
		last = "result"
	}
	fmt.Fprintf(tw, "  hunt\tvelociraptor id\tserver\torg\tkind\tIOCs\tcases\tstate\t%s\n", last)
	for _, it := range items {
		h := it.Hunt
		what := it.Result
		if !done {
			switch it.Action {
			case stopper.Stop:
				what = "stop it in Velociraptor, then record it stopped"
			case stopper.Record:
				what = "record it stopped (" + it.Why + ")"
			default:
				what = "leave it running: " + it.Why
			}
		}
		state := h.State
		if it.Done {
			state = store.HuntStopped
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", h.ID, dash(it.VRHuntID), h.Server, orgName(h.Org), h.Kind,
			it.IOCs, caseIDs(it.Cases, 5), state, what)
	}
	tw.Flush()
}

// stopperServers dials every configured server for the stopper (a server
// that cannot be dialled answers its error to every call) and returns a
// function that closes them.
func stopperServers(cfg config.Config) (map[string]stopper.Velociraptor, func()) {
	out := map[string]stopper.Velociraptor{}
	var clients []*velociraptor.Client
	for _, s := range cfg.Velociraptor.Servers {
		api, err := velociraptor.LoadAPIConfig(s.APIConfig)
		var cl *velociraptor.Client
		if err == nil {
			cl, err = velociraptor.Dial(api, velociraptor.Options{Timeout: s.Timeout.D()})
		}
		if err != nil {
			out[s.Name] = unreachable{fmt.Errorf("velociraptor server %s: %w", s.Name, err)}
			continue
		}
		clients = append(clients, cl)
		out[s.Name] = cl
	}
	return out, func() {
		for _, cl := range clients {
			cl.Close()
		}
	}
}

// unreachable is a server that could not be dialled.
type unreachable struct{ err error }

func (u unreachable) HuntInfo(context.Context, string, string) (velociraptor.HuntInfo, error) {
	return velociraptor.HuntInfo{}, u.err
}
func (u unreachable) FindHuntByTag(context.Context, string, string) (string, string, error) {
	return "", "", u.err
}
func (u unreachable) StopHunt(context.Context, string, string) error { return u.err }
