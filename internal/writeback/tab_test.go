package writeback_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/writeback"
)

// tabUpdates counts IOC updates IRIS received: every one fires
// on_postload_ioc_update for every module subscribed to it.
func (e *env) tabUpdates() int { return e.srv.Requests()["POST /case/ioc/update/{id}"] }

// tabField reads one field of an IOC's tab from the simulated IRIS.
func (e *env) tabField(t *testing.T, irisID int64, field string) string {
	t.Helper()
	i, _ := e.srv.IOCByID(irisID)
	tab, _ := i.Custom[tabName].(map[string]any)
	f, _ := tab[field].(map[string]any)
	return fmt.Sprint(f["value"])
}

func (e *env) flush(t *testing.T) {
	t.Helper()
	if _, err := e.w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTabOnlyOnSubstance: over a long hunt whose progress moves at every
// watcher pass, a tab is rewritten only when what it says changes in
// substance: a change of status at once, new hits not twice within the
// minimum interval (issue 8, part 3).
func TestTabOnlyOnSubstance(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 2)
	e.w.TabMinInterval = 5 * time.Minute
	ids := []int64{e.rows[0].ID, e.rows[1].ID}
	e.flush(t)
	if got := e.tabUpdates(); got != 2 {
		t.Fatalf("%d tab updates at the start, want one per IOC", got)
	}
	pass := func(i int) {
		t.Helper()
		e.clk.Add(time.Minute)
		if _, err := e.db.SetHuntProgress(ctx, e.hunt.ID, store.Progress{VRState: "RUNNING", Scheduled: 100, Finished: int64(i), TotalRows: int64(3 * i)}); err != nil {
			t.Fatal(err)
		}
		if err := e.db.EnqueueTabs(ctx, ids); err != nil {
			t.Fatal(err)
		}
		e.flush(t)
	}
	// The first hits, a minute after the first tab: the status changes
	// (hunting → HIT), which is written at once.
	e.hits(t, 1, func(h, i int) string { return fmt.Sprintf("/tmp/%d/%d", h, i) })
	pass(0)
	if got := e.tabUpdates(); got != 4 {
		t.Fatalf("%d tab updates after the first hits, want 4 (a new status is written at once)", got)
	}
	if s := e.tabField(t, e.rows[0].IRISID, render.FieldStatus); !strings.HasPrefix(s, "HIT: found on 1 host(s)") {
		t.Fatalf("status %q", s)
	}
	// More hits a minute later: same status, held until five minutes after
	// the last write, then written once.
	e.hits(t, 2, func(h, i int) string { return fmt.Sprintf("/tmp/%d/%d", h, i) })
	pass(1)
	if got := e.tabUpdates(); got != 4 {
		t.Fatalf("%d tab updates one minute after the last, want 4 (held)", got)
	}
	for i := 2; i < 8; i++ {
		pass(i)
	}
	if got := e.tabUpdates(); got != 6 {
		t.Fatalf("%d tab updates after the interval, want 6", got)
	}
	if s := e.tabField(t, e.rows[0].IRISID, render.FieldStatus); !strings.HasPrefix(s, "HIT: found on 2 host(s)") {
		t.Fatalf("status %q", s)
	}
	// Progress only, for 200 passes: no write.
	for i := 8; i < 208; i++ {
		pass(i)
	}
	if got := e.tabUpdates(); got != 6 {
		t.Fatalf("%d tab updates after 200 passes of progress only, want 6", got)
	}
}

// TestTabAcrossCases: an IRIS 2.4 IOC, and so its tab, is shared by every
// case that links it. With cases of one customer the tab shows each case's
// status and hits, labelled; with cases of several customers it names no
// host and no evidence (issue 8, part 2).
func TestTabAcrossCases(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	x := e.rows[0]
	b, err := e.admin.AddCase(ctx, "second case", "test", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.AddIOC(ctx, b, iris.NewIOC{Value: x.Value, TypeID: iristest.TypeID("filename"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	customer := func(c int64, name string) {
		t.Helper()
		if err := e.db.UpsertCase(ctx, ioc.Case{ID: c, Open: true, Customer: name}, ioc.Route{Server: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	customer(e.cid, "ACME")
	customer(b, "ACME")
	if _, err := e.db.SyncCaseIOCs(ctx, b, []store.IOCInput{{IOC: ioc.IOC{ID: x.IRISID, TypeName: "filename", Value: x.Value},
		Target: ioc.Target{Kind: ioc.KindFile, Value: x.Value}}}, "test", true); err != nil {
		t.Fatal(err)
	}
	rows, _ := e.db.FindIOCs(ctx, x.IRISID)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	// A hit in each case, on different hosts.
	e.hits(t, 1, func(h, i int) string { return "/a/evil.exe" })
	e.db.SaveClient(ctx, store.Client{Server: "main", ClientID: "C.bbbb", Hostname: "b-host"})
	if _, err := e.db.RecordHits(ctx, e.hunt, []store.HitInput{{IOCID: rows[1].ID, CaseID: b, ClientID: "C.bbbb", EvidenceKey: "k",
		Evidence: "/b/evil.exe", Source: "file", Row: []byte(`{}`)}}, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	e.db.EnqueueTabs(ctx, []int64{rows[0].ID, rows[1].ID})
	e.drain(t, time.Minute)
	status, hits := e.tabField(t, x.IRISID, render.FieldStatus), e.tabField(t, x.IRISID, render.FieldHits)
	for _, want := range []string{fmt.Sprintf("case #%d: HIT", e.cid), fmt.Sprintf("case #%d: HIT", b)} {
		if !strings.Contains(status, want) {
			t.Fatalf("status %q lacks %q", status, want)
		}
	}
	for _, want := range []string{fmt.Sprintf("case #%d | host-000", e.cid), fmt.Sprintf("case #%d | b-host", b), "/b/evil.exe"} {
		if !strings.Contains(hits, want) {
			t.Fatalf("hits %q lack %q", hits, want)
		}
	}
	if got := e.tabField(t, x.IRISID, render.FieldHosts); got != "2" {
		t.Fatalf("hosts hit %q, want 2", got)
	}

	// Case b belongs to another customer: nothing of either fleet shows.
	customer(b, "Other Corp")
	e.db.EnqueueTabs(ctx, []int64{rows[0].ID})
	e.drain(t, time.Minute)
	for _, f := range []string{render.FieldStatus, render.FieldHits, render.FieldHunts, render.FieldHosts} {
		v := e.tabField(t, x.IRISID, f)
		for _, leak := range []string{"host-000", "b-host", "evil.exe", "H.TEST"} {
			if strings.Contains(v, leak) {
				t.Fatalf("field %s shows %q across customers: %q", f, leak, v)
			}
		}
	}
	if s := e.tabField(t, x.IRISID, render.FieldStatus); !strings.Contains(s, "2 customers") {
		t.Fatalf("status %q", s)
	}
	// The hits are still in each case's own assets and events.
	if len(e.srv.Assets(e.cid)) != 1 || len(e.srv.Assets(b)) != 1 {
		t.Fatalf("assets: %d in case a, %d in case b", len(e.srv.Assets(e.cid)), len(e.srv.Assets(b)))
	}
}

// BenchmarkTabUpdatesLongHunt counts IOC updates (tab writes) per IOC over
// a day-long hunt of 100 IOCs watched every minute, whose progress moves at
// every pass and which finds a new host every two hours. Every pass
// queues every tab, as the watcher did before it queued tabs only on a
// substantive change, so this measures the writer's own guard. Each tab
// write is an IOC update in IRIS, which fires on_postload_ioc_update for
// every module (webhooks, VirusTotal...).
func BenchmarkTabUpdatesLongHunt(b *testing.B) {
	ctx := context.Background()
	const iocs, passes = 100, 24 * 60
	for range b.N {
		e := setup(b, iocs)
		e.w.TabMinInterval = 5 * time.Minute
		ids := make([]int64, len(e.rows))
		for i, r := range e.rows {
			ids[i] = r.ID
		}
		start := e.srv.Requests()["POST /case/ioc/update/{id}"]
		hosts := 0
		b.ResetTimer()
		for p := range passes {
			e.clk.Add(time.Minute)
			if p%(2*60) == 0 {
				hosts++
				e.db.SaveClient(ctx, store.Client{Server: "main", ClientID: fmt.Sprintf("C.%04d", hosts), Hostname: fmt.Sprintf("h%d", hosts)})
				var batch []store.HitInput
				for _, r := range e.rows {
					batch = append(batch, store.HitInput{IOCID: r.ID, CaseID: e.cid, ClientID: fmt.Sprintf("C.%04d", hosts),
						EvidenceKey: fmt.Sprint(hosts), Evidence: "/x", Source: "file", Row: []byte(`{}`)})
				}
				if _, err := e.db.RecordHits(ctx, e.hunt, batch, store.FlowCursor{}, false); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := e.db.SetHuntProgress(ctx, e.hunt.ID, store.Progress{VRState: "RUNNING", Scheduled: 5000, Finished: int64(p), TotalRows: int64(p)}); err != nil {
				b.Fatal(err)
			}
			if err := e.db.EnqueueTabs(ctx, ids); err != nil {
				b.Fatal(err)
			}
			if _, err := e.w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		updates := e.srv.Requests()["POST /case/ioc/update/{id}"] - start
		// The first tab, then one per new host (12 in the day).
		if want := iocs * (1 + hosts); updates > want {
			b.Fatalf("%d tab updates, want at most %d", updates, want)
		}
		b.ReportMetric(float64(updates)/iocs, "tab-updates/IOC")
		b.ReportMetric(float64(passes), "passes")
	}
}

// racingIRIS runs before, once, when the first IOC tab update reaches IRIS.
type racingIRIS struct {
	writeback.IRIS
	before func()
}

func (r *racingIRIS) UpdateIOCAttributes(ctx context.Context, cid, iocID int64, tab string, fields map[string]string) error {
	if r.before != nil {
		f := r.before
		r.before = nil
		f()
	}
	return r.IRIS.UpdateIOCAttributes(ctx, cid, iocID, tab, fields)
}

// TestTabChangedWhileWritten: a hit recorded while the IOC's tab write is
// in flight queues no second tab write (one is pending per IOC: this one);
// the tab must still end up saying HIT, not the status it was rendered
// with.
func TestTabChangedWhileWritten(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	e.w.IRIS = &racingIRIS{IRIS: e.w.IRIS, before: func() {
		e.hits(t, 1, func(h, i int) string { return fmt.Sprintf("/tmp/%d/%d", h, i) })
		if err := e.db.EnqueueTabs(ctx, []int64{e.rows[0].ID}); err != nil {
			t.Error(err)
		}
	}}
	e.drain(t, time.Minute)
	if s := e.tabField(t, e.rows[0].IRISID, render.FieldStatus); !strings.HasPrefix(s, "HIT: found on 1 host(s)") {
		t.Fatalf("status %q, want the hit recorded while the first tab was written", s)
	}
}

// TestTabOfDeletedIOC: an IOC deleted in IRIS leaves a tab write behind
// (its state changed to removed). IRIS 2.4.20 answers the update with an
// HTML 500; the write is dropped, not retried for ever nor parked.
func TestTabOfDeletedIOC(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 2)
	e.drain(t, time.Minute)
	gone := e.rows[0]
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/case/ioc/delete/%d?cid=%d", e.srv.URL(), gone.IRISID, e.cid), nil)
	req.Header.Set("Authorization", "Bearer admin-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()
	k := e.rows[1]
	in := store.IOCInput{IOC: ioc.IOC{ID: k.IRISID, Value: k.Value, TypeID: iristest.TypeID("filename"), TypeName: k.TypeName, TLPID: 2},
		Target: ioc.Target{Kind: ioc.KindFile, Value: k.Value}}
	if _, err := e.db.SyncCaseIOCs(ctx, e.cid, []store.IOCInput{in}, "test", true); err != nil {
		t.Fatal(err)
	}
	if err := e.db.EnqueueTabs(ctx, []int64{gone.ID}); err != nil { // as the intake does after a sync
		t.Fatal(err)
	}
	e.drain(t, time.Minute)
	if parked, _ := e.db.ParkedWrites(ctx, 0, 5); len(parked) != 0 {
		t.Fatalf("parked: %+v", parked)
	}
}

// TestRepairRetriesWhatItRepaired: IOCs created without custom attributes
// have null attributes, and IRIS fails their tab writes. The first failure
// pushes the template, which repairs every one of them: the writes that
// failed while the push ran are written as soon as it is done, not after
// the minute between two pushes.
func TestRepairRetriesWhatItRepaired(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	in := []store.IOCInput{{IOC: ioc.IOC{ID: e.rows[0].IRISID, TypeName: "filename", Value: e.rows[0].Value},
		Target: ioc.Target{Kind: ioc.KindFile, Value: e.rows[0].Value}}}
	var null []int64
	for i := range 3 {
		v := fmt.Sprintf("null-%d.exe", i)
		id := e.srv.AddIOCDirect(e.cid, "filename", v)
		null = append(null, id)
		in = append(in, store.IOCInput{IOC: ioc.IOC{ID: id, TypeName: "filename", Value: v}, Target: ioc.Target{Kind: ioc.KindFile, Value: v}})
	}
	if _, err := e.db.SyncCaseIOCs(ctx, e.cid, in, "test", true); err != nil {
		t.Fatal(err)
	}
	repairs := 0
	e.w.Repair = func(ctx context.Context) error {
		repairs++
		// The push takes a while; meanwhile the other null IOCs fail.
		for deadline := time.Now().Add(5 * time.Second); e.tabUpdates() < 4 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		return e.admin.UpdateAttributeTemplate(ctx, 1, map[string]map[string]map[string]any{tabName: render.TabTemplate()})
	}
	e.flush(t)
	// A write whose failure IRIS explained only after the push (its IOC
	// read back repaired) is retried after the least backoff.
	e.clk.Add(5 * time.Second)
	e.flush(t)
	for _, id := range null {
		if s := e.tabField(t, id, render.FieldStatus); s == "" {
			t.Errorf("IOC %d: no tab within seconds of the repair", id)
		}
	}
	if st, _ := e.db.OutboxStats(ctx); st.Pending != 0 || repairs != 1 {
		t.Fatalf("outbox %+v, %d pushes: want every tab written after one push", st, repairs)
	}
}

// TestNewStatusNotHeldByDetail: a tab write held back for TabMinInterval
// (a change of details only) does not hold back the IOC's next status: the
// new status is written at once.
func TestNewStatusNotHeldByDetail(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	e.w.TabMinInterval = 5 * time.Minute
	row := e.rows[0]
	step := func(what string, change func()) {
		t.Helper()
		e.clk.Add(time.Second)
		change()
		if err := e.db.EnqueueTabs(ctx, []int64{row.ID}); err != nil {
			t.Fatal(err)
		}
		e.flush(t)
	}
	e.flush(t)
	step("end", func() { e.db.EndHunt(ctx, e.hunt.ID, store.HuntFinished) })
	step("requeue", func() { e.db.RequeueIOC(ctx, row.IRISID, nil, "manual", true) })
	var next store.Hunt
	step("plan", func() {
		g, _ := e.db.QueuedGroups(ctx)
		next, _ = e.db.PlanHunt(ctx, g[0], 10, "Custom.Velohunt.File", time.Hour)
	})
	if s := e.tabField(t, row.IRISID, render.FieldStatus); s != "hunting: starting the hunt" {
		t.Fatalf("status %q", s)
	}
	before := e.tabUpdates()
	// Created in Velociraptor: the details change, the status does not.
	step("created", func() { e.db.SetHuntCreated(ctx, next.ID, "H.NEXT") })
	if got := e.tabUpdates(); got != before {
		t.Fatalf("%d tab updates for a change of details within the interval, want none", got-before)
	}
	step("running", func() { e.db.SetHuntRunning(ctx, next.ID) })
	if s := e.tabField(t, row.IRISID, render.FieldStatus); !strings.HasPrefix(s, "hunting: 0 of 0") {
		t.Fatalf("status %q a second after the hunt started, want it written at once", s)
	}
}

// losingIRIS sends the first tab update and loses its answer, as a dropped
// connection does: IRIS may still be running it.
type losingIRIS struct {
	writeback.IRIS
	lost bool
}

func (l *losingIRIS) UpdateIOCAttributes(ctx context.Context, cid, iocID int64, tab string, fields map[string]string) error {
	err := l.IRIS.UpdateIOCAttributes(ctx, cid, iocID, tab, fields)
	if !l.lost {
		l.lost = true
		return &iris.StatusError{Op: "POST /case/ioc/update", Status: 0, Message: "connection reset", Retryable: true}
	}
	return err
}

// TestHoldPerIRISIOC: after a tab write whose answer was lost, no other tab
// write goes to the same IRIS IOC until the lost one surely ended, even
// through another case that links it: the late request could land after
// it and put an older status back.
func TestHoldPerIRISIOC(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	e.w.Settle = time.Minute
	x := e.rows[0]
	b, _ := e.admin.AddCase(ctx, "second case", "test", 1, "")
	if _, err := e.admin.AddIOC(ctx, b, iris.NewIOC{Value: x.Value, TypeID: iristest.TypeID("filename"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	e.db.UpsertCase(ctx, ioc.Case{ID: b, Open: true}, ioc.Route{Server: "main"})
	if _, err := e.db.SyncCaseIOCs(ctx, b, []store.IOCInput{{IOC: ioc.IOC{ID: x.IRISID, TypeName: "filename", Value: x.Value},
		Target: ioc.Target{Kind: ioc.KindFile, Value: x.Value}}}, "test", true); err != nil {
		t.Fatal(err)
	}
	rows, _ := e.db.FindIOCs(ctx, x.IRISID)
	e.flush(t)
	e.w.IRIS = &losingIRIS{IRIS: e.w.IRIS}
	// A hit in case a: the tab write's answer is lost.
	e.hits(t, 1, func(h, i int) string { return "/a/evil.exe" })
	e.db.EnqueueTabs(ctx, []int64{rows[0].ID})
	e.flush(t)
	before := e.tabUpdates()
	// A change in case b, a second later: its tab write waits too.
	e.clk.Add(time.Second)
	e.db.RequeueIOC(ctx, x.IRISID, []int64{b}, "manual", true)
	e.db.EnqueueTabs(ctx, []int64{rows[1].ID})
	e.flush(t)
	if got := e.tabUpdates(); got != before {
		t.Fatalf("%d tab update(s) of IOC %d while an earlier one may still run in IRIS, want none", got-before, x.IRISID)
	}
	e.clk.Add(time.Minute)
	e.flush(t)
	if s := e.tabField(t, x.IRISID, render.FieldStatus); !strings.Contains(s, "HIT") || !strings.Contains(s, "queued") {
		t.Fatalf("status %q after the hold, want both cases' news", s)
	}
}

type countingRecorder struct{ foreign int }

func (r *countingRecorder) Write(kind, result string) {
	if kind == "tab" && result == "foreign" {
		r.foreign++
	}
}

// TestForeignInstanceTab: one velohunt per IRIS. A second velohunt (its
// own database, so its own instance id) does not overwrite a tab the first
// one wrote: the write is parked with the reason, counted, and the tab
// still names the first.
func TestForeignInstanceTab(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	x := e.rows[0]
	e.drain(t, time.Minute)
	first := e.tabField(t, x.IRISID, render.FieldUpdated)
	mine, _ := e.db.InstanceID(ctx)
	if render.TabInstance(first) != mine {
		t.Fatalf("Last update %q does not name instance %s", first, mine)
	}

	db2, err := store.Open(ctx, t.TempDir()+"/second.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	db2.UpsertCase(ctx, ioc.Case{ID: e.cid, Open: true}, ioc.Route{Server: "main"})
	if _, err := db2.SyncCaseIOCs(ctx, e.cid, []store.IOCInput{{IOC: ioc.IOC{ID: x.IRISID, TypeName: "filename", Value: x.Value},
		Target: ioc.Target{Kind: ioc.KindFile, Value: x.Value}}}, "test", true); err != nil {
		t.Fatal(err)
	}
	rec := &countingRecorder{}
	second := &writeback.Writer{IRIS: e.w.IRIS, Store: db2, Render: e.w.Render, Refs: e.w.Refs, TabName: tabName,
		Logger: e.w.Logger, Recorder: rec, MinBackoff: time.Millisecond}
	if _, err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.tabField(t, x.IRISID, render.FieldUpdated); got != first {
		t.Fatalf("Last update %q after the second velohunt ran, want the first's %q", got, first)
	}
	parked, _ := db2.ParkedWrites(ctx, 0, 5)
	if n, _ := db2.ForeignTabs(ctx); n != 1 || rec.foreign != 1 || len(parked) != 1 || !strings.Contains(parked[0].Reason, mine) {
		t.Fatalf("foreign tabs %d, metric %d, parked %+v: want the write parked naming %s", n, rec.foreign, parked, mine)
	}
	// The first velohunt keeps writing its tab.
	e.hits(t, 1, func(h, i int) string { return "/tmp/x" })
	e.db.EnqueueTabs(ctx, []int64{x.ID})
	e.drain(t, time.Minute)
	if s := e.tabField(t, x.IRISID, render.FieldStatus); !strings.HasPrefix(s, "HIT") {
		t.Fatalf("status %q", s)
	}
}

// TestRestartHoldsIRISIOC: a process stopped during a tab write may have
// left the request running in IRIS; after a restart no tab write goes to
// that IRIS IOC, through any case, until it surely ended.
func TestRestartHoldsIRISIOC(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	x := e.rows[0]
	b, _ := e.admin.AddCase(ctx, "second case", "test", 1, "")
	if _, err := e.admin.AddIOC(ctx, b, iris.NewIOC{Value: x.Value, TypeID: iristest.TypeID("filename"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	e.db.UpsertCase(ctx, ioc.Case{ID: b, Open: true}, ioc.Route{Server: "main"})
	if _, err := e.db.SyncCaseIOCs(ctx, b, []store.IOCInput{{IOC: ioc.IOC{ID: x.IRISID, TypeName: "filename", Value: x.Value},
		Target: ioc.Target{Kind: ioc.KindFile, Value: x.Value}}}, "test", true); err != nil {
		t.Fatal(err)
	}
	due, _ := e.db.DueWrites(ctx, 10)
	var inA *store.Write
	for i := range due {
		if due[i].Kind == "tab" && due[i].CaseID == e.cid {
			inA = &due[i]
		}
	}
	if inA == nil || len(due) != 2 {
		t.Fatalf("due %+v", due)
	}
	// The last process began the write through case a and stopped.
	if err := e.db.BeginWrite(ctx, inA.ID); err != nil {
		t.Fatal(err)
	}
	fresh := &writeback.Writer{IRIS: e.w.IRIS, Store: e.db, Render: e.w.Render, Refs: e.w.Refs, TabName: tabName,
		Logger: e.w.Logger, Now: e.clk.Now, MinBackoff: time.Millisecond, Settle: time.Minute}
	if _, err := fresh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.tabUpdates(); got != 0 {
		t.Fatalf("%d tab update(s) of IOC %d right after the restart, want none", got, x.IRISID)
	}
	e.clk.Add(2 * time.Minute)
	if _, err := fresh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.tabUpdates(); got == 0 {
		t.Fatal("no tab written after the hold")
	}
}

// TestTabStoppedByOperator: a hunt an operator stopped (`velohunt hunts
// stop`) reads stopped, with the hosts it searched, never clean: hosts that
// had not run it were not searched.
func TestTabStoppedByOperator(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	row := e.rows[0]
	e.flush(t)
	if _, err := e.db.SetHuntProgress(ctx, e.hunt.ID, store.Progress{VRState: "RUNNING", Scheduled: 3, Finished: 1}); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.db.StopByOperator(ctx, e.hunt.ID); err != nil || !ok {
		t.Fatalf("stop: %v %v", ok, err)
	}
	e.flush(t)
	s := e.tabField(t, row.IRISID, render.FieldStatus)
	if !strings.HasPrefix(s, "stopped by an operator on ") || !strings.Contains(s, "no hit on the 1 of 3 host(s) done") || strings.Contains(s, "clean") {
		t.Fatalf("status %q", s)
	}
}
