package watcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/planner"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testclock"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
	"github.com/velohunt/velohunt/internal/watcher"
)

type env struct {
	db  *store.DB
	clk *testclock.Clock
	srv *velotest.Server
	w   *watcher.Watcher
	p   *planner.Planner
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func setup(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clk: testclock.New(time.Now())}
	var err error
	if e.db, err = store.Open(ctx, filepath.Join(t.TempDir(), "v.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.db.Now = e.clk.Now
	if e.srv, err = velotest.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Close)
	path, _ := e.srv.WriteAPIConfig(t.TempDir(), "velohunt")
	cfg, _ := velociraptor.LoadAPIConfig(path)
	vr, err := velociraptor.Dial(cfg, velociraptor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vr.Close() })
	if _, err := vr.SetArtifact(ctx, "", "name: Custom.Velohunt.File\ntype: CLIENT\n"); err != nil {
		t.Fatal(err)
	}
	e.p = &planner.Planner{Store: e.db, Servers: map[string]planner.Velociraptor{"main": vr},
		Kinds:      map[ioc.Kind]planner.Artifact{ioc.KindFile: {Name: "Custom.Velohunt.File", Parameter: "IOCs", Format: "json"}},
		MaxPerHunt: 100, Expiry: 24 * time.Hour, ClientTimeout: time.Minute, Logger: discard, Now: e.clk.Now}
	e.w = &watcher.Watcher{Store: e.db, Servers: map[string]watcher.Velociraptor{"main": vr}, BatchRows: 3, Logger: discard, Now: e.clk.Now}
	return e
}

// hunt queues file-name IOCs in case 1 and starts their hunt.
func (e *env) hunt(t testing.TB, names ...string) {
	t.Helper()
	ctx := context.Background()
	e.db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"})
	var in []store.IOCInput
	for i, n := range names {
		in = append(in, store.IOCInput{IOC: ioc.IOC{ID: int64(10 + i), TypeName: "filename", Value: n}, Target: ioc.Target{Kind: ioc.KindFile, Value: n}})
	}
	if _, err := e.db.SyncCaseIOCs(ctx, 1, in, "test", false); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Step(ctx, true); err != nil {
		t.Fatal(err)
	}
}

func endpoint(id, host string, files ...string) velotest.Endpoint {
	ep := velotest.Endpoint{ClientID: id, Hostname: host, OS: "linux", Online: true}
	for _, f := range files {
		ep.Files = append(ep.Files, velotest.File{Path: f, Mtime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	}
	return ep
}

func (e *env) count(t testing.TB, q string) int {
	t.Helper()
	n := 0
	for _, r := range e.srv.Received() {
		if strings.Contains(r.VQL, q) {
			n++
		}
	}
	return n
}

func TestPass(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.srv.AddEndpoint(endpoint("C.1", "web1", "/tmp/a.sh", "/home/x/a.sh", "/tmp/b.bin"))
	e.srv.AddEndpoint(endpoint("C.2", "web2", "/tmp/a.sh"))
	e.srv.AddEndpoint(endpoint("C.3", "clean"))
	e.hunt(t, "a.sh", "b.bin", "never.exe")

	rep, err := e.w.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each host's flow ends with its coverage row (file_names).
	if rep.Rows != 4+3 || rep.Hits != 4 || rep.Unmatched != 0 || rep.Gaps != 0 {
		t.Fatalf("report %+v, want 4 rows of hits, 3 coverage rows and 4 hits", rep)
	}
	if got := e.count(t, "client_info("); got != 2 {
		t.Fatalf("%d client lookups, want one per client with hits (2)", got)
	}
	h, _ := e.db.RecentHunts(ctx, 1)
	p, _ := e.db.HuntProgress(ctx, h[0].ID)
	if p.RowsRead != 4+3 || p.Scheduled != 3 || p.Finished != 3 || len(p.Uncovered) != 0 {
		t.Fatalf("progress %+v", p)
	}
	st, _ := e.db.OutboxStats(ctx)
	if st.ByKind["asset"] != 3 || st.ByKind["event"] != 4 || st.ByKind["tab"] != 3 {
		t.Fatalf("outbox %+v, want 3 asset links (one per host and IOC), 4 events, one tab per IOC", st.ByKind)
	}

	t.Run("NoReRead", func(t *testing.T) {
		before := e.count(t, "FROM source(")
		rep, err := e.w.Pass(ctx)
		if err != nil || rep.Rows != 0 {
			t.Fatalf("rep=%+v err=%v", rep, err)
		}
		if e.count(t, "FROM source(") != before {
			t.Fatal("results read again although no new row exists")
		}
	})
	t.Run("LateClient", func(t *testing.T) {
		e.srv.AddEndpoint(endpoint("C.4", "late", `/var/tmp/b.bin`))
		rep, err := e.w.Pass(ctx)
		if err != nil || rep.Rows != 1+1 || rep.Hits != 1 {
			t.Fatalf("rep=%+v err=%v, want its row and its coverage row", rep, err)
		}
		// Only the new client's flow is read, from its first row.
		var reads []string
		for _, r := range e.srv.Received() {
			if strings.Contains(r.VQL, "FROM source(") {
				reads = append(reads, r.Env["VhClientId"]+"@"+r.Env["VhStartRow"])
			}
		}
		if last := reads[len(reads)-1]; last != "C.4@0" || strings.Count(strings.Join(reads, " "), "C.4@") != 1 {
			t.Fatalf("flow reads %v, want the new client's flow once, from row 0", reads)
		}
	})
	t.Run("RestartRereadsWithoutDuplicates", func(t *testing.T) {
		// A crash between reading rows and committing leaves the cursor
		// behind; reading them again must not make new hits.
		hunts, _ := e.db.RunningHunts(ctx)
		flow := "F." + strings.TrimPrefix(hunts[0].VRHuntID, "H.") + ".H"
		n, err := e.db.RecordHits(ctx, hunts[0], nil, store.FlowCursor{ClientID: "C.1", FlowID: flow, RowsRead: 0}, false)
		if err != nil || n != 0 {
			t.Fatal(err)
		}
		rep, err := e.w.Pass(ctx)
		if err != nil || rep.Rows != 3+1 || rep.Hits != 0 {
			t.Fatalf("rep=%+v err=%v, want C.1's 3 rows and its coverage row read again and no new hit", rep, err)
		}
	})
	t.Run("Stopped", func(t *testing.T) {
		hunts, _ := e.db.RunningHunts(ctx)
		path, _ := e.srv.WriteAPIConfig(t.TempDir(), "velohunt")
		cfg, _ := velociraptor.LoadAPIConfig(path)
		vr, _ := velociraptor.Dial(cfg, velociraptor.Options{})
		defer vr.Close()
		if err := vr.StopHunt(ctx, "", hunts[0].VRHuntID); err != nil {
			t.Fatal(err)
		}
		rep, err := e.w.Pass(ctx)
		if err != nil || rep.Ended != 1 {
			t.Fatalf("rep=%+v err=%v", rep, err)
		}
		got, _ := e.db.FindHunt(ctx, hunts[0].ID)
		if got.State != store.HuntStopped {
			t.Fatalf("state %s", got.State)
		}
		rows, _ := e.db.CaseIOCs(ctx, 1)
		for _, r := range rows {
			if r.State != store.StateHunted {
				t.Fatalf("IOC %s is %s after its hunt ended", r.Value, r.State)
			}
		}
	})
}

func TestExpired(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.srv.AddEndpoint(endpoint("C.1", "h", "/tmp/x"))
	e.hunt(t, "x")
	e.clk.Add(25 * time.Hour)
	rep, err := e.w.Pass(ctx)
	if err != nil || rep.Ended != 1 || rep.Hits != 1 {
		t.Fatalf("rep=%+v err=%v: an expired hunt is read one last time, then ended", rep, err)
	}
	h, _ := e.db.RecentHunts(ctx, 1)
	if h[0].State != store.HuntExpired {
		t.Fatalf("state %s", h[0].State)
	}
}

func TestUnmatchedAndForeignRows(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.srv.SetBehaviour("Custom.Velohunt.File", func(ep *velotest.Endpoint, params map[string]string) []map[string]any {
		return []map[string]any{
			{"IOC": "not-in-this-hunt", "Evidence": "/x"},
			{"IOC": "X.SH", "OSPath": "/tmp/X.SH", "EventTime": 1795342567.0},
			{"Oops": json.Number("1")},
		}
	})
	e.srv.AddEndpoint(endpoint("C.1", "h"))
	e.hunt(t, "x.sh", "y.sh")
	rep, err := e.w.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 3 || rep.Hits != 1 || rep.Unmatched != 2 {
		t.Fatalf("rep=%+v, want 3 rows, 1 hit (case-insensitive match, OSPath as evidence), 2 unmatched", rep)
	}
}

func TestVelociraptorOutage(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.srv.AddEndpoint(endpoint("C.1", "h", "/tmp/x", "/tmp/y/x"))
	e.hunt(t, "x")
	e.srv.SetDown(true)
	if _, err := e.w.Pass(ctx); ioc.ErrorCode(err) != ioc.EUNAVAILABLE {
		t.Fatalf("err=%v, want an error while Velociraptor is down", err)
	}
	hunts, _ := e.db.RunningHunts(ctx)
	if p, _ := e.db.HuntProgress(ctx, hunts[0].ID); p.RowsRead != 0 {
		t.Fatalf("cursor moved during the outage: %+v", p)
	}
	e.srv.SetDown(false)
	rep, err := e.w.Pass(ctx)
	if err != nil || rep.Hits != 2 {
		t.Fatalf("after the outage: rep=%+v err=%v", rep, err)
	}
}

// TestLifecycle: once an IOC's value changes, the old value's hunt writes
// nothing more to it and, covering nothing else, is stopped in
// Velociraptor; the same when the case is closed.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	t.Run("ValueChanged", func(t *testing.T) {
		e := setup(t)
		e.srv.AddEndpoint(endpoint("C.1", "h", "/tmp/old.exe"))
		e.hunt(t, "old.exe")
		old, _ := e.db.RunningHunts(ctx)
		// The analyst edits the value in IRIS before the results are read.
		in := []store.IOCInput{{IOC: ioc.IOC{ID: 10, TypeName: "filename", Value: "new.exe"}, Target: ioc.Target{Kind: ioc.KindFile, Value: "new.exe"}}}
		if _, err := e.db.SyncCaseIOCs(ctx, 1, in, "webhook", true); err != nil {
			t.Fatal(err)
		}
		rep, err := e.w.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Hits != 0 || rep.Ended != 1 {
			t.Fatalf("rep=%+v: the old value's row must not become a hit, and its hunt must end", rep)
		}
		if h, _ := e.srv.HuntByID(old[0].VRHuntID); h.State != "STOPPED" {
			t.Fatalf("old hunt is %s in Velociraptor, want STOPPED", h.State)
		}
		got, _ := e.db.FindHunt(ctx, old[0].ID)
		if got.State != store.HuntStopped {
			t.Fatalf("stored state %s", got.State)
		}
		rows, _ := e.db.CaseIOCs(ctx, 1)
		if rows[0].State != store.StateQueued || rows[0].HuntValue != "new.exe" {
			t.Fatalf("IOC %+v: the new value waits for its own hunt", rows[0])
		}
	})
	t.Run("CaseClosed", func(t *testing.T) {
		e := setup(t)
		e.srv.AddEndpoint(endpoint("C.1", "h"))
		e.hunt(t, "a.exe", "b.exe")
		hunts, _ := e.db.RunningHunts(ctx)
		if _, err := e.db.CloseCasesExcept(ctx, nil); err != nil {
			t.Fatal(err)
		}
		rep, err := e.w.Pass(ctx)
		if err != nil || rep.Ended != 1 {
			t.Fatalf("rep=%+v err=%v", rep, err)
		}
		if h, _ := e.srv.HuntByID(hunts[0].VRHuntID); h.State != "STOPPED" {
			t.Fatalf("hunt is %s in Velociraptor after its case closed", h.State)
		}
		rows, _ := e.db.CaseIOCs(ctx, 1)
		for _, r := range rows {
			if r.State != store.StateRemoved || r.Reason != "case closed" {
				t.Fatalf("IOC %+v", r)
			}
		}
		st, _ := e.db.OutboxStats(ctx)
		if st.ByKind["tab"] == 0 {
			t.Fatal("the tabs must say the case closed")
		}
	})
}

// TestThreeWaves: hosts join a seven-day hunt in three waves, each after
// some watcher passes. Velociraptor 0.77.2 ignores start_row in hunt mode,
// so a hunt-wide row cursor runs past the hunt's total and later hosts are
// never read; a cursor per flow reads every host's rows once (issue 9).
func TestThreeWaves(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	wave := func(n int, prefix string) {
		for i := range n {
			id := fmt.Sprintf("C.%s%02d", prefix, i)
			e.srv.AddEndpoint(endpoint(id, prefix+fmt.Sprint(i), "/tmp/a.sh", "/opt/"+prefix+"/b.bin", "/srv/c.txt"))
		}
	}
	wave(4, "first")
	e.hunt(t, "a.sh", "b.bin")
	total := 0
	for w, spec := range []struct {
		n      int
		prefix string
	}{{0, ""}, {3, "second"}, {2, "third"}} {
		if spec.n > 0 {
			wave(spec.n, spec.prefix)
		}
		for range 3 {
			rep, err := e.w.Pass(ctx)
			if err != nil {
				t.Fatal(err)
			}
			total += rep.Hits
		}
		hosts := []int{4, 7, 9}[w]
		if want := hosts * 2; total != want {
			t.Fatalf("after wave %d: %d hits, want %d (two per host)", w+1, total, want)
		}
	}
	h, _ := e.db.RecentHunts(ctx, 1)
	p, _ := e.db.HuntProgress(ctx, h[0].ID)
	if p.RowsRead != 18+9 {
		t.Fatalf("rows read %d, want 27 (18 hits, a coverage row per host): each row once", p.RowsRead)
	}
}

// TestSlowServerDoesNotStallOthers: one Velociraptor that stops answering
// delays only its own hunts; each call to it gives up after its timeout and
// the other server's hits are read in the same pass (issue 9).
func TestSlowServerDoesNotStallOthers(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	slow, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	path, _ := slow.WriteAPIConfig(t.TempDir(), "velohunt")
	cfg, _ := velociraptor.LoadAPIConfig(path)
	vr, err := velociraptor.Dial(cfg, velociraptor.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	if _, err := vr.SetArtifact(ctx, "", "name: Custom.Velohunt.File\ntype: CLIENT\n"); err != nil {
		t.Fatal(err)
	}
	e.p.Servers["slow"] = vr
	e.w.Servers["slow"] = vr
	slow.AddEndpoint(endpoint("C.s1", "far", "/tmp/a.sh"))
	e.srv.AddEndpoint(endpoint("C.m1", "near", "/tmp/a.sh"))
	e.db.UpsertCase(ctx, ioc.Case{ID: 2, Open: true}, ioc.Route{Server: "slow"})
	if _, err := e.db.SyncCaseIOCs(ctx, 2, []store.IOCInput{{IOC: ioc.IOC{ID: 99, TypeName: "filename", Value: "a.sh"},
		Target: ioc.Target{Kind: ioc.KindFile, Value: "a.sh"}}}, "test", false); err != nil {
		t.Fatal(err)
	}
	e.hunt(t, "a.sh")
	if hunts, _ := e.db.RunningHunts(ctx); len(hunts) != 2 {
		t.Fatalf("%d running hunts, want one per server", len(hunts))
	}
	slow.SetDelay(time.Minute)
	start := time.Now()
	rep, err := e.w.Pass(ctx)
	took := time.Since(start)
	if rep.Hits != 1 || err == nil || !strings.Contains(err.Error(), "on slow") {
		t.Fatalf("rep=%+v err=%v: the fast server's hit, and the slow server's error", rep, err)
	}
	if took > 5*time.Second {
		t.Fatalf("the pass took %s: the slow server stalled it", took)
	}
	// Once it answers again, its hits are read.
	slow.SetDelay(0)
	rep, err = e.w.Pass(ctx)
	if err != nil || rep.Hits != 1 {
		t.Fatalf("rep=%+v err=%v after the slow server recovered", rep, err)
	}
}

// BenchmarkGrowingHunt: a hunt that grows for 50 watcher passes, 20 new
// hosts (40 rows) a pass, to 1,000 hosts. The rows read in a pass must be
// the new rows, not the hunt's total (issue 9): each flow is read from its
// own cursor, and flows with nothing new are not read.
func BenchmarkGrowingHunt(b *testing.B) {
	ctx := context.Background()
	const passes, perPass = 50, 20
	for range b.N {
		e := setup(b)
		e.hunt(b, "a.sh", "b.bin")
		maxRows, reads := 0, 0
		before := e.count(b, "FROM source(")
		b.ResetTimer()
		for p := range passes {
			for i := range perPass {
				e.srv.AddEndpoint(endpoint(fmt.Sprintf("C.%03d%03d", p, i), fmt.Sprintf("h%d-%d", p, i), "/tmp/a.sh", "/opt/b.bin"))
			}
			rep, err := e.w.Pass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Rows != 2*perPass || rep.Hits != 2*perPass {
				b.Fatalf("pass %d read %d rows (%d hits), want the %d new ones", p, rep.Rows, rep.Hits, 2*perPass)
			}
			maxRows = max(maxRows, rep.Rows)
		}
		b.StopTimer()
		reads = e.count(b, "FROM source(") - before
		if reads != passes*perPass {
			b.Fatalf("%d flow reads, want one per new host (%d)", reads, passes*perPass)
		}
		b.ReportMetric(float64(maxRows), "max-rows-read/pass")
		b.ReportMetric(float64(2*passes*perPass), "hunt-rows-at-end")
		b.ReportMetric(float64(reads)/passes, "flow-reads/pass")
	}
}

// TestRelaunchedFlow: a client whose flow errored is relaunched in the hunt
// (a new flow id, as hunt_add(relaunch=TRUE) makes in 0.77.2). The new
// flow's rows are read from its own first row, not from the old flow's
// count, and the host's state is its newest flow's: the hunt is no longer
// incomplete.
func TestRelaunchedFlow(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	ep := endpoint("C.1", "web1", "/tmp/a.sh", "/home/x/a.sh", "/opt/a.sh")
	ep.FlowError, ep.FlowErrorRows = "Timeout: query timed out after 60 seconds", 3
	e.srv.AddEndpoint(ep)
	e.srv.AddEndpoint(endpoint("C.2", "web2"))
	e.hunt(t, "a.sh", "b.bin")
	rep, err := e.w.Pass(ctx)
	if err != nil || rep.Hits != 3 {
		t.Fatalf("rep=%+v err=%v, want the 3 hits of the errored flow", rep, err)
	}
	hunts, _ := e.db.RunningHunts(ctx)
	h := hunts[0]
	tab := func() store.TabHunt {
		t.Helper()
		rows, _ := e.db.CaseIOCs(ctx, 1)
		d, err := e.db.FindTabData(ctx, rows[0].ID, 10)
		if err != nil || len(d.Cases) != 1 || len(d.Cases[0].Hunts) != 1 {
			t.Fatalf("tab data %+v err=%v", d, err)
		}
		return d.Cases[0].Hunts[0]
	}
	if th := tab(); th.Errored != 1 || th.FirstError == "" {
		t.Fatalf("before the relaunch: %+v, want one host errored", th.Progress)
	}

	// The analyst relaunches C.1; by now only b.bin is on it.
	ep = endpoint("C.1", "web1", "/srv/b.bin")
	e.srv.AddEndpoint(ep)
	flow, err := e.srv.Relaunch(h.VRHuntID, "C.1")
	if err != nil {
		t.Fatal(err)
	}
	// Added to the hunt, the new flow waits for the client; 0.77.2's
	// stats count it scheduled and finished already.
	if rep, err := e.w.Pass(ctx); err != nil || rep.Rows != 0 {
		t.Fatalf("rep=%+v err=%v, want the waiting flow listed, nothing read", rep, err)
	}
	if th := tab(); th.Finished != th.Scheduled-1 {
		t.Fatalf("while the relaunched flow waits: %+v, want its host not done", th.Progress)
	}
	// It ends; the hunt's stats do not move.
	if err := e.srv.CompleteFlow(flow); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(watcher.PendingEvery)
	rep, err = e.w.Pass(ctx)
	if err != nil || rep.Rows != 1+1 || rep.Hits != 1 {
		t.Fatalf("rep=%+v err=%v, want the relaunched flow's one row and its coverage row read, and its hit", rep, err)
	}
	var reads []string
	for _, r := range e.srv.Received() {
		if strings.Contains(r.VQL, "FROM source(client_id=") && r.Env["VhFlowId"] == flow {
			reads = append(reads, r.Env["VhStartRow"])
		}
	}
	if len(reads) != 1 || reads[0] != "0" {
		t.Fatalf("reads of the new flow from rows %v, want one from row 0", reads)
	}
	th := tab()
	if th.Errored != 0 || th.FirstError != "" || th.Scheduled != 2 || th.Finished != 2 {
		t.Fatalf("after the relaunch finished: %+v, want 2 of 2 hosts done and none errored", th.Progress)
	}
	if rep, err := e.w.Pass(ctx); err != nil || rep.Rows != 0 {
		t.Fatalf("rep=%+v err=%v, want nothing read again", rep, err)
	}
}

// BenchmarkLargeHunt: a hunt of 10,000 finished flows that grows by 20
// hosts a pass for 20 passes. hunt_flows() in 0.77.2 ignores its limit and
// loads every flow's details it lists; the flows listed per pass must be
// what moved, not the hunt's size.
func BenchmarkLargeHunt(b *testing.B) {
	ctx := context.Background()
	const flows, passes, perPass = 10000, 20, 20
	for range b.N {
		e := setup(b)
		e.srv.SetRowSource("Custom.Velohunt.File", velotest.RowSource{Clients: flows,
			ClientID: func(c int) string { return fmt.Sprintf("C.big%05d", c) }})
		e.hunt(b, "a.sh", "b.bin")
		b.ResetTimer()
		start := time.Now()
		// Catching up with a hunt already this large: a bounded number of
		// flows listed a pass.
		hunts, _ := e.db.RunningHunts(ctx)
		catchUp := 0
		for pr, _ := e.db.HuntProgress(ctx, hunts[0].ID); pr.Scheduled < flows; pr, _ = e.db.HuntProgress(ctx, hunts[0].ID) {
			if catchUp++; catchUp > 3 {
				b.Fatalf("%d of %d flows seen after %d passes", pr.Scheduled, flows, catchUp-1)
			}
			if _, err := e.w.Pass(ctx); err != nil {
				b.Fatal(err)
			}
		}
		first := e.srv.FlowDetailsLoaded()
		worst := 0
		for p := range passes {
			before := e.srv.FlowDetailsLoaded()
			for i := range perPass {
				e.srv.AddEndpoint(endpoint(fmt.Sprintf("C.%03d%03d", p, i), fmt.Sprintf("h%d-%d", p, i), "/tmp/a.sh"))
			}
			rep, err := e.w.Pass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Hits != perPass {
				b.Fatalf("pass %d: %d hits, want %d", p, rep.Hits, perPass)
			}
			worst = max(worst, e.srv.FlowDetailsLoaded()-before)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		pr, _ := e.db.HuntProgress(ctx, hunts[0].ID)
		if want := int64(flows + passes*perPass); pr.Scheduled != want || pr.Finished != want {
			b.Fatalf("progress %+v, want %d hosts scheduled and finished", pr, want)
		}
		if worst > 2*perPass {
			b.Fatalf("a pass listed %d flows to find %d new ones", worst, perPass)
		}
		b.ReportMetric(float64(first), "flows-loaded-catching-up")
		b.ReportMetric(float64(catchUp), "catch-up-passes")
		b.ReportMetric(float64(worst), "max-flows-loaded/growth-pass")
		b.ReportMetric(elapsed.Seconds()/float64(passes+1), "s/pass")
	}
}

// TestFlowListingBounded: a pass lists a hunt's flows from the first that
// can have moved (the first not done, else the first not seen), not the
// whole hunt: 0.77.2's hunt_flows() loads the details of every flow it
// lists and ignores its limit.
func TestFlowListingBounded(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.srv.SetRowSource("Custom.Velohunt.File", velotest.RowSource{Clients: 2500,
		ClientID: func(c int) string { return fmt.Sprintf("C.big%05d", c) }})
	e.hunt(t, "a.sh")
	if _, err := e.w.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	before := e.srv.FlowDetailsLoaded()
	e.srv.AddEndpoint(endpoint("C.late1", "late1", "/tmp/a.sh"))
	e.srv.AddEndpoint(endpoint("C.late2", "late2"))
	rep, err := e.w.Pass(ctx)
	if err != nil || rep.Hits != 1 {
		t.Fatalf("rep=%+v err=%v", rep, err)
	}
	if got := e.srv.FlowDetailsLoaded() - before; got != 2 {
		t.Fatalf("%d flows listed for 2 new ones", got)
	}
	hunts, _ := e.db.RunningHunts(ctx)
	if p, _ := e.db.HuntProgress(ctx, hunts[0].ID); p.Scheduled != 2502 || p.Finished != 2502 {
		t.Fatalf("progress %+v, want 2502 hosts", p)
	}
}

// TestCoverageGap: a host whose flow finished but whose artifact says a
// source searched nothing, or could not run, is not counted as searched:
// the hunt's progress names it, and the hunt is incomplete. Coverage rows
// are never hits, even in a hunt of one value (where a row naming no IOC
// belongs to that value).
func TestCoverageGap(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	full := endpoint("C.1", "full", "/tmp/a.sh")
	blind := endpoint("C.2", "blind")
	blind.Cannot = map[string]string{"file_names": "Call to plugin glob disabled"}
	e.srv.AddEndpoint(full)
	e.srv.AddEndpoint(blind)
	e.hunt(t, "a.sh")
	rep, err := e.w.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Hits != 1 || rep.Gaps != 1 {
		t.Fatalf("report %+v, want one hit and one coverage gap", rep)
	}
	h, _ := e.db.RecentHunts(ctx, 1)
	p, err := e.db.HuntProgress(ctx, h[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Incomplete() || len(p.Uncovered) != 1 || p.FirstGap() != "blind: file_names: Call to plugin glob disabled" {
		t.Fatalf("progress %+v (first gap %q), want blind named as not searched", p, p.FirstGap())
	}
	st, err := e.db.Stats(ctx)
	if err != nil || st.IncompleteHunts != 1 || st.Gaps["file_names"] != 1 {
		t.Fatalf("stats %+v err=%v", st, err)
	}

	// A source name no artifact of velohunt's reports is stored as "other":
	// an endpoint cannot grow the store or the metrics.
	odd := endpoint("C.3", "odd")
	odd.Cannot = map[string]string{"file_names": ""}
	e.srv.SetBehaviour("Custom.Velohunt.File", func(ep *velotest.Endpoint, params map[string]string) []map[string]any {
		return []map[string]any{{"IOC": "", "Source": "coverage", "Coverage": map[string]any{"Source": strings.Repeat("x", 500), "Searched": 0}}}
	})
	e.srv.AddEndpoint(odd)
	if _, err := e.w.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = e.db.Stats(ctx)
	if st.Gaps["other"] != 1 || len(st.Gaps) != 2 {
		t.Fatalf("gaps %v, want the odd source counted as other", st.Gaps)
	}
}

// TestNoCoverageReported: a finished flow of velohunt's artifact that read
// to its end without a coverage row (an old client that could not run a
// part of it, say) is not clean either.
func TestNoCoverageReported(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.srv.SetBehaviour("Custom.Velohunt.File", func(ep *velotest.Endpoint, params map[string]string) []map[string]any {
		return nil // finished, nothing reported
	})
	e.srv.AddEndpoint(endpoint("C.1", "mute"))
	e.hunt(t, "a.sh")
	if _, err := e.w.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	h, _ := e.db.RecentHunts(ctx, 1)
	p, _ := e.db.HuntProgress(ctx, h[0].ID)
	if !p.Incomplete() || p.FirstGap() != "C.1: no coverage reported" {
		t.Fatalf("progress %+v (first gap %q)", p, p.FirstGap())
	}
}
