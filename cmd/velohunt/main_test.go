package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testlog"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

func TestDemo(t *testing.T) {
	ctx := context.Background()
	d, err := startDemo(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out bytes.Buffer
	if err := d.Play(ctx, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	hunts := d.VR.Hunts()
	if got, want := len(hunts), 4; got != want {
		t.Fatalf("%d hunts, want one per kind (%d)\n%s", got, want, out.String())
	}
	for _, h := range hunts {
		if h.State != "RUNNING" || len(h.Scheduled) != 3 {
			t.Fatalf("hunt %s: state %s, %d clients", h.ID, h.State, len(h.Scheduled))
		}
	}
	cid := int64(101)
	if got := len(d.IRIS.Assets(cid)); got != 2 {
		t.Fatalf("%d assets, want the 2 hosts with hits\n%s", got, out.String())
	}
	if got := len(d.IRIS.Events(cid)); got != 13 {
		t.Fatalf("%d events, want 13 (one per hit, one per hash hit's collection)\n%s", got, out.String())
	}
	if ev, _ := d.Admin.ListEvidences(ctx, cid); len(ev) != 2 {
		t.Fatalf("%d evidences, want the 2 files hash hits matched\n%s", len(ev), out.String())
	}
	for _, want := range []string{"refused: md5 must be 32 hex digits", `"email-src" is not huntable`,
		"[Status]\n    HIT: found on 1 host(s), 2 hit(s)", "Status on the tab of refused IOC"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"nope"}, &out, &errOut); code != 2 {
		t.Fatalf("code=%d", code)
	}
	if code := run(context.Background(), []string{"version"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "velohunt") {
		t.Fatalf("version: code=%d out=%q", code, out.String())
	}
	if code := run(context.Background(), []string{"serve"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "-config is required") {
		t.Fatalf("serve without config: code=%d err=%q", code, errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help: code=%d", code)
	}
	for _, cmd := range []string{"velohunt plan ", "velohunt hunts list ", "velohunt hunts stop "} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("usage lacks %q", cmd)
		}
	}
}

// buildVelohunt builds the velohunt binary into dir.
func buildVelohunt(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "velohunt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveStarter returns a function that starts `velohunt serve` with the
// configuration, its output appended to logPath.
func serveStarter(t *testing.T, bin, cfgPath, logPath string) func() *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	return func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "-config", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
}

// TestKill9 runs the real binary, kills it with SIGKILL at random moments
// while IOCs arrive, restarts it, and checks that every IOC was hunted
// exactly once and that no hunt was created twice.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildVelohunt(t, dir)
	irisSrv := iristest.Start()
	defer irisSrv.Close()
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	// Every third IOC is found on the endpoint, so hits are written back
	// to IRIS while the service is being killed.
	var conns []velotest.Conn
	for round := 0; round < 5; round++ {
		for k := 1; k <= 12; k++ {
			n := round*12 + k
			if n%3 == 0 {
				conns = append(conns, velotest.Conn{Pid: n, Process: "beacon", LocalIP: "10.99.0.1", LocalPort: 40000 + n,
					RemoteIP: fmt.Sprintf("10.%d.%d.%d", round, n/200, n%200+1), RemotePort: 443, Status: "ESTABLISHED"})
			}
		}
	}
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.1", Hostname: "h1", OS: "linux", Online: true, Conns: conns})
	apiPath, err := vr.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	const secret = "kill9-webhook-secret-0123456789"
	cfgPath := filepath.Join(dir, "velohunt.yaml")
	cfg := fmt.Sprintf(`database: %s
listen: %s
log: {level: debug}
iris: {url: %q, api_key: velohunt-key, admin_api_key: admin-key, setup_on_start: true}
webhook: {secret: %q}
velociraptor: {servers: [{name: main, api_config: %q}]}
hunting: {batch_window: 300ms, max_iocs_per_hunt: 7}
intake: {reconcile: "* * * * *", sync_delay: 50ms}
watcher: {schedule: "@every 1s"}
writeback: {settle: 2s}
`, filepath.Join(dir, "v.db"), addr, irisSrv.URL(), secret, apiPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	irisSrv.SetWebhook("http://"+addr+"/iris/webhook", map[string]string{"Authorization": "Bearer " + secret})
	admin, _ := iris.New(iris.Options{URL: irisSrv.URL(), APIKey: "admin-key"})
	cid, err := admin.AddCase(ctx, "kill -9", "crash test", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	start := serveStarter(t, bin, cfgPath, filepath.Join(dir, "serve.log"))
	rnd := rand.New(rand.NewPCG(7, 9))
	n := 0
	for round := range 5 {
		cmd := start()
		for range 12 {
			n++
			v := fmt.Sprintf("10.%d.%d.%d", round, n/200, n%200+1)
			if _, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: v, TypeID: iristest.TypeID("ip-dst"), TLPID: 2}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rnd.IntN(40)) * time.Millisecond)
		}
		time.Sleep(time.Duration(rnd.IntN(500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cmd := start()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		counts, total, err := huntedValues(vr)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) == n {
			for v, c := range counts {
				if c != 1 {
					t.Fatalf("IOC %s hunted %d times", v, c)
				}
			}
			if total != n {
				t.Fatalf("%d values in hunts for %d IOCs", total, n)
			}
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			// VELOHUNT_KILL9_KEEP names a folder that keeps the database,
			// the log and Velociraptor's hunts of a failed run.
			if d := os.Getenv("VELOHUNT_KILL9_KEEP"); d != "" {
				os.MkdirAll(d, 0o700)
				os.WriteFile(filepath.Join(d, "serve.log"), log, 0o600)
				for _, f := range []string{"v.db", "v.db-wal", "v.db-shm"} {
					b, _ := os.ReadFile(filepath.Join(dir, f))
					os.WriteFile(filepath.Join(d, f), b, 0o600)
				}
				var hs []string
				for _, h := range vr.Hunts() {
					hs = append(hs, fmt.Sprintf("%s %s %v %s", h.ID, h.State, h.Tags, h.Params["IOCs"]))
				}
				os.WriteFile(filepath.Join(d, "hunts.txt"), []byte(strings.Join(hs, "\n")), 0o600)
			}
			t.Fatalf("%d of %d IOCs hunted after restarts\n%s", len(counts), n, tail(log, 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	markers := map[string]bool{}
	for _, h := range vr.Hunts() {
		if h.State != "RUNNING" {
			t.Errorf("hunt %s is %s", h.ID, h.State)
		}
		for _, tag := range h.Tags {
			if strings.HasPrefix(tag, "velohunt-") {
				if markers[tag] {
					t.Fatalf("two Velociraptor hunts carry marker %s", tag)
				}
				markers[tag] = true
			}
		}
	}
	// Every hit reached IRIS exactly once: one event per hit, one asset.
	wantEvents := len(conns)
	deadline = time.Now().Add(30 * time.Second)
	for len(irisSrv.Events(cid)) < wantEvents && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // let a duplicate show up, if one were coming
	events := irisSrv.Events(cid)
	if len(events) != wantEvents {
		log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Fatalf("%d events in IRIS, want %d (one per hit)\n%s", len(events), wantEvents, tail(log, 3000))
	}
	seenTags := map[string]bool{}
	for _, e := range events {
		if seenTags[e.Tags] {
			t.Fatalf("two events carry tags %q", e.Tags)
		}
		seenTags[e.Tags] = true
	}
	if assets := irisSrv.Assets(cid); len(assets) != 1 || len(assets[0].IOCLinks) != wantEvents {
		t.Fatalf("assets %+v, want one asset linked to %d IOCs", assets, wantEvents)
	}
	// SIGTERM: the service stops by itself, cleanly, within its deadline.
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	stopped = true
	if d := time.Since(began); d > 20*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	// The store agrees: every IOC hunting (those found somewhere counted
	// as hit), no hunt left unlaunched.
	db, err := store.Open(ctx, filepath.Join(dir, "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, _ := db.Stats(ctx)
	if st.IOCs[store.StateHunting]+st.IOCs[store.StateHit] != n || st.Hunts[store.HuntRunning] != len(vr.Hunts()) {
		t.Fatalf("store stats %+v, want %d hunting or hit IOCs and %d running hunts", st, n, len(vr.Hunts()))
	}
}

func huntedValues(vr *velotest.Server) (map[string]int, int, error) {
	counts := map[string]int{}
	total := 0
	for _, h := range vr.Hunts() {
		if h.State != "RUNNING" {
			continue
		}
		var vals []string
		if err := json.Unmarshal([]byte(h.Params["IOCs"]), &vals); err != nil {
			return nil, 0, err
		}
		for _, v := range vals {
			counts[v]++
			total++
		}
	}
	return counts, total, nil
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	d, err := startDemo(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	status := func(list []finding, what string) string {
		for _, f := range list {
			if f.What == what {
				return f.Status
			}
		}
		return "absent"
	}
	t.Run("OK", func(t *testing.T) {
		list, err := runChecks(ctx, d.App.Config)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if failed := printFindings(&b, list); failed != 0 {
			t.Fatalf("%d failures:\n%s", failed, b.String())
		}
		for _, what := range []string{"connect and authenticate", "IOC tab", "roles", "START_HUNT", "ARTIFACT_WRITER", "READ_RESULTS"} {
			if got := status(list, what); got != checkOK && what != "connect and authenticate" {
				t.Fatalf("%s: %s\n%s", what, got, b.String())
			}
		}
	})
	t.Run("UnknownEvidenceType", func(t *testing.T) {
		cfg := d.App.Config
		cfg.Collect.EvidenceType = "No such type"
		list, err := runChecks(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range list {
			if f.What == "write-back names" && (f.Status != checkFail || !strings.Contains(f.Detail, "collect.evidence_type")) {
				t.Fatalf("%+v", f)
			}
		}
	})
	t.Run("OldWebhooksModule", func(t *testing.T) {
		if got := status(runChecksT(t, d), "webhooks module"); got != "absent" {
			t.Fatalf("IRIS 2.4.20 (module 1.0.8): %s", got)
		}
		d.IRIS.SetVersion("v2.4.14") // bundles iris-webhooks-module 1.0.7
		defer d.IRIS.SetVersion("v2.4.20")
		list := runChecksT(t, d)
		if got := status(list, "webhooks module"); got != checkWarn {
			t.Fatalf("IRIS 2.4.14: %s", got)
		}
		for _, f := range list {
			if f.What == "webhooks module" && !strings.Contains(f.Detail, "/iris/webhook/<secret>/create") {
				t.Fatalf("no fix given: %q", f.Detail)
			}
		}
	})
	t.Run("MissingStartHunt", func(t *testing.T) {
		d.VR.SetUser("velohunt", velotest.PermAnyQuery, velotest.PermReadResults, velotest.PermArtifactWriter)
		defer d.VR.SetUser("velohunt", velotest.Investigator...)
		list, err := runChecks(ctx, d.App.Config)
		if err != nil {
			t.Fatal(err)
		}
		if got := status(list, "START_HUNT"); got != checkFail {
			t.Fatalf("START_HUNT: %s", got)
		}
		for _, f := range list {
			if f.What == "START_HUNT" && !strings.Contains(f.Detail, "investigator") {
				t.Fatalf("no fix given: %q", f.Detail)
			}
		}
	})
	t.Run("BadIRISKey", func(t *testing.T) {
		cfg := d.App.Config
		cfg.IRIS.APIKey = "wrong"
		list, err := runChecks(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := status(list, "connect and authenticate"); got != checkFail {
			t.Fatalf("IRIS with a wrong key: %s", got)
		}
	})
}

// TestServeEndpoints checks /metrics, /healthz, /readyz and /status of a
// running service, and that its log (JSON, debug) holds no secret.
func TestServeEndpoints(t *testing.T) {
	ctx := context.Background()
	logs := &testlog.Buffer{}
	d, err := startDemoWith(ctx, t.TempDir(), logs, demoEndpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.App.ReadyWindow = time.Nanosecond // always ask the peers
	if err := d.Play(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+d.App.Addr()+path, nil)
		if path == "/status" {
			req.Header.Set("Authorization", "Bearer "+d.App.Config.Webhook.Secret.Reveal())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{`velohunt_hunts_started_total{server="demo"} 4`,
		"velohunt_iris_request_seconds_bucket", "velohunt_velociraptor_request_seconds_bucket", `velohunt_outbox_pending{kind="event"} 0`,
		"velohunt_outbox_oldest_seconds", `velohunt_hits_total 10`, `velohunt_iris_writes_total{kind="event",result="done"} 10`,
		"velohunt_result_rows_read_total", `velohunt_webhook_requests_total{event="create",result="Accepted"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The two malformed IOCs are refused once, by whichever of the webhook
	// and the minutely reconcile saw them first.
	if got := sumMetric(t, body, `velohunt_iocs_received_total{outcome="refused",`); got != 2 {
		t.Errorf("IOCs refused: %v, want 2\n%s", got, body)
	}
	// IOCs that hit are counted as such, by the metric and by status alike.
	st, err := collectStatus(ctx, d.App.Store)
	if err != nil {
		t.Fatal(err)
	}
	if got := sumMetric(t, body, `velohunt_iocs{state="hit"}`); got == 0 || got != float64(st.IOCs[store.StateHit]) {
		t.Errorf("velohunt_iocs{state=\"hit\"} = %v, status counts %d hit IOCs (%v)", got, st.IOCs[store.StateHit], st.IOCs)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	d.VR.SetDown(true)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "velociraptor:demo") {
		t.Fatalf("/readyz with Velociraptor down: %d %s", code, body)
	}
	d.VR.SetDown(false)
	if code, body := get("/status"); code != 200 || !strings.Contains(body, `"iris_writes"`) || !strings.Contains(body, `"concurrency":4`) || !strings.Contains(body, `"hits_waiting"`) {
		t.Fatalf("/status: %d %s", code, body)
	}
	resp, err := http.Get("http://" + d.App.Addr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/status without the secret: %d, want 401", resp.StatusCode)
	}
	secret := d.App.Config.Webhook.Secret.Reveal()
	for _, s := range []string{secret, "velohunt-key", "admin-key", "PRIVATE KEY"} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("the log holds a secret (%q)", s[:4])
		}
	}
	if !strings.Contains(logs.String(), "hunt started") {
		t.Fatal("the log was not captured")
	}
}

// TestManualTrigger: IRIS's manual hook ("Hunt in Velociraptor"), posted by
// the webhooks module, re-hunts an IOC at once, even while a hunt covers it.
func TestManualTrigger(t *testing.T) {
	ctx := context.Background()
	d := playedDemo(t)
	before := len(d.VR.Hunts())
	rows, _ := d.App.Store.CaseIOCs(ctx, 101)
	var target int64
	for _, r := range rows {
		if r.TypeName == "md5" && r.State == store.StateHunting {
			target = r.IRISID
		}
	}
	d.IRIS.TriggerManual(101, target)
	deadline := time.Now().Add(10 * time.Second)
	for len(d.VR.Hunts()) == before {
		if time.Now().After(deadline) {
			t.Fatal("no new hunt after the manual trigger")
		}
		time.Sleep(50 * time.Millisecond)
	}
	hunts := d.VR.Hunts()
	last := hunts[len(hunts)-1]
	if last.Artifact != "Custom.Velohunt.Hash" || !strings.Contains(last.Params["IOCs"], demoInvoiceMD5) || last.State != "RUNNING" {
		t.Fatalf("new hunt %+v", last)
	}
}

// TestIncompleteIsNotClean: Velociraptor counts a host whose collection
// failed or timed out as finished. A hunt with such a host never reads
// "clean": the tab, velohunt status and the metrics say it is incomplete,
// with the first error (issue 9).
func TestIncompleteIsNotClean(t *testing.T) {
	ctx := context.Background()
	eps := []velotest.Endpoint{
		{ClientID: "C.aaaaaaaaaaaaaaa1", Hostname: "ok-1", OS: "windows", Online: true},
		{ClientID: "C.aaaaaaaaaaaaaaa2", Hostname: "slow-2", OS: "windows", Online: true, FlowError: "Timeout: query timed out after 600 seconds"},
		{ClientID: "C.aaaaaaaaaaaaaaa3", Hostname: "ok-3", OS: "linux", Online: true},
	}
	d, err := startDemoWith(ctx, t.TempDir(), io.Discard, eps, func(c *config.Config, _ *velotest.Server) {
		c.Writeback.TabMinInterval = 0
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cid, _ := d.Admin.AddCase(ctx, "incomplete", "test", 1, "")
	x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: "0123456789abcdef0123456789abcdef", TypeID: iristest.TypeID("md5"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var status string
	for {
		tab, _ := d.Admin.IOCAttributes(ctx, cid, x.ID, d.App.Config.Writeback.TabName)
		status = tab["Status"]
		if strings.HasPrefix(status, "incomplete") || strings.HasPrefix(status, "clean") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tab status %q after 20s", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(status, "incomplete: 1 of 3 host(s) errored or timed out (first: C.aaaaaaaaaaaaaaa2: Timeout") {
		t.Fatalf("tab status %q", status)
	}
	st, err := collectStatus(ctx, d.App.Store)
	if err != nil || st.Incomplete != 1 || len(st.Recent) != 1 || st.Recent[0].Errored != 1 || !strings.Contains(st.Recent[0].FirstError, "Timeout") {
		t.Fatalf("status %+v err=%v", st, err)
	}
	var out strings.Builder
	printStatus(&out, st)
	if !strings.Contains(out.String(), "hunts incomplete: 1") {
		t.Fatalf("status output:\n%s", out.String())
	}
}

func runChecksT(t *testing.T, d *demo) []finding {
	t.Helper()
	list, err := runChecks(context.Background(), d.App.Config)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// sumMetric adds the values of the metric lines that start with prefix.
func sumMetric(t *testing.T, body, prefix string) float64 {
	t.Helper()
	var sum float64
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// TestUnsearchedIsNotClean: a host whose collection finished but could not
// search a source that applies to it (netstat disabled, as on Velociraptor's
// Windows impersonation) is not clean: the tab says which host could not
// search what, and velohunt status and the metrics count it (issue 17).
func TestUnsearchedIsNotClean(t *testing.T) {
	ctx := context.Background()
	eps := []velotest.Endpoint{
		{ClientID: "C.bbbbbbbbbbbbbbb1", Hostname: "lin-1", OS: "linux", Online: true},
		{ClientID: "C.bbbbbbbbbbbbbbb2", Hostname: "win-2", OS: "windows", Online: true,
			Cannot: map[string]string{"connections": "", "dns_cache": "Call to plugin wmi disabled"}},
	}
	d, err := startDemoWith(ctx, t.TempDir(), io.Discard, eps, func(c *config.Config, _ *velotest.Server) {
		c.Writeback.TabMinInterval = 0
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cid, _ := d.Admin.AddCase(ctx, "unsearched", "test", 1, "")
	x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: "203.0.113.77", TypeID: iristest.TypeID("ip-dst"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var tab map[string]string
	for {
		tab, _ = d.Admin.IOCAttributes(ctx, cid, x.ID, d.App.Config.Writeback.TabName)
		if s := tab["Status"]; strings.HasPrefix(s, "incomplete") || strings.HasPrefix(s, "clean") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tab status %q after 20s", tab["Status"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := "incomplete: 1 host(s) could not search everything (first: win-2: connections: searched nothing; dns_cache: Call to plugin wmi disabled)"
	if !strings.HasPrefix(tab["Status"], want) {
		t.Fatalf("tab status %q, want it to start with %q", tab["Status"], want)
	}
	if !strings.Contains(tab["Hunts"], "not searched in full on 1 host(s)") || !strings.Contains(tab["Hunts"], "win-2: connections: searched nothing") {
		t.Fatalf("tab hunts:\n%s", tab["Hunts"])
	}
	st, err := collectStatus(ctx, d.App.Store)
	if err != nil || st.Incomplete != 1 || len(st.Recent) != 1 || len(st.Recent[0].NotSearched) != 1 {
		t.Fatalf("status %+v err=%v", st, err)
	}
	var out strings.Builder
	printStatus(&out, st)
	if !strings.Contains(out.String(), "1 host(s) not searched in full") || !strings.Contains(out.String(), "win-2 (C.bbbbbbbbbbbbbbb2): connections: searched nothing") {
		t.Fatalf("status output:\n%s", out.String())
	}
	resp, err := http.Get("http://" + d.App.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := sumMetric(t, string(b), `velohunt_coverage_gaps{source="connections"}`); got != 1 {
		t.Fatalf("velohunt_coverage_gaps{connections} = %v\n", got)
	}
}
