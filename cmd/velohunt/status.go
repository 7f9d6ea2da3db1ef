package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/rehunt"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// StatusCommand prints what velohunt is doing, from its database.
type StatusCommand struct {
	Stdout io.Writer
}

// Status is the picture `status` prints and /status serves.
type Status struct {
	OpenCases int            `json:"open_cases"`
	IOCs      map[string]int `json:"iocs"`
	Hunts     map[string]int `json:"hunts"`
	// Incomplete counts hunts in which a host errored or timed out.
	Incomplete int               `json:"hunts_incomplete"`
	InboxDepth int               `json:"webhook_events_pending"`
	Failing    []HuntLine        `json:"failing_launches"`
	Refused    []RefusedLine     `json:"refused_iocs"`
	Recent     []HuntLine        `json:"recent_hunts"`
	Outbox     OutboxLine        `json:"iris_writes"`
	Parked     []ParkedLine      `json:"parked_writes"`
	Holds      map[string]string `json:"held_back_by_limits,omitempty"`
	Rules      []RuleLine        `json:"rehunt_rules,omitempty"`
	// Serve says whether a serve holds the database (`velohunt status`
	// only: /status is served by it).
	Serve *ServeLine `json:"serve,omitempty"`
	// Last is when a serve last finished each kind of work ("" never).
	Last LastLine `json:"last"`
	// Fleets are the client releases of each server and org, as serve
	// last read them.
	Fleets []FleetLine `json:"client_releases,omitempty"`
	// Collections counts follow-up collections by state; Collecting lists
	// the newest ones not collected (live or failed), with why.
	Collections map[string]int   `json:"collections,omitempty"`
	Collecting  []CollectionLine `json:"collections_recent,omitempty"`
}

// CollectionLine is a follow-up collection in `velohunt status`.
type CollectionLine struct {
	ID       int64  `json:"id"`
	Server   string `json:"server"`
	ClientID string `json:"client_id"`
	State    string `json:"state"`
	FlowID   string `json:"flow_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
}

// ServeLine names the serve holding the database, if any.
type ServeLine struct {
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"`
	Listen  string `json:"listen,omitempty"`
	Since   string `json:"since,omitempty"`
	Version string `json:"version,omitempty"`
}

// LastLine is when a serve last finished a sync of IRIS's case list, a
// watcher pass and a write to IRIS.
type LastLine struct {
	Sync  string `json:"sync,omitempty"`
	Watch string `json:"watcher_pass,omitempty"`
	Write string `json:"iris_write,omitempty"`
}

// RuleLine is a re-hunt rule's schedule and last run.
type RuleLine struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	Next     string `json:"next_run"`
	LastDue  string `json:"last_run,omitempty"`
	Pending  bool   `json:"pending,omitempty"`
	Queued   int    `json:"last_queued"`
	Skipped  int    `json:"last_skipped"`
}

// OutboxLine is the backlog of writes to IRIS.
type OutboxLine struct {
	Pending       int            `json:"pending"`
	PendingByKind map[string]int `json:"pending_by_kind"`
	Retrying      int            `json:"retrying"`
	OldestSeconds float64        `json:"oldest_pending_seconds"`
	Parked        int            `json:"parked"`
	// HitsWaiting counts hits whose asset or event is not in IRIS yet.
	HitsWaiting int `json:"hits_waiting"`
	// WritesPerSecond is the asset and event writes done per second over
	// the last minute; DrainSeconds the time to write the pending ones at
	// that rate (-1: none written in the last minute).
	WritesPerSecond float64 `json:"writes_per_second"`
	DrainSeconds    float64 `json:"drain_seconds_estimate"`
	// Concurrency is the writer's current bound on IRIS requests in
	// flight and InFlight how many are; only the running service knows
	// them (/status, metrics), so `velohunt status` leaves them out.
	Concurrency *int `json:"concurrency,omitempty"`
	InFlight    *int `json:"in_flight,omitempty"`
}

// ParkedLine is a write IRIS refused.
type ParkedLine struct {
	Kind   string `json:"kind"`
	CaseID int64  `json:"case_id"`
	IOCID  int64  `json:"ioc_id"`
	Reason string `json:"reason"`
}

// HuntLine is a hunt in the status output.
type HuntLine struct {
	ID        int64  `json:"id"`
	HuntID    string `json:"hunt_id"`
	Server    string `json:"server"`
	Org       string `json:"org"`
	Kind      string `json:"kind"`
	State     string `json:"state"`
	IOCs      int    `json:"iocs"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	// EndReason says why the hunt ended early (an operator stopped it,
	// nothing was left to hunt).
	EndReason string `json:"end_reason,omitempty"`
	Created   string `json:"created"`
	// Hosts done of scheduled, and how many of them errored or timed out
	// (Velociraptor counts those as done); FirstError is the first one.
	Finished   int64  `json:"hosts_done"`
	Scheduled  int64  `json:"hosts_scheduled"`
	Errored    int64  `json:"hosts_errored"`
	FirstError string `json:"first_host_error,omitempty"`
	// NotSearched are the hosts that finished without searching everything
	// the artifact applies to them ("host: source: why"): not clean.
	NotSearched []string `json:"hosts_not_searched_in_full,omitempty"`
	// Scope says which clients the hunt was limited to ("" : every one).
	Scope string `json:"scope,omitempty"`
}

// RefusedLine is a refused IOC.
type RefusedLine struct {
	CaseID int64  `json:"case_id"`
	IOCID  int64  `json:"ioc_id"`
	Type   string `json:"type"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// addRules adds the re-hunt rules' next and last runs.
func addRules(ctx context.Context, st *Status, cfg config.Config, db *store.DB) error {
	rules, err := rehunt.Compile(cfg, nil)
	if err != nil {
		return err
	}
	for _, r := range rules {
		line := RuleLine{Name: r.Name, Schedule: r.Spec, Next: r.Schedule.Next(time.Now()).Format(time.RFC3339)}
		if last, err := db.LastRehuntRun(ctx, r.Name); err == nil {
			line.LastDue, line.Pending, line.Queued, line.Skipped = last.DueAt.Format(time.RFC3339), last.Finished.IsZero(), last.Queued, last.Skipped
		}
		st.Rules = append(st.Rules, line)
	}
	return nil
}

func collectStatus(ctx context.Context, db *store.DB) (Status, error) {
	st, err := db.Stats(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{OpenCases: st.OpenCases, IOCs: st.IOCs, Hunts: st.Hunts, InboxDepth: st.InboxDepth, Incomplete: st.IncompleteHunts}
	act, err := db.Activity(ctx)
	if err != nil {
		return out, err
	}
	out.Last = LastLine{Sync: stamp(act.LastSync), Watch: stamp(act.LastWatch), Write: stamp(act.LastWrite)}
	failing, err := db.FailingLaunches(ctx, 20)
	if err != nil {
		return out, err
	}
	recent, err := db.RecentHunts(ctx, 10)
	if err != nil {
		return out, err
	}
	for _, list := range []struct {
		in  []store.Hunt
		out *[]HuntLine
	}{{failing, &out.Failing}, {recent, &out.Recent}} {
		for _, h := range list.in {
			n, err := db.HuntIOCs(ctx, h.ID)
			if err != nil {
				return out, err
			}
			p, err := db.HuntProgress(ctx, h.ID)
			if err != nil {
				return out, err
			}
			*list.out = append(*list.out, HuntLine{ID: h.ID, HuntID: h.VRHuntID, Server: h.Server, Org: h.Org, Kind: string(h.Kind),
				State: h.State, IOCs: len(n), Attempts: h.Attempts, LastError: h.LastError, EndReason: h.EndReason, Created: h.CreatedAt.Format(time.RFC3339),
				Finished: p.Finished, Scheduled: p.Scheduled, Errored: p.Errored, FirstError: p.FirstError, NotSearched: notSearched(p),
				Scope: ioc.DescribeScope(h.Scope)})
		}
	}
	if out.Holds, err = db.ServerHolds(ctx); err != nil {
		return out, err
	}
	ob, err := db.OutboxStats(ctx)
	if err != nil {
		return out, err
	}
	out.Outbox = OutboxLine{Pending: ob.Pending, PendingByKind: ob.ByKind, Retrying: ob.Retrying,
		OldestSeconds: ob.OldestAge.Seconds(), Parked: ob.Parked, HitsWaiting: ob.HitsWaiting,
		WritesPerSecond: ob.WritesPerSecond(), DrainSeconds: ob.DrainSeconds()}
	parked, err := db.ParkedWrites(ctx, 0, 20)
	if err != nil {
		return out, err
	}
	for _, p := range parked {
		out.Parked = append(out.Parked, ParkedLine{Kind: p.Kind, CaseID: p.CaseID, IOCID: p.IRISID, Reason: p.Reason})
	}
	cols, err := db.Collections(ctx, 200)
	if err != nil {
		return out, err
	}
	for _, c := range cols {
		if out.Collections == nil {
			out.Collections = map[string]int{}
		}
		out.Collections[c.State]++
		if len(out.Collecting) < 10 {
			out.Collecting = append(out.Collecting, CollectionLine{ID: c.ID, Server: c.Server, ClientID: c.ClientID, State: c.State,
				FlowID: c.FlowID, Reason: clip(c.Reason, 200), SHA256: c.SHA256})
		}
	}
	fleets, err := db.Fleets(ctx)
	if err != nil {
		return out, err
	}
	out.Fleets = fleetLines(fleets)
	refused, err := db.RefusedIOCs(ctx, 20)
	if err != nil {
		return out, err
	}
	for _, r := range refused {
		out.Refused = append(out.Refused, RefusedLine{CaseID: r.CaseID, IOCID: r.IRISID, Type: r.TypeName, Value: clip(r.Value, 60), Reason: r.Reason})
	}
	return out, nil
}

// Run implements `velohunt status`.
func (c *StatusCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	iocID := fs.Int64("ioc", 0, "show what velohunt knows and did about this IRIS IOC id, in time order, per case")
	caseID := fs.Int64("case", 0, "show what velohunt knows and did about the IOCs and hunts of this IRIS case id, in time order")
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	if *iocID != 0 && *caseID != 0 {
		return errors.New("-ioc and -case exclude each other")
	}
	if *iocID < 0 || *caseID < 0 {
		return errors.New("-ioc and -case take an IRIS id (a positive number)")
	}
	if *iocID != 0 || *caseID != 0 {
		return c.history(ctx, cfg.Database, *iocID, *caseID, *asJSON)
	}
	holder, held, err := lockHolder(cfg.Database)
	if err != nil {
		return err
	}
	db, err := store.OpenWith(ctx, cfg.Database, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := collectStatus(ctx, db)
	if err != nil {
		return err
	}
	st.Serve = &ServeLine{Running: held}
	if held {
		st.Serve.PID, st.Serve.Listen, st.Serve.Version = holder.PID, holder.Listen, holder.Version
		st.Serve.Since = stamp(holder.Started)
	}
	if err := addRules(ctx, &st, cfg, db); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.Stdout, st)
	}
	printStatus(c.Stdout, st)
	return nil
}

// history prints the timeline of an IRIS IOC (iocID) or of a case.
func (c *StatusCommand) history(ctx context.Context, path string, iocID, caseID int64, asJSON bool) error {
	db, err := store.OpenWith(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	if iocID != 0 {
		st, err := collectIOCStatus(ctx, db, iocID)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(c.Stdout, st)
		}
		printIOCStatus(c.Stdout, st)
		return nil
	}
	st, err := collectCaseStatus(ctx, db, caseID)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(c.Stdout, st)
	}
	printCaseStatus(c.Stdout, st)
	return nil
}

// writeJSON prints v as indented JSON, inert on a terminal (render.JSON):
// it carries endpoint and IRIS text.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(render.JSON(b), '\n'))
	return err
}

func printStatus(w io.Writer, st Status) {
	if s := st.Serve; s != nil && s.Running {
		fmt.Fprintf(w, "serve: running (pid %d, listening on %s, since %s, version %s)\n", s.PID, s.Listen, s.Since, dash(s.Version))
	} else if s != nil {
		fmt.Fprintln(w, "serve: not running (no velohunt serve holds the database)")
	}
	fmt.Fprintf(w, "last finished: sync with IRIS %s, watcher pass %s, IRIS write %s\n",
		orNever(st.Last.Sync), orNever(st.Last.Watch), orNever(st.Last.Write))
	fmt.Fprintf(w, "open cases: %d   webhook events pending: %d\n", st.OpenCases, st.InboxDepth)
	fmt.Fprintf(w, "IOCs:  %s\n", counts(st.IOCs))
	fmt.Fprintf(w, "hunts: %s\n", counts(st.Hunts))
	if st.Incomplete > 0 {
		fmt.Fprintf(w, "hunts incomplete: %d (a host's collection errored, timed out or could not search everything; never reported clean)\n", st.Incomplete)
	}
	fmt.Fprintf(w, "IRIS writes: %d pending (%s), %d retrying, oldest %s, %d parked\n", st.Outbox.Pending,
		strings.TrimSpace(counts(st.Outbox.PendingByKind)), st.Outbox.Retrying,
		(time.Duration(st.Outbox.OldestSeconds) * time.Second).String(), st.Outbox.Parked)
	if o := st.Outbox; o.HitsWaiting > 0 || o.WritesPerSecond > 0 {
		eta := "unknown (nothing written in the last minute)"
		if o.DrainSeconds >= 0 {
			eta = (time.Duration(o.DrainSeconds) * time.Second).String()
		}
		fmt.Fprintf(w, "  hits waiting: %d, %.1f writes/s over the last minute, drained in about %s\n", o.HitsWaiting, o.WritesPerSecond, eta)
	}
	if st.Outbox.Concurrency != nil {
		fmt.Fprintf(w, "  IRIS requests in flight: %d (bound now %d)\n", *st.Outbox.InFlight, *st.Outbox.Concurrency)
	}
	if len(st.Collections) > 0 {
		fmt.Fprintf(w, "follow-up collections (the newest 200): %s\n", counts(st.Collections))
		for _, c := range st.Collecting {
			what := inert(c.Reason, 200)
			if c.SHA256 != "" {
				what = "SHA-256 " + c.SHA256
			}
			fmt.Fprintf(w, "  #%d %s %s %s %s %s\n", c.ID, inert(c.Server, 60), inert(c.ClientID, 60), c.State, inert(dash(c.FlowID), 60), what)
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for server, why := range st.Holds {
		fmt.Fprintf(tw, "held back on %s: %s\n", server, why)
	}
	if len(st.Rules) > 0 {
		fmt.Fprintln(tw, "\nre-hunt rules:")
		fmt.Fprintln(tw, "  rule\tschedule\tnext run\tlast run\tqueued\tskipped")
		for _, r := range st.Rules {
			last := dash(r.LastDue)
			if r.Pending {
				last += " (running)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\n", r.Name, r.Schedule, r.Next, last, r.Queued, r.Skipped)
		}
	}
	if len(st.Failing) > 0 {
		fmt.Fprintln(tw, "\nlaunches failing (retried with backoff):")
		fmt.Fprintln(tw, "  hunt\tserver\torg\tkind\tattempts\tlast error")
		for _, h := range st.Failing {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\n", h.ID, h.Server, orgName(h.Org), h.Kind, h.Attempts, inert(h.LastError, 120))
		}
	}
	if len(st.Parked) > 0 {
		fmt.Fprintln(tw, "\nparked IRIS writes (refused by IRIS; fix the cause, then `velohunt retry-parked`):")
		fmt.Fprintln(tw, "  kind\tcase\tioc\treason")
		for _, p := range st.Parked {
			fmt.Fprintf(tw, "  %s\t#%d\t%d\t%s\n", p.Kind, p.CaseID, p.IOCID, inert(p.Reason, 160))
		}
	}
	if len(st.Refused) > 0 {
		fmt.Fprintln(tw, "\nrefused IOCs (never hunted):")
		fmt.Fprintln(tw, "  case\tioc\ttype\tvalue\treason")
		for _, r := range st.Refused {
			fmt.Fprintf(tw, "  #%d\t%d\t%s\t%q\t%s\n", r.CaseID, r.IOCID, inert(r.Type, 40), r.Value, inert(r.Reason, 200))
		}
	}
	if len(st.Recent) > 0 {
		fmt.Fprintln(tw, "\nrecent hunts:")
		fmt.Fprintln(tw, "  hunt\tvelociraptor id\tserver\torg\tkind\tIOCs\tstate\thosts done\terrored or timed out\tcreated")
		for _, h := range st.Recent {
			errs := fmt.Sprint(h.Errored)
			if h.FirstError != "" {
				errs += " (first: " + inert(h.FirstError, 80) + ")"
			}
			state := h.State
			if h.EndReason != "" {
				state += " (" + h.EndReason + ")"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%s\t%d/%d\t%s\t%s\n", h.ID, dash(h.HuntID), h.Server, orgName(h.Org), h.Kind, h.IOCs,
				state, h.Finished, h.Scheduled, errs, h.Created)
		}
		for _, h := range st.Recent {
			if h.Scope != "" {
				fmt.Fprintf(tw, "\nhunt %d ran on %s\n", h.ID, inert(h.Scope, 300))
			}
		}
		for _, h := range st.Recent {
			if len(h.NotSearched) == 0 {
				continue
			}
			fmt.Fprintf(tw, "\nhunt %d: %d host(s) not searched in full (not clean there):\n", h.ID, len(h.NotSearched))
			for _, g := range h.NotSearched {
				fmt.Fprintf(tw, "  %s\n", inert(g, 200))
			}
		}
	}
	tw.Flush()
	printFleets(w, st.Fleets)
}

// notSearched lists the hosts of a hunt that could not search everything,
// as "host: source: why; ...".
func notSearched(p store.Progress) []string {
	var out []string
	for _, g := range p.Uncovered {
		out = append(out, g.Host()+" ("+g.ClientID+"): "+strings.Join(g.Gaps, "; "))
	}
	return out
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, m[k])
	}
	return s
}

func orgName(o string) string {
	if o == "" {
		return "root"
	}
	return o
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// stamp formats a time for status ("" for never).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}
