package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testclock"
)

// MustOpen opens a store in a temp dir with a controllable clock.
func MustOpen(tb testing.TB) (*store.DB, *testclock.Clock) {
	tb.Helper()
	db, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "velohunt.db"))
	if err != nil {
		tb.Fatal(err)
	}
	clk := testclock.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	db.Now = clk.Now
	tb.Cleanup(func() { db.Close() })
	return db, clk
}

func input(id int64, typ, value string) store.IOCInput {
	in := store.IOCInput{IOC: ioc.IOC{ID: id, TypeName: typ, Value: value}}
	t, err := ioc.Parse(typ, value)
	if err != nil {
		in.Reason = ioc.ErrorMessage(err)
	} else {
		in.Target = t
	}
	return in
}

func TestSyncAndPlan(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	route := ioc.Route{Server: "main"}
	if err := db.UpsertCase(ctx, ioc.Case{ID: 1, Name: "#1 - ransomware", Open: true}, route); err != nil {
		t.Fatal(err)
	}
	list := []store.IOCInput{
		input(10, "md5", "d41d8cd98f00b204e9800998ecf8427e"),
		input(11, "sha256", "0000000000000000000000000000000000000000000000000000000000000000"),
		input(12, "ip-dst", "203.0.113.9"),
		input(13, "md5", "not-a-hash"),
	}
	res, err := db.SyncCaseIOCs(ctx, 1, list, "reconcile", true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 4 || res.Refused != 1 {
		t.Fatalf("sync = %+v, want 4 added, 1 refused", res)
	}

	t.Run("Idempotent", func(t *testing.T) {
		res, err := db.SyncCaseIOCs(ctx, 1, list, "webhook", true)
		if err != nil {
			t.Fatal(err)
		}
		if res != (store.SyncResult{}) {
			t.Fatalf("second sync changed %+v", res)
		}
	})

	groups, err := db.QueuedGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(groups), 2; got != want {
		t.Fatalf("groups=%d (%+v), want %d", got, groups, want)
	}
	var hashGroup store.Group
	for _, g := range groups {
		if g.Kind == ioc.KindHash {
			hashGroup = g
		}
	}
	if hashGroup.Count != 2 {
		t.Fatalf("hash group=%+v", hashGroup)
	}

	t.Run("PlanTakesAtMostMax", func(t *testing.T) {
		h1, err := db.PlanHunt(ctx, hashGroup, 1, "Custom.Velohunt.Hash", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := db.PlanHunt(ctx, hashGroup, 1, "Custom.Velohunt.Hash", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.PlanHunt(ctx, hashGroup, 1, "Custom.Velohunt.Hash", time.Hour); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("third plan err=%v, want ENOTFOUND", err)
		}
		a, _ := db.HuntIOCs(ctx, h1.ID)
		b, _ := db.HuntIOCs(ctx, h2.ID)
		if len(a) != 1 || len(b) != 1 || a[0].IOCID == b[0].IOCID {
			t.Fatalf("hunt iocs %+v %+v", a, b)
		}
		if h1.Marker == h2.Marker {
			t.Fatal("markers must differ")
		}
	})

	t.Run("NoRequeueWhileHunting", func(t *testing.T) {
		n, err := db.RequeueIOC(ctx, 10, nil, "cli", false)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("requeued %d rows of a hunting IOC", n)
		}
	})

	t.Run("ChangedValueIsQueuedAgain", func(t *testing.T) {
		clk.Add(time.Minute)
		changed := append([]store.IOCInput(nil), list...)
		changed[0] = input(10, "md5", "ffffffffffffffffffffffffffffffff")
		res, err := db.SyncCaseIOCs(ctx, 1, changed[:3], "webhook", true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed != 1 || res.Removed != 1 {
			t.Fatalf("sync=%+v, want 1 changed, 1 removed", res)
		}
		rows, _ := db.FindIOCs(ctx, 10)
		if rows[0].State != store.StateQueued || rows[0].HuntValue != "ffffffffffffffffffffffffffffffff" {
			t.Fatalf("row=%+v", rows[0])
		}
	})

	t.Run("LaunchStates", func(t *testing.T) {
		due, err := db.DueLaunches(ctx, 10)
		if err != nil || len(due) != 2 {
			t.Fatalf("due=%v err=%v", due, err)
		}
		h := due[0]
		if ok, err := db.ClaimLaunch(ctx, h.ID, time.Minute); err != nil || !ok {
			t.Fatalf("claim=%v err=%v", ok, err)
		}
		if ok, _ := db.ClaimLaunch(ctx, h.ID, time.Minute); ok {
			t.Fatal("a claimed hunt was claimed twice")
		}
		if err := db.SetLaunchError(ctx, h.ID, "unavailable", clk.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		due, _ = db.DueLaunches(ctx, 10)
		if len(due) != 1 {
			t.Fatalf("backoff not honoured: %d due", len(due))
		}
		clk.Add(2 * time.Minute)
		if err := db.SetHuntCreated(ctx, h.ID, "H.ABC"); err != nil {
			t.Fatal(err)
		}
		if err := db.SetHuntRunning(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindHunt(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.HuntRunning || got.VRHuntID != "H.ABC" || got.Attempts != 1 || got.LastError != "" {
			t.Fatalf("hunt=%+v", got)
		}
	})

	t.Run("ClosedCaseDropsQueued", func(t *testing.T) {
		closed, err := db.CloseCasesExcept(ctx, nil)
		if err != nil || len(closed) != 1 {
			t.Fatalf("closed=%v err=%v", closed, err)
		}
		groups, _ := db.QueuedGroups(ctx)
		if len(groups) != 0 {
			t.Fatalf("groups of a closed case: %+v", groups)
		}
	})
}

func TestInbox(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	for _, e := range []string{"create", "update", "manual"} {
		if err := db.AddInbox(ctx, e, []byte(`{"iocs":[]}`)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := db.PeekInbox(ctx, 2)
	if err != nil || len(items) != 2 || items[0].Event != "create" {
		t.Fatalf("items=%+v err=%v", items, err)
	}
	if err := db.DeleteInbox(ctx, items[1].ID); err != nil {
		t.Fatal(err)
	}
	items, _ = db.PeekInbox(ctx, 10)
	if len(items) != 1 || items[0].Event != "manual" {
		t.Fatalf("left=%+v", items)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertCase(ctx, ioc.Case{ID: 7, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.FindCase(ctx, 7); err != nil {
		t.Fatal(err)
	}
}

// TestDueWritesKeepHostsWhole: a limit that falls between the asset writes
// of one host still returns them all, so that the host's IOCs are linked
// in one request.
func TestDueWritesKeepHostsWhole(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	if err := db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	var list []store.IOCInput
	for i := range 3 {
		list = append(list, input(int64(10+i), "filename", "evil.exe"+string(rune('a'+i))))
	}
	if _, err := db.SyncCaseIOCs(ctx, 1, list, "test", true); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.CaseIOCs(ctx, 1)
	g, _ := db.QueuedGroups(ctx)
	h, err := db.PlanHunt(ctx, g[0], 100, "Custom.Velohunt.File", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var hits []store.HitInput
	for c := range 2 {
		for _, r := range rows {
			key := string(rune('a'+c)) + r.Value
			hits = append(hits, store.HitInput{IOCID: r.ID, CaseID: 1, ClientID: "C." + string(rune('a'+c)), EvidenceKey: key, Evidence: key, Row: []byte(`{}`)})
		}
	}
	if _, err := db.RecordHits(ctx, h, hits, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	// Outbox: the IOCs' tabs, then asset, event, asset, event, asset, event
	// for C.a, then the same for C.b.
	all, _ := db.DueWrites(ctx, 100)
	tabs := 0
	for _, w := range all {
		if w.Kind == "tab" {
			tabs++
		}
	}
	due, err := db.DueWrites(ctx, tabs+3)
	if err != nil {
		t.Fatal(err)
	}
	assets := 0
	for _, w := range due {
		if w.Kind == "asset" {
			if w.ClientID != "C.a" {
				t.Fatalf("asset write of %s pulled in with C.a's", w.ClientID)
			}
			assets++
		}
	}
	if assets != 3 || len(due) != tabs+4 {
		t.Fatalf("%d writes with %d asset writes of C.a, want %d with all 3", len(due), assets, tabs+4)
	}
}
