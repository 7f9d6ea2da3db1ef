package writeback_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
)

// collectedHits records one hit per IOC on one host, and links each to
// one collection of the matched file, ended with res.
func (e *env) collectedHits(t *testing.T, path string, res store.CollectionResult) int64 {
	t.Helper()
	ctx := context.Background()
	e.db.CollectHits = true
	e.hits(t, 1, func(h, i int) string { return path })
	pending, err := e.db.PendingCollectHits(ctx, 100)
	if err != nil || len(pending) != len(e.rows) {
		t.Fatalf("pending=%d err=%v, want %d", len(pending), err, len(e.rows))
	}
	var id int64
	for _, h := range pending {
		if id, _, err = e.db.DecideCollect(ctx, h.HitID, &store.NewCollection{Target: "file:" + path, Path: path, Artifacts: `[]`,
			MaxBytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.db.BeginCollectionLaunch(ctx, id, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := e.db.CollectionLaunched(ctx, id, "F.COLLECT1"); err != nil {
		t.Fatal(err)
	}
	if err := e.db.EndCollection(ctx, id, res); err != nil {
		t.Fatal(err)
	}
	return id
}

const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// A collected file becomes one IRIS evidence per case, whatever the number
// of IOCs that matched it, with the client's SHA-256, a chain of custody
// and the marker; each hit gets a "collected" event; a replay after lost
// answers makes no second record.
func TestCollectionRecorded(t *testing.T) {
	e := setup(t, 2)
	ctx := context.Background()
	path := `C:\Users\bob\evil <img src=x onerror=alert(1)>.exe`
	e.collectedHits(t, path, store.CollectionResult{State: store.CollectDone, FilePath: path, FileSize: 4, SHA256: sha, MD5: "098f6bcd4621d373cade4e832627b4f6"})
	// Half the requests run but lose their answer: each retry must find
	// what the lost attempt made.
	e.w.Now, e.db.Now = time.Now, time.Now
	e.w.Settle = 100 * time.Millisecond
	e.srv.SetFaults(iristest.Faults{AfterRate: 0.5})
	e.drainReal(t, time.Minute)
	e.srv.SetFaults(iristest.Faults{})
	list, err := e.admin.ListEvidences(ctx, e.cid)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d evidences, want 1 for 2 IOCs matching one file: %+v", len(list), list)
	}
	ev := list[0]
	if ev.Hash != sha || ev.Size != 4 || !strings.Contains(ev.Filename, "evil") || strings.Contains(ev.Filename, "<") {
		t.Fatalf("evidence %+v", ev)
	}
	if strings.Contains(ev.Description, "<img") && !strings.Contains(ev.Description, "```") {
		t.Fatalf("endpoint text outside a code block: %q", ev.Description)
	}
	for _, want := range []string{"C.0000000000000000", "F.COLLECT1", "H.TEST", "SHA-256"} {
		if !strings.Contains(ev.Description, want) {
			t.Errorf("description lacks %q:\n%s", want, ev.Description)
		}
	}
	if len(ev.ChainOfCustody) != 1 || ev.ChainOfCustody[0].Action != "collected" || !strings.Contains(ev.ChainOfCustody[0].Detail, "F.COLLECT1") {
		t.Fatalf("chain of custody %+v", ev.ChainOfCustody)
	}
	collected := 0
	for _, x := range e.srv.Events(e.cid) {
		if strings.Contains(x.Tags, "collected") {
			collected++
			if !strings.HasPrefix(x.Title, "Velociraptor collected evil") {
				t.Errorf("title %q", x.Title)
			}
		}
	}
	if collected != 2 {
		t.Fatalf("%d collected events, want one per hit (2)", collected)
	}
	tab := e.tabField(t, e.rows[0].IRISID, "Hits")
	if !strings.Contains(tab, "collected: SHA-256 "+sha+", 4 bytes (flow F.COLLECT1)") {
		t.Fatalf("tab hits:\n%s", tab)
	}
}

// A failed collection says why on the tab and in its event, and adds no
// evidence.
func TestCollectionFailedRecorded(t *testing.T) {
	e := setup(t, 1)
	ctx := context.Background()
	e.collectedHits(t, "/tmp/x.bin", store.CollectionResult{State: store.CollectFailed, Reason: "the file was not collected: larger than the cap (5000000 > 1048576 bytes)"})
	e.drain(t, 30*time.Second)
	if list, _ := e.admin.ListEvidences(ctx, e.cid); len(list) != 0 {
		t.Fatalf("evidences %+v", list)
	}
	events := e.srv.Events(e.cid)
	var found []iristest.Event
	for _, x := range events {
		if strings.Contains(x.Title, "collection failed") {
			found = append(found, x)
		}
	}
	if len(found) != 1 || !strings.Contains(found[0].Title, "larger than the cap") {
		t.Fatalf("events %+v", events)
	}
	if tab := e.tabField(t, e.rows[0].IRISID, "Hits"); !strings.Contains(tab, "collection failed: the file was not collected: larger than the cap") {
		t.Fatalf("tab:\n%s", tab)
	}
}

// A tab written while a hit's collection ran shows its end at once, though
// the tab's least interval has not passed: the end of a collection is
// substance, like a status (found by the browser test: the line stayed at
// "waiting for the client").
func TestTabFollowsCollectionEnd(t *testing.T) {
	e := setup(t, 1)
	ctx := context.Background()
	e.w.TabMinInterval = time.Hour
	e.db.CollectHits = true
	e.hits(t, 1, func(h, i int) string { return "/tmp/evil" })
	pending, _ := e.db.PendingCollectHits(ctx, 10)
	id, _, err := e.db.DecideCollect(ctx, pending[0].HitID, &store.NewCollection{Target: "file:/tmp/evil", Path: "/tmp/evil", Artifacts: `[]`, MaxBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	e.db.BeginCollectionLaunch(ctx, id, 100)
	e.db.CollectionLaunched(ctx, id, "F.TAB")
	e.db.SetCollectionFlowState(ctx, id, "WAITING")
	e.drain(t, 30*time.Second)
	if tab := e.tabField(t, e.rows[0].IRISID, "Hits"); !strings.Contains(tab, "collection waiting for the client (flow F.TAB)") {
		t.Fatalf("tab:\n%s", tab)
	}
	if err := e.db.EndCollection(ctx, id, store.CollectionResult{State: store.CollectDone, FilePath: "/tmp/evil", FileSize: 4, SHA256: sha}); err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	if tab := e.tabField(t, e.rows[0].IRISID, "Hits"); !strings.Contains(tab, "collected: SHA-256 "+sha) {
		t.Fatalf("tab after the collection ended:\n%s", tab)
	}
}

// New hits after a collected one wait for the tab's least interval like
// any detail: the collected line's key does not move with them
// (adversarial review: each new hit was an IOC update).
func TestNewHitsAfterCollectionKeepInterval(t *testing.T) {
	e := setup(t, 1)
	e.w.TabMinInterval = time.Hour
	e.collectedHits(t, "/tmp/evil", store.CollectionResult{State: store.CollectDone, FilePath: "/tmp/evil", FileSize: 4, SHA256: sha})
	e.drain(t, 30*time.Second)
	before := e.tabUpdates()
	for i := range 5 {
		e.clk.Add(time.Minute)
		e.hitsOn(t, fmt.Sprintf("C.%016x", 100+i), fmt.Sprintf("/tmp/other-%d", i))
		e.flush(t)
	}
	if got := e.tabUpdates() - before; got != 0 {
		t.Fatalf("%d tab updates for 5 new hits within the tab's least interval, want 0", got)
	}
}

// hitsOn records a hit of the first IOC on a client.
func (e *env) hitsOn(t *testing.T, client, evidence string) {
	t.Helper()
	in := store.HitInput{IOCID: e.rows[0].ID, CaseID: e.cid, ClientID: client, EvidenceKey: evidence, Evidence: evidence, Source: "file",
		Row: []byte(`{}`)}
	if _, err := e.db.RecordHits(context.Background(), e.hunt, []store.HitInput{in}, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	if err := e.db.EnqueueTabs(context.Background(), []int64{e.rows[0].ID}); err != nil { // as the watcher's pass does
		t.Fatal(err)
	}
}
