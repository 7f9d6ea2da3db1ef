package collect_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/collect"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testclock"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// fakeVR is a Velociraptor whose flows end as the test says.
type fakeVR struct {
	mu       sync.Mutex
	asked    []velociraptor.CollectRequest
	flows    map[string]velociraptor.FlowStatus
	files    map[string]velociraptor.CollectedFile
	byMarker map[string]string
	fail     error // CollectClient's error
	lost     bool  // CollectClient makes the flow, then fails (an answer lost)
	canceled []string
}

func newFakeVR() *fakeVR {
	return &fakeVR{flows: map[string]velociraptor.FlowStatus{}, files: map[string]velociraptor.CollectedFile{}, byMarker: map[string]string{}}
}

func (f *fakeVR) CollectClient(ctx context.Context, r velociraptor.CollectRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", f.fail
	}
	f.asked = append(f.asked, r)
	id := fmt.Sprintf("F.%d", len(f.asked))
	f.flows[id] = velociraptor.FlowStatus{State: "WAITING"}
	f.byMarker[r.Marker] = id
	if f.lost {
		return "", ioc.Errorf(ioc.EUNAVAILABLE, "connection reset")
	}
	return id, nil
}

func (f *fakeVR) FindCollection(ctx context.Context, org, clientID, marker string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.byMarker[marker]; ok {
		return id, nil
	}
	return "", ioc.Errorf(ioc.ENOTFOUND, "no flow")
}

func (f *fakeVR) FlowStatus(ctx context.Context, org, clientID, flowID string) (velociraptor.FlowStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.flows[flowID]
	if !ok {
		return st, ioc.Errorf(ioc.ENOTFOUND, "no flow")
	}
	return st, nil
}

func (f *fakeVR) CancelFlow(ctx context.Context, org, clientID, flowID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canceled = append(f.canceled, flowID)
	return nil
}

func (f *fakeVR) CollectedFile(ctx context.Context, org, clientID, flowID string) (velociraptor.CollectedFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.files[flowID]
	if !ok {
		return c, ioc.Errorf(ioc.ENOTFOUND, "no row")
	}
	return c, nil
}

// finish ends flow id with the file row.
func (f *fakeVR) finish(id string, file velociraptor.CollectedFile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows[id] = velociraptor.FlowStatus{State: "FINISHED", UploadedBytes: file.Size}
	f.files[id] = file
}

type env struct {
	db  *store.DB
	vr  *fakeVR
	c   *collect.Collector
	clk *testclock.Clock
	h   store.Hunt
	ioc []store.IOC
	cid int64
}

func setup(t *testing.T, kind ioc.Kind, k collect.Kind, limits collect.Limits) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{vr: newFakeVR(), clk: testclock.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)), cid: 7}
	var err error
	if e.db, err = store.Open(ctx, filepath.Join(t.TempDir(), "v.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.db.Now, e.db.CollectHits = e.clk.Now, true
	if err := e.db.UpsertCase(ctx, ioc.Case{ID: e.cid, Open: true}, ioc.Route{Server: "main"}); err != nil {
		t.Fatal(err)
	}
	in := []store.IOCInput{
		{IOC: ioc.IOC{ID: 101, Value: "a"}, Target: ioc.Target{Kind: kind, Value: "a"}},
		{IOC: ioc.IOC{ID: 102, Value: "b"}, Target: ioc.Target{Kind: kind, Value: "b"}},
	}
	if _, err := e.db.SyncCaseIOCs(ctx, e.cid, in, "test", true); err != nil {
		t.Fatal(err)
	}
	e.ioc, _ = e.db.CaseIOCs(ctx, e.cid)
	g, _ := e.db.QueuedGroups(ctx)
	if e.h, err = e.db.PlanHunt(ctx, g[0], 1000, "Custom.Velohunt.Hash", time.Hour); err != nil {
		t.Fatal(err)
	}
	e.db.SetHuntCreated(ctx, e.h.ID, "H.TEST")
	e.db.SetHuntRunning(ctx, e.h.ID)
	e.h, _ = e.db.FindHunt(ctx, e.h.ID)
	e.c = &collect.Collector{Store: e.db, Servers: map[string]collect.Velociraptor{"main": e.vr}, Kinds: map[ioc.Kind]collect.Kind{kind: k},
		Limits: map[string]collect.Limits{"main": limits}, Timeout: 10 * time.Minute, Expire: 24 * time.Hour, Now: e.clk.Now}
	return e
}

// hit records a hit of IOC i on client with the evidence.
func (e *env) hit(t *testing.T, i int, client, source, evidence string) {
	t.Helper()
	in := store.HitInput{IOCID: e.ioc[i].ID, CaseID: e.cid, ClientID: client, EvidenceKey: fmt.Sprintf("%s|%s", source, evidence),
		Evidence: evidence, Source: source, Row: []byte(`{}`)}
	if _, err := e.db.RecordHits(context.Background(), e.h, []store.HitInput{in}, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
}

func (e *env) pass(t *testing.T) {
	t.Helper()
	if err := e.c.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *env) only(t *testing.T) store.Collection {
	t.Helper()
	list, err := e.db.Collections(context.Background(), 100)
	if err != nil || len(list) != 1 {
		t.Fatalf("collections %+v err=%v, want 1", list, err)
	}
	return list[0]
}

func (e *env) outbox(t *testing.T) map[string]int {
	t.Helper()
	st, err := e.db.OutboxStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.ByKind
}

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// Two IOCs matching one file collect it once, urgently, with the cap; the
// finished flow's row is checked against the hit's path and recorded.
func TestOneCollectionPerFile(t *testing.T) {
	e := setup(t, ioc.KindHash, collect.Kind{File: true, MaxBytes: 1 << 20,
		Artifacts: []velociraptor.ArtifactSpec{{Name: "Windows.System.Pslist", Params: map[string]string{"ProcessRegex": `.*"; SELECT`}}}}, collect.Limits{})
	path := `C:\Users\bob\evil.exe`
	e.hit(t, 0, "C.1", "file", path)
	e.hit(t, 1, "C.1", "file", path)
	e.pass(t)
	if len(e.vr.asked) != 1 {
		t.Fatalf("asked %d collections, want 1", len(e.vr.asked))
	}
	r := e.vr.asked[0]
	if r.Path != path || r.MaxBytes != 1<<20 || !r.Urgent || r.ClientID != "C.1" || r.Marker == "" || len(r.Artifacts) != 1 ||
		r.Artifacts[0].Params["ProcessRegex"] != `.*"; SELECT` {
		t.Fatalf("request %+v", r)
	}
	if c := e.only(t); c.State != store.CollectRunning || c.FlowID != "F.1" {
		t.Fatalf("collection %+v", c)
	}
	e.pass(t)
	if c := e.only(t); c.FlowState != "WAITING" {
		t.Fatalf("collection %+v", c)
	}
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: r.Marker, Path: path, Size: 4, Uploaded: true, SHA256: strings.ToUpper(sum)})
	e.pass(t)
	c := e.only(t)
	if c.State != store.CollectDone || c.SHA256 != sum || c.FileSize != 4 || c.FilePath != path {
		t.Fatalf("collection %+v", c)
	}
	if k := e.outbox(t); k["evidence"] != 1 || k["collected"] != 2 {
		t.Fatalf("outbox %v, want 1 evidence (one case) and 2 collected events (two hits)", k)
	}
	// A hit on the same file found after the collection ended is not
	// given that collection (the file may have changed since; the hit may
	// be another case's): it gets its own (adversarial review).
	e.clk.Add(time.Minute)
	e.hit(t, 0, "C.1", "process", path)
	e.pass(t)
	if len(e.vr.asked) != 2 {
		t.Fatalf("asked %d collections, want a second one for the later hit", len(e.vr.asked))
	}
	list, _ := e.db.Collections(context.Background(), 10)
	if len(list) != 2 || list[1].State != store.CollectDone || list[1].Target != "retired:1:file:"+path {
		t.Fatalf("collections %+v", list)
	}
}

// A hit found while its file's collection runs shares it.
func TestHitDuringCollectionShares(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.pass(t)
	e.clk.Add(time.Second)
	e.hit(t, 1, "C.1", "file", "/tmp/a")
	e.pass(t)
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: e.vr.asked[0].Marker, Path: "/tmp/a", Size: 4, Uploaded: true, SHA256: sum})
	e.pass(t)
	if len(e.vr.asked) != 1 {
		t.Fatalf("asked %d", len(e.vr.asked))
	}
	if k := e.outbox(t); k["collected"] != 2 || k["evidence"] != 1 {
		t.Fatalf("outbox %v", k)
	}
}

// Credential stores are never uploaded, whatever IOC matched them.
func TestNeverPaths(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.c.Never = []string{"/etc/shadow", "C:/Windows/System32/config/*"}
	e.hit(t, 0, "C.1", "file", "/etc/shadow")
	e.hit(t, 0, "C.2", "file", `c:\windows\system32\CONFIG\SAM`)
	e.hit(t, 0, "C.3", "file", "/etc/passwd")
	e.pass(t)
	if len(e.vr.asked) != 1 || e.vr.asked[0].Path != "/etc/passwd" {
		t.Fatalf("asked %+v", e.vr.asked)
	}
}

// A queued collection whose case was closed, or turned to collect: false,
// since its hit was found does not start.
func TestUnwantedCollectionNotStarted(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{InFlight: 1})
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.hit(t, 0, "C.1", "file", "/tmp/b")
	e.pass(t)
	if err := e.db.UpsertCase(context.Background(), ioc.Case{ID: e.cid, Open: true}, ioc.Route{Server: "main", NoCollect: true}); err != nil {
		t.Fatal(err)
	}
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: e.vr.asked[0].Marker, Path: "/tmp/a", Size: 4, Uploaded: true, SHA256: sum})
	e.pass(t)
	e.pass(t)
	list, _ := e.db.Collections(context.Background(), 10)
	if len(e.vr.asked) != 1 || list[0].State != store.CollectFailed || !strings.Contains(list[0].Reason, "turned off") {
		t.Fatalf("asked %d, collections %+v", len(e.vr.asked), list)
	}
}

// What the client reports is checked: another path, no hash, a size over
// the cap, or the artifact's refusal fail the collection with why, and
// nothing is retried.
func TestCollectedRowChecked(t *testing.T) {
	for name, tc := range map[string]struct {
		row  velociraptor.CollectedFile
		want string
	}{
		"other path": {velociraptor.CollectedFile{Path: "/etc/shadow", Size: 4, Uploaded: true, SHA256: sum}, "another path"},
		"no hash":    {velociraptor.CollectedFile{Path: "/tmp/evil", Size: 4, Uploaded: true, SHA256: "x"}, "no SHA-256"},
		"over cap":   {velociraptor.CollectedFile{Path: "/tmp/evil", Size: 2 << 20, Uploaded: true, SHA256: sum}, "over the cap"},
		"refused":    {velociraptor.CollectedFile{Path: "/tmp/evil", Error: "a symbolic link: not uploaded"}, "a symbolic link"},
	} {
		t.Run(name, func(t *testing.T) {
			e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 1 << 20}, collect.Limits{})
			e.hit(t, 0, "C.1", "file", "/tmp/evil")
			e.pass(t)
			tc.row.Marker = e.vr.asked[0].Marker
			e.vr.finish("F.1", tc.row)
			e.pass(t)
			c := e.only(t)
			if c.State != store.CollectFailed || !strings.Contains(c.Reason, tc.want) {
				t.Fatalf("collection %+v, want failed with %q", c, tc.want)
			}
			if k := e.outbox(t); k["evidence"] != 0 || k["collected"] != 1 {
				t.Fatalf("outbox %v", k)
			}
			e.pass(t)
			if len(e.vr.asked) != 1 {
				t.Fatal("retried")
			}
		})
	}
}

// Limits hold collections back visibly, and release them when they allow.
func TestCollectLimits(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{InFlight: 1, PerHostPerDay: 2, BytesPerDay: 1000})
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.hit(t, 0, "C.1", "file", "/tmp/b")
	e.pass(t)
	list, _ := e.db.Collections(context.Background(), 10)
	if len(e.vr.asked) != 1 || list[0].State != store.CollectHeld || !strings.Contains(list[0].Reason, "in flight") {
		t.Fatalf("asked %d, collections %+v", len(e.vr.asked), list)
	}
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: e.vr.asked[0].Marker, Path: "/tmp/a", Size: 4, Uploaded: true, SHA256: sum})
	e.pass(t)
	e.pass(t)
	if len(e.vr.asked) != 2 {
		t.Fatalf("held collection not launched: %d", len(e.vr.asked))
	}
	e.vr.finish("F.2", velociraptor.CollectedFile{Marker: e.vr.asked[1].Marker, Path: "/tmp/b", Size: 4, Uploaded: true, SHA256: sum})
	e.hit(t, 0, "C.1", "file", "/tmp/c")
	e.pass(t)
	e.pass(t)
	list, _ = e.db.Collections(context.Background(), 10)
	if len(e.vr.asked) != 2 || list[0].State != store.CollectHeld || !strings.Contains(list[0].Reason, "from this client in 24 h") {
		t.Fatalf("asked %d, collections %+v", len(e.vr.asked), list)
	}
	// The next day the client's budget is back.
	e.clk.Add(25 * time.Hour)
	e.c.Expire = 48 * time.Hour
	e.pass(t)
	if len(e.vr.asked) != 3 {
		t.Fatalf("asked %d", len(e.vr.asked))
	}
}

// A crash between asking Velociraptor and recording the flow: the next
// pass finds the flow by its marker instead of asking again.
func TestLaunchFoundByMarker(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.vr.lost = true
	if err := e.c.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The lost answer leaves the collection launching: the retry must find
	// the flow, not make a second one.
	if c := e.only(t); c.State != store.CollectLaunching || !strings.Contains(c.Reason, "connection reset") {
		t.Fatalf("collection %+v", c)
	}
	e.vr.lost = false
	e.clk.Add(time.Hour)
	e.pass(t)
	if c := e.only(t); c.State != store.CollectRunning || c.FlowID != "F.1" || len(e.vr.asked) != 1 {
		t.Fatalf("collection %+v after %d requests", c, len(e.vr.asked))
	}
}

// A client that never comes back: the flow is cancelled after Expire and
// the collection fails with why; one that never starts fails too.
func TestCollectionExpires(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.pass(t)
	e.clk.Add(25 * time.Hour)
	e.pass(t)
	c := e.only(t)
	if c.State != store.CollectFailed || !strings.Contains(c.Reason, "not done within 24h0m0s (flow ") || len(e.vr.canceled) != 1 {
		t.Fatalf("collection %+v canceled %v", c, e.vr.canceled)
	}
}

// Refusals end a collection at once; other failures are retried a few
// times, then end it.
func TestLaunchRefused(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.vr.fail = ioc.Errorf(ioc.EPERMISSION, "PermissionDenied: [COLLECT_CLIENT]")
	e.pass(t)
	if c := e.only(t); c.State != store.CollectFailed || !strings.Contains(c.Reason, "COLLECT_CLIENT") {
		t.Fatalf("collection %+v", c)
	}
	e2 := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e2.hit(t, 0, "C.1", "file", "/tmp/a")
	e2.vr.fail = ioc.Errorf(ioc.EUNAVAILABLE, "down")
	for range 10 {
		e2.pass(t)
		e2.clk.Add(time.Hour)
	}
	if c := e2.only(t); c.State != store.CollectFailed || c.Attempts != 5 || len(e2.vr.asked) != 0 {
		t.Fatalf("collection %+v", c)
	}
}

// Hits that call for nothing: a kind without collection, a process hit of
// a network IOC, a relative or clipped path, a case whose route turns
// collections off, an old hit.
func TestNothingToCollect(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.hit(t, 0, "C.1", "file", "evil.exe")
	e.hit(t, 0, "C.2", "file", "/"+strings.Repeat("a", 5000))
	e.hit(t, 0, "C.3", "coverage", "/tmp/x")
	e.pass(t)
	if list, _ := e.db.Collections(context.Background(), 10); len(list) != 0 {
		t.Fatalf("collections %+v", list)
	}
	if err := e.db.UpsertCase(context.Background(), ioc.Case{ID: e.cid, Open: true}, ioc.Route{Server: "main", NoCollect: true}); err != nil {
		t.Fatal(err)
	}
	e.hit(t, 0, "C.1", "file", "/tmp/x")
	e.pass(t)
	if list, _ := e.db.Collections(context.Background(), 10); len(list) != 0 {
		t.Fatalf("collections %+v", list)
	}
}

// A hash hit's file collected with another hash (replaced since the hunt)
// is not recorded as the hit's evidence (adversarial review).
func TestCollectedHashMustMatchHit(t *testing.T) {
	e := setup(t, ioc.KindHash, collect.Kind{File: true, MaxBytes: 1 << 20}, collect.Limits{})
	in := store.HitInput{IOCID: e.ioc[0].ID, CaseID: e.cid, ClientID: "C.1", EvidenceKey: "k", Evidence: "/tmp/evil", Source: "file",
		Row: []byte(`{"OSPath":"/tmp/evil","SHA256":"` + sum + `"}`)}
	if _, err := e.db.RecordHits(context.Background(), e.h, []store.HitInput{in}, store.FlowCursor{}, false); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	other := strings.Repeat("ab", 32)
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: e.vr.asked[0].Marker, Path: "/tmp/evil", Size: 4, Uploaded: true, SHA256: other})
	e.pass(t)
	if c := e.only(t); c.State != store.CollectFailed || !strings.Contains(c.Reason, "is not the one the hunt found") {
		t.Fatalf("collection %+v", c)
	}
	if k := e.outbox(t); k["evidence"] != 0 {
		t.Fatalf("outbox %v", k)
	}
}

// A file named like a retired target ("x#1" once targets were retired as
// target#id) neither collides with it nor stops the collector
// (adversarial review: the unique key failed, and every pass after it).
func TestRetiredTargetNoCollision(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.hit(t, 0, "C.1", "file", "/tmp/x")
	e.pass(t)
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: e.vr.asked[0].Marker, Path: "/tmp/x", Size: 4, Uploaded: true, SHA256: sum})
	e.pass(t)
	e.clk.Add(time.Minute)
	e.hit(t, 0, "C.1", "file", "/tmp/x#1")
	e.hit(t, 1, "C.1", "file", "/tmp/x")
	e.hit(t, 0, "C.2", "file", "/tmp/y")
	e.pass(t)
	if len(e.vr.asked) != 4 {
		t.Fatalf("asked %d collections, want 4 (x, x#1, x again, y)", len(e.vr.asked))
	}
}

// Paths that name a file through another (/proc/self/root/..., 8.3 short
// names) are not collected: no spelling goes round never_paths.
func TestIndirectPathsNotCollected(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	e.c.Never = []string{"/etc/shadow", "C:/Users/*/AppData/Roaming/Microsoft/Protect/*/*"}
	for i, p := range []string{"/proc/self/root/etc/shadow", "/PROC/1/root/etc/shadow", `C:\Users\bob\AppData\Roaming\MICROS~1\Protect\S-1\key`,
		`\\?\C:\Windows\System32\config\SAM`, `\\.\C:\x`} {
		e.hit(t, 0, fmt.Sprintf("C.%d", i), "file", p)
	}
	e.hit(t, 0, "C.9", "file", `C:\Users\bob\report~final.docx`)
	e.pass(t)
	if len(e.vr.asked) != 1 || e.vr.asked[0].Path != `C:\Users\bob\report~final.docx` {
		t.Fatalf("asked %+v", e.vr.asked)
	}
}

type counts map[string]int

func (c counts) Collection(server, outcome string) { c[server+"/"+outcome]++ }

// The collector counts each step of a collection for the metrics.
func TestCollectionCounted(t *testing.T) {
	e := setup(t, ioc.KindFile, collect.Kind{File: true, MaxBytes: 100}, collect.Limits{})
	n := counts{}
	e.c.Recorder = n
	e.hit(t, 0, "C.1", "file", "/tmp/a")
	e.hit(t, 0, "C.1", "file", "/tmp/b")
	e.pass(t)
	e.vr.finish("F.1", velociraptor.CollectedFile{Marker: e.vr.asked[0].Marker, Path: "/tmp/a", Size: 4, Uploaded: true, SHA256: sum})
	e.vr.finish("F.2", velociraptor.CollectedFile{Marker: e.vr.asked[1].Marker, Path: "/tmp/b", Error: "no such file"})
	e.pass(t)
	if want := (counts{"main/queued": 2, "main/started": 2, "main/collected": 1, "main/failed": 1}); fmt.Sprint(n) != fmt.Sprint(want) {
		t.Fatalf("counted %v, want %v", n, want)
	}
}
