package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// planOne syncs the IOCs into case cid and plans one hunt of their kind.
func planOne(t *testing.T, db *store.DB, cid int64, list ...store.IOCInput) store.Hunt {
	t.Helper()
	ctx := context.Background()
	if err := db.UpsertCase(ctx, ioc.Case{ID: cid, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SyncCaseIOCs(ctx, cid, list, "reconcile", true); err != nil {
		t.Fatal(err)
	}
	g := store.Group{Server: "main", Kind: list[0].Target.Kind}
	h, err := db.PlanHunt(ctx, g, 100, "Custom.Velohunt.Hash", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStopByOperator(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	h := planOne(t, db, 1, input(10, "md5", "d41d8cd98f00b204e9800998ecf8427e"))
	if !store.ValidMarker(h.Marker) {
		t.Fatalf("marker %q is not valid", h.Marker)
	}
	if err := db.SetHuntCreated(ctx, h.ID, "H.OP1"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetHuntRunning(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	// The tab writes queued so far are done.
	due, _ := db.DueWrites(ctx, 100)
	for _, w := range due {
		if err := db.WriteDone(ctx, w.ID, 0); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Running", func(t *testing.T) {
		ok, err := db.StopByOperator(ctx, h.ID)
		if err != nil || !ok {
			t.Fatalf("stop: %v %v", ok, err)
		}
		got, _ := db.FindHunt(ctx, h.ID)
		if got.State != store.HuntStopped || got.EndReason != store.ReasonStoppedByOperator || got.EndedAt.IsZero() {
			t.Fatalf("hunt after stop: %+v", got)
		}
		rows, _ := db.CaseIOCs(ctx, 1)
		if rows[0].State != store.StateHunted {
			t.Fatalf("IOC state %s, want hunted", rows[0].State)
		}
		if st, _ := db.OutboxStats(ctx); st.ByKind["tab"] != 1 {
			t.Fatalf("tab writes queued: %+v, want the IOC's", st.ByKind)
		}
		if open, _ := db.OpenHunts(ctx); len(open) != 0 {
			t.Fatalf("open hunts after stop: %+v", open)
		}
	})

	t.Run("AgainIsTrue", func(t *testing.T) {
		if ok, err := db.StopByOperator(ctx, h.ID); err != nil || !ok {
			t.Fatalf("second stop: %v %v", ok, err)
		}
	})

	t.Run("WatcherEndedItFirst", func(t *testing.T) {
		w := planOne(t, db, 2, input(20, "md5", "0cc175b9c0f1b6a831c399e269772661"))
		if _, err := db.EndHunt(ctx, w.ID, store.HuntStopped); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.StopByOperator(ctx, w.ID); err != nil || !ok {
			t.Fatalf("stop after the watcher's end: %v %v", ok, err)
		}
		if got, _ := db.FindHunt(ctx, w.ID); got.EndReason != store.ReasonStoppedByOperator {
			t.Fatalf("reason %q", got.EndReason)
		}
	})

	t.Run("OtherEndKept", func(t *testing.T) {
		e := planOne(t, db, 3, input(30, "md5", "92eb5ffee6ae2fec3ad71c777531578f"))
		if _, err := db.EndHuntWithReason(ctx, e.ID, store.HuntStopped, "no IOC of it is hunted any more"); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.StopByOperator(ctx, e.ID); err != nil || ok {
			t.Fatalf("stop of a hunt ended for another reason: %v %v", ok, err)
		}
		if got, _ := db.FindHunt(ctx, e.ID); got.EndReason != "no IOC of it is hunted any more" {
			t.Fatalf("reason %q replaced", got.EndReason)
		}
	})

	t.Run("CreatedAfterStopKeepsState", func(t *testing.T) {
		p := planOne(t, db, 4, input(40, "md5", "4a8a08f09d37b73795649038408b5f33"))
		if ok, err := db.StopByOperator(ctx, p.ID); err != nil || !ok {
			t.Fatalf("stop planned: %v %v", ok, err)
		}
		// A launch that was creating it records the id it got.
		if err := db.SetHuntCreated(ctx, p.ID, "H.LATE"); err != nil {
			t.Fatal(err)
		}
		got, _ := db.FindHunt(ctx, p.ID)
		if got.State != store.HuntStopped || got.VRHuntID != "H.LATE" {
			t.Fatalf("hunt %+v, want stopped with the id recorded", got)
		}
		if err := db.SetHuntRunning(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindHunt(ctx, p.ID); got.State != store.HuntStopped {
			t.Fatalf("a stopped hunt became %s", got.State)
		}
	})
}

func TestValidMarker(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"velohunt-0123456789abcdef0123", true},
		{"velohunt", false},
		{"velohunt-0123456789ABCDEF0123", false},
		{"velohunt-0123456789abcdef01234", false},
		{"x velohunt-0123456789abcdef0123", false},
		{"", false},
	} {
		if got := store.ValidMarker(tc.s); got != tc.ok {
			t.Errorf("ValidMarker(%q)=%v, want %v", tc.s, got, tc.ok)
		}
	}
}

// TestScratch: a scratch copy holds what the file holds; what is done to
// it never reaches the file, which a read-only open leaves byte for byte.
func TestScratch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	planOne(t, db, 1, input(10, "md5", "d41d8cd98f00b204e9800998ecf8427e"))
	db.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)

	ro, err := store.OpenWith(ctx, path, store.Options{ReadOnly: true, AnySchema: true})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := ro.Scratch(ctx)
	ro.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if open, _ := mem.OpenHunts(ctx); len(open) != 1 {
		t.Fatalf("scratch has %d open hunts, want the file's 1", len(open))
	}
	planOne(t, mem, 2, input(20, "md5", "0cc175b9c0f1b6a831c399e269772661"))
	if open, _ := mem.OpenHunts(ctx); len(open) != 2 {
		t.Fatalf("scratch has %d open hunts after planning, want 2", len(open))
	}
	counts, err := mem.IOCCounts(ctx)
	if err != nil || len(counts) != 1 || counts[0].Rows != 2 || counts[0].State != store.StateHunting {
		t.Fatalf("counts %+v %v", counts, err)
	}
	cover, err := mem.HuntCover(ctx)
	if err != nil || len(cover) != 2 {
		t.Fatalf("cover %+v %v", cover, err)
	}
	cases, err := mem.OpenCases(ctx)
	if err != nil || len(cases) != 2 || cases[0].Route.Server != "main" {
		t.Fatalf("cases %+v %v", cases, err)
	}

	after, _ := os.ReadFile(path)
	fi2, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !fi.ModTime().Equal(fi2.ModTime()) {
		t.Fatal("the database file changed")
	}
	again, err := store.OpenWith(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if open, _ := again.OpenHunts(ctx); len(open) != 1 {
		t.Fatalf("the file has %d open hunts, want 1", len(open))
	}

	empty, err := store.OpenMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if open, err := empty.OpenHunts(ctx); err != nil || len(open) != 0 {
		t.Fatalf("empty store: %+v %v", open, err)
	}
}
