package watcher_test

// Adversarial review of c3a45a2 (hunts with hosts not done are listed
// every 30 s). Endpoint.Hang (added to velotest on this branch) is a host
// that took the collection and never reports: a compromised endpoint that
// drops its client's replies, or a laptop that left mid-collection.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/watcher"
)

// TestHungHostCostsNoListing: one host that never finishes, scheduled
// first, costs no listing while nothing moves: its flow is the hunt's own
// (F.<hunt>.H), whose end moves the stats. 0.77.2's hunt_flows() loads
// each listed flow's details from the datastore, so listing every flow
// after it every 30 s, for the hunt's week, multiplied by the hunts, would
// load the server for nothing. Found by an adversary review.
func TestHungHostCostsNoListing(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	const fleet = 1000
	hung := endpoint("C.0000hung", "owned")
	hung.Hang = true
	e.srv.AddEndpoint(hung)
	for i := range fleet {
		e.srv.AddEndpoint(endpoint(fmt.Sprintf("C.1%05d", i), fmt.Sprintf("h%d", i)))
	}
	e.hunt(t, "evil.exe")
	for range 3 { // catch up with the hunt
		if _, err := e.w.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Second)
	}
	hunts, _ := e.db.RunningHunts(ctx)
	p, _ := e.db.HuntProgress(ctx, hunts[0].ID)
	if p.Scheduled != fleet+1 || p.Finished != fleet {
		t.Fatalf("progress %+v, want %d scheduled, %d finished", p, fleet+1, fleet)
	}
	before := e.srv.FlowDetailsLoaded()
	const passes = 20 // ten minutes of the default schedule
	for range passes {
		e.clk.Add(watcher.PendingEvery)
		if _, err := e.w.Pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	loads := e.srv.FlowDetailsLoaded() - before
	t.Logf("%d flow details loaded by the server in %d passes over ten minutes with nothing moving (%d per pass; %d a day per hunt)",
		loads, passes, loads/passes, loads/passes*2880)
	if loads > passes*10 {
		t.Errorf("a hunt whose only unfinished host is stuck costs the server %d flow loads per pass; want about the flows not done (1)", loads/passes)
	}
}

// TestNeverReportedHostIsIncomplete: a hunt that ends (expiry; same for a
// stop) with a host that never reported is incomplete: that host was not
// searched, and it is the one with the IOC. Found by an adversary review.
func TestNeverReportedHostIsIncomplete(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	hung := endpoint("C.1", "owned", "/tmp/evil.exe") // has the IOC, never reports
	hung.Hang = true
	e.srv.AddEndpoint(hung)
	e.srv.AddEndpoint(endpoint("C.2", "clean"))
	e.hunt(t, "evil.exe")
	if _, err := e.w.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(25 * time.Hour) // past the hunt's expiry (24 h here)
	if rep, err := e.w.Pass(ctx); err != nil || rep.Ended != 1 {
		t.Fatalf("rep=%+v err=%v, want the hunt ended", rep, err)
	}
	rows, _ := e.db.CaseIOCs(ctx, 1)
	d, err := e.db.FindTabData(ctx, rows[0].ID, 10)
	if err != nil || len(d.Cases) != 1 || len(d.Cases[0].Hunts) != 1 {
		t.Fatalf("tab data %+v err=%v", d, err)
	}
	th := d.Cases[0].Hunts[0]
	t.Logf("ended hunt: state=%s scheduled=%d finished=%d errored=%d uncovered=%d incomplete=%v",
		th.Hunt.State, th.Scheduled, th.Finished, th.Errored, len(th.Uncovered), th.Incomplete())
	if th.Hunt.State != store.HuntExpired {
		t.Fatalf("hunt state %s", th.Hunt.State)
	}
	if th.Finished < th.Scheduled && !th.Incomplete() {
		t.Errorf("a host that never reported (%d of %d finished) leaves the ended hunt not incomplete: it will read clean", th.Finished, th.Scheduled)
	}
}
