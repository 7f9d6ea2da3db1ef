package main

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/store"
)

// realCollectEnv is a file planted on the real Windows-impersonating
// client (its C: is a folder of this machine) and a case whose SHA-256 IOC
// matches it.
type realCollectEnv struct {
	apiCfg, bin, windows string
	root, name           string // the client's C: here, the folder's name in it
	dir                  string // the planted file's folder, as the client sees it
	path                 string // the planted file, as the client sees it
	sum                  string
	size                 int64
	globs                string
}

func needRealCollect(t testing.TB) realCollectEnv {
	t.Helper()
	e := realCollectEnv{apiCfg: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), bin: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY"),
		windows: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT"), root: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_ROOT")}
	if e.apiCfg == "" || e.bin == "" || e.windows == "" || e.root == "" {
		t.Skip("needs a real Velociraptor with the Windows-impersonating client: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _BINARY, _WINDOWS_CLIENT and _WINDOWS_ROOT")
	}
	e.name = fmt.Sprintf("vh-collect-%d", time.Now().UnixNano())
	if err := os.MkdirAll(filepath.Join(e.root, e.name), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(e.root, e.name)) })
	g, _ := json.Marshal([]string{"C:/" + e.name + "/**"})
	e.globs = string(g)
	e.plant(t, "payload.exe")
	return e
}

// plant writes a new random file of 300,000 bytes in the folder and makes
// it the one the env names.
func (e *realCollectEnv) plant(t testing.TB, name string) {
	t.Helper()
	data := make([]byte, 300_000)
	crand.Read(data)
	if err := os.WriteFile(filepath.Join(e.root, e.name, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	e.sum, e.size = hex.EncodeToString(s[:]), int64(len(data))
	e.dir, e.path = `C:\`+e.name, `C:\`+e.name+`\`+name
}

// collectConfig hunts hashes on Windows clients only, under the planted
// folder, and collects the matched file.
func (e realCollectEnv) collectConfig(cfg *config.Config) {
	k := cfg.Hunting.Kinds["hash"]
	k.Parameters = map[string]string{"TargetGlobs": e.globs}
	k.Scope = config.Scope{OS: "windows"}
	k.Collect = config.CollectKind{File: true}
	cfg.Hunting.Kinds["hash"] = k
	cfg.Velociraptor.Servers[0].GUIURL = "https://127.0.0.1:8889"
	cfg.Writeback.TabMinInterval = 0
}

// startRealCollect opens velohunt on the real IRIS and Velociraptor with
// collections on (collectConfig, and the datastore copy up to copy bytes)
// and makes a case, both closed when the test ends.
func startRealCollect(tb testing.TB, name string, copy int64) (*realCollectEnv, config.Config, *iris.Client, *App, int64) {
	tb.Helper()
	env := needRealIRIS(tb)
	e := needRealCollect(tb)
	cfg := realIRISConfig(tb.TempDir(), env.url, env.key, env.adminKey, env.insecure, e.apiCfg)
	e.collectConfig(&cfg)
	cfg.Collect.IRISDatastoreMaxBytes = copy
	admin, _ := iris.New(iris.Options{URL: env.url, APIKey: env.adminKey, InsecureSkipVerify: env.insecure})
	cid, err := admin.AddCase(context.Background(), fmt.Sprintf("%s %d", name, time.Now().UnixNano()), "velohunt test: hit to evidence", 1, "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { admin.CloseCase(context.Background(), cid) })
	app := openTestApp(tb, cfg)
	tb.Cleanup(func() {
		stopRealHunts(app)
		app.Close(context.Background())
	})
	return &e, cfg, admin, app, cid
}

// TestRealCollectEvidence: a SHA-256 hit on the real Windows-impersonating
// client ends, within 30 s of the hit, as an IRIS evidence whose SHA-256
// is the planted file's, a "collected" event linked to the host's asset,
// and the hit's tab line saying so; with collect.iris_datastore_max_bytes
// set, a copy of the file (read back from Velociraptor) is in the case's
// datastore, and the evidence says so.
func TestRealCollectEvidence(t *testing.T) {
	ctx := context.Background()
	e, cfg, admin, app, cid := startRealCollect(t, "velohunt collect", 1<<20)
	x, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: e.sum, TypeID: iocTypeID(t, admin, "sha256"), TLPID: 2, Description: "velohunt collect test"})
	if err != nil {
		t.Fatal(err)
	}
	app.Intake.RequestFullSync()
	var hitAt time.Time
	var ev iris.Evidence
	for end := time.Now().Add(4 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(end) {
			st, _ := collectStatus(ctx, app.Store)
			b, _ := json.MarshalIndent(st, "", " ")
			t.Fatalf("no evidence after 4 minutes (hit at %v)\nstatus: %s", hitAt, b)
		}
		if hitAt.IsZero() {
			hitAt = firstHitAt(ctx, app, x.ID)
			continue
		}
		list, err := admin.ListEvidences(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 {
			ev = list[0]
			break
		}
	}
	lag := time.Since(hitAt)
	t.Logf("IRIS evidence %d %.1f s after the hit was read: %s, %d bytes, SHA-256 %s", ev.ID, lag.Seconds(), ev.Filename, ev.Size, ev.Hash)
	if ev.Hash != e.sum || ev.Size != e.size || ev.Filename != "payload.exe" {
		t.Fatalf("evidence %+v, want payload.exe, %d bytes, SHA-256 %s", ev, e.size, e.sum)
	}
	for _, want := range []string{e.windows, "F.", "/app/index.html?org_id=root#/collected/" + e.windows + "/F."} {
		if !strings.Contains(ev.Description, want) {
			t.Errorf("evidence description lacks %q:\n%s", want, ev.Description)
		}
	}
	if lag > 30*time.Second {
		t.Errorf("the evidence reached IRIS %s after the hit, want within 30 s", lag)
	}
	ds, err := admin.ListDatastore(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Files) != 1 || ds.Files[0].SHA256 != e.sum || ds.Files[0].Size != e.size || ds.Files[0].Password != "infected" ||
		ds.Files[0].IsIOC || ds.Files[0].Evidence || !strings.Contains(ev.Description, "A copy is in IRIS's datastore") {
		t.Fatalf("datastore %+v; evidence description:\n%s", ds, ev.Description)
	}
	if id, ok := ds.Folder("velohunt"); !ok || ds.Files[0].Folder != id {
		t.Fatalf("datastore %+v, want the copy in the velohunt folder", ds)
	}
	t.Logf("IRIS datastore copy: file #%d %s", ds.Files[0].ID, ds.Files[0].Name)
	waitDrained(t, app, time.Minute)
	events, _ := admin.ListEvents(ctx, cid)
	collected := 0
	for _, x := range events {
		if strings.Contains(x.Tags, "collected") {
			collected++
		}
	}
	if collected != 1 {
		t.Fatalf("%d collected events, want 1", collected)
	}
	// The tab follows (a tab write rendered before the collection ended is
	// written again).
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		tab, _ := admin.IOCAttributes(ctx, cid, x.ID, cfg.Writeback.TabName)
		if strings.Contains(tab["Hits"], "collected: SHA-256 "+e.sum) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("tab hits after 30 s:\n%s", tab["Hits"])
		}
	}
	cols, _ := app.Store.Collections(ctx, 10)
	if len(cols) != 1 || cols[0].FilePath != e.path {
		t.Fatalf("collections %+v, want one of %s", cols, e.path)
	}
}

// TestRealCollectKill9: the velohunt binary, against the real IRIS and
// the real Velociraptor, is killed with SIGKILL at random moments from
// the hit until the evidence is in IRIS, and restarted each time. In the
// end the case holds exactly one evidence and one "collected" event, and
// the client exactly one collection flow of velohunt's.
func TestRealCollectKill9(t *testing.T) {
	env := needRealIRIS(t)
	e := needRealCollect(t)
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildVelohunt(t, dir)
	admin, _ := iris.New(iris.Options{URL: env.url, APIKey: env.adminKey, InsecureSkipVerify: env.insecure})
	run := time.Now().UnixNano()
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt collect kill -9 %d", run), "velohunt test: kill -9 during a collection", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.CloseCase(context.Background(), cid)
	if _, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: e.sum, TypeID: iocTypeID(t, admin, "sha256"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "v.db")
	cfgPath := filepath.Join(dir, "velohunt.yaml")
	cfg := fmt.Sprintf(`database: %s
listen: 127.0.0.1:0
log: {level: debug}
iris: {url: %q, api_key: %q, admin_api_key: %q, insecure_skip_verify: %t, setup_on_start: true}
webhook: {secret: "kill9-collect-webhook-secret-0123456789"}
velociraptor: {servers: [{name: real, api_config: %q, gui_url: "https://127.0.0.1:8889"}]}
hunting:
  batch_window: 300ms
  kinds:
    hash: {parameters: {TargetGlobs: %q}, scope: {os: windows}, collect: {file: true}}
intake: {reconcile: "* * * * *"}
watcher: {schedule: "@every 1s"}
writeback: {settle: 2s, tab_min_interval: 0s}
`, db, env.url, env.key, env.adminKey, env.insecure, e.apiCfg, e.globs)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := serveStarter(t, bin, cfgPath, filepath.Join(dir, "serve.log"))
	fail := func(format string, args ...any) {
		t.Helper()
		log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Fatalf(format+"\n%s", append(args, tail(log, 4000))...)
	}
	collection := func() store.Collection {
		ro, err := store.OpenWith(ctx, db, store.Options{ReadOnly: true, AnySchema: true})
		if err != nil {
			return store.Collection{}
		}
		defer ro.Close()
		cols, _ := ro.Collections(ctx, 1)
		if len(cols) == 0 {
			return store.Collection{}
		}
		return cols[0]
	}
	evidences := func() []iris.Evidence {
		list, err := admin.ListEvidences(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	// Kill it first while the collection is being started or running,
	// then while its records are written, then at random moments.
	rnd := rand.New(rand.NewPCG(uint64(run), 11))
	moments := []string{"launched", "collected", "random", "random", "random"}
	deadline := time.Now().Add(6 * time.Minute)
	for _, m := range moments {
		cmd := start()
		for time.Now().Before(deadline) {
			c := collection()
			if (m == "launched" && c.State != "") || (m == "collected" && (c.State == store.CollectDone || c.State == store.CollectFailed)) ||
				(m == "random" && c.State != "") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if m == "random" {
			time.Sleep(time.Duration(rnd.IntN(4000)) * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if time.Now().After(deadline) {
			fail("the collection did not reach %q in time", m)
		}
		c := collection()
		t.Logf("killed with SIGKILL (%s): collection %s flow %q, %d evidence(s) in IRIS", m, c.State, c.FlowID, len(evidences()))
	}
	cmd := start()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for len(evidences()) == 0 || collection().State != store.CollectDone {
		if time.Now().After(deadline) {
			fail("no evidence after the restarts: collection %+v", collection())
		}
		time.Sleep(time.Second)
	}
	time.Sleep(8 * time.Second) // a duplicate would show up now
	list := evidences()
	if len(list) != 1 || list[0].Hash != e.sum {
		fail("evidences %+v, want exactly one with SHA-256 %s", list, e.sum)
	}
	events, _ := admin.ListEvents(ctx, cid)
	collected := 0
	for _, x := range events {
		if strings.Contains(x.Tags, "collected") {
			collected++
		}
	}
	if collected != 1 {
		fail("%d collected events, want 1", collected)
	}
	// One flow of velohunt's artifact on the client with this marker.
	c := collection()
	out, err := exec.Command(e.bin, "--api_config", e.apiCfg, "query", "--format", "json",
		fmt.Sprintf("SELECT session_id FROM flows(client_id=%q) WHERE %q IN request.artifacts AND format(format='%%v', args=[request.specs]) =~ %q",
			e.windows, "Custom.Velohunt.Collect", c.Marker)).CombinedOutput()
	if err != nil {
		t.Fatalf("list flows: %v\n%s", err, out)
	}
	var flows []map[string]any
	json.Unmarshal(out, &flows)
	if len(flows) != 1 {
		fail("%d collection flows with marker %s on %s, want 1: %s", len(flows), c.Marker, e.windows, out)
	}
}

func iocTypeID(t testing.TB, c *iris.Client, name string) int64 {
	t.Helper()
	types, err := c.IOCTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ty := range types {
		if ty.Name == name {
			return ty.ID
		}
	}
	t.Fatalf("IRIS has no IOC type %q", name)
	return 0
}

// BenchmarkRealHitToEvidence measures, on the real IRIS and the real
// Velociraptor, the time from a SHA-256 hit on the Windows-impersonating
// client (read by the watcher) to its IRIS evidence, and from the IOC's
// creation in IRIS to that evidence: each iteration plants a new file and
// adds its hash to the case.
//
//	go test -run XXX -bench RealHitToEvidence -benchtime 5x ./cmd/velohunt
func BenchmarkRealHitToEvidence(b *testing.B) {
	b.Run("bytes-in-velociraptor", func(b *testing.B) { benchHitToEvidence(b, 0) })
	b.Run("copy-in-iris-datastore", func(b *testing.B) { benchHitToEvidence(b, 1<<20) })
}

// benchHitToEvidence runs BenchmarkRealHitToEvidence with
// collect.iris_datastore_max_bytes set to copy.
func benchHitToEvidence(b *testing.B, copy int64) {
	ctx := context.Background()
	e, _, admin, app, cid := startRealCollect(b, "velohunt collect bench", copy)
	sha := iocTypeID(b, admin, "sha256")
	var hitToEv, iocToEv []time.Duration
	b.ResetTimer()
	for i := range b.N {
		e.plant(b, fmt.Sprintf("payload-%d.exe", i))
		added := time.Now()
		x, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: e.sum, TypeID: sha, TLPID: 2})
		if err != nil {
			b.Fatal(err)
		}
		app.Intake.RequestFullSync()
		var hit time.Time
		for end := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(end) {
				b.Fatalf("no evidence for %s after 3 minutes", e.sum)
			}
			if hit.IsZero() {
				hit = firstHitAt(ctx, app, x.ID)
				continue
			}
			list, _ := admin.ListEvidences(ctx, cid)
			if slices.ContainsFunc(list, func(ev iris.Evidence) bool { return ev.Hash == e.sum }) {
				hitToEv, iocToEv = append(hitToEv, time.Since(hit)), append(iocToEv, time.Since(added))
				break
			}
		}
	}
	b.StopTimer()
	mean := func(ds []time.Duration) float64 {
		var s time.Duration
		for _, d := range ds {
			s += d
		}
		return s.Seconds() / float64(len(ds))
	}
	b.ReportMetric(mean(hitToEv), "s-hit-to-evidence")
	b.ReportMetric(slices.Max(hitToEv).Seconds(), "s-hit-to-evidence-max")
	b.ReportMetric(mean(iocToEv), "s-ioc-to-evidence")
	b.Logf("hit to evidence: %v; IOC added to evidence: %v", hitToEv, iocToEv)
}
