package main

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestHuntsStop: `velohunt hunts stop` beside a running serve. Without
// -yes it changes nothing; -case stops the case's own hunts in
// Velociraptor and records them stopped, leaves a hunt shared with another
// case running unless forced, never touches a hunt velohunt did not
// start; serve does not launch them again and the tabs say they were
// stopped.
func TestHuntsStop(t *testing.T) {
	ctx := context.Background()
	d, err := startDemoWith(ctx, t.TempDir(), io.Discard, demoEndpoints(), func(c *config.Config, _ *velotest.Server) {
		c.Writeback.TabMinInterval = 0
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, _ := d.Admin.AddCase(ctx, "stop a", "test", 1, "")
	b, _ := d.Admin.AddCase(ctx, "stop b", "test", 1, "")
	add := func(cid int64, typ, value string) int64 {
		x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: value, TypeID: iristest.TypeID(typ), TLPID: 2})
		if err != nil {
			t.Fatal(err)
		}
		return x.ID
	}
	// One hash hunt for a and b together, one domain hunt for a alone.
	add(a, "md5", "0123456789abcdef0123456789abcdef")
	add(b, "md5", "fedcba9876543210fedcba9876543210")
	domain := add(a, "domain", "quiet.example")
	running := func() []store.Hunt {
		hs, _ := d.App.Store.OpenHunts(ctx)
		var out []store.Hunt
		for _, h := range hs {
			if h.State == store.HuntRunning {
				out = append(out, h)
			}
		}
		return out
	}
	for deadline := time.Now().Add(20 * time.Second); len(running()) != 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hunts running: %+v", running())
		}
	}
	var shared, own store.Hunt
	for _, h := range running() {
		if h.Kind == "hash" {
			shared = h
		} else {
			own = h
		}
	}
	foreign := d.VR.CreateHuntDirect("", "Generic.Client.Info", []string{"incident-7"})
	vrState := func(id string) string {
		h, _ := d.VR.HuntByID(id)
		return h.State
	}
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)
	ca := strconv.FormatInt(a, 10)

	t.Run("DryRun", func(t *testing.T) {
		code, out := runCmd("hunts", "stop", "-config", cfgPath, "-case", ca)
		if code != 0 || !strings.Contains(out, "dry run: nothing was stopped. Run again with -yes to stop 1 hunt(s).") ||
			!strings.Contains(out, "stop it in Velociraptor") || !strings.Contains(out, "leave it running: it also hunts IOCs of case(s) #"+strconv.FormatInt(b, 10)) {
			t.Fatalf("code %d\n%s", code, out)
		}
		if vrState(own.VRHuntID) != "RUNNING" || vrState(shared.VRHuntID) != "RUNNING" || len(running()) != 2 {
			t.Fatal("a dry run stopped something")
		}
	})

	t.Run("List", func(t *testing.T) {
		code, out := runCmd("hunts", "list", "-config", cfgPath, "-case", ca)
		if code != 0 || !strings.Contains(out, own.VRHuntID) || !strings.Contains(out, shared.VRHuntID) || strings.Contains(out, foreign) {
			t.Fatalf("code %d\n%s", code, out)
		}
	})

	t.Run("Case", func(t *testing.T) {
		code, out := runCmd("hunts", "stop", "-config", cfgPath, "-case", ca, "-yes")
		if code != 1 || !strings.Contains(out, "1 hunt(s) not stopped") || !strings.Contains(out, "note: serve (pid ") {
			t.Fatalf("code %d\n%s", code, out)
		}
		if vrState(own.VRHuntID) != "STOPPED" || vrState(shared.VRHuntID) != "RUNNING" || vrState(foreign) != "PAUSED" {
			t.Fatalf("states: own %s, shared %s, foreign %s", vrState(own.VRHuntID), vrState(shared.VRHuntID), vrState(foreign))
		}
		h, _ := d.App.Store.FindHunt(ctx, own.ID)
		if h.State != store.HuntStopped || h.EndReason != store.ReasonStoppedByOperator {
			t.Fatalf("row %+v", h)
		}
		if code, out := runCmd("status", "-config", cfgPath); code != 0 || !strings.Contains(out, "stopped (stopped by operator)") {
			t.Fatalf("status: code %d\n%s", code, out)
		}
		// The tab says so; serve launches nothing again.
		deadline := time.Now().Add(20 * time.Second)
		for {
			tab, _ := d.Admin.IOCAttributes(ctx, a, domain, d.App.Config.Writeback.TabName)
			if strings.HasPrefix(tab["Status"], "stopped by an operator") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tab status %q", tab["Status"])
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // serve's planner and watcher run a few times
		if n := len(d.VR.Hunts()); n != 3 || vrState(own.VRHuntID) != "STOPPED" {
			t.Fatalf("%d hunts in Velociraptor, own %s: want the 3 there were, own stopped", n, vrState(own.VRHuntID))
		}
	})

	t.Run("AllLeavesForeign", func(t *testing.T) {
		code, out := runCmd("hunts", "stop", "-config", cfgPath, "-all", "-yes")
		if code != 0 || !strings.Contains(out, "stopped") {
			t.Fatalf("code %d\n%s", code, out)
		}
		if vrState(shared.VRHuntID) != "STOPPED" || vrState(foreign) != "PAUSED" || len(running()) != 0 {
			t.Fatalf("shared %s, foreign %s, running %+v", vrState(shared.VRHuntID), vrState(foreign), running())
		}
		code, out = runCmd("hunts", "stop", "-config", cfgPath, "-all")
		if code != 0 || !strings.Contains(out, "none") {
			t.Fatalf("code %d\n%s", code, out)
		}
	})
}

// TestHuntsBadInput: the hunts command's bad inputs and their messages.
func TestHuntsBadInput(t *testing.T) {
	_, cfgPath := demoWithConfig(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoSubcommand", []string{"hunts"}, "list or stop?"},
		{"Unknown", []string{"hunts", "kill"}, `unknown subcommand "kill"`},
		{"NeitherAllNorCase", []string{"hunts", "stop", "-config", cfgPath}, "give -all or -case N"},
		{"Both", []string{"hunts", "stop", "-config", cfgPath, "-all", "-case", "1"}, "give -all or -case N"},
		{"NegativeCase", []string{"hunts", "stop", "-config", cfgPath, "-case", "-2"}, "case must be a positive number"},
		{"NoConfig", []string{"hunts", "list"}, "-config is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCmd(tc.args...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("code %d, output %q, want %q", code, out, tc.want)
			}
		})
	}
}
