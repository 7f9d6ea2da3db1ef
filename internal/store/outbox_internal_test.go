package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/velohunt/velohunt/internal/ioc"
)

// oneIOC opens a store with one open case holding one IOC, and returns the
// IOC's row; the store closes when the test ends.
func oneIOC(t *testing.T) (*DB, []IOC) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	target, _ := ioc.Parse("filename", "evil.exe")
	in := IOCInput{IOC: ioc.IOC{ID: 10, TypeName: "filename", Value: "evil.exe"}, Target: target}
	if _, err := db.SyncCaseIOCs(ctx, 1, []IOCInput{in}, "test", true); err != nil {
		t.Fatal(err)
	}
	rows, err := db.CaseIOCs(ctx, 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows=%v err=%v", rows, err)
	}
	return db, rows
}

// TestRetryParkedSeveralTabsOfOneIOC: one IOC's tab parked three times
// (as an older velohunt left them) is queued again once, and retry-parked
// succeeds on every run; once the tab is written no parked write is left.
func TestRetryParkedSeveralTabsOfOneIOC(t *testing.T) {
	ctx := context.Background()
	db, rows := oneIOC(t)
	if _, err := db.db.ExecContext(ctx, `DELETE FROM outbox`); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := db.db.ExecContext(ctx, `INSERT INTO outbox (kind, case_id, ioc_id, dedup, marker, created_at, parked, last_error)
			VALUES ('tab', 1, ?, '', '', 0, 1, 'IRIS refused')`, rows[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	for run := range 2 {
		if _, err := db.RetryParked(ctx); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		due, err := db.DueWrites(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 1 {
			t.Fatalf("run %d: %d writes due, want the one tab", run, len(due))
		}
		if err := db.WritePark(ctx, due[0].ID, "refused again"); err != nil {
			t.Fatal(err)
		}
	}
	// Parked again, with a fresh pending tab write beside it: once that one
	// is written, status shows nothing parked for the IOC.
	if err := db.EnqueueTabs(ctx, []int64{rows[0].ID}); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueWrites(ctx, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due=%v err=%v", due, err)
	}
	if err := db.WriteDone(ctx, due[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	parked, err := db.ParkedWrites(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 0 {
		t.Fatalf("parked after the tab was written: %+v", parked)
	}
}

// TestParkTabReplacesEarlier: a tab write parked while another of the same
// IOC is parked leaves one parked write.
func TestParkTabReplacesEarlier(t *testing.T) {
	ctx := context.Background()
	db, rows := oneIOC(t)
	for range 3 {
		if err := db.EnqueueTabs(ctx, []int64{rows[0].ID}); err != nil {
			t.Fatal(err)
		}
		due, err := db.DueWrites(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range due {
			if err := db.WritePark(ctx, w.ID, "refused"); err != nil {
				t.Fatal(err)
			}
		}
	}
	parked, err := db.ParkedWrites(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 {
		t.Fatalf("%d parked tab writes of one IOC, want 1", len(parked))
	}
}
