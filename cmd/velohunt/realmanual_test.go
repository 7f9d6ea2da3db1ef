package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestRealManualTriggerCase: on a real IRIS with its webhooks module
// posting to velohunt, a manual trigger ("Hunt in Velociraptor" on an IOC)
// re-hunts the IOC in the case it was clicked in, and only there, in the
// two sequences of issue 17: Y (only in B) from B then X (in A and B) from
// A re-hunts X in A alone; X from A and from B together re-hunts it in
// both, once each.
func TestRealManualTriggerCase(t *testing.T) {
	ctx := context.Background()
	g := startRealIRISRig(t, velotest.Endpoint{ClientID: "C.3333333333333333", Hostname: "manual-host", OS: "linux", Online: true},
		func(c *config.Config) { c.Intake.SyncDelay = config.Duration(300 * time.Millisecond) })
	r, admin, app, run := g.r, g.admin, g.app, time.Now().UnixNano()
	a, b := g.newCase(t, "manual A"), g.newCase(t, "manual B")
	domain := g.typeID(t, "domain")
	x, err := admin.AddIOC(ctx, a, iris.NewIOC{Value: fmt.Sprintf("x-%d.manual.example", run), TypeID: domain, TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddIOC(ctx, b, iris.NewIOC{Value: x.Value, TypeID: domain, TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	y, err := admin.AddIOC(ctx, b, iris.NewIOC{Value: fmt.Sprintf("y-%d.manual.example", run), TypeID: domain, TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	// hunts counts, per case, the hunts that covered an IRIS IOC.
	hunts := func(irisID int64) map[int64]int {
		out := map[int64]int{}
		rows, _ := app.Store.FindIOCs(ctx, irisID)
		if len(rows) == 0 {
			return out
		}
		d, _ := app.Store.FindTabData(ctx, rows[0].ID, 10)
		for _, c := range d.Cases {
			out[c.IOC.CaseID] = len(c.Hunts)
		}
		return out
	}
	waitHunts := func(what string, want func() bool) {
		t.Helper()
		for end := time.Now().Add(2 * time.Minute); !want(); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: hunts of X %v, of Y %v after 2 minutes", what, hunts(x.ID), hunts(y.ID))
			}
		}
	}
	waitHunts("first hunts", func() bool {
		hx, hy := hunts(x.ID), hunts(y.ID)
		return hx[a] == 1 && hx[b] == 1 && hy[b] == 1
	})
	opts := r.call("GET", fmt.Sprintf("/dim/hooks/options/ioc/list?cid=%d", a), nil)
	var ui any
	for _, h := range opts["data"].([]any) {
		if m, _ := h.(map[string]any); m["module_name"] == "iris_webhooks_module" && m["hook_name"] == "on_manual_trigger_ioc" {
			ui = m["manual_hook_ui_name"]
		}
	}
	if ui == nil {
		t.Fatalf("the webhooks module offers no manual trigger on IOCs: %v", opts)
	}
	trigger := func(cid, iocID int64) {
		r.call("POST", fmt.Sprintf("/dim/hooks/call?cid=%d", cid), map[string]any{"hook_name": "on_manual_trigger_ioc",
			"hook_ui_name": ui, "module_name": "iris_webhooks_module", "type": "ioc", "targets": []int64{iocID}})
	}
	settle := func() { time.Sleep(8 * time.Second) } // room for a wrong re-hunt to show

	// Y from B, then X from A: X again in A only.
	trigger(b, y.ID)
	trigger(a, x.ID)
	waitHunts("Y from B, X from A", func() bool { return hunts(y.ID)[b] == 2 && hunts(x.ID)[a] == 2 })
	settle()
	if hx, hy := hunts(x.ID), hunts(y.ID); hx[a] != 2 || hx[b] != 1 || hy[b] != 2 {
		t.Fatalf("after Y from B and X from A: hunts of X %v (want A 2, B 1), of Y %v (want B 2)", hx, hy)
	}
	// X from A and from B in one go: once more in each.
	trigger(a, x.ID)
	trigger(b, x.ID)
	waitHunts("X from A and B", func() bool { hx := hunts(x.ID); return hx[a] == 3 && hx[b] == 2 })
	settle()
	if hx := hunts(x.ID); hx[a] != 3 || hx[b] != 2 {
		t.Fatalf("after X from A and from B: hunts of X %v, want A 3, B 2", hx)
	}
}
