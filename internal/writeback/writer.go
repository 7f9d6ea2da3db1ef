// Package writeback sends velohunt's findings to IRIS from the persisted
// outbox: the matching host as an asset of the case linked to the IOC, a
// timeline event per hit, and the "Velociraptor hunt" tab of each IOC. Each
// write is retried with capped exponential backoff (honouring Retry-After)
// while IRIS fails in a retryable way, and parked with IRIS's reason when it
// refuses. Objects velohunt creates carry a marker tag; a write retried
// after an attempt whose answer was lost looks for its object first, so a
// crash never makes a duplicate.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// IRIS is what the writer calls.
type IRIS interface {
	ListAssets(ctx context.Context, cid int64) ([]iris.Asset, error)
	Asset(ctx context.Context, cid, id int64) (iris.AssetDetail, error)
	AddAsset(ctx context.Context, cid int64, a iris.NewAsset) (int64, error)
	SetAssetIOCLinks(ctx context.Context, cid int64, a iris.AssetDetail, links []int64) error
	ListEvents(ctx context.Context, cid int64) ([]iris.EventSummary, error)
	AddEvent(ctx context.Context, cid int64, e iris.NewEvent) (int64, error)
	UpdateIOCAttributes(ctx context.Context, cid, iocID int64, tab string, fields map[string]string) error
	// IOCAttributes reads an IOC's tab (field → value).
	IOCAttributes(ctx context.Context, cid, iocID int64, tab string) (map[string]string, error)
	AddEvidence(ctx context.Context, cid int64, e iris.NewEvidence) (iris.Evidence, error)
	ListEvidences(ctx context.Context, cid int64) ([]iris.Evidence, error)
	ListDatastore(ctx context.Context, cid int64) (iris.Datastore, error)
	AddDatastoreFolder(ctx context.Context, cid, parent int64, name string) (int64, error)
	AddDatastoreFile(ctx context.Context, cid, folder int64, f iris.NewDatastoreFile) (iris.DatastoreFile, error)
}

// Store is the part of the store the writer uses.
type Store interface {
	DueWrites(ctx context.Context, limit int) ([]store.Write, error)
	BeginWrite(ctx context.Context, id int64) error
	WriteDone(ctx context.Context, id, irisID int64) error
	WriteRetry(ctx context.Context, id int64, msg string, next time.Time) error
	WritePark(ctx context.Context, id int64, reason string) error
	WriteDefer(ctx context.Context, id int64, next time.Time) error
	AssetID(ctx context.Context, caseID int64, server, clientID string) (int64, error)
	SetAssetID(ctx context.Context, caseID int64, server, clientID string, assetID int64) error
	FindHitDetail(ctx context.Context, hitID int64) (store.HitDetail, error)
	HitCollection(ctx context.Context, hitID int64) (store.Collection, error)
	FindTabData(ctx context.Context, iocID int64, maxHits int) (store.TabData, error)
	SetTabWritten(ctx context.Context, irisID int64, fingerprint, status string, at time.Time) error
	CasesWithAttemptedOverwrites(ctx context.Context) ([]int64, error)
	InstanceID(ctx context.Context) (string, error)
	IOCsWithAttemptedTabs(ctx context.Context) ([]int64, error)
}

// Refs are IRIS reference ids, resolved by name at start-up.
type Refs struct {
	AssetTypes         map[string]int64 // OS key (windows, windows_server, linux, darwin, default) → asset type id
	AnalysisStatusID   int64
	CompromiseStatusID int64
	EventCategoryID    int64
	// EvidenceTypeID is the type of the evidence records of collections.
	EvidenceTypeID int64
}

// Recorder counts write outcomes (metrics).
type Recorder interface {
	Write(kind, result string)
}

type noRecorder struct{}

func (noRecorder) Write(string, string) {}

// Writer drains the outbox.
type Writer struct {
	IRIS         IRIS
	Store        Store
	Render       *render.Renderer
	Refs         Refs
	TabName      string
	EventColor   string
	MaxHitsOnTab int
	// TabMinInterval is the least time between two updates of one IOC's
	// tab (0: no minimum; the substance check still applies).
	TabMinInterval time.Duration
	// GUIURL returns the Velociraptor GUI link of a hunt, or "".
	GUIURL func(server, org, huntID string) string
	// FlowURL returns the Velociraptor GUI link of a client's flow, or "".
	FlowURL func(server, org, clientID, flowID string) string
	// Repair pushes the tab onto IOCs whose custom attributes are null (an
	// administrator call); nil when no admin key is configured.
	Repair func(ctx context.Context) error
	// Resolve, when set, fills Refs before the first write (IRIS may be
	// down at start-up); it is called again until it succeeds.
	Resolve func(ctx context.Context) (Refs, error)
	// DatastoreMaxBytes, above 0, also stores a copy of each collected
	// file of at most this size in its case's IRIS datastore, read from
	// Files (by server name).
	DatastoreMaxBytes int64
	Files             map[string]Files
	Logger            *slog.Logger
	Now               func() time.Time
	// MinBackoff and MaxBackoff bound the retry delay (defaults 2s, 10m).
	MinBackoff, MaxBackoff time.Duration
	// Settle is the least delay after a write whose request may still be
	// running in IRIS (timeout, dropped connection, 504), so that the retry
	// finds the object instead of racing it (default 3m: IRIS's gunicorn
	// kills requests after 180s).
	Settle   time.Duration
	Recorder Recorder
	// Concurrency is the most IRIS requests in flight (default 4); the
	// writer lowers it while IRIS shows strain (see throttle).
	Concurrency int

	throttle *throttle
	locks    keyedLocks
	mu       sync.Mutex
	wake     chan struct{}
	// repaired holds the IRIS IOCs whose null attributes a template push
	// was made for; lastRepair is the time of the last push.
	repaired   map[int64]bool
	lastRepair time.Time
	// pushes counts the template pushes made; repairedBy holds, per IRIS
	// IOC, the pushes its tab was written after; repairing is closed when
	// the running push is done (nil when none runs).
	pushes     int
	repairedBy map[int64]int
	repairing  chan struct{}
	resolved   bool
	started    bool
	// instance is this velohunt's instance id, written on every tab.
	instance string
	// hold postpones overwriting writes (asset link updates, tab updates)
	// to an object while an earlier request to it may still be running in
	// IRIS: IRIS replaces all links on update, so a late request could undo
	// a newer one. Keys: "case:N" (at start-up), "asset:N" (IRIS asset),
	// "ioc:N" (IRIS IOC: one tab, whatever the case written through).
	hold map[string]time.Time
}

func (w *Writer) init() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
		w.hold = map[string]time.Time{}
		w.repaired = map[int64]bool{}
		w.repairedBy = map[int64]int{}
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.MaxHitsOnTab <= 0 {
		w.MaxHitsOnTab = 50
	}
	if w.MinBackoff <= 0 {
		w.MinBackoff = 2 * time.Second
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = 10 * time.Minute
	}
	if w.Settle <= 0 {
		w.Settle = 3 * time.Minute
	}
	if w.Recorder == nil {
		w.Recorder = noRecorder{}
	}
	if w.throttle == nil {
		n := w.Concurrency
		if n <= 0 {
			n = DefaultConcurrency
		}
		w.throttle = newThrottle(n, w.MinBackoff, w.MaxBackoff)
	}
}

// DefaultConcurrency is the default bound on IRIS requests in flight: a
// stock IRIS (one gunicorn eventlet worker) serves about 1.5 times more
// writes to four clients than to one (BENCHMARKS.md, issue #11).
const DefaultConcurrency = 4

// ConcurrencyInUse returns the current bound on IRIS requests in flight and
// how many are in flight.
func (w *Writer) ConcurrencyInUse() (limit, inflight int) {
	w.init()
	return w.throttle.state()
}

// api is the IRIS client with every request metered by the throttle.
func (w *Writer) api() IRIS { return metered{api: w.IRIS, t: w.throttle} }

// Wake asks the loop to send soon.
func (w *Writer) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run drains the outbox whenever woken and every few seconds, until ctx ends.
func (w *Writer) Run(ctx context.Context) {
	w.init()
	loop.Every(ctx, 2*time.Second, w.wake, w.Logger, "writeback", func(ctx context.Context) error {
		_, err := w.Flush(ctx)
		return err
	})
}

// Flush sends every due write and returns how many were done. IRIS errors
// are recorded on the writes; only store errors are returned.
func (w *Writer) Flush(ctx context.Context) (int, error) {
	w.init()
	w.mu.Lock()
	resolved := w.resolved || w.Resolve == nil
	w.mu.Unlock()
	if !resolved {
		refs, err := w.Resolve(ctx)
		if err != nil {
			return 0, fmt.Errorf("resolve IRIS reference data: %w", err)
		}
		w.mu.Lock()
		w.Refs, w.resolved = refs, true
		w.mu.Unlock()
	}
	if !w.started {
		cases, err := w.Store.CasesWithAttemptedOverwrites(ctx)
		if err != nil {
			return 0, err
		}
		instance, err := w.Store.InstanceID(ctx)
		if err != nil {
			return 0, err
		}
		tabs, err := w.Store.IOCsWithAttemptedTabs(ctx)
		if err != nil {
			return 0, err
		}
		w.mu.Lock()
		w.instance = instance
		for _, id := range tabs {
			w.hold[fmt.Sprintf("ioc:%d", id)] = w.Now().Add(w.Settle)
		}
		for _, c := range cases {
			w.hold[fmt.Sprintf("case:%d", c)] = w.Now().Add(w.Settle)
		}
		w.started = true
		w.mu.Unlock()
	}
	done := 0
	for {
		due, err := w.Store.DueWrites(ctx, 500)
		if err != nil || len(due) == 0 {
			return done, err
		}
		n, err := w.sendBatch(ctx, due)
		done += n
		if err != nil || n == 0 {
			return done, err
		}
	}
}

// sendBatch sends a batch of due writes, with up to the throttle's bound in
// flight, and returns how many were done. Asset writes of one host are
// sent together (one asset with all its IOC links), tab writes of one IRIS
// IOC one after another, and events after every asset of the batch: an
// event links to its host's asset.
func (w *Writer) sendBatch(ctx context.Context, due []store.Write) (int, error) {
	c := &batchCache{events: map[int64]map[string]int64{}, assets: map[int64][]iris.Asset{}}
	var groups [][]store.Write // asset writes by host, tab writes by IRIS IOC
	byKey := map[string]int{}
	var events []store.Write
	for _, wr := range due {
		var key string
		switch wr.Kind {
		case "asset":
			key = "asset:" + wr.Host()
		case "tab":
			key = fmt.Sprintf("tab:%d", wr.IRISIOC)
		default:
			events = append(events, wr)
			continue
		}
		if i, ok := byKey[key]; ok {
			groups[i] = append(groups[i], wr)
			continue
		}
		byKey[key] = len(groups)
		groups = append(groups, []store.Write{wr})
	}
	done, err := w.each(ctx, len(groups), func(ctx context.Context, i int) (int, error) {
		if groups[i][0].Kind == "asset" {
			return w.sendAssets(ctx, c, groups[i])
		}
		n := 0
		for _, wr := range groups[i] {
			ok, err := w.send(ctx, c, wr)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		return n, nil
	})
	if err != nil {
		return done, err
	}
	k, err := w.each(ctx, len(events), func(ctx context.Context, i int) (int, error) {
		ok, err := w.send(ctx, c, events[i])
		if ok {
			return 1, err
		}
		return 0, err
	})
	return done + k, err
}

// each runs n jobs, each holding one of the throttle's slots, and returns
// the sum of their counts and the first error (which stops the rest).
func (w *Writer) each(ctx context.Context, n int, job func(ctx context.Context, i int) (int, error)) (int, error) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	var first error
	for i := range n {
		if err := w.throttle.acquire(jctx); err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.throttle.release()
			k, err := job(jctx, i)
			mu.Lock()
			defer mu.Unlock()
			done += k
			if err != nil && first == nil {
				first = err
				cancel()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return done, first
}

// batchCache holds IRIS lists read while handling one batch of writes, so
// that retried writes of the same case share one list request. A batch
// handles each write once, and a write whose answer was lost is retried in
// a later batch, with fresh lists.
type batchCache struct {
	mu     sync.Mutex
	events map[int64]map[string]int64 // case → marker tag → event id
	assets map[int64][]iris.Asset     // case → assets
}

func (w *Writer) heldUntil(key string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hold[key]
}

func (w *Writer) setHold(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hold[key] = w.Now().Add(w.Settle)
}

// heldError postpones a write until an earlier request may have finished.
type heldError struct{ until time.Time }

func (e *heldError) Error() string { return "held until " + e.until.Format(time.RFC3339) }

// errDefer postpones a write without counting a failure.
var errDefer = errors.New("waiting for another write")

// send performs one tab or event write and records the outcome. It
// reports whether the write is done.
func (w *Writer) send(ctx context.Context, c *batchCache, wr store.Write) (bool, error) {
	var tab *preparedTab
	if wr.Kind == "tab" {
		until := w.heldUntil(fmt.Sprintf("case:%d", wr.CaseID))
		if t := w.heldUntil(fmt.Sprintf("ioc:%d", wr.IRISIOC)); t.After(until) {
			until = t
		}
		if w.Now().Before(until) {
			return false, w.Store.WriteDefer(ctx, wr.ID, until)
		}
		var err error
		switch tab, until, err = w.prepareTab(ctx, wr); {
		case errors.Is(err, errUnchanged):
			w.Recorder.Write(wr.Kind, "unchanged")
			return true, w.Store.WriteDone(ctx, wr.ID, 0)
		case missing(err):
			return w.drop(ctx, wr, err)
		case err != nil:
			return false, err
		case tab == nil:
			return false, w.Store.WriteDefer(ctx, wr.ID, until)
		}
	}
	if tab != nil && tab.d.Fingerprint == "" {
		// The first write of this tab by this velohunt: not over another's.
		if done, err := w.foreignTab(ctx, wr, tab); done || err != nil {
			return false, err
		}
	}
	if err := w.Store.BeginWrite(ctx, wr.ID); err != nil {
		return false, err
	}
	var irisID int64
	var err error
	switch wr.Kind {
	case "event":
		irisID, err = w.event(ctx, c, wr)
	case "tab":
		err = w.tab(ctx, wr, tab)
	case "evidence":
		irisID, err = w.evidence(ctx, wr)
	case "collected":
		irisID, err = w.collected(ctx, c, wr)
	default:
		err = fmt.Errorf("unknown write kind %q", wr.Kind)
	}
	return w.finish(ctx, wr, irisID, err)
}

// foreignTab reads an IOC's tab before velohunt first writes it, and parks
// the write when another velohunt instance wrote the tab: one velohunt per
// IRIS (README says how to move an IRIS to a new one). It reports whether
// the write was parked. A tab whose writer is not named (never written, or
// by a velohunt before instances were named) is written.
func (w *Writer) foreignTab(ctx context.Context, wr store.Write, p *preparedTab) (bool, error) {
	attrs, err := w.api().IOCAttributes(ctx, tabCase(p.d, wr.CaseID), p.d.IRISID, w.TabName)
	if err != nil {
		if iris.IsRetryable(err) {
			_, err := w.finish(ctx, wr, 0, err)
			return true, err
		}
		return false, nil // the write itself meets the same refusal, and handles it
	}
	other := render.TabInstance(attrs[render.FieldUpdated])
	if other == "" || other == w.instance {
		return false, nil
	}
	reason := fmt.Sprintf("%s (%s; this one is %s): one velohunt per IRIS, see README \"Moving an IRIS to a new velohunt\"",
		store.ReasonForeignTab, other, w.instance)
	w.Recorder.Write(wr.Kind, "foreign")
	w.Logger.Warn("tab not written: another velohunt instance writes this IRIS", "ioc_id", p.d.IRISID, "other_instance", other,
		"instance", w.instance)
	return true, w.Store.WritePark(ctx, wr.ID, reason)
}

// finish records the outcome of a write's attempt. It reports whether the
// write is done.
func (w *Writer) finish(ctx context.Context, wr store.Write, irisID int64, err error) (bool, error) {
	var held *heldError
	switch {
	case err == nil:
		w.Recorder.Write(wr.Kind, "done")
		return true, w.Store.WriteDone(ctx, wr.ID, irisID)
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.As(err, &held):
		return false, w.Store.WriteDefer(ctx, wr.ID, held.until)
	case errors.Is(err, errDefer):
		return false, w.Store.WriteDefer(ctx, wr.ID, w.Now().Add(max(w.MinBackoff, time.Second)))
	case errors.Is(err, errStale):
		// Written, but to be written again with what changed; not counted
		// as progress, so that a Flush never loops on one tab.
		w.Recorder.Write(wr.Kind, "done")
		return false, w.Store.WriteDefer(ctx, wr.ID, w.Now())
	case iris.IsRetryable(err):
		w.Recorder.Write(wr.Kind, "retry")
		d := min(w.MinBackoff<<min(wr.Attempts, 12), w.MaxBackoff)
		if ra := iris.RetryAfter(err); ra > d {
			d = min(ra, time.Hour)
		}
		if iris.AnswerMaybeLost(err) {
			d = max(d, w.Settle)
			switch {
			case wr.Kind == "asset" && irisID != 0:
				w.setHold(fmt.Sprintf("asset:%d", irisID))
			case wr.Kind == "tab":
				w.setHold(fmt.Sprintf("ioc:%d", wr.IRISIOC))
			}
		}
		return false, w.Store.WriteRetry(ctx, wr.ID, err.Error(), w.Now().Add(d))
	case missing(err):
		return w.drop(ctx, wr, err)
	default:
		w.Recorder.Write(wr.Kind, "parked")
		w.Logger.Warn("IRIS refused a write; parked", "write", wr.ID, "kind", wr.Kind, "case_id", wr.CaseID, "error", err)
		return false, w.Store.WritePark(ctx, wr.ID, err.Error())
	}
}

// missing reports an error saying that the hit or IOC row of a write is
// gone from the store: there is nothing to write.
func missing(err error) bool { return ioc.ErrorCode(err) == ioc.ENOTFOUND && !isIRIS(err) }

// drop records a write of a missing object as done.
func (w *Writer) drop(ctx context.Context, wr store.Write, err error) (bool, error) {
	w.Logger.Warn("dropping write of a missing object", "write", wr.ID, "kind", wr.Kind, "error", err)
	return true, w.Store.WriteDone(ctx, wr.ID, 0)
}

func isIRIS(err error) bool {
	var se *iris.StatusError
	return errors.As(err, &se)
}
