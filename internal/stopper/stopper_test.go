package stopper_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/planner"
	"github.com/velohunt/velohunt/internal/stopper"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

type env struct {
	db  *store.DB
	srv *velotest.Server
	vr  *velociraptor.Client
	p   *planner.Planner
	s   *stopper.Stopper
	n   int64 // IRIS IOC ids handed out
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{}
	var err error
	if e.db, err = store.Open(ctx, filepath.Join(t.TempDir(), "v.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	if e.srv, err = velotest.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Close)
	e.srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", Hostname: "h1", OS: "linux", Online: true})
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.p = &planner.Planner{Store: e.db, Servers: map[string]planner.Velociraptor{"main": e.vr},
		Kinds:      map[ioc.Kind]planner.Artifact{ioc.KindIP: {Name: "Generic.Client.Info", Parameter: "IOCs", Format: "json"}},
		MaxPerHunt: 100, Expiry: 24 * time.Hour, Logger: log}
	e.s = &stopper.Stopper{Store: e.db, Servers: map[string]stopper.Velociraptor{"main": e.vr}, Logger: log}
	return e
}

// hunt queues one new IP IOC in each of the cases and plans one hunt of
// them; launch starts it in Velociraptor.
func (e *env) hunt(t *testing.T, launch bool, cases ...int64) store.Hunt {
	t.Helper()
	ctx := context.Background()
	for _, cid := range cases {
		if err := e.db.UpsertCase(ctx, ioc.Case{ID: cid, Open: true}, ioc.Route{Server: "main"}); err != nil {
			t.Fatal(err)
		}
		e.n++
		v := fmt.Sprintf("198.51.100.%d", e.n)
		in := store.IOCInput{IOC: ioc.IOC{ID: e.n, TypeName: "ip-dst", Value: v}, Target: ioc.Target{Kind: ioc.KindIP, Value: v}}
		if _, err := e.db.SyncCaseIOCs(ctx, cid, []store.IOCInput{in}, "test", false); err != nil {
			t.Fatal(err)
		}
	}
	planned, err := e.p.Plan(ctx, true)
	if err != nil || len(planned) != 1 {
		t.Fatalf("plan: %v %v", planned, err)
	}
	if launch {
		if ok, err := e.p.Launch(ctx, planned[0]); err != nil || !ok {
			t.Fatalf("launch: %v %v", ok, err)
		}
	}
	h, _ := e.db.FindHunt(ctx, planned[0].ID)
	return h
}

// vrState is a hunt's state in the simulator.
func (e *env) vrState(t *testing.T, id string) string {
	t.Helper()
	h, ok := e.srv.HuntByID(id)
	if !ok {
		t.Fatalf("no hunt %s in Velociraptor", id)
	}
	return h.State
}

func (e *env) row(t *testing.T, id int64) store.Hunt {
	t.Helper()
	h, err := e.db.FindHunt(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func byHunt(items []stopper.Item) map[int64]stopper.Item {
	m := map[int64]stopper.Item{}
	for _, it := range items {
		m[it.Hunt.ID] = it
	}
	return m
}

// TestStopByCase: -case N stops the hunts of case N only; a hunt it shares
// with another case is left running and named, unless forced; a planned
// hunt of the case is ended and never launched.
func TestStopByCase(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	a := e.hunt(t, true, 1)
	b := e.hunt(t, true, 2)
	shared := e.hunt(t, true, 1, 2)
	planned := e.hunt(t, false, 1)

	items, err := e.s.Select(ctx, stopper.Selection{CaseID: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := byHunt(items)
	if len(items) != 3 || got[a.ID].Action != stopper.Stop || got[planned.ID].Action != stopper.Record ||
		got[shared.ID].Action != stopper.Refuse || !strings.Contains(got[shared.ID].Why, "case(s) #2") {
		t.Fatalf("selection %+v", items)
	}
	if _, ok := got[b.ID]; ok {
		t.Fatal("case 2's own hunt selected for case 1")
	}
	// Select changes nothing.
	if s := e.vrState(t, a.VRHuntID); s != "RUNNING" {
		t.Fatalf("hunt a is %s after a dry run", s)
	}
	if r := e.row(t, planned.ID); r.State != store.HuntPlanned {
		t.Fatalf("planned hunt is %s after a dry run", r.State)
	}

	items, err = e.s.Stop(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	got = byHunt(items)
	if !got[a.ID].Done || !got[planned.ID].Done || got[shared.ID].Done {
		t.Fatalf("results %+v", items)
	}
	if s := e.vrState(t, a.VRHuntID); s != "STOPPED" {
		t.Fatalf("hunt a is %s, want STOPPED", s)
	}
	for _, h := range []store.Hunt{b, shared} {
		if s := e.vrState(t, h.VRHuntID); s != "RUNNING" {
			t.Fatalf("hunt %s is %s, want RUNNING", h.VRHuntID, s)
		}
	}
	for _, h := range []store.Hunt{a, planned} {
		if r := e.row(t, h.ID); r.State != store.HuntStopped || r.EndReason != store.ReasonStoppedByOperator {
			t.Fatalf("row %+v", r)
		}
	}
	if n, err := e.p.LaunchDue(ctx); err != nil || n != 0 {
		t.Fatalf("launched %d after the stop (err %v)", n, err)
	}
	if len(e.srv.Hunts()) != 3 {
		t.Fatalf("%d hunts in Velociraptor, want the 3 launched before", len(e.srv.Hunts()))
	}

	t.Run("Force", func(t *testing.T) {
		items, err := e.s.Select(ctx, stopper.Selection{CaseID: 1, Force: true})
		if err != nil || len(items) != 1 || items[0].Action != stopper.Stop {
			t.Fatalf("selection %+v %v", items, err)
		}
		if _, err := e.s.Stop(ctx, items); err != nil {
			t.Fatal(err)
		}
		if s := e.vrState(t, shared.VRHuntID); s != "STOPPED" {
			t.Fatalf("shared hunt is %s", s)
		}
		if s := e.vrState(t, b.VRHuntID); s != "RUNNING" {
			t.Fatalf("case 2's hunt is %s", s)
		}
	})
}

// TestNeverStopsAForeignHunt: a hunt velohunt did not start is never
// stopped: one with no velohunt tag, one tagged "velohunt" by someone
// else, and velohunt's own rows changed to point at them.
func TestNeverStopsAForeignHunt(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	foreign := e.srv.CreateHuntDirect("", "Generic.Client.Info", []string{"incident-42"})
	lookalike := e.srv.CreateHuntDirect("", "Generic.Client.Info", []string{"velohunt", "velohunt-00000000000000000000"})
	for _, id := range []string{foreign, lookalike} {
		if err := e.vr.StartHunt(ctx, "", id); err != nil {
			t.Fatal(err)
		}
	}
	// Two rows of velohunt's, tampered: each names a foreign hunt.
	var rows []store.Hunt
	for _, id := range []string{foreign, lookalike} {
		h := e.hunt(t, false, 1)
		if err := e.db.SetHuntCreated(ctx, h.ID, id); err != nil {
			t.Fatal(err)
		}
		if err := e.db.SetHuntRunning(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, h)
	}
	own := e.hunt(t, true, 1)

	items, err := e.s.Select(ctx, stopper.Selection{All: true})
	if err != nil {
		t.Fatal(err)
	}
	items, err = e.s.Stop(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	got := byHunt(items)
	for _, h := range rows {
		it := got[h.ID]
		if it.Done || it.Action != stopper.Refuse || !strings.Contains(it.Why, "does not carry velohunt's marker") {
			t.Fatalf("tampered row: %+v", it)
		}
		if r := e.row(t, h.ID); r.State != store.HuntRunning {
			t.Fatalf("tampered row is %s, want left as it was", r.State)
		}
	}
	for _, id := range []string{foreign, lookalike} {
		if s := e.vrState(t, id); s != "RUNNING" {
			t.Fatalf("foreign hunt %s is %s, want RUNNING", id, s)
		}
	}
	if !got[own.ID].Done || e.vrState(t, own.VRHuntID) != "STOPPED" {
		t.Fatalf("velohunt's own hunt: %+v, %s", got[own.ID], e.vrState(t, own.VRHuntID))
	}
}

// TestStopWithoutVelociraptor: a hunt Velociraptor cannot be asked about is
// left as it is (the store never says it ended while it may run); one
// velohunt created and Velociraptor no longer has is recorded stopped.
func TestStopWithoutVelociraptor(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	h := e.hunt(t, true, 1)
	e.srv.SetDown(true)
	items, err := e.s.Select(ctx, stopper.Selection{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if items, err = e.s.Stop(ctx, items); err != nil {
		t.Fatal(err)
	}
	if items[0].Action != stopper.Unverified || items[0].Done || e.row(t, h.ID).State != store.HuntRunning {
		t.Fatalf("down: %+v, row %s", items[0], e.row(t, h.ID).State)
	}
	e.srv.SetDown(false)

	gone := e.hunt(t, false, 2)
	if err := e.db.SetHuntCreated(ctx, gone.ID, "H.GONE"); err != nil {
		t.Fatal(err)
	}
	items, _ = e.s.Select(ctx, stopper.Selection{CaseID: 2})
	if items, err = e.s.Stop(ctx, items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || !items[0].Done || items[0].Action != stopper.Record {
		t.Fatalf("gone: %+v", items)
	}
}
