package planner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/planner"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testclock"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
	"github.com/velohunt/velohunt/templates"
)

type env struct {
	db  *store.DB
	clk *testclock.Clock
	srv *velotest.Server
	vr  *velociraptor.Client
	p   *planner.Planner
	// path is the database file, for more launchers (one handle each).
	path string
}

func setup(t testing.TB, max int) *env {
	t.Helper()
	e := &env{clk: testclock.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))}
	var err error
	e.path = filepath.Join(t.TempDir(), "v.db")
	e.db, err = store.Open(context.Background(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.db.Now = e.clk.Now
	if e.srv, err = velotest.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Close)
	path, err := e.srv.WriteAPIConfig(t.TempDir(), "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := velociraptor.LoadAPIConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.vr, err = velociraptor.Dial(cfg, velociraptor.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.vr.Close() })
	e.p = e.planner(e.db, e.vr, max)
	return e
}

// planner is a launcher on db (a process of its own) calling vr.
func (e *env) planner(db *store.DB, vr planner.Velociraptor, max int) *planner.Planner {
	return &planner.Planner{Store: db, Servers: map[string]planner.Velociraptor{"main": vr},
		Kinds:  map[ioc.Kind]planner.Artifact{ioc.KindIP: {Name: "Generic.Client.Info", Parameter: "IOCs", Format: "json"}},
		Window: 5 * time.Second, MaxPerHunt: max, Expiry: 7 * 24 * time.Hour, ClientTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: e.clk.Now}
}

// queue adds n IP IOCs to case 1.
func (e *env) queue(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	if err := e.db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	var list []store.IOCInput
	for i := range n {
		v := fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)
		list = append(list, store.IOCInput{IOC: ioc.IOC{ID: int64(i + 1), TypeName: "ip-dst", Value: v},
			Target: ioc.Target{Kind: ioc.KindIP, Value: v}})
	}
	if _, err := e.db.SyncCaseIOCs(ctx, 1, list, "test", false); err != nil {
		t.Fatal(err)
	}
}

func TestBatching(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 4)
	e.queue(t, 10)
	if err := e.p.Step(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got, want := len(e.srv.Hunts()), 2; got != want {
		t.Fatalf("%d hunts before the window ends, want %d full ones", got, want)
	}
	e.clk.Add(6 * time.Second)
	if err := e.p.Step(ctx, false); err != nil {
		t.Fatal(err)
	}
	hunts := e.srv.Hunts()
	if got, want := len(hunts), 3; got != want {
		t.Fatalf("%d hunts after the window, want %d", got, want)
	}
	seen := map[string]bool{}
	for _, h := range hunts {
		if h.State != "RUNNING" {
			t.Fatalf("hunt %s is %s, want RUNNING", h.ID, h.State)
		}
		if h.Timeout != 60 {
			t.Fatalf("client timeout %d, want 60", h.Timeout)
		}
		if d := time.Until(h.Expires); d < 6*24*time.Hour {
			t.Fatalf("hunt expires in %v, want about 7 days", d)
		}
		var vals []string
		for _, v := range splitJSON(t, h.Params["IOCs"]) {
			if seen[v] {
				t.Fatalf("IOC %s hunted twice", v)
			}
			seen[v] = true
			vals = append(vals, v)
		}
	}
	if len(seen) != 10 {
		t.Fatalf("%d IOCs hunted, want 10", len(seen))
	}
	// Nothing more to do.
	e.clk.Add(time.Minute)
	e.p.Step(ctx, false)
	if len(e.srv.Hunts()) != 3 {
		t.Fatal("a hunt was started twice")
	}
}

// TestCrashDuringLaunch simulates a process that created the hunt in
// Velociraptor and died before recording it: the next launcher must find the
// hunt by its marker instead of creating a second one.
func TestCrashDuringLaunch(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 10)
	e.queue(t, 3)
	planned, err := e.p.Plan(ctx, true)
	if err != nil || len(planned) != 1 {
		t.Fatalf("planned=%v err=%v", planned, err)
	}
	h := planned[0]
	// The dead process claimed the launch and created the hunt.
	if ok, err := e.db.ClaimLaunch(ctx, h.ID, 2*time.Minute); !ok || err != nil {
		t.Fatalf("claim=%v err=%v", ok, err)
	}
	vrID := e.srv.CreateHuntDirect("", "Generic.Client.Info", []string{"velohunt", h.Marker})
	// Before the lease ends nobody touches it.
	if n, err := e.p.LaunchDue(ctx); n != 0 || err != nil {
		t.Fatalf("launched %d during the lease (err=%v)", n, err)
	}
	e.clk.Add(3 * time.Minute)
	if n, err := e.p.LaunchDue(ctx); n != 1 || err != nil {
		t.Fatalf("launched %d, err=%v", n, err)
	}
	hunts := e.srv.Hunts()
	if len(hunts) != 1 || hunts[0].ID != vrID || hunts[0].State != "RUNNING" {
		t.Fatalf("hunts=%+v, want only %s, running", hunts, vrID)
	}
	got, _ := e.db.FindHunt(ctx, h.ID)
	if got.VRHuntID != vrID || got.State != store.HuntRunning {
		t.Fatalf("stored hunt=%+v", got)
	}
}

// TestClaimOfEndedLauncher: a launcher killed (kill -9) after claiming a
// hunt and creating it leaves a claim whose lock is free; the next launcher
// takes it over once the claim's grace is over, not after the lease, and
// finds the created hunt by its marker. A claim of a living launcher is
// left alone. Each launcher is a handle on the database, as each process
// is.
func TestClaimOfEndedLauncher(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 2)
	e.queue(t, 4)
	planned, err := e.p.Plan(ctx, true)
	if err != nil || len(planned) != 2 {
		t.Fatalf("planned=%v err=%v", planned, err)
	}
	other := func() *store.DB {
		db, err := store.Open(ctx, e.path)
		if err != nil {
			t.Fatal(err)
		}
		db.Now = e.clk.Now
		return db
	}
	dead, alive := other(), other()
	defer alive.Close()
	if ok, err := dead.ClaimLaunch(ctx, planned[0].ID, 2*time.Minute); !ok || err != nil {
		t.Fatalf("claim=%v err=%v", ok, err)
	}
	if ok, err := alive.ClaimLaunch(ctx, planned[1].ID, 2*time.Minute); !ok || err != nil {
		t.Fatalf("claim=%v err=%v", ok, err)
	}
	vrID := e.srv.CreateHuntDirect("", "Generic.Client.Info", []string{"velohunt", planned[0].Marker})
	if n, err := e.p.LaunchDue(ctx); n != 0 || err != nil {
		t.Fatalf("launched %d while both launchers live (err=%v)", n, err)
	}
	dead.Close() // its process ends: the kernel drops its lock
	if n, err := e.p.LaunchDue(ctx); n != 0 || err != nil {
		t.Fatalf("launched %d within the claim's grace (err=%v)", n, err)
	}
	e.clk.Add(20 * time.Second)
	if n, err := e.p.LaunchDue(ctx); n != 1 || err != nil {
		t.Fatalf("launched %d after the launcher died, want 1 (err=%v)", n, err)
	}
	got, _ := e.db.FindHunt(ctx, planned[0].ID)
	if got.VRHuntID != vrID || got.State != store.HuntRunning {
		t.Fatalf("taken-over hunt=%+v, want %s running", got, vrID)
	}
	if len(e.srv.Hunts()) != 1 {
		t.Fatalf("%d Velociraptor hunts, want the dead launcher's only", len(e.srv.Hunts()))
	}
	if got, _ := e.db.FindHunt(ctx, planned[1].ID); got.State != store.HuntPlanned {
		t.Fatalf("the living launcher's hunt was taken: %+v", got)
	}
}

// pausingVR holds CreateHunt until released: a launcher paused in the
// middle of its call.
type pausingVR struct {
	planner.Velociraptor
	entered, release chan struct{}
}

func (v *pausingVR) CreateHunt(ctx context.Context, r velociraptor.HuntRequest) (string, error) {
	close(v.entered)
	<-v.release // the request reaches the server only now
	return v.Velociraptor.CreateHunt(ctx, r)
}

// TestTwinOfLostClaimStopped: a launcher whose claim ran out while it was
// paused in CreateHunt comes back after another launcher created, recorded
// and started the hunt: the twin it created is stopped, never started, and
// the store keeps the other's hunt.
func TestTwinOfLostClaimStopped(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 10)
	e.queue(t, 2)
	planned, err := e.p.Plan(ctx, true)
	if err != nil || len(planned) != 1 {
		t.Fatalf("planned=%v err=%v", planned, err)
	}
	slow := &pausingVR{Velociraptor: e.vr, entered: make(chan struct{}), release: make(chan struct{})}
	paused := e.planner(e.db, slow, 10)
	done := make(chan error, 1)
	go func() {
		_, err := paused.Launch(ctx, planned[0])
		done <- err
	}()
	<-slow.entered
	// Its lease runs out under it; the other launcher (another process)
	// takes the hunt.
	e.clk.Add(3 * time.Minute)
	db2, err := store.Open(ctx, e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	db2.Now = e.clk.Now
	p2 := e.planner(db2, e.vr, 10)
	if n, err := p2.LaunchDue(ctx); n != 1 || err != nil {
		t.Fatalf("the other launcher started %d (err=%v)", n, err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, _ := e.db.FindHunt(ctx, planned[0].ID)
	states := map[string]string{}
	for _, h := range e.srv.Hunts() {
		states[h.ID] = h.State
	}
	if len(states) != 2 || states[got.VRHuntID] != "RUNNING" {
		t.Fatalf("hunts %v, recorded %s: want the recorded one running and a twin", states, got.VRHuntID)
	}
	for id, st := range states {
		if id != got.VRHuntID && st != "STOPPED" {
			t.Fatalf("the twin %s is %s, want STOPPED", id, st)
		}
	}
}

func TestLaunchFailureIsRetried(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 10)
	e.queue(t, 2)
	e.srv.SetUser("velohunt", velotest.PermAnyQuery, velotest.PermReadResults)
	if err := e.p.Step(ctx, true); err != nil {
		t.Fatal(err)
	}
	failing, _ := e.db.FailingLaunches(ctx, 10)
	if len(failing) != 1 || failing[0].LastError == "" {
		t.Fatalf("failing=%+v", failing)
	}
	// The operator grants START_HUNT; after the backoff the hunt starts.
	e.srv.SetUser("velohunt", velotest.Investigator...)
	e.clk.Add(10 * time.Second)
	if err := e.p.Step(ctx, false); err != nil {
		t.Fatal(err)
	}
	if hunts := e.srv.Hunts(); len(hunts) != 1 || hunts[0].State != "RUNNING" {
		t.Fatalf("hunts=%+v", hunts)
	}
}

func TestFormatList(t *testing.T) {
	vals := []string{"a.b", "c|d"}
	tests := []struct{ format, want string }{
		{"json", `["a.b","c|d"]`},
		{"lines", "a.b\nc|d"},
		{"csv", "a.b,c|d"},
		{"regex", `a\.b|c\|d`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			got, err := planner.FormatList(vals, tt.format)
			if err != nil || got != tt.want {
				t.Fatalf("FormatList=%q err=%v, want %q", got, err, tt.want)
			}
		})
	}
	if _, err := planner.FormatList(vals, "xml"); err == nil {
		t.Fatal("want error for an unknown format")
	}
}

func splitJSON(t testing.TB, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkPlanAndLaunch queues 10,000 IP IOCs in the store and plans and
// launches them against the simulated Velociraptor with list size 500: the
// planner's own cost, without IRIS.
//
//	go test -run XXX -bench PlanAndLaunch ./internal/planner
func BenchmarkPlanAndLaunch(b *testing.B) {
	for range b.N {
		b.StopTimer()
		e := setup(b, 500)
		e.queue(b, 10000)
		b.StartTimer()
		if err := e.p.Step(context.Background(), true); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := len(e.srv.Hunts()); got != 20 {
			b.Fatalf("%d hunts, want 20", got)
		}
		b.ReportMetric(20, "hunts")
	}
}

// oneHunt lets the batch window pass, runs the planner once and returns the
// one hunt it must have started.
func (e *env) oneHunt(t *testing.T) velotest.Hunt {
	t.Helper()
	e.clk.Add(6 * time.Second)
	if err := e.p.Step(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	hunts := e.srv.Hunts()
	if len(hunts) != 1 {
		t.Fatalf("%d hunts, want 1", len(hunts))
	}
	return hunts[0]
}

// TestServerLimitsAndParameters: a server's cpu_limit, ops_per_second,
// client_timeout and artifact parameters override the hunting defaults for
// its hunts; the IOC list parameter cannot be overridden.
func TestServerLimitsAndParameters(t *testing.T) {
	e := setup(t, 100)
	e.p.CPULimit, e.p.OpsPerSecond = 50, 1000
	e.p.Limits = map[string]planner.Limits{"main": {CPULimit: 20, ClientTimeout: 30 * time.Minute,
		Parameters: map[string]map[string]string{"ip": {"UseIndex": "N", "IOCs": "[]"}, "hash": {"Other": "x"}}}}
	e.queue(t, 3)
	h := e.oneHunt(t)
	if h.CPULimit != 20 || h.OpsPerSec != 1000 || h.Timeout != 1800 {
		t.Fatalf("cpu %d, ops %d, timeout %d; want 20 (server), 1000 (default), 1800 (server)", h.CPULimit, h.OpsPerSec, h.Timeout)
	}
	if h.Params["UseIndex"] != "N" || h.Params["Other"] != "" || len(splitJSON(t, h.Params["IOCs"])) != 3 {
		t.Fatalf("parameters %v: want UseIndex=N from the server, nothing of the hash kind, the 3 IOCs", h.Params)
	}
}

// TestHashHuntFileNames: a hash hunt whose every hash came with a file name
// (filename|md5) carries the names, lower-cased, for the artifact's
// OnlyNamedFiles; one plain md5 in the batch means no names at all.
func TestHashHuntFileNames(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		iocs  []store.IOCInput
		names string
	}{
		{"AllNamed", []store.IOCInput{
			{IOC: ioc.IOC{ID: 1, TypeName: "filename|md5", Value: "Evil.EXE|0123456789abcdef0123456789abcdef"}},
			{IOC: ioc.IOC{ID: 2, TypeName: "filename|sha256", Value: `C:\Temp\drop.dll|` + strings.Repeat("ab", 32)}},
		}, `["drop.dll","evil.exe"]`},
		{"OneUnnamed", []store.IOCInput{
			{IOC: ioc.IOC{ID: 1, TypeName: "filename|md5", Value: "evil.exe|0123456789abcdef0123456789abcdef"}},
			{IOC: ioc.IOC{ID: 3, TypeName: "md5", Value: "fedcba9876543210fedcba9876543210"}},
		}, ""},
		{"SameHashAlsoUnnamed", []store.IOCInput{
			{IOC: ioc.IOC{ID: 1, TypeName: "filename|md5", Value: "evil.exe|0123456789abcdef0123456789abcdef"}},
			{IOC: ioc.IOC{ID: 4, TypeName: "md5", Value: "0123456789abcdef0123456789abcdef"}},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, 100)
			e.p.Kinds[ioc.KindHash] = planner.Artifact{Name: "Custom.Velohunt.Hash", Parameter: "IOCs", Format: "json"}
			defs, _ := templates.Artifacts("")
			if _, err := e.vr.SetArtifact(ctx, "", defs["Custom.Velohunt.Hash"]); err != nil {
				t.Fatal(err)
			}
			if err := e.db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
				t.Fatal(err)
			}
			for i := range tc.iocs {
				tg, err := ioc.Parse(tc.iocs[i].IOC.TypeName, tc.iocs[i].IOC.Value)
				if err != nil {
					t.Fatal(err)
				}
				tc.iocs[i].Target = tg
			}
			if _, err := e.db.SyncCaseIOCs(ctx, 1, tc.iocs, "test", false); err != nil {
				t.Fatal(err)
			}
			if got := e.oneHunt(t).Params["FileNames"]; got != tc.names {
				t.Fatalf("FileNames %q, want %q", got, tc.names)
			}
		})
	}
}

// hookVR runs a hook after a Velociraptor call succeeds: another process
// acting on the store while a launch is in flight.
type hookVR struct {
	planner.Velociraptor
	afterCreate, afterStart func()
}

func (v hookVR) CreateHunt(ctx context.Context, r velociraptor.HuntRequest) (string, error) {
	id, err := v.Velociraptor.CreateHunt(ctx, r)
	if err == nil && v.afterCreate != nil {
		v.afterCreate()
	}
	return id, err
}

func (v hookVR) StartHunt(ctx context.Context, org, id string) error {
	err := v.Velociraptor.StartHunt(ctx, org, id)
	if err == nil && v.afterStart != nil {
		v.afterStart()
	}
	return err
}

// TestStoppedWhileLaunching: an operator's `hunts stop` ends a planned hunt
// while a launch of it is in flight; the launcher stops what it made in
// Velociraptor: a hunt created but not started is never started, and one
// started is stopped at once. The row stays stopped, with the hunt's id.
func TestStoppedWhileLaunching(t *testing.T) {
	for _, tc := range []struct {
		name       string
		duringStop func(v *hookVR, stop func())
		everRan    bool
	}{
		{"DuringCreate", func(v *hookVR, stop func()) { v.afterCreate = stop }, false},
		{"DuringStart", func(v *hookVR, stop func()) { v.afterStart = stop }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := setup(t, 10)
			e.srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", Hostname: "h1", OS: "linux", Online: true})
			e.queue(t, 2)
			planned, err := e.p.Plan(ctx, true)
			if err != nil || len(planned) != 1 {
				t.Fatalf("plan: %v %v", planned, err)
			}
			h := planned[0]
			vr := &hookVR{Velociraptor: e.vr}
			tc.duringStop(vr, func() {
				if ok, err := e.db.StopByOperator(ctx, h.ID); err != nil || !ok {
					t.Errorf("stop: %v %v", ok, err)
				}
			})
			e.p.Servers["main"] = vr
			if _, err := e.p.Launch(ctx, h); err != nil {
				t.Fatal(err)
			}
			hunts := e.srv.Hunts()
			if len(hunts) != 1 {
				t.Fatalf("%d hunts in Velociraptor, want 1", len(hunts))
			}
			if hunts[0].State != "STOPPED" {
				t.Fatalf("the hunt is %s in Velociraptor, want STOPPED", hunts[0].State)
			}
			if ran := len(hunts[0].Scheduled) > 0; ran != tc.everRan {
				t.Fatalf("clients scheduled: %v, want %v", hunts[0].Scheduled, tc.everRan)
			}
			got, _ := e.db.FindHunt(ctx, h.ID)
			if got.State != store.HuntStopped || got.EndReason != store.ReasonStoppedByOperator || got.VRHuntID != hunts[0].ID {
				t.Fatalf("hunt row %+v", got)
			}
			e.clk.Add(time.Hour)
			if n, err := e.p.LaunchDue(ctx); err != nil || n != 0 || len(e.srv.Hunts()) != 1 {
				t.Fatalf("launched again: %d %v, %d hunts", n, err, len(e.srv.Hunts()))
			}
		})
	}
}

// TestScopedHunt: a server's scope (never clients labelled
// velohunt-exclude) narrowed by a kind's (only clients labelled win) is
// recorded on the hunt when it is planned, and the hunt Velociraptor gets
// runs on the clients it allows only; a later change of the configuration
// does not change a planned hunt.
func TestScopedHunt(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 10)
	e.srv.AddEndpoint(velotest.Endpoint{ClientID: "C.win", Hostname: "win", OS: "windows", Online: true, Labels: []string{"win"}})
	e.srv.AddEndpoint(velotest.Endpoint{ClientID: "C.dc", Hostname: "dc", OS: "windows", Online: true, Labels: []string{"win", "velohunt-exclude"}})
	e.srv.AddEndpoint(velotest.Endpoint{ClientID: "C.lin", Hostname: "lin", OS: "linux", Online: true})
	e.p.Limits = map[string]planner.Limits{"main": {Scope: ioc.Scope{ExcludeLabels: []string{"velohunt-exclude"}}}}
	art := e.p.Kinds[ioc.KindIP]
	art.Scope = ioc.Scope{IncludeLabels: []string{"win"}}
	e.p.Kinds[ioc.KindIP] = art
	e.queue(t, 2)
	planned, err := e.p.Plan(ctx, true)
	if err != nil || len(planned) != 1 {
		t.Fatalf("planned=%v err=%v", planned, err)
	}
	if want := `{"include_labels":["win"],"exclude_labels":["velohunt-exclude"]}`; planned[0].Scope != want {
		t.Fatalf("recorded scope %q, want %q", planned[0].Scope, want)
	}
	// The configuration changes before the launch: the hunt keeps its
	// scope, and takes the labels now excluded too.
	e.p.Limits = map[string]planner.Limits{"main": {Scope: ioc.Scope{ExcludeLabels: []string{"new-exclude"}}}}
	art.Scope = ioc.Scope{}
	e.p.Kinds[ioc.KindIP] = art
	if n, err := e.p.LaunchDue(ctx); n != 1 || err != nil {
		t.Fatalf("launched %d err=%v", n, err)
	}
	hunts := e.srv.Hunts()
	if len(hunts) != 1 {
		t.Fatalf("hunts %+v", hunts)
	}
	h := hunts[0]
	if !slices.Equal(h.IncludeLabels, []string{"win"}) || !slices.Equal(h.ExcludeLabels, []string{"new-exclude", "velohunt-exclude"}) || h.OS != "" {
		t.Fatalf("hunt scope include=%v exclude=%v os=%q", h.IncludeLabels, h.ExcludeLabels, h.OS)
	}
	var clients []string
	for c := range h.Flows {
		clients = append(clients, c)
	}
	if !slices.Equal(clients, []string{"C.win"}) {
		t.Fatalf("the hunt ran on %v, want C.win only", clients)
	}
}

// TestScopesOfRoutesAndRules: IOCs of cases routed with a scope, and IOCs
// a re-hunt rule with a scope queued, are hunted apart from the others,
// each hunt with its scope (the server's excluded labels added).
func TestScopesOfRoutesAndRules(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 10)
	e.p.Limits = map[string]planner.Limits{"main": {Scope: ioc.Scope{ExcludeLabels: []string{"velohunt-exclude"}}}}
	e.p.RuleScopes = map[string]ioc.Scope{"weekly": {IncludeLabels: []string{"servers"}}}
	acme := ioc.Scope{IncludeLabels: []string{"acme"}}.Encode()
	for id, route := range map[int64]ioc.Route{1: {Server: "main"}, 2: {Server: "main", Scope: acme}} {
		if err := e.db.UpsertCase(ctx, ioc.Case{ID: id, Open: true}, route); err != nil {
			t.Fatal(err)
		}
		v := fmt.Sprintf("198.51.100.%d", id)
		if _, err := e.db.SyncCaseIOCs(ctx, id, []store.IOCInput{{IOC: ioc.IOC{ID: 10 + id, TypeName: "ip-dst", Value: v},
			Target: ioc.Target{Kind: ioc.KindIP, Value: v}}}, "test", false); err != nil {
			t.Fatal(err)
		}
	}
	planned, err := e.p.Plan(ctx, true)
	if err != nil || len(planned) != 2 {
		t.Fatalf("planned %+v err=%v, want a hunt per route scope", planned, err)
	}
	// The re-hunt rule queues case 1's IOC again.
	if n, err := e.db.RequeueIOC(ctx, 11, nil, "rehunt:weekly", true); n != 1 || err != nil {
		t.Fatalf("requeued %d err=%v", n, err)
	}
	more, err := e.p.Plan(ctx, true)
	if err != nil || len(more) != 1 {
		t.Fatalf("planned %+v err=%v", more, err)
	}
	got := map[string]bool{}
	for _, h := range append(planned, more...) {
		got[h.Scope] = true
	}
	for _, want := range []string{`{"exclude_labels":["velohunt-exclude"]}`, `{"include_labels":["acme"],"exclude_labels":["velohunt-exclude"]}`,
		`{"include_labels":["servers"],"exclude_labels":["velohunt-exclude"]}`} {
		if !got[want] {
			t.Fatalf("scopes %v, want %s among them", got, want)
		}
	}
}
