package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// Ensure IOCs that hit are counted as "hit", apart from those still
// hunting or hunted without a hit, and that the other states keep theirs.
func TestStatsCountHits(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	if err := db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	var list []store.IOCInput
	for i := range 5 {
		list = append(list, input(int64(10+i), "filename", "evil"+string(rune('a'+i))+".exe"))
	}
	list = append(list, input(20, "md5", "not-a-hash"))
	if _, err := db.SyncCaseIOCs(ctx, 1, list, "test", true); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.CaseIOCs(ctx, 1)
	g, _ := db.QueuedGroups(ctx)
	// Four of the five in one hunt: one hits twice on two hosts, one once.
	h, err := db.PlanHunt(ctx, g[0], 4, "Custom.Velohunt.File", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hit := func(r store.IOC, client, key string) store.HitInput {
		return store.HitInput{IOCID: r.ID, CaseID: 1, ClientID: client, EvidenceKey: key, Evidence: key, Row: []byte(`{}`)}
	}
	hits := []store.HitInput{hit(rows[0], "C.a", "x"), hit(rows[0], "C.b", "y"), hit(rows[1], "C.a", "z")}
	if _, err := db.RecordHits(ctx, h, hits, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	count := func() map[string]int {
		t.Helper()
		st, err := db.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.IOCs
	}
	if got, want := count(), map[string]int{"hit": 2, "hunting": 2, "queued": 1, "refused": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("IOCs=%v, want %v", got, want)
	}
	if _, err := db.EndHunt(ctx, h.ID, store.HuntFinished); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), map[string]int{"hit": 2, "hunted": 2, "queued": 1, "refused": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the hunt ended: IOCs=%v, want %v", got, want)
	}
	// A removed IOC with hits is counted as removed.
	if _, err := db.SyncCaseIOCs(ctx, 1, list[1:], "test", true); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), map[string]int{"hit": 1, "hunted": 2, "queued": 1, "refused": 1, "removed": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a removal: IOCs=%v, want %v", got, want)
	}
}
