package watcher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
	"github.com/velohunt/velohunt/internal/watcher"
)

// TestHuntEndsAfterCatchUp: a pass lists at most 10 pages of 1,000 flows
// and goes on next pass; a hunt that expired (or was stopped) meanwhile is
// ended only once every flow was read. Here 10,500 hosts answered, only
// the last 500 have the IOC, and the watcher's first pass comes after the
// hunt's expiry (velohunt was down for the hunt's last hours, or an
// analyst stopped a big hunt before velohunt caught up): before, the hunt
// ended with 10,000 hosts read and no hit, and the tab read clean. Found
// by an adversary review.
func TestHuntEndsAfterCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 flows")
	}
	ctx := context.Background()
	e := setup(t)
	const clients = 10500
	// One row a host: a coverage row, or the hit for the last 500.
	e.srv.SetRowSource("Custom.Velohunt.File", velotest.RowSource{Clients: clients, RowsPerClient: 1,
		ClientID: func(c int) string { return fmt.Sprintf("C.big%05d", c) },
		Row: func(c, j int) map[string]any {
			if c < 10000 {
				return map[string]any{"Coverage": map[string]any{"Source": "file_paths", "Unit": "files", "Searched": 1000}}
			}
			return map[string]any{"IOC": "a.sh", "Evidence": fmt.Sprintf("/tmp/%d/a.sh", c), "Source": "file_names"}
		}})
	e.hunt(t, "a.sh", "b.bin")
	e.clk.Add(25 * time.Hour)
	var rep watcher.Report
	for range 3 {
		r, err := e.w.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rep.Hits += r.Hits
		rep.Ended += r.Ended
		if r.Ended > 0 {
			break
		}
	}
	hunts, _ := e.db.RecentHunts(ctx, 1)
	p, _ := e.db.HuntProgress(ctx, hunts[0].ID)
	rows, _ := e.db.CaseIOCs(ctx, 1)
	for _, r := range rows {
		d, _ := e.db.FindTabData(ctx, r.ID, 10)
		t.Logf("IOC %s: hits=%d", r.Value, d.Cases[0].HitCount)
	}
	t.Logf("pass: %+v; hunt %s: scheduled=%d finished=%d incomplete=%v", rep, hunts[0].State, p.Scheduled, p.Finished, p.Incomplete())
	if rep.Hits != 500 || p.Scheduled != clients || rep.Ended != 1 {
		t.Errorf("hunt ended with %d of %d hosts read and %d of 500 hits", p.Scheduled, clients, rep.Hits)
	}
}
