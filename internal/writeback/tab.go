package writeback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// errUnchanged marks a tab write that was not sent: the tab already says
// the same in substance.
var errUnchanged = errors.New("the tab already says this")

// preparedTab is a tab ready to be written.
type preparedTab struct {
	d           store.TabData
	fields      map[string]string
	fingerprint string
}

// prepareTab reads the current state of an IRIS IOC and decides whether
// its tab needs a write now. The content covers every case that links the
// IOC (the tab is one object in IRIS 2.4). Each write is an IOC update that
// fires every module's on_postload_ioc_update in IRIS, so: nothing is
// written when the substance did not change (errUnchanged; progress alone is
// not a reason); a change of status (queued, hunting, HIT, clean...) is
// written at once; new hits and other details wait until TabMinInterval
// has passed since the last write (the time is returned, with no tab).
func (w *Writer) prepareTab(ctx context.Context, wr store.Write) (*preparedTab, time.Time, error) {
	d, err := w.Store.FindTabData(ctx, wr.IOCID, w.MaxHitsOnTab)
	if err != nil {
		return nil, time.Time{}, err
	}
	view, status, detail := w.tabView(d)
	fp := digest(status) + ":" + digest(detail)
	if fp == d.Fingerprint {
		return nil, time.Time{}, errUnchanged
	}
	oldStatus, _, _ := strings.Cut(d.Fingerprint, ":")
	if until := d.Written.Add(w.TabMinInterval); oldStatus == digest(status) && w.Now().Before(until) {
		return nil, until, nil
	}
	w.mu.Lock()
	view.Instance = w.instance
	w.mu.Unlock()
	fields, err := w.Render.TabFields(view)
	if err != nil {
		return nil, time.Time{}, err
	}
	return &preparedTab{d: d, fields: fields, fingerprint: fp}, time.Time{}, nil
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

// tab writes a prepared tab through a case that links the IOC.
func (w *Writer) tab(ctx context.Context, wr store.Write, p *preparedTab) error {
	cid := tabCase(p.d, wr.CaseID)
	err := w.api().UpdateIOCAttributes(ctx, cid, p.d.IRISID, w.TabName, p.fields)
	if errors.Is(err, iris.ErrNullAttributes) {
		err = w.repair(ctx, cid, p.d.IRISID, p.fields, err)
	}
	if errors.Is(err, iris.ErrIOCNotInCase) && !tabCaseOpen(p.d, cid) {
		// Deleted or unlinked in IRIS, and velohunt knows of no open case
		// that still links it: no tab left to write.
		w.Logger.Info("tab not written: the IOC is no longer in IRIS", "ioc_id", p.d.IRISID, "case_id", cid)
		return nil
	}
	if err != nil {
		return err
	}
	if err := w.Store.SetTabWritten(ctx, p.d.IRISID, p.fingerprint, p.fields[render.FieldStatus], w.Now()); err != nil {
		return err
	}
	// The IOC may have changed since the tab was rendered (a hunt started,
	// a hit came): that change queued no write of its own, since one tab
	// write per IOC is pending at a time (this one), so look again.
	d, err := w.Store.FindTabData(ctx, wr.IOCID, w.MaxHitsOnTab)
	if err != nil {
		return err
	}
	if _, status, detail := w.tabView(d); digest(status)+":"+digest(detail) != p.fingerprint {
		return errStale
	}
	return nil
}

// errStale keeps a tab write pending: the tab it wrote is already out of
// date.
var errStale = errors.New("the IOC changed while its tab was written")

// tabCase picks the case to write the tab through: the write's own case
// when the IOC is still hunted there, else another open case that links
// it (IRIS checks that the IOC is linked to the case named by cid).
func tabCase(d store.TabData, own int64) int64 {
	for _, c := range d.Cases {
		if c.IOC.CaseID == own && live(c) {
			return own
		}
	}
	for _, c := range d.Cases {
		if live(c) {
			return c.IOC.CaseID
		}
	}
	return own
}

// live reports whether the IOC is still hunted in an open case.
func live(c store.TabCase) bool { return c.CaseOpen && c.IOC.State != store.StateRemoved }

// tabCaseOpen reports whether the case the tab went through is an open
// case in which the IOC is still hunted.
func tabCaseOpen(d store.TabData, cid int64) bool {
	for _, c := range d.Cases {
		if c.IOC.CaseID == cid {
			return live(c)
		}
	}
	return false
}

// repair handles an IOC whose custom_attributes is null: IRIS fails every
// attribute update of it. Pushing the IOC template (add-only: no stored
// value changes) repairs every such IOC at once. Each IOC gets one repair;
// IOCs that fail together share one push, and pushes are at least
// repairEvery apart (each one walks every IOC in IRIS). A write that failed
// while a push ran, or before the last push it has not been retried after,
// is retried as soon as that push is done: the push repaired it too. An IOC
// still failing after its repair is parked with the reason: never a loop.
func (w *Writer) repair(ctx context.Context, cid, irisID int64, fields map[string]string, err error) error {
	for {
		w.mu.Lock()
		if ch := w.repairing; ch != nil {
			// A push is running: it repairs this IOC too.
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-ch:
			}
			continue
		}
		if w.repairedBy[irisID] < w.pushes {
			// A push was made since this IOC was last written: try again.
			w.repairedBy[irisID] = w.pushes
			w.mu.Unlock()
			uerr := w.api().UpdateIOCAttributes(ctx, cid, irisID, w.TabName, fields)
			if !errors.Is(uerr, iris.ErrNullAttributes) {
				return uerr
			}
			err = uerr
			continue
		}
		tried := w.repaired[irisID]
		next := w.lastRepair.Add(repairEvery)
		push := !tried && w.Repair != nil && !w.Now().Before(next)
		if push {
			w.repaired[irisID] = true
			w.lastRepair = w.Now()
			w.repairing = make(chan struct{})
		}
		w.mu.Unlock()
		switch {
		case w.Repair == nil || tried:
			return fmt.Errorf("IOC %d has null custom attributes in IRIS, so its tab cannot be written; `velohunt setup` with an administrator key repairs it, then `velohunt retry-parked` writes the tab: %w",
				irisID, err)
		case !push:
			return &heldError{until: next}
		}
		w.Logger.Warn("IOC with null custom attributes; pushing the IOC template to repair it", "ioc_id", irisID, "case_id", cid)
		rerr := w.Repair(ctx)
		w.mu.Lock()
		w.pushes++
		w.repairedBy[irisID] = w.pushes
		close(w.repairing)
		w.repairing = nil
		w.mu.Unlock()
		if rerr != nil {
			return fmt.Errorf("repair of null custom attributes failed: %w", rerr)
		}
		if err := w.api().UpdateIOCAttributes(ctx, cid, irisID, w.TabName, fields); err != nil {
			return fmt.Errorf("tab of IOC %d still failing after repair: %w", irisID, err)
		}
		return nil
	}
}

// maxGapsOnTab bounds the hosts named on a hunt's line for not having
// searched everything (velohunt status lists them all).
const maxGapsOnTab = 5

// repairEvery is the least time between two pushes of the IOC template.
const repairEvery = time.Minute

// tabView turns stored data into the tab's view, and returns with it the
// tab's substance, what an analyst reads without progress counts and times,
// in two parts: the status of each case (queued, hunting, HIT, clean,
// incomplete, refused, error...), and the details (hits, hosts, hunts). Two
// views with the same substance need no second write.
//
// The tab of an IOC is read from every case that links it. When those
// cases belong to more than one customer, the tab names no host, evidence
// or hunt (they stay in each case's own assets and timeline events) and
// says only that; a refusal, which is about the value itself, is shown.
// When they belong to one customer, the tab shows each case's status and
// hits, labelled with the case.
func (w *Writer) tabView(d store.TabData) (t render.Tab, statusKey, detailKey string) {
	t = render.Tab{Updated: w.Now()}
	customers := map[string]bool{}
	for _, c := range d.Cases {
		customers[c.Customer] = true
	}
	if len(customers) > 1 {
		if c := d.Cases[0]; c.IOC.State == store.StateRefused {
			t.Status = "refused: " + c.IOC.Reason
		} else {
			t.Status = fmt.Sprintf("hunted for each of the %d cases that link this IOC; they belong to %d customers, so this tab names no host: see each case's assets and timeline",
				len(d.Cases), len(customers))
		}
		t.Withheld = "not shown: this IOC is linked to cases of several customers, and every one of them shows this tab"
		return t, "shared|" + t.Status, ""
	}
	single := len(d.Cases) == 1
	var keys, details, statuses []string
	type dated struct {
		at         time.Time
		hit        render.TabHit
		collection int64
	}
	var hits []dated
	seen := map[int64]bool{}
	for _, c := range d.Cases {
		text, key := status(c)
		label := fmt.Sprintf("case #%d", c.IOC.CaseID)
		if single {
			statuses = append(statuses, text)
		} else {
			statuses = append(statuses, label+": "+text)
		}
		keys = append(keys, fmt.Sprintf("%d=%s", c.IOC.CaseID, key))
		details = append(details, fmt.Sprintf("%d=%d", c.IOC.CaseID, c.HitCount))
		t.HitCount += c.HitCount
		for _, h := range c.Hunts {
			if seen[h.ID] {
				continue
			}
			seen[h.ID] = true
			details = append(details, fmt.Sprintf("hunt %d=%s", h.ID, h.Hunt.State))
			th := render.TabHunt{VRHuntID: h.VRHuntID, Artifact: h.Artifact, State: h.Hunt.State, VRState: h.VRState,
				Finished: h.Finished, Scheduled: h.Scheduled, Errored: h.Errored, TotalRows: h.TotalRows,
				CreatedAt: h.CreatedAt, ExpiresAt: h.ExpiresAt, LastError: h.LastError, Uncovered: len(h.Uncovered)}
			for i, g := range h.Uncovered {
				if i == maxGapsOnTab {
					break
				}
				th.Gaps = append(th.Gaps, g.String())
			}
			if w.GUIURL != nil && h.VRHuntID != "" {
				th.URL = w.GUIURL(h.Server, h.Org, h.VRHuntID)
			}
			th.Scope = ioc.DescribeScope(h.Hunt.Scope)
			t.Hunts = append(t.Hunts, th)
		}
		for _, h := range c.Hits {
			host := h.Hostname
			if host == "" {
				host = h.ClientID
			}
			when := render.Date(h.EventTime)
			if h.EventTime.IsZero() {
				when = "found " + render.Date(h.FirstSeen)
			}
			th := render.TabHit{Host: host, When: when, Source: h.Source, Evidence: h.Evidence, Collection: collectionLine(h.Collection)}
			if !single {
				th.Case = label
			}
			hits = append(hits, dated{at: h.FirstSeen, hit: th, collection: h.Collection.ID})
		}
	}
	// Newest found first over every case, as within one.
	slices.SortStableFunc(hits, func(a, b dated) int { return b.at.Compare(a.at) })
	for i, h := range hits {
		if i == w.MaxHitsOnTab {
			break
		}
		t.Hits = append(t.Hits, h.hit)
		// A collection's end (collected, failed) is written at once, like
		// a status; its other moves (queued, held, running) are details.
		// Keyed by the collection, not the hit's place in the list: a new
		// hit moves every place, and would make each new hit a status
		// change (adversarial review: one IOC update per hit).
		switch line := h.hit.Collection; {
		case line == "":
		case strings.HasPrefix(line, "collected") || strings.HasPrefix(line, "collection failed"):
			keys = append(keys, fmt.Sprintf("collection %d: %s", h.collection, line))
		default:
			details = append(details, fmt.Sprintf("collection %d: %s", h.collection, line))
		}
	}
	t.HostCount = d.HostCount
	t.Status = strings.Join(statuses, " | ")
	details = append(details, fmt.Sprintf("hosts=%d", t.HostCount))
	return t, strings.Join(keys, "|"), strings.Join(details, "|")
}

// status is the one-line summary of one case's IOC row: HIT, clean,
// hunting, queued, refused or error, with the reason where there is one;
// and its key, the same without counts, for the tab's substance.
func status(c store.TabCase) (text, key string) {
	switch {
	case c.HitCount > 0:
		return fmt.Sprintf("HIT: found on %d host(s), %d hit(s)", c.HostCount, c.HitCount), "hit"
	case c.IOC.State == store.StateRefused:
		return "refused: " + c.IOC.Reason, "refused:" + c.IOC.Reason
	case len(c.Parked) > 0:
		return "error: " + c.Parked[0].Reason, "error:" + c.Parked[0].Reason
	case c.IOC.State == store.StateRemoved:
		return "not hunted any more: " + c.IOC.Reason, "removed:" + c.IOC.Reason
	case c.IOC.State == store.StateQueued:
		return "queued for the next hunt", "queued"
	}
	var running *store.TabHunt
	for i := range c.Hunts {
		if h := &c.Hunts[i]; h.Hunt.State == store.HuntRunning || h.Hunt.State == store.HuntPlanned || h.Hunt.State == store.HuntCreated {
			running = h
			break
		}
	}
	// Velociraptor counts a host whose collection failed or timed out as
	// finished: such a hunt is never reported clean.
	// So is a host that could not search everything its artifact applies
	// to it (a disabled plugin, a log it could not read, a client release
	// that lacks a function): "clean" means searched.
	incomplete := func(h *store.TabHunt, rest string) string {
		var parts []string
		if h.Errored > 0 {
			s := fmt.Sprintf("%d of %d host(s) errored or timed out", h.Errored, h.Scheduled)
			if h.FirstError != "" {
				s += " (first: " + h.FirstError + ")"
			}
			parts = append(parts, s)
		}
		if n := len(h.Uncovered); n > 0 {
			parts = append(parts, fmt.Sprintf("%d host(s) could not search everything (first: %s)", n, h.FirstGap()))
		}
		if n := h.Unreported(); n > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d host(s) never reported before the hunt ended", n, h.Scheduled))
		}
		return "incomplete: " + strings.Join(parts, "; ") + "; " + rest
	}
	gapKey := func(h *store.TabHunt) string {
		return fmt.Sprintf("%s|%s|%d", h.FirstError, h.FirstGap(), h.Unreported())
	}
	switch {
	case running == nil && len(c.Hunts) > 0 && c.Hunts[0].EndReason == store.ReasonStoppedByOperator:
		// Stopped before it expired: hosts that had not run it, or would
		// have joined later, were never searched. Not clean.
		last := &c.Hunts[0]
		return fmt.Sprintf("stopped by an operator on %s: no hit on the %d of %d host(s) done; hosts that had not run it were not searched",
			render.Date(last.EndedAt), last.Finished, last.Scheduled), "stopped-by-operator"
	case running == nil && len(c.Hunts) > 0 && c.Hunts[0].Incomplete():
		last := &c.Hunts[0]
		return incomplete(last, fmt.Sprintf("no hit on the others; last hunt ended %s", render.Date(last.EndedAt))), "incomplete:" + gapKey(last)
	case running == nil && len(c.Hunts) > 0:
		return fmt.Sprintf("clean: no hit on %d host(s); last hunt ended %s", c.Hunts[0].Scheduled, render.Date(c.Hunts[0].EndedAt)), "clean"
	case running == nil:
		return "queued for the next hunt", "queued"
	case running.LastError != "" && running.Hunt.State != store.HuntRunning:
		return "error: " + running.LastError, "error:" + running.LastError
	case running.Hunt.State != store.HuntRunning:
		return "hunting: starting the hunt", "starting"
	case running.Incomplete() && running.Finished >= running.Scheduled:
		return incomplete(running, fmt.Sprintf("no hit on the others so far; the hunt stays open for late hosts until %s",
			render.Date(running.ExpiresAt))), "incomplete-so-far:" + gapKey(running)
	case running.Scheduled > 0 && running.Finished >= running.Scheduled:
		return fmt.Sprintf("clean: no hit on %d host(s) so far; the hunt stays open for late hosts until %s",
			running.Scheduled, render.Date(running.ExpiresAt)), "clean-so-far"
	case running.Errored > 0:
		return fmt.Sprintf("hunting: %d of %d host(s) done, %d errored or timed out", running.Finished, running.Scheduled, running.Errored), "hunting-errors"
	default:
		return fmt.Sprintf("hunting: %d of %d host(s) done", running.Finished, running.Scheduled), "hunting"
	}
}

// collectionLine says where a hit's follow-up collection stands ("" :
// none).
func collectionLine(c store.Collection) string {
	flow := ""
	if c.FlowID != "" {
		flow = " (flow " + c.FlowID + ")"
	}
	switch c.State {
	case "":
		return ""
	case store.CollectQueued:
		if c.Reason != "" {
			return "collection queued: " + c.Reason
		}
		return "collection queued"
	case store.CollectHeld:
		return "collection " + c.Reason
	case store.CollectLaunching:
		return "collection starting"
	case store.CollectRunning:
		switch c.FlowState {
		case "WAITING", "":
			return "collection waiting for the client" + flow
		case "UNRESPONSIVE":
			return "collection: the client does not answer" + flow
		}
		return "collection running" + flow
	case store.CollectDone:
		if c.Path == "" {
			return "collected" + flow
		}
		return fmt.Sprintf("collected: SHA-256 %s, %d bytes%s", c.SHA256, c.FileSize, flow)
	}
	return "collection failed: " + c.Reason + flow
}
