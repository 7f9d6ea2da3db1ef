package rehunt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/planner"
	"github.com/velohunt/velohunt/internal/rehunt"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testclock"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
	"github.com/velohunt/velohunt/internal/watcher"
)

// model is an independent account of what the rules ask for.
type modelIOC struct {
	kind     ioc.Kind
	caseID   int64
	tagged   bool
	lastHunt time.Time
	expires  time.Time
	hunts    int
}

// TestThirtyDays runs 500 IOCs in 40 cases through 30 simulated days of
// re-hunt rules, with the real store, runner, planner and watcher against
// the simulated Velociraptor on a fake clock. An independent model of the
// rules predicts, IOC by IOC, how many hunts each gets; the hunts started in
// Velociraptor must match it exactly, no IOC may be in two unexpired hunts,
// and nothing may be hunted for cases closed on day 10.
func TestThirtyDays(t *testing.T) {
	if testing.Short() {
		t.Skip("30 simulated days")
	}
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clk := testclock.New(start)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Now = clk.Now
	srv, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	path, _ := srv.WriteAPIConfig(t.TempDir(), "velohunt")
	apiCfg, _ := velociraptor.LoadAPIConfig(path)
	vr, err := velociraptor.Dial(apiCfg, velociraptor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	for _, a := range []string{"Custom.Velohunt.Hash", "Custom.Velohunt.Network"} {
		if _, err := vr.SetArtifact(ctx, "", "name: "+a+"\ntype: CLIENT\n"); err != nil {
			t.Fatal(err)
		}
	}
	const expiry = 4 * time.Hour
	const maxList = 100
	p := &planner.Planner{Store: db, Servers: map[string]planner.Velociraptor{"main": vr}, MaxPerHunt: maxList, Expiry: expiry,
		Kinds: map[ioc.Kind]planner.Artifact{ioc.KindHash: {Name: "Custom.Velohunt.Hash", Parameter: "IOCs", Format: "json"},
			ioc.KindIP: {Name: "Custom.Velohunt.Network", Parameter: "IOCs", Format: "json"}},
		ClientTimeout: time.Minute, Logger: discard, Now: clk.Now}
	w := &watcher.Watcher{Store: db, Servers: map[string]watcher.Velociraptor{"main": vr}, Logger: discard, Now: clk.Now}

	cfg := config.Default()
	cfg.Rehunt.Rules = []config.RehuntRule{
		{Name: "daily", Schedule: "0 3 * * *", MinAge: config.Duration(20 * time.Hour)},
		{Name: "ransomware-hashes", Schedule: "0 */6 * * *", Kinds: []string{"hash"}, CaseTags: []string{"ransomware"},
			MinAge: config.Duration(5 * time.Hour)},
	}
	rules, err := rehunt.Compile(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runner := &rehunt.Runner{Store: db, Rules: rules, Logger: discard, Now: clk.Now}

	// 40 cases, 500 IOCs (12 or 13 each), half hashes, half IPs; cases
	// 0-9 are tagged ransomware.
	model := map[string]*modelIOC{}
	id := int64(1)
	for c := range 40 {
		cs := ioc.Case{ID: int64(c + 1), Name: fmt.Sprint("case ", c), Open: true, State: "Open"}
		if c < 10 {
			cs.Tags = []string{"ransomware"}
		}
		if err := db.UpsertCase(ctx, cs, ioc.Route{Server: "main"}); err != nil {
			t.Fatal(err)
		}
		n := 12
		if c < 20 {
			n = 13
		}
		var in []store.IOCInput
		for range n {
			kind, value := ioc.KindIP, fmt.Sprintf("10.0.%d.%d", id/250, id%250+1)
			if id%2 == 0 {
				kind, value = ioc.KindHash, fmt.Sprintf("%032x", id)
			}
			in = append(in, store.IOCInput{IOC: ioc.IOC{ID: id, Value: value, TypeName: string(kind), TLPID: 2},
				Target: ioc.Target{Kind: kind, Value: value}})
			model[value] = &modelIOC{kind: kind, caseID: cs.ID, tagged: c < 10}
			id++
		}
		if _, err := db.SyncCaseIOCs(ctx, cs.ID, in, "reconcile", true); err != nil {
			t.Fatal(err)
		}
	}
	if len(model) != 500 {
		t.Fatalf("%d IOCs", len(model))
	}

	closed := map[int64]bool{}
	expectedHunts := 0
	// huntNow applies a batch of selections made at one instant to the
	// model: one hunt per kind per 100 IOCs.
	huntNow := func(now time.Time, sel []*modelIOC) {
		perKind := map[ioc.Kind]int{}
		for _, m := range sel {
			m.lastHunt, m.expires = now, now.Add(expiry)
			m.hunts++
			perKind[m.kind]++
		}
		for _, n := range perKind {
			expectedHunts += (n + maxList - 1) / maxList
		}
	}
	free := func(m *modelIOC, now time.Time) bool { return m.hunts == 0 || now.After(m.expires) }

	var all []*modelIOC
	for _, m := range model {
		all = append(all, m)
	}
	huntNow(start, all) // new IOCs are hunted at once

	for now := start; now.Before(start.Add(30 * 24 * time.Hour)); now = now.Add(time.Hour) {
		clk.Set(now)
		if now.Equal(start.Add(10 * 24 * time.Hour)) {
			// Five cases are closed on day 10.
			var open []int64
			for c := int64(1); c <= 40; c++ {
				if c <= 5 {
					closed[c] = true
				} else {
					open = append(open, c)
				}
			}
			if _, err := db.CloseCasesExcept(ctx, open); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if err := runner.Tick(ctx, start); err != nil {
			t.Fatal(err)
		}
		if err := runner.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Step(ctx, true); err != nil {
			t.Fatal(err)
		}
		// The model: which rules fire this hour, and what they select.
		if now.Equal(start) {
			continue
		}
		var sel []*modelIOC
		for _, m := range all {
			if closed[m.caseID] || !free(m, now) {
				continue
			}
			daily := now.Hour() == 3 && now.Sub(m.lastHunt) >= 20*time.Hour
			ransom := now.Hour()%6 == 0 && m.tagged && m.kind == ioc.KindHash && now.Sub(m.lastHunt) >= 5*time.Hour
			if daily || ransom {
				sel = append(sel, m)
			}
		}
		huntNow(now, sel)
	}

	hunts := srv.Hunts()
	if len(hunts) != expectedHunts {
		t.Fatalf("%d hunts started, the rules ask for %d", len(hunts), expectedHunts)
	}
	got := map[string]int{}
	type window struct{ from, to time.Time }
	windows := map[string][]window{}
	storeHunts, _ := db.RecentHunts(ctx, 100000)
	byVR := map[string]store.Hunt{}
	for _, h := range storeHunts {
		byVR[h.VRHuntID] = h
	}
	for _, h := range hunts {
		sh := byVR[h.ID]
		var vals []string
		if err := json.Unmarshal([]byte(h.Params["IOCs"]), &vals); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			got[v]++
			m := model[v]
			if closed[m.caseID] && sh.CreatedAt.After(start.Add(10*24*time.Hour)) {
				t.Fatalf("IOC %s of closed case %d hunted on %v", v, m.caseID, sh.CreatedAt)
			}
			for _, win := range windows[v] {
				if sh.CreatedAt.Before(win.to) && win.from.Before(sh.ExpiresAt) {
					t.Fatalf("IOC %s in two unexpired hunts (%v and %v)", v, win.from, sh.CreatedAt)
				}
			}
			windows[v] = append(windows[v], window{sh.CreatedAt, sh.ExpiresAt})
		}
	}
	for v, m := range model {
		if got[v] != m.hunts {
			t.Fatalf("IOC %s (case %d, %s, tagged=%v) hunted %d times, the rules ask for %d", v, m.caseID, m.kind, m.tagged, got[v], m.hunts)
		}
	}
	t.Logf("%d hunts over 30 days for 500 IOCs in 40 cases", len(hunts))
}
