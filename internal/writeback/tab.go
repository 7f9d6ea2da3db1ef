package writeback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// tab writes the current state of an IOC onto its tab. The content is read
// when the write is sent, so one update carries everything queued before.
func (w *Writer) tab(ctx context.Context, wr store.Write) error {
	d, err := w.Store.FindTabData(ctx, wr.IOCID, w.MaxHitsOnTab)
	if err != nil {
		return err
	}
	fields, err := w.Render.TabFields(w.tabView(d))
	if err != nil {
		return err
	}
	err = w.IRIS.UpdateIOCAttributes(ctx, wr.CaseID, d.IOC.IRISID, w.TabName, fields)
	if !errors.Is(err, iris.ErrNullAttributes) {
		return err
	}
	// IRIS fails every attribute update of an IOC whose custom_attributes is
	// null. Pushing the IOC template (add-only: no stored value changes)
	// repairs every such IOC at once. Each IOC gets one repair; IOCs that
	// fail together share one push, and pushes are at least repairEvery
	// apart (each one walks every IOC in IRIS). An IOC still failing after
	// its repair is parked with the reason: never a loop.
	irisID := d.IOC.IRISID
	w.mu.Lock()
	tried := w.repaired[irisID]
	next := w.lastRepair.Add(repairEvery)
	push := !tried && w.Repair != nil && !w.Now().Before(next)
	if push {
		w.repaired[irisID] = true
		w.lastRepair = w.Now()
	}
	w.mu.Unlock()
	switch {
	case w.Repair == nil || tried:
		return fmt.Errorf("IOC %d has null custom attributes in IRIS, so its tab cannot be written; run `velohunt setup` with an administrator key: %w",
			irisID, err)
	case !push:
		return &heldError{until: next}
	}
	w.Logger.Warn("IOC with null custom attributes; pushing the IOC template to repair it", "ioc_id", irisID, "case_id", wr.CaseID)
	if rerr := w.Repair(ctx); rerr != nil {
		return fmt.Errorf("repair of null custom attributes failed: %w", rerr)
	}
	if err := w.IRIS.UpdateIOCAttributes(ctx, wr.CaseID, irisID, w.TabName, fields); err != nil {
		return fmt.Errorf("tab of IOC %d still failing after repair: %w", irisID, err)
	}
	return nil
}

// repairEvery is the least time between two pushes of the IOC template.
const repairEvery = time.Minute

// tabView turns stored data into the tab's view and status line.
func (w *Writer) tabView(d store.TabData) render.Tab {
	t := render.Tab{HitCount: d.HitCount, HostCount: d.HostCount, Updated: w.Now()}
	for _, h := range d.Hunts {
		th := render.TabHunt{VRHuntID: h.VRHuntID, Artifact: h.Artifact, State: h.Hunt.State, VRState: h.VRState,
			Finished: h.Finished, Scheduled: h.Scheduled, Errored: h.Errored, TotalRows: h.TotalRows,
			CreatedAt: h.CreatedAt, ExpiresAt: h.ExpiresAt, LastError: h.LastError}
		if w.GUIURL != nil && h.VRHuntID != "" {
			th.URL = w.GUIURL(h.Server, h.Org, h.VRHuntID)
		}
		t.Hunts = append(t.Hunts, th)
	}
	for _, h := range d.Hits {
		host := h.Hostname
		if host == "" {
			host = h.ClientID
		}
		when := render.Date(h.EventTime)
		if h.EventTime.IsZero() {
			when = "found " + render.Date(h.FirstSeen)
		}
		t.Hits = append(t.Hits, render.TabHit{Host: host, When: when, Source: h.Source, Evidence: h.Evidence})
	}
	t.Status = status(d)
	return t
}

// status is the one-line summary: HIT, clean, hunting, queued, refused or
// error, with the reason where there is one.
func status(d store.TabData) string {
	switch {
	case d.HitCount > 0:
		return fmt.Sprintf("HIT: found on %d host(s), %d hit(s)", d.HostCount, d.HitCount)
	case d.IOC.State == store.StateRefused:
		return "refused: " + d.IOC.Reason
	case len(d.Parked) > 0:
		return "error: " + d.Parked[0].Reason
	case d.IOC.State == store.StateRemoved:
		return "not hunted any more: " + d.IOC.Reason
	case d.IOC.State == store.StateQueued:
		return "queued for the next hunt"
	}
	var running *store.TabHunt
	for i := range d.Hunts {
		if h := &d.Hunts[i]; h.Hunt.State == store.HuntRunning || h.Hunt.State == store.HuntPlanned || h.Hunt.State == store.HuntCreated {
			running = h
			break
		}
	}
	switch {
	case running == nil && len(d.Hunts) > 0:
		return fmt.Sprintf("clean: no hit on %d host(s); last hunt ended %s", d.Hunts[0].Scheduled, render.Date(d.Hunts[0].EndedAt))
	case running == nil:
		return "queued for the next hunt"
	case running.LastError != "" && running.Hunt.State != store.HuntRunning:
		return "error: " + running.LastError
	case running.Hunt.State != store.HuntRunning:
		return "hunting: starting the hunt"
	case running.Scheduled > 0 && running.Finished >= running.Scheduled:
		return fmt.Sprintf("clean: no hit on %d host(s) so far; the hunt stays open for late hosts until %s",
			running.Scheduled, render.Date(running.ExpiresAt))
	default:
		return fmt.Sprintf("hunting: %d of %d host(s) done", running.Finished, running.Scheduled)
	}
}
