package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// historyLimit caps each list of a timeline: hits, IRIS writes, log
// entries, and the flows of each hunt. What it leaves out is counted.
const historyLimit = 200

// IOCStatus is `velohunt status -ioc N`: what velohunt knows and did about
// one IRIS IOC, for each case that links it.
type IOCStatus struct {
	IRISID int64     `json:"iris_ioc_id"`
	Cases  []IOCView `json:"cases"`
}

// CaseStatus is `velohunt status -case N`: a case, each of its IOCs, and
// the hunts that covered them.
type CaseStatus struct {
	CaseID   int64      `json:"case_id"`
	Name     string     `json:"name"`
	Customer string     `json:"customer"`
	Open     bool       `json:"open"`
	Server   string     `json:"server"`
	Org      string     `json:"org"`
	IOCs     []IOCView  `json:"iocs"`
	Hunts    []HuntView `json:"hunts"`
}

// IOCView is one (case, IOC) row: what it is now, and its timeline.
type IOCView struct {
	CaseID    int64  `json:"case_id"`
	CaseName  string `json:"case_name"`
	Customer  string `json:"customer"`
	CaseOpen  bool   `json:"case_open"`
	IRISID    int64  `json:"iris_ioc_id"`
	Type      string `json:"type"`
	Value     string `json:"value"`
	Kind      string `json:"kind,omitempty"`
	HuntValue string `json:"hunted_as,omitempty"`
	// State is the row's state, "hit" for a hunting or hunted row with a
	// hit (as `velohunt status` counts them).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Hits   int    `json:"hits"`
	Hosts  int    `json:"hosts_hit"`
	// Timeline is in time order; Omitted says what the caps left out.
	Timeline []Event  `json:"timeline"`
	Omitted  []string `json:"omitted,omitempty"`
}

// HuntView is a hunt of a case with its own timeline (its hosts' flows).
type HuntView struct {
	HuntLine
	EndReason string   `json:"end_reason,omitempty"`
	Timeline  []Event  `json:"timeline"`
	Omitted   []string `json:"omitted,omitempty"`
}

// Event is one entry of a timeline.
type Event struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
	// Hunt is velohunt's id of the hunt the event belongs to.
	Hunt     int64  `json:"hunt,omitempty"`
	Host     string `json:"host,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// collectIOCStatus builds the history of an IRIS IOC.
func collectIOCStatus(ctx context.Context, db *store.DB, irisID int64) (IOCStatus, error) {
	list, err := db.IRISIOCHistory(ctx, irisID, historyLimit)
	if ioc.ErrorCode(err) == ioc.ENOTFOUND {
		return IOCStatus{}, fmt.Errorf("IOC %d is not known to velohunt: no case velohunt follows links it "+
			"(velohunt learns the IOCs of open cases from IRIS's webhooks and the reconcile; is the id IRIS's IOC id?)", irisID)
	} else if err != nil {
		return IOCStatus{}, err
	}
	out := IOCStatus{IRISID: irisID}
	for _, h := range list {
		out.Cases = append(out.Cases, iocView(h))
	}
	return out, nil
}

// collectCaseStatus builds the history of a case.
func collectCaseStatus(ctx context.Context, db *store.DB, caseID int64) (CaseStatus, error) {
	c, list, hunts, err := db.CaseHistory(ctx, caseID, historyLimit)
	if ioc.ErrorCode(err) == ioc.ENOTFOUND {
		return CaseStatus{}, fmt.Errorf("case %d is not known to velohunt: it never saw it open in IRIS "+
			"(velohunt follows the open cases its IRIS user can read)", caseID)
	} else if err != nil {
		return CaseStatus{}, err
	}
	out := CaseStatus{CaseID: c.ID, Name: c.Name, Customer: c.Customer, Open: c.Open, Server: c.Route.Server, Org: c.Route.Org}
	for _, h := range list {
		out.IOCs = append(out.IOCs, iocView(h))
	}
	for _, h := range hunts {
		v := HuntView{HuntLine: huntLine(h), EndReason: h.EndReason}
		v.Timeline, v.Omitted = huntEvents(h, true)
		sortEvents(v.Timeline)
		out.Hunts = append(out.Hunts, v)
	}
	return out, nil
}

func huntLine(h store.HistoryHunt) HuntLine {
	return HuntLine{ID: h.ID, HuntID: h.VRHuntID, Server: h.Server, Org: h.Org, Kind: string(h.Kind), State: h.State, IOCs: h.IOCs,
		Attempts: h.Attempts, LastError: h.LastError, Created: stamp(h.CreatedAt), Finished: h.Finished, Scheduled: h.Scheduled,
		Errored: h.Errored, FirstError: h.FirstError, NotSearched: notSearched(h.Progress), Scope: ioc.DescribeScope(h.Hunt.Scope)}
}

// iocView builds the view of one (case, IOC) row from its history.
func iocView(h store.History) IOCView {
	r := h.IOC
	v := IOCView{CaseID: r.CaseID, CaseName: h.Case.Name, Customer: h.Case.Customer, CaseOpen: h.Case.Open, IRISID: r.IRISID,
		Type: r.TypeName, Value: r.Value, Kind: string(r.Kind), HuntValue: r.HuntValue, State: r.State, Reason: r.Reason,
		Hits: h.HitCount, Hosts: h.HostCount}
	if h.HitCount > 0 && (r.State == store.StateHunting || r.State == store.StateHunted) {
		v.State = store.StateHit
	}
	add := func(e Event) { v.Timeline = append(v.Timeline, e) }
	learned, tabLogged := false, false
	for _, e := range h.Log {
		switch e.Event {
		case store.LogLearned:
			learned = true
			add(Event{At: e.At, What: "learned", Detail: "from " + e.Source + "; " + e.Detail})
		case store.LogChanged:
			add(Event{At: e.At, What: "changed", Detail: e.Detail + " (from " + e.Source + ")"})
		case store.LogRequeued:
			add(Event{At: e.At, What: "queued again", Detail: "by " + e.Source})
		case store.LogRemoved:
			add(Event{At: e.At, What: "removed", Detail: e.Detail + " (seen by " + e.Source + ")"})
		case store.LogParked:
			add(Event{At: e.At, What: "write parked", Detail: e.Source + " write refused by IRIS: " + e.Detail})
		case store.LogTabWritten:
			tabLogged = tabLogged || e.At.Equal(h.TabWritten)
			add(Event{At: e.At, What: "tab written", Detail: "status: " + e.Detail})
		}
	}
	if !learned && !r.CreatedAt.IsZero() {
		// Rows stored before velohunt kept a log: their source may have
		// been overwritten since by a manual trigger or a re-hunt.
		detail := "first stored (the source was not recorded then; last source: " + dash(r.Source) + ")"
		if r.Reason != "" {
			detail += "; refused: " + r.Reason
		}
		add(Event{At: r.CreatedAt, What: "learned", Detail: detail})
	}
	if !tabLogged && !h.TabWritten.IsZero() {
		add(Event{At: h.TabWritten, What: "tab written", Detail: "last write of the tab (before velohunt logged tab writes)"})
	}
	for _, hh := range h.Hunts {
		events, omitted := huntEvents(hh, flowsShown(hh))
		v.Timeline = append(v.Timeline, events...)
		v.Omitted = append(v.Omitted, omitted...)
	}
	for _, x := range h.Hits {
		d := x.Source + ": " + x.Evidence
		if !x.EventTime.IsZero() {
			d += " (evidence time " + stampMS(x.EventTime) + ")"
		}
		if x.SeenCount > 1 {
			d += fmt.Sprintf("; seen %d times, last %s", x.SeenCount, stampMS(x.LastSeen))
		}
		add(Event{At: x.FirstSeen, What: "hit", Detail: d, Hunt: x.HuntID, Host: hostOf(x.Hostname, x.ClientID), ClientID: x.ClientID})
	}
	if n := h.HitCount - len(h.Hits); n > 0 {
		v.Omitted = append(v.Omitted, fmt.Sprintf("%d earlier hit(s) (the first at %s)", n, stampMS(h.FirstHit)))
	}
	for _, w := range h.Writes {
		add(writeEvent(w))
	}
	if n := h.WriteCount - len(h.Writes); n > 0 {
		v.Omitted = append(v.Omitted, fmt.Sprintf("%d older IRIS write(s), done", n))
	}
	sortEvents(v.Timeline)
	return v
}

// flowsShown reports whether a hunt's history carries its flows (not in a
// case's IOC blocks, where the case's hunts show them once).
func flowsShown(h store.HistoryHunt) bool { return len(h.Flows) > 0 || h.FlowCount == 0 }

// huntEvents are a hunt's planning, launch, end and, with flows, its
// hosts' flows.
func huntEvents(h store.HistoryHunt, flows bool) ([]Event, []string) {
	where := h.Server + " org " + orgName(h.Org)
	planned := fmt.Sprintf("%s on %s, %d IOC row(s)", h.Artifact, where, h.IOCs)
	if h.HuntValue != "" {
		planned += fmt.Sprintf(", this one as %q", h.HuntValue)
	}
	if h.Attempts > 1 || h.LastError != "" {
		planned += fmt.Sprintf("; %d launch attempt(s)", h.Attempts)
		if h.LastError != "" {
			planned += ", last error: " + h.LastError
		}
	}
	out := []Event{{At: h.CreatedAt, What: "hunt planned", Detail: planned, Hunt: h.ID}}
	if !h.StartedAt.IsZero() {
		out = append(out, Event{At: h.StartedAt, What: "hunt started", Hunt: h.ID,
			Detail: fmt.Sprintf("Velociraptor hunt %s, expires %s", dash(h.VRHuntID), stampMS(h.ExpiresAt))})
	}
	if !h.EndedAt.IsZero() {
		d := h.State
		if h.EndReason != "" {
			d += ": " + h.EndReason
		}
		d += fmt.Sprintf("; %d of %d host(s) done, %d errored or timed out", h.Finished, h.Scheduled, h.Errored)
		if n := len(h.Uncovered); n > 0 {
			d += fmt.Sprintf(", %d not searched in full", n)
		}
		out = append(out, Event{At: h.EndedAt, What: "hunt ended", Detail: d, Hunt: h.ID})
	}
	if !flows {
		return out, nil
	}
	for _, f := range h.Flows {
		at := f.Created
		if at.IsZero() {
			at = f.Updated
		}
		d := fmt.Sprintf("flow %s: %s, %d of %d row(s) read (last read %s)", f.FlowID, dash(f.State), f.RowsRead, f.TotalRows, stampMS(f.Updated))
		if f.Status != "" {
			d += "; error: " + f.Status
		}
		if len(f.Gaps) > 0 {
			d += "; not searched in full: " + strings.Join(f.Gaps, "; ")
		}
		out = append(out, Event{At: at, What: "host", Detail: d, Hunt: h.ID, Host: hostOf(f.Hostname, f.ClientID), ClientID: f.ClientID})
	}
	var omitted []string
	if n := h.FlowCount - len(h.Flows); n > 0 {
		omitted = append(omitted, fmt.Sprintf("%d more host flow(s) of hunt %d (those errored or not searched in full are shown first)", n, h.ID))
	}
	return out, omitted
}

// writeEvent describes one IRIS write: when it was done, or its state.
func writeEvent(w store.HistoryWrite) Event {
	what := w.Kind + " write"
	if w.HitID != 0 {
		what += fmt.Sprintf(" for hit %d", w.HitID)
	}
	e := Event{At: w.Created, What: "IRIS write", Host: hostOf(w.Hostname, w.ClientID), ClientID: w.ClientID}
	switch {
	case !w.Done.IsZero():
		e.At = w.Done
		e.Detail = fmt.Sprintf("%s: done (queued %s)", what, stampMS(w.Created))
		if w.IRISObject != 0 {
			e.Detail += fmt.Sprintf(", IRIS %s %d", w.Kind, w.IRISObject)
		}
	case w.Parked:
		e.Detail = fmt.Sprintf("%s: parked after %d attempt(s) (IRIS refused it; `velohunt retry-parked` once fixed): %s", what, w.Attempts, w.LastError)
	default:
		next := "due"
		if w.NextAttempt.After(time.Now()) {
			next = "next at " + stampMS(w.NextAttempt)
		}
		e.Detail = fmt.Sprintf("%s: pending, %d attempt(s), %s", what, w.Attempts, next)
		if w.LastError != "" {
			e.Detail += "; last error: " + w.LastError
		}
	}
	return e
}

func hostOf(hostname, clientID string) string {
	if hostname != "" {
		return hostname
	}
	return clientID
}

// sortEvents orders a timeline by time; events of the same moment keep
// the order they were added in (learned before planned, planned before
// started...).
func sortEvents(list []Event) {
	slices.SortStableFunc(list, func(a, b Event) int { return a.At.Compare(b.At) })
}

// stampMS formats a time of a timeline, to the millisecond.
func stampMS(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// inert makes outside text (hostnames, evidence, IOC values, errors)
// safe to print on a terminal: one line, no control or format character,
// clipped.
func inert(s string, n int) string { return render.Clip(render.Line(s), n) }

func printIOCStatus(w io.Writer, st IOCStatus) {
	fmt.Fprintf(w, "IOC %d of IRIS: %d case(s) velohunt knows link it\n", st.IRISID, len(st.Cases))
	for _, v := range st.Cases {
		printIOCView(w, v)
	}
}

func printCaseStatus(w io.Writer, st CaseStatus) {
	open := "closed"
	if st.Open {
		open = "open"
	}
	fmt.Fprintf(w, "case #%d %q (customer %q, %s), hunted on %s org %s: %d IOC(s), %d hunt(s)\n", st.CaseID, inert(st.Name, 120),
		inert(st.Customer, 80), open, inert(st.Server, 60), inert(orgName(st.Org), 60), len(st.IOCs), len(st.Hunts))
	for _, v := range st.IOCs {
		printIOCView(w, v)
	}
	for _, h := range st.Hunts {
		fmt.Fprintf(w, "\nhunt %d (%s, Velociraptor %s on %s org %s): %s, %d IOC(s), %d of %d host(s) done, %d errored or timed out\n",
			h.ID, h.Kind, inert(dash(h.HuntID), 40), inert(h.Server, 60), inert(orgName(h.Org), 60), h.State, h.IOCs, h.Finished, h.Scheduled, h.Errored)
		printTimeline(w, h.Timeline, h.Omitted)
	}
}

func printIOCView(w io.Writer, v IOCView) {
	open := "closed"
	if v.CaseOpen {
		open = "open"
	}
	fmt.Fprintf(w, "\ncase #%d %q (customer %q, %s): IOC %d, %s %q\n", v.CaseID, inert(v.CaseName, 120), inert(v.Customer, 80), open,
		v.IRISID, inert(v.Type, 40), inert(v.Value, 200))
	state := v.State
	switch {
	case v.Reason != "":
		state += ": " + inert(v.Reason, 200)
	case v.HuntValue != "":
		state += fmt.Sprintf(", hunted as %s %q", v.Kind, inert(v.HuntValue, 200))
	}
	fmt.Fprintf(w, "  now: %s; %d hit(s) on %d host(s)\n", state, v.Hits, v.Hosts)
	printTimeline(w, v.Timeline, v.Omitted)
}

func printTimeline(w io.Writer, list []Event, omitted []string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, e := range list {
		d := e.Detail
		if e.Host != "" {
			host := e.Host
			if e.ClientID != "" && e.ClientID != e.Host {
				host += " (" + e.ClientID + ")"
			}
			d = host + ": " + d
		}
		hunt := ""
		if e.Hunt != 0 {
			hunt = fmt.Sprintf("hunt %d", e.Hunt)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", stampMS(e.At), e.What, hunt, inert(d, 400))
	}
	tw.Flush()
	for _, o := range omitted {
		fmt.Fprintf(w, "  (not shown: %s)\n", inert(o, 200))
	}
}
