package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// fleetEndpoints is a mixed fleet: clients velohunt fully hunts on, one
// release that lacks ip(parse=), releases it was not checked against, a
// client never interrogated and one reporting a hostile version.
func fleetEndpoints() []velotest.Endpoint {
	var eps []velotest.Endpoint
	for i, v := range []string{"0.77.2", "0.77.2", "0.74.5", "0.72.0", "0.72.0", "0.7.0", velotest.NoVersion, "0.77\x1b[2J\u202e"} {
		eps = append(eps, velotest.Endpoint{ClientID: "C.f1ee700000000" + string(rune('a'+i)), Hostname: "host", OS: "linux", Version: v})
	}
	return eps
}

// TestCheckFleet: check counts each server's clients by release and says
// which releases velohunt cannot fully hunt on and what they lack (issue
// 18, item 5).
func TestCheckFleet(t *testing.T) {
	ctx := context.Background()
	d, err := startDemoWith(ctx, t.TempDir(), io.Discard, fleetEndpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	list := runChecksT(t, d)
	got := map[string]finding{}
	for _, f := range list {
		got[f.What] = f
	}
	want := map[string]struct{ status, detail string }{
		"client releases":                {checkWarn, "8 client(s): 3 on releases velohunt fully hunts on, 2 on releases it cannot fully hunt on, 3 on releases it was not checked against; velohunt is checked against 0.72 to 0.77.2"},
		"clients on 0.77.2":              {checkOK, "2 client(s): velohunt's artifacts run in full"},
		"clients on 0.74.5":              {checkOK, "1 client(s): velohunt's artifacts run in full"},
		"clients on 0.72.0":              {checkWarn, "2 client(s) cannot be fully hunted: the release lacks Custom.Velohunt.Network: function ip(parse=)"},
		"clients on 0.7.0":               {checkWarn, "1 client(s) not checked: older than v0.72"},
		"clients on no version":          {checkWarn, "not been interrogated yet"},
		"clients on 0.77\uFFFD[2J\uFFFD": {checkWarn, "not a Velociraptor version number"},
	}
	for what, w := range want {
		f, ok := got[what]
		if !ok || f.Status != w.status || !strings.Contains(f.Detail, w.detail) {
			t.Errorf("%s: %+v, want %s %q", what, f, w.status, w.detail)
		}
	}
	var out strings.Builder
	printFindings(&out, list)
	checkInert(t, out.String())
}

// TestStatusFleet: serve reads the fleet's releases when it starts; status
// shows them without asking Velociraptor, and the metrics count them by
// release of velohunt's table, never by the reported text.
func TestStatusFleet(t *testing.T) {
	ctx := context.Background()
	d, err := startDemoWith(ctx, t.TempDir(), io.Discard, fleetEndpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var st Status
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, err = collectStatus(ctx, d.App.Store); err != nil {
			t.Fatal(err)
		}
		if len(st.Fleets) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no fleet read after 20s")
		}
	}
	f := st.Fleets[0]
	if f.Server != "demo" || f.Org != "root" || f.Clients != 8 || f.Full != 3 || f.Partial != 2 || f.Unchecked != 3 || f.CheckedAt == "" {
		t.Fatalf("fleet %+v", f)
	}
	d.VR.SetDown(true) // status reads the store only
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)
	code, out := runCmd("status", "-config", cfgPath)
	if code != 0 {
		t.Fatalf("status: code %d\n%s", code, out)
	}
	checkInert(t, out)
	for _, want := range []string{"client releases (read by serve every 1h0m0s from clients(); velohunt is checked against Velociraptor 0.72 to 0.77.2):",
		"demo org root, as of ", "8 client(s): 3 on releases velohunt fully hunts on, 2 on releases it cannot fully hunt on",
		"2 client(s) cannot be fully hunted: the release lacks Custom.Velohunt.Network: function ip(parse=)",
		"no version", "0.77\uFFFD[2J\uFFFD"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	d.VR.SetDown(false)
	resp, err := http.Get("http://" + d.App.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for want, n := range map[string]float64{
		`velohunt_fleet_clients{org="root",server="demo",support="full",version="0.77.2"}`:     2,
		`velohunt_fleet_clients{org="root",server="demo",support="full",version="0.74.5"}`:     1,
		`velohunt_fleet_clients{org="root",server="demo",support="partial",version="0.72"}`:    2,
		`velohunt_fleet_clients{org="root",server="demo",support="unchecked",version="other"}`: 3,
	} {
		if got := sumMetric(t, body, want); got != n {
			t.Errorf("%s = %v, want %v", want, got, n)
		}
	}
	if sumMetric(t, body, "velohunt_fleet_clients{") != 8 || !strings.Contains(body, `velohunt_fleet_checked_timestamp_seconds{org="root",server="demo"}`) {
		t.Errorf("fleet metrics:\n%s", body)
	}
}
