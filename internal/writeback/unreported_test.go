package writeback_test

import (
	"context"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// TestNeverReportedHostNotClean: the tab of a hunt that ended (expired or
// stopped) with a host that never reported says so and never "clean".
func TestNeverReportedHostNotClean(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 1)
	if _, err := e.db.SetHuntProgress(ctx, e.hunt.ID, store.Progress{VRState: "RUNNING", Scheduled: 2, Finished: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.EndHunt(ctx, e.hunt.ID, store.HuntExpired); err != nil {
		t.Fatal(err)
	}
	if err := e.db.EnqueueTabs(ctx, []int64{e.rows[0].ID}); err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	s := e.tabField(t, e.rows[0].IRISID, render.FieldStatus)
	t.Logf("tab status: %q", s)
	if strings.HasPrefix(s, "clean") || !strings.Contains(s, "1 of 2 host(s) never reported") {
		t.Errorf("one of two hosts never reported, and the tab says %q", s)
	}
}
