package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestRealIRISKill9DuringWriteback runs the velohunt binary against a real
// IRIS (the VELOHUNT_TEST_IRIS_* variables) and the simulated Velociraptor,
// whose hunt finds two IOCs on each of 150 hosts, and kills it with SIGKILL
// at random moments while it writes the 300 hits back; it restarts it each
// time. In the end IRIS holds, read through its API, exactly one asset per
// host linked to both IOCs and exactly one event per hit.
func TestRealIRISKill9DuringWriteback(t *testing.T) {
	env := needRealIRIS(t)
	url, key, adminKey := env.url, env.key, env.adminKey
	const hosts = 150
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildVelohunt(t, dir)
	admin, err := iris.New(iris.Options{URL: url, APIKey: adminKey, InsecureSkipVerify: env.insecure})
	if err != nil {
		t.Fatal(err)
	}
	run := time.Now().UnixNano()
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt kill -9 %d", run), "velohunt test: kill -9 during write-back", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.CloseCase(context.Background(), cid)
	types, err := admin.IOCTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var md5Type int64
	for _, ty := range types {
		if ty.Name == "md5" {
			md5Type = ty.ID
		}
	}
	var hashes []string
	for i := range 2 {
		h := md5.Sum([]byte(fmt.Sprint("kill9", run, i)))
		hashes = append(hashes, hex.EncodeToString(h[:]))
		if _, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: hashes[i], TypeID: md5Type, TLPID: 2}); err != nil {
			t.Fatal(err)
		}
	}

	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	clientID := func(c int) string { return fmt.Sprintf("C.%016x", c) }
	for c := range hosts {
		vr.AddEndpoint(velotest.Endpoint{ClientID: clientID(c), Hostname: fmt.Sprintf("kill9-host-%03d", c), OS: "linux", LastIP: "10.9.9.9"})
	}
	vr.SetRowSource("Custom.Velohunt.Hash", velotest.RowSource{Clients: hosts, RowsPerClient: 2, ClientID: clientID,
		Row: func(c, j int) map[string]any {
			path := fmt.Sprintf("/home/u%d/payload-%d.bin", c, j)
			return map[string]any{"IOC": hashes[j], "Source": "file", "Evidence": path, "OSPath": path, "Size": 4096,
				"EventTime": "2026-12-03T08:00:00Z", "MD5": hashes[j]}
		}})
	apiPath, err := vr.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "velohunt.yaml")
	cfg := fmt.Sprintf(`database: %s
listen: 127.0.0.1:0
log: {level: debug}
iris: {url: %q, api_key: %q, admin_api_key: %q, insecure_skip_verify: %t, setup_on_start: true}
webhook: {secret: "kill9-real-webhook-secret-0123456789"}
velociraptor: {servers: [{name: main, api_config: %q}]}
hunting: {batch_window: 300ms}
intake: {reconcile: "* * * * *"}
watcher: {schedule: "@every 1s"}
writeback: {settle: 2s, tab_min_interval: 0s}
`, filepath.Join(dir, "v.db"), url, key, adminKey, env.insecure, apiPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := serveStarter(t, bin, cfgPath, filepath.Join(dir, "serve.log"))
	events := func() []iris.EventSummary {
		list, err := admin.ListEvents(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	fail := func(format string, args ...any) {
		t.Helper()
		log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Fatalf(format+"\n%s", append(args, tail(log, 3000))...)
	}

	// Kill it at random moments once write-back has begun, four times.
	rnd := rand.New(rand.NewPCG(uint64(run), 9))
	kills := 0
	for deadline := time.Now().Add(3 * time.Minute); kills < 4; {
		cmd := start()
		for len(events()) == 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(time.Duration(500+rnd.IntN(2500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if time.Now().After(deadline) {
			fail("no event reached IRIS within 3 minutes")
		}
		kills++
		t.Logf("killed with SIGKILL while %d events were in IRIS", len(events()))
	}
	cmd := start()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	want := 2 * hosts
	for deadline := time.Now().Add(5 * time.Minute); len(events()) < want; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			fail("%d events of %d after the restarts", len(events()), want)
		}
	}
	time.Sleep(5 * time.Second) // a duplicate would show up now
	list := events()
	markers := map[string]bool{}
	for _, e := range list {
		m := ""
		for _, tag := range strings.Split(e.Tags, ",") {
			if strings.HasPrefix(strings.TrimSpace(tag), "vh-") {
				m = strings.TrimSpace(tag)
			}
		}
		if m == "" || markers[m] {
			fail("event %d: marker %q missing or repeated", e.ID, m)
		}
		markers[m] = true
	}
	if len(list) != want {
		fail("%d events in IRIS, want %d (one per hit)", len(list), want)
	}
	assets, err := admin.ListAssets(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, a := range assets {
		if names[strings.ToLower(a.Name)] {
			fail("asset %s twice", a.Name)
		}
		names[strings.ToLower(a.Name)] = true
		if len(a.IOCLinks) != 2 {
			fail("asset %s links %v, want both IOCs", a.Name, a.IOCLinks)
		}
	}
	if len(assets) != hosts {
		fail("%d assets, want %d", len(assets), hosts)
	}
	t.Logf("%d kills; %d events, %d assets, each host linked to both IOCs, no duplicate", kills, len(list), len(assets))
}
