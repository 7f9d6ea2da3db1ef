package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestStatusIOCTimeline: `velohunt status -ioc N` and `-case N` tell, in
// time order, where an IOC came from, its validation, its hunt and each
// host's flow, its hits and every IRIS write, with the endpoint's data
// printed inert; an unknown id is an error (issue 19, item 11).
func TestStatusIOCTimeline(t *testing.T) {
	ctx := context.Background()
	const md5 = "5d41402abc4b2a76b9719d911017c592"
	hostile := "ws-\x1b[31mred\x07\u009b0m\u202eexe.evil"
	eps := []velotest.Endpoint{
		{ClientID: "C.ccccccccccccccc1", Hostname: hostile, OS: "linux", Online: true,
			Files: []velotest.File{{Path: "/tmp/\x1b]0;pwned\x07payload", Size: 5, MD5: md5}}},
		{ClientID: "C.ccccccccccccccc2", Hostname: "slow-2", OS: "linux", Online: true, FlowError: "Timeout: query timed out after 600 seconds"},
	}
	d, err := startDemoWith(ctx, t.TempDir(), io.Discard, eps, func(c *config.Config, _ *velotest.Server) {
		c.Writeback.TabMinInterval = 0
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cid, _ := d.Admin.AddCase(ctx, "timeline", "ACME", 1, "")
	x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: md5, TypeID: iristest.TypeID("md5"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: "not-an-md5", TypeID: iristest.TypeID("md5"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the hit, its asset and event in IRIS, and the tab saying so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		tab, _ := d.Admin.IOCAttributes(ctx, cid, x.ID, d.App.Config.Writeback.TabName)
		ob, _ := d.App.Store.OutboxStats(ctx)
		if strings.HasPrefix(tab["Status"], "HIT") && len(d.IRIS.Events(cid)) == 1 && ob.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HIT written after 30s: tab %q, %d events, outbox %+v", tab["Status"], len(d.IRIS.Events(cid)), ob)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)

	code, out := runCmd("status", "-config", cfgPath, "-ioc", fmt.Sprint(x.ID))
	if code != 0 {
		t.Fatalf("status -ioc: code %d\n%s", code, out)
	}
	checkInert(t, out)
	// In time order: learned, hunt planned and started, the hit, then its
	// writes and the tab (in either order).
	at := 0
	for _, want := range []string{"learned", "hunt planned", "hunt started", "hit"} {
		i := strings.Index(out[at:], "  "+want+"  ")
		if i < 0 {
			t.Fatalf("no %q after position %d:\n%s", want, at, out)
		}
		at += i
	}
	for _, want := range []string{"IRIS write", "tab written"} {
		if !strings.Contains(out[at:], "  "+want+"  ") {
			t.Fatalf("no %q after the hit:\n%s", want, out)
		}
	}
	for _, want := range []string{"now: hit, hunted as hash", "1 hit(s) on 1 host(s)", "; valid: hunted as hash",
		"C.ccccccccccccccc2: flow F.", "error: Timeout: query timed out", "C.ccccccccccccccc1): flow F.", "asset write for hit 1: done",
		"event write for hit 1: done", "status: HIT: found on 1 host(s)", "ws-\uFFFD[31mred\uFFFD\uFFFD0m\uFFFDexe.evil"} {
		if !strings.Contains(out, want) {
			t.Errorf("status -ioc lacks %q:\n%s", want, out)
		}
	}

	// The webhook or the demo's frequent reconcile, whichever came first.
	if !strings.Contains(out, "from webhook; valid") && !strings.Contains(out, "from reconcile; valid") {
		t.Errorf("status -ioc does not say where the IOC came from:\n%s", out)
	}
	code, out = runCmd("status", "-config", cfgPath, "-ioc", fmt.Sprint(x.ID), "-json")
	if code != 0 {
		t.Fatalf("status -ioc -json: code %d\n%s", code, out)
	}
	checkInert(t, out)
	var st IOCStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(st.Cases) != 1 || st.Cases[0].State != store.StateHit || st.Cases[0].Hits != 1 {
		t.Fatalf("JSON %+v", st)
	}
	hit := false
	for i, e := range st.Cases[0].Timeline {
		if i > 0 && e.At.Before(st.Cases[0].Timeline[i-1].At) {
			t.Fatalf("timeline not in time order at %d: %+v", i, st.Cases[0].Timeline)
		}
		// JSON keeps the endpoint's exact bytes, as escapes.
		hit = hit || e.What == "hit" && e.Host == hostile && e.ClientID == "C.ccccccccccccccc1"
	}
	if !hit {
		t.Fatalf("no hit with the exact hostname in %+v", st.Cases[0].Timeline)
	}

	code, out = runCmd("status", "-config", cfgPath, "-case", fmt.Sprint(cid))
	if code != 0 {
		t.Fatalf("status -case: code %d\n%s", code, out)
	}
	checkInert(t, out)
	for _, want := range []string{fmt.Sprintf(`case #%d "#%d - timeline" (customer "IrisInitialClient", open), hunted on demo org root`, cid, cid), "2 IOC(s), 1 hunt(s)",
		fmt.Sprintf(`IOC %d, md5 "not-an-md5"`, bad.ID), "now: refused: md5 must be 32 hex digits", "\nhunt 1 (hash, Velociraptor H.",
		"2 of 2 host(s) done, 1 errored or timed out", "error: Timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("status -case lacks %q:\n%s", want, out)
		}
	}
	// The IOC blocks of a case leave the hosts to the case's hunts.
	if strings.Count(out, ": flow F.") != 2 {
		t.Errorf("host flows shown %d times, want once per host:\n%s", strings.Count(out, ": flow F."), out)
	}
	code, out = runCmd("status", "-config", cfgPath, "-case", fmt.Sprint(cid), "-json")
	var cs CaseStatus
	if err := json.Unmarshal([]byte(out), &cs); code != 0 || err != nil || len(cs.IOCs) != 2 || len(cs.Hunts) != 1 {
		t.Fatalf("status -case -json: code %d err %v\n%s", code, err, out)
	}

	t.Run("ErrUnknown", func(t *testing.T) {
		code, out := runCmd("status", "-config", cfgPath, "-ioc", "987654")
		if code != 1 || !strings.Contains(out, "IOC 987654 is not known to velohunt: ") {
			t.Fatalf("code %d\n%s", code, out)
		}
		code, out = runCmd("status", "-config", cfgPath, "-case", "987654")
		if code != 1 || !strings.Contains(out, "case 987654 is not known to velohunt: ") {
			t.Fatalf("code %d\n%s", code, out)
		}
		if code, out := runCmd("status", "-config", cfgPath, "-case", "1", "-ioc", "1"); code != 1 || !strings.Contains(out, "exclude each other") {
			t.Fatalf("code %d\n%s", code, out)
		}
	})
}

// checkInert fails on a terminal control or invisible format character.
func checkInert(t *testing.T, out string) {
	t.Helper()
	for _, r := range out {
		if (unicode.IsControl(r) && r != '\n' && r != '\t') || unicode.Is(unicode.Cf, r) {
			t.Fatalf("output holds %U:\n%q", r, out)
		}
	}
}
