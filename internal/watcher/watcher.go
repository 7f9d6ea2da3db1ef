// Package watcher follows running hunts: it reads their progress, streams
// new result rows from a stored cursor (never re-reading what was
// processed, with bounded memory whatever the number of rows), turns rows
// into hits, and ends hunts that expired or were stopped. Recording hits and
// queuing their IRIS writes is one store transaction with the cursor move.
package watcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// Velociraptor is what the watcher reads from one server.
type Velociraptor interface {
	// HuntInfo returns a hunt's state and stats, or ENOTFOUND.
	HuntInfo(ctx context.Context, org, huntID string) (velociraptor.HuntInfo, error)
	// HuntFlowsFrom lists a page of a hunt's flows (at most
	// velociraptor.FlowsPage), in schedule order, from row start.
	HuntFlowsFrom(ctx context.Context, org, huntID string, start int64) ([]velociraptor.Flow, error)
	// FlowResults streams rows of one source of a client's flow from startRow.
	FlowResults(ctx context.Context, org, clientID, flowID, source string, startRow int64, fn func(json.RawMessage) error) error
	// ClientInfo describes a client, or ENOTFOUND.
	ClientInfo(ctx context.Context, org, clientID string) (velociraptor.ClientInfo, error)
	// StopHunt stops a hunt.
	StopHunt(ctx context.Context, org, huntID string) error
}

// Store is the part of the store the watcher uses.
type Store interface {
	RunningHunts(ctx context.Context) ([]store.Hunt, error)
	HuntProgress(ctx context.Context, id int64) (store.Progress, error)
	SetHuntProgress(ctx context.Context, id int64, p store.Progress) (bool, error)
	EndHunt(ctx context.Context, id int64, state string) ([]int64, error)
	EndHuntWithReason(ctx context.Context, id int64, state, reason string) ([]int64, error)
	HuntIOCs(ctx context.Context, huntID int64) ([]store.HuntIOC, error)
	FindClient(ctx context.Context, server, org, id string) (store.Client, error)
	SaveClient(ctx context.Context, c store.Client) error
	RecordHits(ctx context.Context, h store.Hunt, hits []store.HitInput, cur store.FlowCursor, eventPerHost bool) (int, error)
	RecordCoverage(ctx context.Context, huntID int64, clientID, flowID string, cov []store.Coverage) error
	FlowCursors(ctx context.Context, huntID int64) (map[string]store.FlowCursor, error)
	RelaunchPending(ctx context.Context, huntID int64) (bool, error)
	SetFlowStates(ctx context.Context, huntID int64, flows []store.FlowCursor) error
	EnqueueTabs(ctx context.Context, iocIDs []int64) error
}

// Recorder counts what the watcher reads (metrics).
type Recorder interface {
	RowsRead(server string, n int)
	Hits(n int)
}

type noRecorder struct{}

func (noRecorder) RowsRead(string, int) {}
func (noRecorder) Hits(int)             {}

// Watcher reads hunt results.
type Watcher struct {
	Store        Store
	Servers      map[string]Velociraptor
	EventPerHost bool
	// BatchRows is how many rows are processed per store transaction.
	BatchRows int
	Recorder  Recorder
	Logger    *slog.Logger
	Now       func() time.Time

	mu   sync.Mutex
	wake chan struct{}
	// resume is, per hunt, the row of its flow list the next pass lists
	// from when the last one stopped before the end.
	resume map[int64]int64
	// listed is, per hunt, when its flows were last listed.
	listed map[int64]time.Time
}

// pendingEvery is how often a hunt with hosts not done is checked for
// relaunched flows not done, which are then listed (from the first of
// them) although the hunt's stats did not move. A relaunched flow
// (hunt_add relaunch=TRUE, a new flow id not named after the hunt) moves
// the stats of 0.77.2 only when it is added, counted as scheduled and
// finished with no rows; its end moves none (hunt_manager counts only the
// completions of flows named after a hunt). A hunt's own flows move the
// stats when they end: a host that never answers costs no listing.
const pendingEvery = 30 * time.Second

// Report counts what a pass did.
type Report struct {
	Hunts, Rows, Hits, Unmatched, Ended int
	// Gaps counts the coverage rows read that say a source of a host fell
	// short (searched nothing or reported a problem).
	Gaps int
}

func (r *Report) add(o Report) {
	r.Hunts += o.Hunts
	r.Rows += o.Rows
	r.Hits += o.Hits
	r.Unmatched += o.Unmatched
	r.Gaps += o.Gaps
	r.Ended += o.Ended
}

func (w *Watcher) init() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.BatchRows <= 0 {
		w.BatchRows = 1000
	}
	if w.Recorder == nil {
		w.Recorder = noRecorder{}
	}
}

// Wake asks for a pass soon (the cron job and flow completions call it).
func (w *Watcher) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run makes a pass whenever woken, until ctx ends. Failed passes are retried
// with capped backoff; the same error is logged at most every 30s.
func (w *Watcher) Run(ctx context.Context) {
	w.init()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var errs loop.ErrorLog
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry.C:
		}
		rep, err := w.Pass(ctx)
		if ctx.Err() != nil {
			return
		}
		if failures := errs.Report(w.Logger, "watcher pass", err); failures > 0 {
			retry.Reset(loop.Backoff(failures, 5*time.Minute))
		} else if rep.Hits > 0 || rep.Ended > 0 {
			w.Logger.Info("watcher pass", "hunts", rep.Hunts, "rows", rep.Rows, "new_hits", rep.Hits, "ended", rep.Ended)
		}
	}
}

// Pass checks every running hunt once. Each server's hunts are watched in
// a goroutine of their own, so one slow or unreachable server delays only
// its own hunts (each call to it is bounded by its timeout). Tab updates for
// the IOCs whose hunts changed are queued at the end, so each IOC gets at
// most one per pass.
func (w *Watcher) Pass(ctx context.Context) (Report, error) {
	w.init()
	var rep Report
	hunts, err := w.Store.RunningHunts(ctx)
	if err != nil {
		return rep, err
	}
	byServer := map[string][]store.Hunt{}
	for _, h := range hunts {
		byServer[h.Server] = append(byServer[h.Server], h)
	}
	type result struct {
		rep     Report
		touched map[int64]bool
		errs    []error
	}
	results := make(chan result, len(byServer))
	var wg sync.WaitGroup
	for _, list := range byServer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result{touched: map[int64]bool{}}
			for _, h := range list {
				r.rep.Hunts++
				if err := w.watch(ctx, h, r.touched, &r.rep); err != nil {
					if ctx.Err() != nil {
						break
					}
					r.errs = append(r.errs, fmt.Errorf("hunt %d (%s on %s): %w", h.ID, h.VRHuntID, h.Server, err))
				}
			}
			results <- r
		}()
	}
	wg.Wait()
	close(results)
	touched := map[int64]bool{}
	var errs []error
	for r := range results {
		rep.add(r.rep)
		for id := range r.touched {
			touched[id] = true
		}
		errs = append(errs, r.errs...)
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	ids := make([]int64, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	if err := w.Store.EnqueueTabs(ctx, ids); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

func (w *Watcher) watch(ctx context.Context, h store.Hunt, touched map[int64]bool, rep *Report) error {
	vr, ok := w.Servers[h.Server]
	if !ok {
		return fmt.Errorf("server %q is not configured", h.Server)
	}
	covered, err := w.Store.HuntIOCs(ctx, h.ID)
	if err != nil {
		return err
	}
	touch := func() {
		for _, c := range covered {
			touched[c.IOCID] = true
		}
	}
	live := 0
	for _, c := range covered {
		if c.Live {
			live++
		}
	}
	if live == 0 && len(covered) > 0 {
		// Every IOC it hunts was removed, changed or its case closed.
		if err := vr.StopHunt(ctx, h.Org, h.VRHuntID); err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
			return err
		}
		if _, err := w.Store.EndHuntWithReason(ctx, h.ID, store.HuntStopped, "no IOC of it is hunted any more (case closed, IOC deleted or changed)"); err != nil {
			return err
		}
		w.Logger.Info("hunt stopped: nothing left to hunt", "hunt_id", h.VRHuntID, "server", h.Server)
		rep.Ended++
		w.forget(h.ID)
		touch()
		return nil
	}
	info, err := vr.HuntInfo(ctx, h.Org, h.VRHuntID)
	if ioc.ErrorCode(err) == ioc.ENOTFOUND {
		// Deleted in Velociraptor: nothing more will come.
		if _, err := w.Store.EndHunt(ctx, h.ID, store.HuntStopped); err != nil {
			return err
		}
		rep.Ended++
		w.forget(h.ID)
		touch()
		return nil
	} else if err != nil {
		return err
	}
	prog, err := w.Store.HuntProgress(ctx, h.ID)
	if err != nil {
		return err
	}
	next := store.Progress{VRState: info.State, Scheduled: prog.Scheduled, Finished: prog.Finished, Errored: prog.Errored,
		TotalRows: info.Rows, Stats: statsKey(info)}
	w.mu.Lock()
	_, unfinished := w.resume[h.ID] // the last listing stopped before the end
	checkRelaunch := prog.Finished < prog.Scheduled && w.Now().Sub(w.listed[h.ID]) >= pendingEvery
	w.mu.Unlock()
	moved := next.Stats != prog.Stats || info.Rows > prog.RowsRead || unfinished
	relaunch := false
	if !moved && checkRelaunch {
		w.mu.Lock()
		if w.listed == nil {
			w.listed = map[int64]time.Time{}
		}
		w.listed[h.ID] = w.Now()
		w.mu.Unlock()
		if relaunch, err = w.Store.RelaunchPending(ctx, h.ID); err != nil {
			return err
		}
	}
	if moved || relaunch {
		gaps := rep.Gaps
		hosts, fresh, err := w.readFlows(ctx, vr, h, info, covered, !moved, rep)
		if err != nil {
			return err
		}
		if fresh > 0 || rep.Gaps > gaps {
			touch()
		}
		next.Scheduled, next.Finished, next.Errored = info.Scheduled, info.Finished, info.WithErrors
		if hosts.Scheduled > 0 {
			// Velociraptor's counters count flows; a relaunched host has
			// several, and its newest says where it stands.
			next.Scheduled, next.Finished, next.Errored = hosts.Scheduled, hosts.Finished, hosts.Errored
		}
	}
	if _, err := w.Store.SetHuntProgress(ctx, h.ID, next); err != nil {
		return err
	}
	if substantive(prog, next) {
		touch()
	}
	end := ""
	switch {
	case info.State == "STOPPED" || info.State == "ARCHIVED" || info.State == "DELETED":
		end = store.HuntStopped
	case w.Now().After(h.ExpiresAt):
		// velohunt set the hunt's expiry itself; its own record is the clock.
		end = store.HuntExpired
	}
	w.mu.Lock()
	_, behind := w.resume[h.ID]
	w.mu.Unlock()
	if end != "" && behind {
		// Flows past this pass's pages are still to be read: the hunt
		// ends once they are, or their hits would be lost and the tab
		// would read clean.
		w.Logger.Debug("hunt ended in Velociraptor; reading its last flows first", "hunt_id", h.VRHuntID, "server", h.Server)
		end = ""
	}
	if end != "" {
		if _, err := w.Store.EndHunt(ctx, h.ID, end); err != nil {
			return err
		}
		rep.Ended++
		w.forget(h.ID)
		touch()
	}
	return nil
}

// forget drops what the watcher keeps in memory of an ended hunt.
func (w *Watcher) forget(huntID int64) {
	w.mu.Lock()
	delete(w.resume, huntID)
	delete(w.listed, huntID)
	w.mu.Unlock()
}

// statsKey is what of a hunt's stats, when it moves, asks for its flows to
// be listed again.
func statsKey(i velociraptor.HuntInfo) string {
	return fmt.Sprintf("%s/%d/%d/%d/%d", i.State, i.Scheduled, i.Finished, i.WithErrors, i.Rows)
}

// substantive reports whether a change of a hunt's progress changes what
// the tabs of its IOCs say: the hunt's state in Velociraptor, every
// scheduled host done or not, errors or none. Counts alone do not: each tab
// update is an IOC update that fires every IRIS module hooked on it.
func substantive(old, cur store.Progress) bool {
	done := func(p store.Progress) bool { return p.Scheduled > 0 && p.Finished >= p.Scheduled }
	return old.VRState != cur.VRState || done(old) != done(cur) || (old.Errored > 0) != (cur.Errored > 0)
}

// row is the part of a result row the watcher reads. velohunt's artifacts
// return IOC, Source, Evidence and EventTime; other artifacts are read on a
// best-effort basis (OSPath, FullPath, Name...). A flow's rows carry only
// the artifact's columns (hunt-wide reads add ClientId, FlowId, _OrgId and
// Fqdn): the flow names the client.
type row struct {
	IOC       any `json:"IOC"`
	Source    any `json:"Source"`
	Evidence  any `json:"Evidence"`
	EventTime any `json:"EventTime"`
	OSPath    any `json:"OSPath"`
	FullPath  any `json:"FullPath"`
	Name      any `json:"Name"`
	Timestamp any `json:"Timestamp"`
	// Coverage is set on the last rows of velohunt's artifacts: what one
	// source searched. Such a row is never a hit.
	Coverage *struct {
		Source   any `json:"Source"`
		Unit     any `json:"Unit"`
		Searched any `json:"Searched"`
		Problem  any `json:"Problem"`
	} `json:"Coverage"`
}

// coverageSources are the sources velohunt's artifacts report coverage
// for. Rows come from endpoints: any other name is stored as "other", so a
// compromised endpoint cannot grow the store or the metrics' series.
var coverageSources = map[string]bool{"files": true, "processes": true, "connections": true, "dns_cache": true,
	"sysmon_network": true, "hosts_file": true, "sysmon_dns": true, "file_names": true, "file_paths": true}

func coverageSource(s string) string {
	if coverageSources[s] {
		return s
	}
	return "other"
}

// maxRowBytes bounds the raw row kept for the timeline event.
const maxRowBytes = 64 << 10

// hostCounts counts a hunt's hosts by their newest flow.
type hostCounts struct{ Scheduled, Finished, Errored int64 }

// maxFlowPages bounds the pages of flows listed for one hunt in a pass;
// the next pass goes on from where this one stopped.
const maxFlowPages = 10

// readFlows reads the new rows of a hunt, flow by flow: Velociraptor 0.77
// ignores start_row when results are read for a whole hunt, and honours it
// for one flow. A flow is read from its own cursor when its state or row
// count moved since the last read, so the rows read in a pass are the new
// rows, whatever the hunt's size. A client relaunched in the hunt has a new
// flow, with a new id and its rows from row 0: it is read from a cursor of
// its own. A flow's state is recorded only after its rows were read: a
// failed read is tried again.
//
// Listing flows costs the server a load of each flow's details (0.77.2's
// hunt_flows() ignores its limit), so a pass lists, a page at a time, only
// from the first flow that can have moved: the first one not done, else
// the first one not seen; at most maxFlowPages pages, going on next pass.
// It returns the hosts counted by their newest flow, over every flow seen.
func (w *Watcher) readFlows(ctx context.Context, vr Velociraptor, h store.Hunt, info velociraptor.HuntInfo,
	covered []store.HuntIOC, relaunchOnly bool, rep *Report) (hostCounts, int, error) {
	var hosts hostCounts
	known, err := w.Store.FlowCursors(ctx, h.ID)
	if err != nil {
		return hosts, 0, err
	}
	source := h.Artifact
	if len(info.ArtifactSources) > 0 {
		source = info.ArtifactSources[0]
		if len(info.ArtifactSources) > 1 {
			w.Logger.Warn("hunt artifact has several sources; reading the first", "hunt_id", h.VRHuntID, "source", source)
		}
	}
	m := newMatcher(covered)
	fresh := 0
	var states []store.FlowCursor
	defer func() {
		if err := w.Store.SetFlowStates(ctx, h.ID, states); err != nil {
			w.Logger.Warn("record flow states", "hunt_id", h.VRHuntID, "error", err)
		}
	}()
	start := w.listFrom(h.ID, known, relaunchOnly)
	// Flows before the listing with rows not read yet (a read that failed,
	// or was undone by a crash) are read from what is known of them.
	for key, k := range known {
		if k.Index >= 0 && k.Index < start && k.RowsRead < k.TotalRows {
			before := rep.Rows
			n, err := w.readResults(ctx, vr, h, m, source, k, rep)
			fresh += n
			if err != nil {
				return hosts, fresh, err
			}
			k.RowsRead += int64(rep.Rows - before)
			if done := k.State == "FINISHED" || k.State == "ERROR"; done && k.RowsRead < k.TotalRows {
				// Its count covers rows this source does not give (another
				// source of the artifact): read to the end, not again.
				k.TotalRows = k.RowsRead
				states = append(states, k)
			}
			known[key] = k
		}
	}
	for page := 0; page < maxFlowPages; page++ {
		flows, err := vr.HuntFlowsFrom(ctx, h.Org, h.VRHuntID, start)
		if err != nil {
			return hosts, fresh, fmt.Errorf("hunt flows: %w", err)
		}
		for _, f := range flows {
			cur := store.FlowCursor{ClientID: f.ClientID, FlowID: f.FlowID, State: f.State, Status: f.Status, TotalRows: f.Rows,
				CreatedUS: f.Created, Index: f.Index}
			k, seen := known[cur.Key()]
			cur.RowsRead = k.RowsRead
			known[cur.Key()] = cur
			if seen && k.State == f.State && k.Status == f.Status && k.TotalRows == f.Rows && k.CreatedUS == f.Created &&
				k.Index == f.Index && k.RowsRead >= f.Rows {
				continue
			}
			if f.Rows > k.RowsRead {
				n, err := w.readResults(ctx, vr, h, m, source, cur, rep)
				fresh += n
				if err != nil {
					return hosts, fresh, err
				}
			}
			states = append(states, cur)
		}
		start += int64(len(flows))
		if len(flows) < velociraptor.FlowsPage {
			start = -1 // the end of the list: next time, from what can move
			break
		}
	}
	w.mu.Lock()
	if w.resume == nil {
		w.resume = map[int64]int64{}
	}
	if start < 0 {
		delete(w.resume, h.ID)
	} else {
		w.resume[h.ID] = start
	}
	w.mu.Unlock()
	newest := map[string]store.FlowCursor{}
	for _, f := range known {
		if n, ok := newest[f.ClientID]; !ok || f.CreatedUS > n.CreatedUS || (f.CreatedUS == n.CreatedUS && f.Index > n.Index) {
			newest[f.ClientID] = f
		}
	}
	for _, f := range newest {
		hosts.Scheduled++
		if f.State == "FINISHED" || f.State == "ERROR" {
			hosts.Finished++
		}
		if f.State == "ERROR" {
			hosts.Errored++
		}
	}
	return hosts, fresh, nil
}

// listFrom is the row of a hunt's flow list a pass lists from: where the
// last pass stopped, else the first flow not done, else the first one not
// seen (flows are listed in schedule order: new ones come last). A flow
// whose row is not known (recorded before rows were) lists all.
func (w *Watcher) listFrom(huntID int64, known map[string]store.FlowCursor, relaunchOnly bool) int64 {
	w.mu.Lock()
	r, ok := w.resume[huntID]
	w.mu.Unlock()
	if ok {
		return r
	}
	var next int64
	first := int64(-1)
	for _, f := range known {
		if f.Index < 0 {
			return 0
		}
		next = max(next, f.Index+1)
		if f.State != "FINISHED" && f.State != "ERROR" && (first < 0 || f.Index < first) &&
			(!relaunchOnly || !strings.HasSuffix(f.FlowID, ".H")) {
			first = f.Index
		}
	}
	if first >= 0 {
		return first
	}
	return next
}

// matcher finds the IOC rows of a hunt that a result row's IOC column
// names; it is made once per hunt and pass.
type matcher struct {
	byValue map[string][]store.HuntIOC
	// single: every IOC of the hunt has one value, so a row naming none
	// (another artifact) is that value's.
	single  bool
	covered []store.HuntIOC
}

func newMatcher(covered []store.HuntIOC) matcher {
	m := matcher{byValue: map[string][]store.HuntIOC{}, covered: covered}
	for _, c := range covered {
		if !c.Live {
			continue // its rows no longer belong to it
		}
		m.byValue[c.HuntValue] = append(m.byValue[c.HuntValue], c)
		m.byValue[strings.ToLower(c.HuntValue)] = append(m.byValue[strings.ToLower(c.HuntValue)], c)
	}
	m.single = len(m.byValue) > 0 && allSameValue(covered)
	return m
}

// targets returns the IOC rows a row's IOC value belongs to.
func (m matcher) targets(value string) []store.HuntIOC {
	t := m.byValue[value]
	if t == nil {
		t = m.byValue[strings.ToLower(value)]
	}
	if t == nil && m.single {
		t = m.covered[:1]
	}
	return t
}

// readResults reads one flow's rows from its cursor, records their hits
// and moves the cursor, in batches.
func (w *Watcher) readResults(ctx context.Context, vr Velociraptor, h store.Hunt, m matcher, source string,
	cur store.FlowCursor, rep *Report) (int, error) {
	start := cur.RowsRead
	clientKnown := false // looked up once per flow, on its first hit
	var batch []store.HitInput
	var coverage []store.Coverage
	n, fresh := start, 0
	counted := 0
	flush := func() error {
		cur.RowsRead = n
		// Coverage first: read again after a crash, it is stored again.
		if err := w.Store.RecordCoverage(ctx, h.ID, cur.ClientID, cur.FlowID, coverage); err != nil {
			return err
		}
		coverage = coverage[:0]
		k, err := w.Store.RecordHits(ctx, h, batch, cur, w.EventPerHost)
		fresh += k
		rep.Hits += k
		w.Recorder.Hits(k)
		w.Recorder.RowsRead(h.Server, int(n-start)-counted)
		counted = int(n - start)
		batch = batch[:0]
		return err
	}
	sinceFlush := 0
	err := vr.FlowResults(ctx, h.Org, cur.ClientID, cur.FlowID, source, start, func(raw json.RawMessage) error {
		n++
		sinceFlush++
		rep.Rows++
		var r row
		if err := json.Unmarshal(raw, &r); err != nil {
			rep.Unmatched++
			return nil
		}
		if c := r.Coverage; c != nil {
			cov := store.Coverage{Source: coverageSource(str(c.Source)), Unit: clipBytes(str(c.Unit), 64), Problem: clipBytes(str(c.Problem), 300)}
			cov.Searched, _ = strconv.ParseInt(str(c.Searched), 10, 64)
			if cov.Gap() != "" {
				rep.Gaps++
			}
			if cov.Gap() != "" && !clientKnown {
				// The host is named where it fell short.
				if err := w.ensureClient(ctx, vr, h, cur.ClientID); err != nil {
					return err
				}
				clientKnown = true
			}
			coverage = append(coverage, cov)
			return nil
		}
		targets := m.targets(str(r.IOC))
		if len(targets) == 0 {
			rep.Unmatched++
		} else {
			if !clientKnown {
				if err := w.ensureClient(ctx, vr, h, cur.ClientID); err != nil {
					return err
				}
				clientKnown = true
			}
			evidence := firstString(r.Evidence, r.OSPath, r.FullPath, r.Name)
			src := str(r.Source)
			if src == "" {
				src = h.Artifact
			}
			key := sha256.Sum256([]byte(src + "\x00" + evidence))
			rowBytes := []byte(raw)
			if len(rowBytes) > maxRowBytes {
				rowBytes = rowBytes[:maxRowBytes]
			}
			seen := map[int64]bool{}
			for _, t := range targets {
				if seen[t.IOCID] {
					continue
				}
				seen[t.IOCID] = true
				batch = append(batch, store.HitInput{IOCID: t.IOCID, CaseID: t.CaseID, ClientID: cur.ClientID,
					EvidenceKey: hex.EncodeToString(key[:]), Evidence: clipBytes(evidence, 4096), Source: clipBytes(src, 64),
					EventTime: parseTime(firstAny(r.EventTime, r.Timestamp)), Row: append([]byte(nil), rowBytes...)})
			}
		}
		if len(batch) >= w.BatchRows || sinceFlush >= 10*w.BatchRows {
			sinceFlush = 0
			return flush()
		}
		return nil
	})
	if err != nil {
		return fresh, err
	}
	if len(batch) > 0 || len(coverage) > 0 || n > start {
		if err := flush(); err != nil {
			return fresh, err
		}
	}
	return fresh, nil
}

// ensureClient caches a client's description, looked up once.
func (w *Watcher) ensureClient(ctx context.Context, vr Velociraptor, h store.Hunt, id string) error {
	if _, err := w.Store.FindClient(ctx, h.Server, h.Org, id); err == nil {
		return nil
	} else if ioc.ErrorCode(err) != ioc.ENOTFOUND {
		return err
	}
	ci, err := vr.ClientInfo(ctx, h.Org, id)
	if ioc.ErrorCode(err) == ioc.ENOTFOUND {
		ci = velociraptor.ClientInfo{ClientID: id}
	} else if err != nil {
		return fmt.Errorf("client info %s: %w", id, err)
	}
	return w.Store.SaveClient(ctx, store.Client{Server: h.Server, Org: h.Org, ClientID: id, Hostname: ci.Hostname,
		FQDN: ci.FQDN, OS: ci.OS, Release: ci.Release, LastIP: ci.LastIP})
}

func allSameValue(c []store.HuntIOC) bool {
	for _, x := range c[1:] {
		if x.HuntValue != c[0].HuntValue {
			return false
		}
	}
	return true
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func firstString(vs ...any) string {
	for _, v := range vs {
		if s := str(v); s != "" {
			return s
		}
	}
	return ""
}

func firstAny(vs ...any) any {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// parseTime reads an evidence time: RFC 3339 text, or epoch seconds,
// milliseconds or microseconds. Implausible times count as unknown.
func parseTime(v any) time.Time {
	var t time.Time
	switch x := v.(type) {
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05"} {
			if p, err := time.Parse(layout, x); err == nil {
				t = p
				break
			}
		}
	case float64:
		switch {
		case x > 1e15:
			t = time.UnixMicro(int64(x))
		case x > 1e12:
			t = time.UnixMilli(int64(x))
		case x > 0:
			t = time.Unix(int64(x), 0)
		}
	}
	if t.Year() < 1990 || t.After(time.Now().Add(48*time.Hour)) {
		return time.Time{}
	}
	return t.UTC()
}
