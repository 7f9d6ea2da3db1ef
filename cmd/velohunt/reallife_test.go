package main

// The lifecycle of a hunt against a real IRIS and a real Velociraptor (the
// variables of TestEndToEndReal): two cases' IOCs share one hunt; closing
// one case leaves the hunt running for the other; deleting the other's IOC
// in IRIS stops the hunt in Velociraptor, and the closed case's IOC tab no
// longer says it is hunted.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/store"
)

func TestRealCaseClosedAndIOCDeleted(t *testing.T) {
	vrAPI := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	if os.Getenv("VELOHUNT_TEST_E2E") != "1" || vrAPI == "" {
		t.Skip("real IRIS and Velociraptor: set VELOHUNT_TEST_E2E=1 and the VELOHUNT_TEST_IRIS_* and VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG variables")
	}
	env := needRealIRIS(t)
	url, key, adminKey, insecure := env.url, env.key, env.adminKey, env.insecure
	ctx := context.Background()
	cfg := realIRISConfig(t.TempDir(), url, key, adminKey, insecure, vrAPI)
	cfg.Velociraptor.Servers[0].Name = "real"
	cfg.Intake.Reconcile = "0 0 1 1 *" // the test asks for each sync itself
	cfg.Hunting.BatchWindow = config.Duration(3 * time.Second)
	cfg.Writeback.TabMinInterval = config.Duration(2 * time.Second)
	admin, _ := iris.New(iris.Options{URL: url, APIKey: adminKey, InsecureSkipVerify: insecure, Timeout: 30 * time.Second})
	run := time.Now().Unix()
	a, err := admin.AddCase(ctx, fmt.Sprintf("lifecycle A %d", run), "velohunt lifecycle test", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := admin.AddCase(ctx, fmt.Sprintf("lifecycle B %d", run), "velohunt lifecycle test", 1, "")
	defer func() {
		for _, id := range []int64{a, b} {
			admin.CloseCase(context.Background(), id)
		}
	}()
	// The test's cases go to a server entry of their own (the same real
	// server), so that their hunt holds their IOCs only: a shared IRIS has
	// other open cases, hunted through "real".
	cfg.Velociraptor.Servers = append(cfg.Velociraptor.Servers, config.Server{Name: "lifecycle", APIConfig: vrAPI})
	cfg.Velociraptor.Routes = []config.Route{{CaseID: a, Server: "lifecycle"}, {CaseID: b, Server: "lifecycle"}}
	cfg.Velociraptor.Default = config.Target{Server: "real"}
	var md5Type int64
	types, _ := admin.IOCTypes(ctx)
	for _, ty := range types {
		if ty.Name == "md5" {
			md5Type = ty.ID
		}
	}
	random := func() string {
		b := make([]byte, 16)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	// Hashes that match nothing: the hunt stays running on its own.
	x, err := admin.AddIOC(ctx, a, iris.NewIOC{Value: random(), TypeID: md5Type, TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := admin.AddIOC(ctx, b, iris.NewIOC{Value: random(), TypeID: md5Type, TLPID: 2})

	app := openTestApp(t, cfg)
	defer func() {
		stopRealHunts(app)
		app.Close(context.Background())
	}()
	vr := app.VR["lifecycle"]
	tab := func(cid, id int64) string {
		v, _ := admin.IOCAttributes(ctx, cid, id, cfg.Writeback.TabName)
		return v["Status"]
	}
	until := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(within); !ok(); time.Sleep(time.Second) {
			if time.Now().After(end) {
				st, _ := collectStatus(ctx, app.Store)
				t.Fatalf("%s: not after %s; X %q, Y %q; hunts %+v", what, within, tab(a, x.ID), tab(b, y.ID), st.Recent)
			}
		}
	}
	// One hunt for both, running in Velociraptor.
	var hunt store.Hunt
	until("one hunt for both IOCs", 2*time.Minute, func() bool {
		hs, _ := app.Store.RecentHunts(ctx, 100)
		var ours []store.Hunt
		for _, h := range hs {
			if h.Server == "lifecycle" {
				ours = append(ours, h)
			}
		}
		if len(ours) != 1 || ours[0].VRHuntID == "" {
			return false
		}
		hunt = ours[0]
		covered, _ := app.Store.HuntIOCs(ctx, hunt.ID)
		return len(covered) == 2 && strings.HasPrefix(tab(a, x.ID), "hunting") && strings.HasPrefix(tab(b, y.ID), "hunting")
	})
	state := func() string {
		info, err := vr.HuntInfo(ctx, hunt.Org, hunt.VRHuntID)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}
	if s := state(); s != "RUNNING" {
		t.Fatalf("hunt %s is %s in Velociraptor, want RUNNING", hunt.VRHuntID, s)
	}

	// Case A closed: the hunt goes on for B; X's tab stops saying hunting.
	if err := admin.CloseCase(ctx, a); err != nil {
		t.Fatal(err)
	}
	app.Intake.RequestFullSync()
	until("X's tab after its case closed", time.Minute, func() bool {
		s := tab(a, x.ID)
		return s != "" && !strings.HasPrefix(s, "hunting")
	})
	time.Sleep(3 * time.Second) // a few watcher passes
	if s := state(); s != "RUNNING" {
		t.Fatalf("hunt %s is %s after case A closed, want RUNNING for case B", hunt.VRHuntID, s)
	}
	t.Logf("case A closed: X's tab says %q, the hunt runs on for B", tab(a, x.ID))

	// Y deleted in IRIS: nothing left, the hunt is stopped in Velociraptor.
	newRealIRIS(t, url, adminKey, insecure).call("POST", fmt.Sprintf("/case/ioc/delete/%d?cid=%d", y.ID, b), nil)
	app.Intake.RequestFullSync()
	until("the hunt stopped in Velociraptor", time.Minute, func() bool { return state() == "STOPPED" })
	waitDrained(t, app, time.Minute)
	t.Logf("Y deleted: hunt %s STOPPED in Velociraptor", hunt.VRHuntID)
}
