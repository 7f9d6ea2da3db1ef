package writeback_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/render/rendertest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testclock"
	"github.com/velohunt/velohunt/internal/writeback"
	"github.com/velohunt/velohunt/templates"
)

const tabName = "Velociraptor hunt"

type env struct {
	srv   *iristest.Server
	admin *iris.Client
	db    *store.DB
	w     *writeback.Writer
	clk   *testclock.Clock
	cid   int64
	rows  []store.IOC // store rows of the case's IOCs
	hunt  store.Hunt
}

// setup makes a case with n file-name IOCs in the simulated IRIS (with the
// tab in the IOC template), the matching store rows, and a running hunt.
func setup(t testing.TB, n int) *env {
	t.Helper()
	srv := iristest.Start()
	t.Cleanup(srv.Close)
	e := setupOn(t, n, target{srv: srv, url: srv.URL(), adminKey: "admin-key", key: "velohunt-key"})
	e.w.Refs = writeback.Refs{AssetTypes: map[string]int64{"windows": 9, "linux": 3, "default": 4}, AnalysisStatusID: 2, EventCategoryID: 5}
	return e
}

// target is the IRIS a test writes into: the simulator (srv set) or a
// real one.
type target struct {
	srv                *iristest.Server
	url, adminKey, key string
	sent               *atomic.Int64 // when set, counts the writer's requests
}

// setupOn is setup against any IRIS; the writer's Refs are resolved by the
// names of velohunt's defaults.
func setupOn(t testing.TB, n int, tg target) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{srv: tg.srv, clk: testclock.New(time.Now())}
	var err error
	e.admin, _ = iris.New(iris.Options{URL: tg.url, APIKey: tg.adminKey})
	opts := iris.Options{URL: tg.url, APIKey: tg.key, Timeout: 20 * time.Second}
	if tg.sent != nil {
		opts.Observe = func(string, int, time.Duration, error, bool) { tg.sent.Add(1) }
	}
	svc, _ := iris.New(opts)
	if tg.srv != nil {
		err = e.admin.UpdateAttributeTemplate(ctx, 1, map[string]map[string]map[string]any{tabName: render.TabTemplate()})
	} else {
		_, err = e.admin.EnsureIOCTab(ctx, tabName, render.TabTemplate(), false)
	}
	if err != nil {
		t.Fatal(err)
	}
	if e.cid, err = e.admin.AddCase(ctx, "velohunt write-back "+t.Name(), "velohunt test", 1, ""); err != nil {
		t.Fatal(err)
	}
	if tg.srv == nil {
		t.Cleanup(func() { e.admin.CloseCase(context.Background(), e.cid) })
	}
	e.db, err = store.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.db.Now = e.clk.Now
	if err := e.db.UpsertCase(ctx, ioc.Case{ID: e.cid, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	var inputs []store.IOCInput
	for i := range n {
		x, err := e.admin.AddIOC(ctx, e.cid, iris.NewIOC{Value: fmt.Sprintf("evil-%d.exe", i), TypeID: iristest.TypeID("filename"), TLPID: 2})
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, store.IOCInput{IOC: x, Target: ioc.Target{Kind: ioc.KindFile, Value: x.Value}})
	}
	if _, err := e.db.SyncCaseIOCs(ctx, e.cid, inputs, "test", true); err != nil {
		t.Fatal(err)
	}
	e.rows, _ = e.db.CaseIOCs(ctx, e.cid)
	g, _ := e.db.QueuedGroups(ctx)
	if e.hunt, err = e.db.PlanHunt(ctx, g[0], 1000, "Custom.Velohunt.File", time.Hour); err != nil {
		t.Fatal(err)
	}
	e.db.SetHuntCreated(ctx, e.hunt.ID, "H.TEST")
	e.db.SetHuntRunning(ctx, e.hunt.ID)
	e.hunt, _ = e.db.FindHunt(ctx, e.hunt.ID)
	files, _ := templates.IRIS("")
	rnd, err := render.New(files)
	if err != nil {
		t.Fatal(err)
	}
	e.w = &writeback.Writer{IRIS: svc, Store: e.db, Render: rnd, TabName: tabName, EventColor: "#F2596199",
		Refs:       resolveRefs(t, svc),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:        e.clk.Now,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	return e
}

// resolveRefs finds the IRIS reference ids velohunt's defaults name.
func resolveRefs(t testing.TB, c *iris.Client) writeback.Refs {
	t.Helper()
	ctx := context.Background()
	find := func(list func(context.Context) ([]iris.RefItem, error), name string) int64 {
		items, err := list(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if strings.EqualFold(it.Name, name) {
				return it.ID
			}
		}
		t.Fatalf("IRIS has no %q", name)
		return 0
	}
	return writeback.Refs{AssetTypes: map[string]int64{"windows": find(c.AssetTypes, "Windows - Computer"),
		"linux": find(c.AssetTypes, "Linux - Server"), "default": find(c.AssetTypes, "Linux - Computer")},
		AnalysisStatusID: find(c.AnalysisStatuses, "To be done"), CompromiseStatusID: find(c.CompromiseStatuses, "To be determined"),
		EventCategoryID: find(c.EventCategories, "Unspecified")}
}

// hits records perHost hits (one per IOC) on each of hosts endpoints.
func (e *env) hits(t testing.TB, hosts int, evidence func(h, i int) string) {
	t.Helper()
	ctx := context.Background()
	var batch []store.HitInput
	for h := range hosts {
		client := fmt.Sprintf("C.%016x", h)
		os := []string{"windows", "linux"}[h%2]
		if err := e.db.SaveClient(ctx, store.Client{Server: "main", ClientID: client, Hostname: fmt.Sprintf("host-%03d", h), OS: os}); err != nil {
			t.Fatal(err)
		}
		for i, r := range e.rows {
			ev := evidence(h, i)
			batch = append(batch, store.HitInput{IOCID: r.ID, CaseID: e.cid, ClientID: client, EvidenceKey: fmt.Sprintf("%x", ev),
				Evidence: ev, Source: "file", EventTime: time.Date(2026, 11, 20, 8, 0, h%60, 0, time.UTC), Row: []byte(`{"OSPath":"x"}`)})
		}
	}
	if _, err := e.db.RecordHits(ctx, e.hunt, batch, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
}

// drain flushes until the outbox is empty. On the fake clock it moves time
// past backoffs; on the real clock (real) it waits for them.
func (e *env) drain(t testing.TB, limit time.Duration) { e.drainWith(t, limit, false) }

func (e *env) drainReal(t testing.TB, limit time.Duration) { e.drainWith(t, limit, true) }

func (e *env) drainWith(t testing.TB, limit time.Duration, real bool) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := e.w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		st, _ := e.db.OutboxStats(ctx)
		if st.Parked != 0 {
			// Never written: drained is not done.
			parked, _ := e.db.ParkedWrites(ctx, 0, 5)
			t.Fatalf("%d writes parked: %+v", st.Parked, parked)
		}
		if st.Pending == 0 {
			return
		}
		if real {
			time.Sleep(20 * time.Millisecond)
		} else {
			e.clk.Add(100 * time.Millisecond)
		}
	}
	st, _ := e.db.OutboxStats(ctx)
	t.Fatalf("outbox not drained: %+v", st)
}

func TestExactlyOnceUnderFaults(t *testing.T) {
	const hosts = 200
	e := setup(t, 5)
	e.hits(t, hosts, func(h, i int) string { return fmt.Sprintf(`C:\Users\u%d\evil-%d.exe`, h, i) })
	// 30% of requests fail (500, 429, dropped connections, 502, 503), 10%
	// of the rest run but lose their answer, and 1% answer after the
	// client's timeout. This test runs on the real clock, so that a request
	// still running in IRIS really finishes before its retry.
	e.w.Now, e.db.Now = time.Now, time.Now
	e.w.Settle = 800 * time.Millisecond
	e.w.IRIS, _ = iris.New(iris.Options{URL: e.srv.URL(), APIKey: "velohunt-key", Timeout: 250 * time.Millisecond})
	e.srv.SetFaults(iristest.Faults{Rate: 0.3, Statuses: []int{500, 429, 0, 502, 503}, AfterRate: 0.1,
		SlowRate: 0.01, SlowDelay: 400 * time.Millisecond})
	e.drainReal(t, 2*time.Minute)
	e.srv.SetFaults(iristest.Faults{})

	events := e.srv.Events(e.cid)
	if got, want := len(events), hosts*len(e.rows); got != want {
		t.Fatalf("%d events in IRIS, want %d (one per hit)", got, want)
	}
	markers := map[string]bool{}
	for _, ev := range events {
		var m string
		for _, tag := range strings.Split(ev.Tags, ",") {
			if strings.HasPrefix(tag, "vh-") {
				m = tag
			}
		}
		if m == "" || markers[m] {
			t.Fatalf("event %d: marker %q missing or repeated", ev.ID, m)
		}
		markers[m] = true
		if len(ev.Assets) != 1 || len(ev.IOCs) != 1 {
			t.Fatalf("event %d links %v assets, %v IOCs", ev.ID, ev.Assets, ev.IOCs)
		}
	}
	assets := e.srv.Assets(e.cid)
	if len(assets) != hosts {
		t.Fatalf("%d assets, want %d", len(assets), hosts)
	}
	names := map[string]bool{}
	for _, a := range assets {
		if names[strings.ToLower(a.Name)] {
			t.Fatalf("asset %s twice", a.Name)
		}
		names[strings.ToLower(a.Name)] = true
		if len(a.IOCLinks) != len(e.rows) || a.AnalysisStatusID == 0 {
			t.Fatalf("asset %s: links %v, analysis status %d", a.Name, a.IOCLinks, a.AnalysisStatusID)
		}
	}
	st, _ := e.db.OutboxStats(context.Background())
	if st.Parked != 0 {
		parked, _ := e.db.ParkedWrites(context.Background(), 0, 5)
		t.Fatalf("%d writes parked: %+v", st.Parked, parked)
	}
	for _, r := range e.rows {
		i, _ := e.srv.IOCByID(r.IRISID)
		status := i.Custom[tabName].(map[string]any)["Status"].(map[string]any)["value"]
		if !strings.HasPrefix(fmt.Sprint(status), fmt.Sprintf("HIT: found on %d host(s)", hosts)) {
			t.Fatalf("tab status of IOC %d: %v", r.IRISID, status)
		}
	}
	t.Run("ReplayMakesNothingNew", func(t *testing.T) {
		e.hits(t, hosts, func(h, i int) string { return fmt.Sprintf(`C:\Users\u%d\evil-%d.exe`, h, i) })
		e.drainReal(t, time.Minute)
		if got := len(e.srv.Events(e.cid)); got != hosts*len(e.rows) {
			t.Fatalf("%d events after replaying the same rows", got)
		}
	})
}

func TestOutage(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 2)
	e.hits(t, 3, func(h, i int) string { return fmt.Sprintf("/tmp/%d/%d", h, i) })
	e.srv.SetFaults(iristest.Faults{Down: true})
	for range 5 {
		if _, err := e.w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Second)
	}
	st, _ := e.db.OutboxStats(ctx)
	if st.Pending == 0 || st.Retrying == 0 || st.Parked != 0 || len(e.srv.Events(e.cid)) != 0 {
		t.Fatalf("during the outage: %+v, %d events", st, len(e.srv.Events(e.cid)))
	}
	e.srv.SetFaults(iristest.Faults{})
	e.drain(t, time.Minute)
	if got := len(e.srv.Events(e.cid)); got != 6 {
		t.Fatalf("%d events after the outage, want 6", got)
	}
}

func TestNullCustomAttributes(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	// An IOC created through the API without custom_attributes: IRIS stores
	// null and answers 500 to every attribute update.
	id := e.srv.AddIOCDirect(e.cid, "filename", "null-attrs.exe")
	if _, err := e.db.SyncCaseIOCs(ctx, e.cid, []store.IOCInput{
		{IOC: ioc.IOC{ID: e.rows[0].IRISID, TypeName: "filename", Value: e.rows[0].Value}, Target: ioc.Target{Kind: ioc.KindFile, Value: e.rows[0].Value}},
		{IOC: ioc.IOC{ID: id, TypeName: "filename", Value: "null-attrs.exe"}, Target: ioc.Target{Kind: ioc.KindFile, Value: "null-attrs.exe"}},
	}, "test", true); err != nil {
		t.Fatal(err)
	}

	t.Run("ParkedWithoutAdminKey", func(t *testing.T) {
		e.w.Flush(ctx)
		parked, _ := e.db.ParkedWrites(ctx, 0, 10)
		if len(parked) != 1 || parked[0].IRISID != id || !strings.Contains(parked[0].Reason, "null custom attributes") {
			t.Fatalf("parked=%+v", parked)
		}
		before := e.srv.Requests()["POST /case/ioc/update/{id}"]
		e.clk.Add(time.Hour)
		e.w.Flush(ctx)
		if after := e.srv.Requests()["POST /case/ioc/update/{id}"]; after != before {
			t.Fatal("a parked write was retried")
		}
	})
	t.Run("RepairedOnce", func(t *testing.T) {
		repairs := 0
		e.w.Repair = func(ctx context.Context) error {
			repairs++
			return e.admin.UpdateAttributeTemplate(ctx, 1, map[string]map[string]map[string]any{tabName: render.TabTemplate()})
		}
		// A new process: the repair has not been tried yet.
		fresh := &writeback.Writer{IRIS: e.w.IRIS, Store: e.w.Store, Render: e.w.Render, Refs: e.w.Refs, TabName: tabName,
			Repair: e.w.Repair, Logger: e.w.Logger, Now: e.clk.Now, MinBackoff: time.Millisecond, Settle: time.Second}
		if n, err := e.db.RetryParked(ctx); err != nil || n != 1 {
			t.Fatalf("retry parked: %d %v", n, err)
		}
		// A new process first waits for requests its predecessor may have
		// left running, then writes.
		if _, err := fresh.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(2 * time.Second)
		if _, err := fresh.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		i, _ := e.srv.IOCByID(id)
		if i.Custom == nil || repairs != 1 {
			t.Fatalf("custom=%v repairs=%d", i.Custom, repairs)
		}
		if st, _ := e.db.OutboxStats(ctx); st.Parked != 0 || st.Pending != 0 {
			t.Fatalf("outbox after repair: %+v", st)
		}
	})
}

func TestHostileRowsReachIRISInert(t *testing.T) {
	e := setup(t, 1)
	ctx := context.Background()
	var batch []store.HitInput
	for i, h := range rendertest.Hostile {
		client := fmt.Sprintf("C.bad%d", i)
		e.db.SaveClient(ctx, store.Client{Server: "main", ClientID: client, Hostname: h, FQDN: h, OS: "windows", LastIP: h})
		batch = append(batch, store.HitInput{IOCID: e.rows[0].ID, CaseID: e.cid, ClientID: client, EvidenceKey: fmt.Sprint(i),
			Evidence: h, Source: h, Row: []byte(h)})
	}
	if _, err := e.db.RecordHits(ctx, e.hunt, batch, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	e.drain(t, time.Minute)
	if st, _ := e.db.OutboxStats(ctx); st.Parked != 0 {
		p, _ := e.db.ParkedWrites(ctx, 0, 5)
		t.Fatalf("hostile data broke writes: %+v", p)
	}
	events := e.srv.Events(e.cid)
	if len(events) != len(rendertest.Hostile) {
		t.Fatalf("%d events, want %d", len(events), len(rendertest.Hostile))
	}
	for _, ev := range events {
		for _, r := range ev.Title {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("title %q has %U", ev.Title, r)
			}
		}
		outside := rendertest.OutsideCode(ev.Content)
		if len(outside) > 2000 {
			t.Fatalf("%d bytes outside code", len(outside))
		}
		for _, bad := range rendertest.Dangerous {
			if strings.Contains(outside, bad) {
				t.Fatalf("event content has %q outside code:\n%s", bad, render.Clip(outside, 500))
			}
		}
		if len(ev.Raw) > render.MaxRaw+200 {
			t.Fatalf("raw is %d bytes", len(ev.Raw))
		}
	}
	for _, a := range e.srv.Assets(e.cid) {
		if len([]rune(a.Name)) > 151 || strings.ContainsAny(a.Name, "\x00\x1b\r\n") {
			t.Fatalf("asset name %q", render.Clip(a.Name, 80))
		}
	}
	i, _ := e.srv.IOCByID(e.rows[0].IRISID)
	for name, f := range i.Custom[tabName].(map[string]any) {
		v := fmt.Sprint(f.(map[string]any)["value"])
		if strings.ContainsAny(v, "\x00\x1b\r") || strings.Contains(v, "\u202e") || len(v) > 4*render.MaxField {
			t.Fatalf("tab field %s is not inert text (%d bytes)", name, len(v))
		}
	}
}

// TestConcurrentWrites sends a pass of new hosts, then a pass that adds
// four IOCs to each host (two clients of each host name share one asset),
// against an IRIS that takes 5 ms per request and serves many at once. The
// writer keeps up to four requests in flight, never two updates of one
// asset or one IOC tab at once, links each host's new IOCs with one read
// and one update, and sends each event after its asset.
func TestConcurrentWrites(t *testing.T) {
	const hosts = 40
	e := setup(t, 5)
	e.w.Now, e.db.Now = time.Now, time.Now
	e.srv.SetLoad(iristest.Load{ServiceTime: 5 * time.Millisecond})
	ctx := context.Background()
	record := func(first bool) {
		var batch []store.HitInput
		for h := range hosts {
			for dup := range 2 {
				client := fmt.Sprintf("C.%016x", h*2+dup)
				if err := e.db.SaveClient(ctx, store.Client{Server: "main", ClientID: client, Hostname: fmt.Sprintf("host-%03d", h), OS: "linux"}); err != nil {
					t.Fatal(err)
				}
				for i, r := range e.rows {
					if (i == 0) != first {
						continue
					}
					ev := fmt.Sprintf("/tmp/%s/evil-%d", client, i)
					batch = append(batch, store.HitInput{IOCID: r.ID, CaseID: e.cid, ClientID: client, EvidenceKey: ev, Evidence: ev, Source: "file", Row: []byte(`{}`)})
				}
			}
		}
		if _, err := e.db.RecordHits(ctx, e.hunt, batch, store.FlowCursor{}, false); err != nil {
			t.Fatal(err)
		}
	}
	record(true)
	e.drainReal(t, time.Minute)
	before := e.srv.Requests()
	record(false)
	e.drainReal(t, time.Minute)
	after := e.srv.Requests()

	if o := e.srv.Overlaps(); len(o) > 0 {
		t.Fatalf("overlapping updates of one object: %v", o)
	}
	if n := e.srv.MaxInFlight(); n < 2 || n > writeback.DefaultConcurrency {
		t.Fatalf("at most %d requests in flight, want 2..%d", n, writeback.DefaultConcurrency)
	}
	assets := e.srv.Assets(e.cid)
	if len(assets) != hosts {
		t.Fatalf("%d assets, want %d", len(assets), hosts)
	}
	for _, a := range assets {
		if len(a.IOCLinks) != len(e.rows) {
			t.Fatalf("asset %s links %v, want all %d IOCs", a.Name, a.IOCLinks, len(e.rows))
		}
	}
	// Second pass: every host's asset exists; its two clients' 4 IOCs each
	// are merged with one read and one update per client group (the
	// second group of a host name finds its links already there: read only).
	gets := after["GET /case/assets/{id}"] - before["GET /case/assets/{id}"]
	updates := after["POST /case/assets/update/{id}"] - before["POST /case/assets/update/{id}"]
	if updates != hosts || gets != 2*hosts {
		t.Fatalf("second pass: %d asset reads and %d updates, want %d and %d", gets, updates, 2*hosts, hosts)
	}
	for _, ev := range e.srv.Events(e.cid) {
		if len(ev.Assets) != 1 {
			t.Fatalf("event %d links assets %v, want its host's", ev.ID, ev.Assets)
		}
	}
}
