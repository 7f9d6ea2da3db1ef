package store_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// Ensure the history of an IOC holds, in time order, what its rows do not
// keep: where it was learned from and what validation said, each change,
// re-queue and removal with its source, the writes IRIS refused and the
// tabs written; and that unknown ids are ENOTFOUND.
func TestIOCHistory(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	for _, id := range []int64{1, 2} {
		if err := db.UpsertCase(ctx, ioc.Case{ID: id, Name: "case", Open: true}, ioc.Route{Server: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	step := func() { clk.Add(time.Second) }
	sync := func(caseID int64, source string, list ...store.IOCInput) {
		t.Helper()
		step()
		if _, err := db.SyncCaseIOCs(ctx, caseID, list, source, true); err != nil {
			t.Fatal(err)
		}
	}
	evil := input(10, "filename", "evil.exe")
	sync(1, "webhook", evil, input(11, "md5", "not-a-hash"))
	sync(1, "reconcile", evil, input(11, "md5", "not-a-hash")) // unchanged: nothing logged
	sync(2, "reconcile", evil)
	sync(1, "webhook", input(10, "filename", "evil2.exe"), input(11, "md5", "not-a-hash"))

	step()
	g, _ := db.QueuedGroups(ctx)
	h, err := db.PlanHunt(ctx, g[0], 10, "Custom.Velohunt.File", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	step()
	if err := db.SetHuntRunning(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	step()
	rows, _ := db.FindIOCs(ctx, 10)
	if _, err := db.RecordHits(ctx, h, []store.HitInput{{IOCID: rows[0].ID, CaseID: 1, ClientID: "C.1", EvidenceKey: "k",
		Evidence: `C:\evil2.exe`, Source: "file", Row: []byte(`{}`)}}, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	step()
	if _, err := db.EndHunt(ctx, h.ID, store.HuntFinished); err != nil {
		t.Fatal(err)
	}
	step()
	if n, err := db.RequeueIOC(ctx, 10, []int64{1}, "manual", false); err != nil || n != 1 {
		t.Fatalf("requeued %d, err %v", n, err)
	}
	step()
	due, _ := db.DueWrites(ctx, 100)
	for _, w := range due {
		if w.Kind == "asset" && w.IRISIOC == 10 {
			if err := db.WritePark(ctx, w.ID, "400: asset name refused"); err != nil {
				t.Fatal(err)
			}
		}
	}
	step()
	if err := db.SetTabWritten(ctx, 10, "fp", "HIT: found on 1 host(s), 1 hit(s)", db.Now()); err != nil {
		t.Fatal(err)
	}
	step()
	if _, err := db.CloseCasesExcept(ctx, []int64{1}); err != nil {
		t.Fatal(err)
	}
	sync(1, "reconcile", input(11, "md5", "not-a-hash")) // IOC 10 unlinked from case 1

	list, err := db.IRISIOCHistory(ctx, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Case.ID != 1 || list[1].Case.ID != 2 {
		t.Fatalf("%d rows, want one per case, by case", len(list))
	}
	var got []string
	for _, e := range list[0].Log {
		got = append(got, e.Event+" "+e.Source+" "+e.Detail)
	}
	want := []string{
		`learned webhook valid: hunted as file "evil.exe"`,
		`changed webhook changed in IRIS (was filename "evil.exe"); valid: hunted as file "evil2.exe"`,
		`requeued manual `,
		`write_parked asset 400: asset name refused`,
		`tab_written  HIT: found on 1 host(s), 1 hit(s)`,
		`removed reconcile no longer in the case`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("log of case 1:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := 1; i < len(list[0].Log); i++ {
		if list[0].Log[i].At.Before(list[0].Log[i-1].At) {
			t.Fatalf("log not in time order: %+v", list[0].Log)
		}
	}
	// The second case's row: learned by the reconcile, hunted in the same
	// hunt, removed when its case closed; the tab is the same object.
	got = nil
	for _, e := range list[1].Log {
		got = append(got, e.Event+" "+e.Source+" "+e.Detail)
	}
	want = []string{`learned reconcile valid: hunted as file "evil.exe"`, `tab_written  HIT: found on 1 host(s), 1 hit(s)`,
		`removed case list case closed`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("log of case 2:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	x := list[0]
	if len(x.Hunts) != 1 || x.Hunts[0].HuntValue != "evil2.exe" || x.Hunts[0].State != store.HuntFinished || x.Hunts[0].StartedAt.IsZero() ||
		x.Hunts[0].IOCs != 2 {
		t.Fatalf("hunts %+v", x.Hunts)
	}
	if x.HitCount != 1 || len(x.Hits) != 1 || x.Hits[0].ClientID != "C.1" || x.Hits[0].Evidence != `C:\evil2.exe` {
		t.Fatalf("hits %d %+v", x.HitCount, x.Hits)
	}
	var kinds []string
	for _, w := range x.Writes {
		kinds = append(kinds, w.Kind)
		if w.Kind == "asset" && (!w.Parked || w.LastError != "400: asset name refused" || w.ClientID != "C.1") {
			t.Fatalf("asset write %+v", w)
		}
	}
	if x.WriteCount != len(x.Writes) || !strings.Contains(strings.Join(kinds, ","), "asset,event") {
		t.Fatalf("writes %v of %d", kinds, x.WriteCount)
	}
	if !x.TabWritten.Equal(list[0].Log[4].At) {
		t.Fatalf("tab written %v", x.TabWritten)
	}

	t.Run("Refused", func(t *testing.T) {
		list, err := db.IRISIOCHistory(ctx, 11, 100)
		if err != nil || len(list) != 1 || len(list[0].Log) != 1 || !strings.HasPrefix(list[0].Log[0].Detail, "refused: md5 must be 32 hex digits") {
			t.Fatalf("%+v err=%v", list, err)
		}
	})
	t.Run("Case", func(t *testing.T) {
		c, iocs, hunts, err := db.CaseHistory(ctx, 1, 100)
		if err != nil || c.ID != 1 || len(iocs) != 2 || len(hunts) != 1 || hunts[0].ID != h.ID {
			t.Fatalf("case %+v, %d IOCs, hunts %+v, err %v", c, len(iocs), hunts, err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := db.IRISIOCHistory(ctx, 999, 100); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("err=%v, want ENOTFOUND", err)
		}
		if _, _, _, err := db.CaseHistory(ctx, 999, 100); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("err=%v, want ENOTFOUND", err)
		}
	})
}

// Ensure a hunt's flows come with the history of an IOC, the ones that
// errored or fell short first under the cap, with their gaps.
func TestIOCHistoryFlows(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpen(t)
	if err := db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SyncCaseIOCs(ctx, 1, []store.IOCInput{input(10, "ip-dst", "203.0.113.7")}, "webhook", true); err != nil {
		t.Fatal(err)
	}
	g, _ := db.QueuedGroups(ctx)
	h, err := db.PlanHunt(ctx, g[0], 10, "Custom.Velohunt.Network", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	db.SetHuntRunning(ctx, h.ID)
	base := clk.Now().UnixMicro()
	var flows []store.FlowCursor
	for i, c := range []string{"C.ok1", "C.ok2", "C.err", "C.gap"} {
		f := store.FlowCursor{ClientID: c, FlowID: "F.1.H", State: "FINISHED", CreatedUS: base + int64(i), Index: int64(i)}
		if c == "C.err" {
			f.State, f.Status = "ERROR", "Timeout"
		}
		flows = append(flows, f)
	}
	if err := db.SetFlowStates(ctx, h.ID, flows); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"C.ok1", "C.ok2", "C.err"} {
		db.RecordCoverage(ctx, h.ID, c, "F.1.H", []store.Coverage{{Source: "connections", Searched: 3}})
	}
	db.RecordCoverage(ctx, h.ID, "C.gap", "F.1.H", []store.Coverage{{Source: "connections", Problem: "netstat disabled"}})
	db.SaveClient(ctx, store.Client{Server: "main", ClientID: "C.gap", Hostname: "win-gap"})
	list, err := db.IRISIOCHistory(ctx, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	hh := list[0].Hunts[0]
	if hh.FlowCount != 4 || len(hh.Flows) != 2 {
		t.Fatalf("%d of %d flows, want 2 of 4", len(hh.Flows), hh.FlowCount)
	}
	first, second := hh.Flows[0], hh.Flows[1]
	if first.ClientID != "C.err" || first.Status != "Timeout" || second.Host() != "win-gap" ||
		!reflect.DeepEqual(second.Gaps, []string{"connections: netstat disabled"}) || second.Created.IsZero() {
		t.Fatalf("flows %+v", hh.Flows)
	}
	// A case's IOC blocks leave the flows to the case's hunts.
	_, iocs, hunts, err := db.CaseHistory(ctx, 1, 10)
	if err != nil || len(iocs[0].Hunts[0].Flows) != 0 || len(hunts[0].Flows) != 4 {
		t.Fatalf("case history: %+v %+v err=%v", iocs, hunts, err)
	}
}
