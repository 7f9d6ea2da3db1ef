package main

// `velohunt plan` and `velohunt hunts stop` against the real peers:
//
//	TestRealPlanTouchesNothing  a real IRIS (VELOHUNT_TEST_IRIS_*) and a real
//	                            Velociraptor (VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG
//	                            and _BINARY, to list its hunts and artifacts)
//	TestRealHuntsStop           a real Velociraptor, the simulated IRIS
//
// Run them with the variables of README's "real peers".

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// recordingProxy forwards requests to target and records each one's
// method and path.
func recordingProxy(t *testing.T, target string) (*httptest.Server, func() []string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		r.Host = u.Host
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// vrQuery runs a VQL query with the velociraptor binary through the tests'
// API config and returns its JSON lines.
func vrQuery(t *testing.T, query string) string {
	t.Helper()
	out, err := exec.Command(os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY"), "--api_config", os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"),
		"query", "--format", "jsonl", query).Output()
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return string(out)
}

// vrSnapshot is every hunt of the real server with its state, and
// velohunt's artifacts as stored, one per line, sorted (hunts() lists in
// no fixed order).
func vrSnapshot(t *testing.T) string {
	t.Helper()
	lines := strings.Split(vrQuery(t, "SELECT hunt_id, state, stats.total_clients_scheduled AS Scheduled FROM hunts()")+
		vrQuery(t, "SELECT name, raw FROM artifact_definitions(names=['Custom.Velohunt.Hash','Custom.Velohunt.Network','Custom.Velohunt.Domain','Custom.Velohunt.File'])"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for l := range ina {
		if !inb[l] {
			out = append(out, "- "+clip(l, 300))
		}
	}
	for l := range inb {
		if !ina[l] {
			out = append(out, "+ "+clip(l, 300))
		}
	}
	return strings.Join(out, "\n")
}

func TestRealPlanTouchesNothing(t *testing.T) {
	vrAPI, bin := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY")
	if vrAPI == "" || bin == "" {
		t.Skip("needs a real Velociraptor: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG and VELOHUNT_TEST_VELOCIRAPTOR_BINARY (and the IRIS variables)")
	}
	env := needRealIRIS(t)
	ctx := context.Background()
	admin, _ := iris.New(iris.Options{URL: env.url, APIKey: env.adminKey, InsecureSkipVerify: env.insecure, Timeout: 30 * time.Second})
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt plan %d", time.Now().Unix()), "velohunt plan test", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.CloseCase(context.Background(), cid)
	types, _ := admin.IOCTypes(ctx)
	typeID := func(name string) int64 {
		for _, ty := range types {
			if ty.Name == name {
				return ty.ID
			}
		}
		t.Fatalf("IRIS has no IOC type %s", name)
		return 0
	}
	b := make([]byte, 16)
	rand.Read(b)
	md5 := hex.EncodeToString(b)
	for _, x := range []iris.NewIOC{{Value: md5, TypeID: typeID("md5"), TLPID: 2},
		{Value: "plan-not-a-hash-" + md5[:6], TypeID: typeID("md5"), TLPID: 2},
		{Value: "plan-" + md5[:8] + ".velohunt-test.example", TypeID: typeID("domain"), TLPID: 2}} {
		if _, err := admin.AddIOC(ctx, cid, x); err != nil {
			t.Fatal(err)
		}
	}

	proxy, seen := recordingProxy(t, env.url)
	dir := t.TempDir()
	cfg := realIRISConfig(dir, proxy.URL, env.key, "", false, vrAPI)
	cfg.Velociraptor.Servers[0].Name = "real"
	cfgPath := writeConfig(t, cfg, cfg.Database)
	before := vrSnapshot(t)

	code, out := runCmd("plan", "-config", cfgPath)
	t.Logf("velohunt plan, no database yet:\n%s", out)
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, want := range []string{"server real, org root:", "Velociraptor: answered, version ", "#" + strconv.FormatInt(cid, 10),
		"plan-not-a-hash-" + md5[:6], "none yet; this is a first start"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if _, err := os.Stat(cfg.Database); !os.IsNotExist(err) {
		t.Fatalf("plan created the database: %v", err)
	}

	// With a database (empty), opened read-only: not a byte changes.
	db, err := store.Open(ctx, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	fileBefore, _ := os.ReadFile(cfg.Database)
	statBefore, _ := os.Stat(cfg.Database)
	code, out = runCmd("plan", "-config", cfgPath, "-json")
	if code != 0 || !strings.Contains(out, `"exists": true`) {
		t.Fatalf("plan with a database: code %d\n%s", code, out)
	}
	fileAfter, _ := os.ReadFile(cfg.Database)
	statAfter, _ := os.Stat(cfg.Database)
	if !bytes.Equal(fileBefore, fileAfter) || !statBefore.ModTime().Equal(statAfter.ModTime()) {
		t.Fatal("plan changed the database file")
	}

	var writes []string
	for _, r := range seen() {
		if !strings.HasPrefix(r, "GET ") {
			writes = append(writes, r)
		}
	}
	if len(writes) > 0 || len(seen()) == 0 {
		t.Fatalf("IRIS requests that are not reads: %q (of %d)", writes, len(seen()))
	}
	if after := vrSnapshot(t); after != before {
		t.Fatalf("Velociraptor's hunts or artifacts changed during plan:\n%s", lineDiff(before, after))
	}
	t.Logf("IRIS received %d requests, all GET; Velociraptor's %d hunt(s) and velohunt's artifacts unchanged",
		len(seen()), strings.Count(before, "hunt_id"))
}

func TestRealHuntsStop(t *testing.T) {
	vrAPI := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	if vrAPI == "" {
		t.Skip("needs a real Velociraptor: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	}
	ctx := context.Background()
	dir := t.TempDir()
	// A file-path hunt under an empty folder: the clients walk nothing.
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	glob := `["` + filepath.ToSlash(empty) + `/**"]`
	d, err := startDemoWith(ctx, dir, io.Discard, nil, func(c *config.Config, _ *velotest.Server) {
		c.Velociraptor.Servers = []config.Server{{Name: "real", APIConfig: vrAPI}}
		c.Velociraptor.Default = config.Target{Server: "real"}
		c.Hunting.ClientTimeout = config.Duration(time.Minute)
		k := c.Hunting.Kinds["file"]
		k.Parameters = map[string]string{"TargetGlobs": glob}
		c.Hunting.Kinds["file"] = k
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer stopRealHunts(d.App)
	vr := d.App.VR["real"]

	// A hunt velohunt did not start, paused (it reaches no endpoint).
	foreign, err := vr.CreateHunt(ctx, velociraptor.HuntRequest{Artifact: "Generic.Client.Info", Description: "not velohunt's (velohunt test)",
		Tags: []string{"velohunt-test-foreign"}, Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer vr.StopHunt(context.Background(), "", foreign)
	state := func(id string) string {
		info, err := vr.HuntInfo(ctx, "", id)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}

	cid, _ := d.Admin.AddCase(ctx, "real hunts stop", "test", 1, "")
	if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: filepath.ToSlash(empty) + "/velohunt-absent.exe",
		TypeID: iristest.TypeID("file-path"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	var h store.Hunt
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		hs, _ := d.App.Store.OpenHunts(ctx)
		if len(hs) == 1 && hs[0].State == store.HuntRunning {
			h = hs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running hunt: %+v", hs)
		}
	}
	if s := state(h.VRHuntID); s != "RUNNING" {
		t.Fatalf("hunt %s is %s in Velociraptor", h.VRHuntID, s)
	}
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)
	c := strconv.FormatInt(cid, 10)

	code, out := runCmd("hunts", "stop", "-config", cfgPath, "-case", c)
	t.Logf("velohunt hunts stop -case %s (dry run):\n%s", c, out)
	if code != 0 || !strings.Contains(out, "dry run: nothing was stopped") || state(h.VRHuntID) != "RUNNING" {
		t.Fatalf("dry run: code %d, hunt %s", code, state(h.VRHuntID))
	}
	code, out = runCmd("hunts", "stop", "-config", cfgPath, "-case", c, "-yes")
	t.Logf("velohunt hunts stop -case %s -yes:\n%s", c, out)
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	if s := state(h.VRHuntID); s != "STOPPED" {
		t.Fatalf("velohunt's hunt %s is %s in Velociraptor, want STOPPED", h.VRHuntID, s)
	}
	if row, _ := d.App.Store.FindHunt(ctx, h.ID); row.State != store.HuntStopped || row.EndReason != store.ReasonStoppedByOperator {
		t.Fatalf("row %+v", row)
	}
	if s := state(foreign); s != "PAUSED" {
		t.Fatalf("the foreign hunt %s is %s, want PAUSED", foreign, s)
	}

	// A database row changed to name the foreign hunt: refused.
	tdb := filepath.Join(t.TempDir(), "tampered.db")
	st, err := store.Open(ctx, tdb)
	if err != nil {
		t.Fatal(err)
	}
	st.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "real"})
	st.SyncCaseIOCs(ctx, 1, []store.IOCInput{{IOC: ioc.IOC{ID: 1, TypeName: "filename", Value: "x.exe"},
		Target: ioc.Target{Kind: ioc.KindFile, Value: "x.exe"}}}, "test", true)
	row, err := st.PlanHunt(ctx, store.Group{Server: "real", Kind: ioc.KindFile}, 10, "Custom.Velohunt.File", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st.SetHuntCreated(ctx, row.ID, foreign)
	st.SetHuntRunning(ctx, row.ID)
	st.Close()
	code, out = runCmd("hunts", "stop", "-config", writeConfig(t, d.App.Config, tdb), "-all", "-yes")
	t.Logf("velohunt hunts stop -all -yes on a tampered database:\n%s", out)
	if code == 0 || !strings.Contains(out, "does not carry velohunt's marker") {
		t.Fatalf("tampered row: code %d", code)
	}
	if s := state(foreign); s != "PAUSED" {
		t.Fatalf("the foreign hunt %s is %s after the tampered row, want PAUSED", foreign, s)
	}
}
