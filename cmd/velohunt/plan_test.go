package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// writeFullConfig writes a configuration file naming the IRIS at irisURL
// (service user key velohunt-key), the Velociraptor api config for servers
// main and other, and the database; extra is appended YAML.
func writeFullConfig(t *testing.T, irisURL, apiPath, db, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`database: %q
listen: "127.0.0.1:0"
iris:
  url: %q
  api_key: velohunt-key
webhook:
  secret: "0123456789abcdef0123"
velociraptor:
  servers:
    - name: main
      api_config: %q
      limits: {max_iocs_per_hunt: 2, max_active_hunts: 2}
    - name: other
      api_config: %q
  default: {server: main}
%s`, db, irisURL, apiPath, apiPath, extra)
	path := filepath.Join(t.TempDir(), "velohunt.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writes returns the requests IRIS received that are not reads.
func writes(srv *iristest.Server) map[string]int {
	out := map[string]int{}
	for k, v := range srv.Requests() {
		if !strings.HasPrefix(k, "GET ") {
			out[k] = v
		}
	}
	return out
}

// vrChanges returns the queries Velociraptor received that are not reads
// (hunts created, started or stopped; artifacts uploaded).
func vrChanges(srv *velotest.Server) []string {
	var out []string
	for _, r := range srv.Received() {
		for _, w := range []string{"hunt(artifacts=", "hunt_update(", "artifact_set("} {
			if strings.Contains(r.VQL, w) {
				out = append(out, r.VQL)
			}
		}
	}
	return out
}

// dirState lists a directory's files with their sizes and times, but
// SQLite's -shm file (its shared-memory lock index) and an empty -wal:
// SQLite makes both beside a database in WAL mode that a reader opens
// while no serve runs (`status` does the same); neither holds data.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range es {
		fi, _ := e.Info()
		if strings.HasSuffix(e.Name(), "-shm") || strings.HasSuffix(e.Name(), "-wal") && fi.Size() == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s %d %s\n", e.Name(), fi.Size(), fi.ModTime())
	}
	return b.String()
}

// TestPlanFirstStart: before the first start (no database), plan says
// what serve would hunt per server and org and kind, in hunts of the
// server's size, what its limits hold back, what is refused, and what a
// re-hunt rule would do; it creates no database, writes nothing to IRIS
// and creates no hunt.
func TestPlanFirstStart(t *testing.T) {
	ctx := context.Background()
	irisSrv := iristest.Start()
	defer irisSrv.Close()
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	dir := t.TempDir()
	apiPath, err := vr.WriteAPIConfig(t.TempDir(), "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := iris.New(iris.Options{URL: irisSrv.URL(), APIKey: "admin-key"})
	a, _ := admin.AddCase(ctx, "case a", "plan test", 1, "")
	b, _ := admin.AddCase(ctx, "case b", "plan test", 1, "")
	add := func(cid int64, typ, value string) {
		if _, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: value, TypeID: iristest.TypeID(typ), TLPID: 2}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		add(a, "md5", fmt.Sprintf("%032x", i+1))
	}
	add(a, "ip-dst", "203.0.113.1")
	add(a, "ip-dst", "203.0.113.2")
	add(a, "md5", "not-a-hash")
	add(a, "email-src", "x@example.org")
	add(b, "domain", "evil.example")
	db := filepath.Join(dir, "velohunt.db")
	cfgPath := writeFullConfig(t, irisSrv.URL(), apiPath, db, fmt.Sprintf(`  routes:
    - {case_id: %d, server: other, org: O123}
rehunt:
  rules:
    - {name: nightly, schedule: "0 2 * * *", kinds: [hash]}
`, b))
	irisBefore, dirBefore := writes(irisSrv), dirState(t, dir)

	code, out := runCmd("plan", "-config", cfgPath)
	if code != 0 {
		t.Fatalf("plan: code %d\n%s", code, out)
	}
	for _, want := range []string{
		"database " + db + ": none yet; this is a first start",
		"server main, org root: 2 case(s)",
		"server other, org O123: 1 case(s): #" + fmt.Sprint(b),
		"limits: up to 2 IOC(s) per hunt, at most 2 active hunt(s) (0 now)",
		"held back: server main has 2 active hunt(s), the limit is 2",
		"md5 must be 32 hex digits",
		`"email-src" is not huntable`,
		"nightly",
		"Nothing was changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("output:\n%s", out)
	}

	var stdout bytes.Buffer
	if code := run(ctx, []string{"plan", "-config", cfgPath, "-json"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("plan -json: code %d", code)
	}
	var p Plan
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Targets) != 2 || p.Targets[0].Server != "main" || p.Targets[1].Server != "other" {
		t.Fatalf("targets %+v", p.Targets)
	}
	main, other := p.Targets[0], p.Targets[1]
	kinds := map[string]PlanKind{}
	for _, k := range main.Kinds {
		kinds[k.Kind] = k
	}
	// 3 hashes and 2 IPs need 3 hunts of 2; 2 may be active at once.
	hash, ip := kinds["hash"], kinds["ip"]
	if main.Hunts != 2 || hash.IOCs+ip.IOCs+hash.Held+ip.Held != 5 || hash.Held+ip.Held == 0 {
		t.Fatalf("main: %+v", main)
	}
	for _, k := range main.Kinds {
		for _, n := range k.HuntSizes {
			if n > 2 {
				t.Fatalf("a hunt of %d IOCs on main, whose limit is 2: %+v", n, k)
			}
		}
	}
	if other.Hunts != 1 || len(other.Kinds) != 1 || other.Kinds[0].Kind != "domain" || other.Kinds[0].IOCs != 1 ||
		other.Kinds[0].Artifact != "Custom.Velohunt.Domain" {
		t.Fatalf("other: %+v", other)
	}
	if len(p.Refused) != 2 || p.OpenCases != 3 || p.NewHunts != 3 {
		t.Fatalf("plan %+v", p)
	}
	if len(p.Rules) != 1 || p.Rules[0].Name != "nightly" || p.Rules[0].StillHunting == 0 {
		t.Fatalf("rules %+v", p.Rules)
	}
	if !strings.HasPrefix(main.Velociraptor, "answered, version ") {
		t.Fatalf("velociraptor: %q", main.Velociraptor)
	}

	if got := writes(irisSrv); fmt.Sprint(got) != fmt.Sprint(irisBefore) {
		t.Fatalf("IRIS writes during plan: %v, before %v", got, irisBefore)
	}
	if ch := vrChanges(vr); len(ch) != 0 || len(vr.Hunts()) != 0 {
		t.Fatalf("Velociraptor changes: %q, %d hunts", ch, len(vr.Hunts()))
	}
	if after := dirState(t, dir); after != dirBefore {
		t.Fatalf("the database directory changed:\nbefore:\n%s\nafter:\n%s", dirBefore, after)
	}

	t.Run("VelociraptorDown", func(t *testing.T) {
		vr.SetDown(true)
		defer vr.SetDown(false)
		code, out := runCmd("plan", "-config", cfgPath)
		if code != 0 || !strings.Contains(out, "Velociraptor: not reached: ") || !strings.Contains(out, "in all: 3 new hunt(s)") {
			t.Fatalf("code %d\n%s", code, out)
		}
	})
}

// TestPlanWithDatabase: beside a running serve, and on the database serve
// left, plan counts what that database already hunted, plans only what is
// new, and leaves the database file byte for byte as it was.
func TestPlanWithDatabase(t *testing.T) {
	ctx := context.Background()
	d := playedDemo(t)
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)
	code, out := runCmd("plan", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "serve: running (pid ") || !strings.Contains(out, "in all: no new hunt") {
		t.Fatalf("plan beside serve: code %d\n%s", code, out)
	}
	db := d.App.Config.Database
	d.App.Close(ctx)
	d.App = nil
	hunts := len(d.VR.Hunts())

	// A new IOC reaches IRIS while serve is down.
	cid := int64(0)
	cases, _ := d.Admin.ListCases(ctx)
	for _, c := range cases {
		if c.ID > cid {
			cid = c.ID
		}
	}
	d.IRIS.AddIOCDirect(cid, "sha256", strings.Repeat("ab", 32))
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	dirBefore, irisBefore := dirState(t, filepath.Dir(db)), writes(d.IRIS)

	var stdout bytes.Buffer
	if code := run(ctx, []string{"plan", "-config", cfgPath, "-json"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("plan: code %d", code)
	}
	var p Plan
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Database.Exists || p.Database.OpenHunts != 4 || p.NewHunts != 1 || p.NewIOCs != 1 {
		t.Fatalf("plan %+v", p)
	}
	var hash PlanKind
	for _, k := range p.Targets[0].Kinds {
		if k.Kind == "hash" {
			hash = k
		}
	}
	if hash.IOCs != 1 || hash.Hunting != 3 {
		t.Fatalf("hash kind %+v: want the new sha256 to hunt and the demo's 3 hashes already hunting", hash)
	}

	after, _ := os.ReadFile(db)
	if !bytes.Equal(before, after) {
		t.Fatal("plan changed the database file")
	}
	if got := dirState(t, filepath.Dir(db)); got != dirBefore {
		t.Fatalf("the database directory changed:\nbefore:\n%s\nafter:\n%s", dirBefore, got)
	}
	if got := writes(d.IRIS); fmt.Sprint(got) != fmt.Sprint(irisBefore) {
		t.Fatalf("IRIS writes during plan: %v, before %v", got, irisBefore)
	}
	if len(d.VR.Hunts()) != hunts {
		t.Fatalf("%d hunts in Velociraptor after plan, want %d", len(d.VR.Hunts()), hunts)
	}
	d.Close()
}
