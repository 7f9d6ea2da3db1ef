package main

// The end-to-end scenario against a real IRIS and a real Velociraptor with
// a client enrolled on this machine. It runs only when asked:
//
//	VELOHUNT_TEST_E2E=1
//	VELOHUNT_TEST_IRIS_URL, VELOHUNT_TEST_IRIS_KEY, VELOHUNT_TEST_IRIS_ADMIN_KEY
//	VELOHUNT_TEST_IRIS_INSECURE=1 (self-signed IRIS)
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG (roles investigator,artifact_writer)
//
// What a real investigation does: the analyst has already added this
// machine as an asset of the case; IOCs of every kind are added through
// IRIS's API, each matching evidence planted on this machine (a file by
// sha256 and md5, by name and by path, a loopback connection by ip|port, a
// hosts-file domain), and a malformed md5. The first five reach velohunt
// only through IRIS's webhooks module (configured from
// configs/iris-webhooks.json; no reconcile runs), then velohunt is
// restarted (same database) with the module off, and the last two reach
// it only through the reconcile. Then, read back through IRIS's API: the
// analyst's asset is linked to the IOCs (not duplicated, nothing parked),
// every kind has its event, one event per hit (no duplicate after the
// restart), HIT on every tab, and the malformed IOC's tab gives the reason
// it was refused. The webhooks module's configuration is IRIS-wide: run it
// against a test IRIS only; it is put back as it was at the end.

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
)

func TestEndToEndReal(t *testing.T) {
	if os.Getenv("VELOHUNT_TEST_E2E") != "1" {
		t.Skip("end-to-end scenario against real servers: set VELOHUNT_TEST_E2E=1 and the VELOHUNT_TEST_IRIS_* and VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG variables")
	}
	need := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s is not set", k)
		}
		return v
	}
	ctx := context.Background()
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	planted := filepath.Join(dir, "planted", "velohunt-e2e.bin")
	os.MkdirAll(filepath.Dir(planted), 0o755)
	if err := os.WriteFile(planted, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	s256, m5 := sha256.Sum256(secret), md5.Sum(secret)
	globs, _ := json.Marshal([]string{filepath.ToSlash(filepath.Dir(planted)) + "/**"})
	domain := fmt.Sprintf("c2-%x.velohunt-e2e.example", secret[:4])
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n127.0.0.66 "+domain+"\n"), 0o644)
	hostsList, _ := json.Marshal([]string{hosts})
	port := loopbackConnection(t, "127.0.0.78")

	cfg := config.Default()
	cfg.Database = filepath.Join(dir, "v.db")
	cfg.Listen = "127.0.0.1:0"
	cfg.IRIS.URL = need("VELOHUNT_TEST_IRIS_URL")
	cfg.IRIS.APIKey = config.Secret(need("VELOHUNT_TEST_IRIS_KEY"))
	cfg.IRIS.AdminAPIKey = config.Secret(need("VELOHUNT_TEST_IRIS_ADMIN_KEY"))
	cfg.IRIS.InsecureSkipVerify = os.Getenv("VELOHUNT_TEST_IRIS_INSECURE") == "1"
	cfg.IRIS.SetupOnStart = true
	cfg.Webhook.Secret = config.Secret(hex.EncodeToString(secret))
	cfg.Velociraptor.Servers = []config.Server{{Name: "e2e", APIConfig: need("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")}}
	cfg.Hunting.BatchWindow = config.Duration(time.Second)
	cfg.Hunting.ClientTimeout = config.Duration(2 * time.Minute)
	for kind, params := range map[string]map[string]string{"hash": {"TargetGlobs": string(globs)},
		"file": {"TargetGlobs": string(globs)}, "domain": {"HostsFiles": string(hostsList)}} {
		k := cfg.Hunting.Kinds[kind]
		k.Parameters = params
		cfg.Hunting.Kinds[kind] = k
	}
	cfg.Intake.Reconcile = "0 0 1 1 *" // first the webhooks only: no reconcile during the test
	cfg.Watcher.Schedule = "@every 5s"
	// Tab updates that change only counts wait tab_min_interval (5 min by
	// default) after the IOC's last write; the test reads everything back
	// within a minute of the last hit.
	cfg.Writeback.TabMinInterval = config.Duration(5 * time.Second)

	admin, _ := iris.New(iris.Options{URL: cfg.IRIS.URL, APIKey: cfg.IRIS.AdminAPIKey.Reveal(), InsecureSkipVerify: cfg.IRIS.InsecureSkipVerify})
	module := newRealIRIS(t, cfg.IRIS.URL, cfg.IRIS.AdminAPIKey.Reveal(), cfg.IRIS.InsecureSkipVerify)
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt e2e %d", time.Now().Unix()), "end-to-end test", 1, "velohunt-e2e")
	if err != nil {
		t.Fatal(err)
	}
	app := openTestApp(t, cfg)
	defer func() {
		stopRealHunts(app)
		app.Close(context.Background())
	}()
	// The start-up listing has seen the case (no IOC yet); from now on
	// only the webhooks module tells velohunt about IOCs.
	for end := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := app.Store.FindCase(ctx, cid); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal("velohunt's start-up listing did not see the case within a minute")
		}
	}
	defer module.webhooksTo(app.Addr(), cfg.Webhook.Secret.Reveal())()
	// Closed at the end, so that a later run's velohunt (another database)
	// does not hunt this run's IOCs again and rewrite their tabs.
	defer func() {
		for _, id := range []int64{cid} {
			admin.CloseCase(context.Background(), id)
		}
	}()
	typeOf := map[string]int64{}
	types, _ := admin.IOCTypes(ctx)
	for _, ty := range types {
		typeOf[ty.Name] = ty.ID
	}
	// The analyst already added this machine as an asset, as velohunt
	// would name it (its hostname, Linux - Server by default).
	host, _ := os.Hostname()
	assetTypes, _ := admin.AssetTypes(ctx)
	statuses, _ := admin.AnalysisStatuses(ctx)
	var linuxServer int64
	for _, at := range assetTypes {
		if at.Name == cfg.Writeback.AssetTypes["linux"] {
			linuxServer = at.ID
		}
	}
	analystAsset, err := admin.AddAsset(ctx, cid, iris.NewAsset{Name: strings.ToUpper(host), TypeID: linuxServer, AnalysisStatusID: statuses[0].ID,
		Description: "added by the analyst before the hunt"})
	if err != nil {
		t.Fatal(err)
	}
	add := func(typ, value string) e2eRef {
		t.Helper()
		x, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: value, TypeID: typeOf[typ], TLPID: 2, Description: "velohunt e2e"})
		if err != nil {
			t.Fatal(err)
		}
		return e2eRef{ID: x.ID, Value: value}
	}
	want := []e2eRef{add("sha256", hex.EncodeToString(s256[:])), add("md5", hex.EncodeToString(m5[:])),
		add("filename", "velohunt-e2e.bin"), add("file-path", planted)}
	bad := add("md5", "not-an-md5-"+hex.EncodeToString(secret[:4]))

	tab := func(id int64) map[string]string {
		v, _ := admin.IOCAttributes(ctx, cid, id, cfg.Writeback.TabName)
		return v
	}
	waitHits := func(refs []e2eRef, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			var missing []string
			for _, r := range refs {
				if !strings.HasPrefix(tab(r.ID)["Status"], "HIT") {
					missing = append(missing, r.Value)
				}
			}
			if len(missing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				st, _ := collectStatus(ctx, app.Store)
				b, _ := json.MarshalIndent(st, "", " ")
				t.Fatalf("no HIT on the tab of %v after %s\nstatus: %s", missing, within, b)
			}
			time.Sleep(3 * time.Second)
		}
	}
	waitHits(want, 4*time.Minute)
	checkSource := func(refs []e2eRef, source string) {
		t.Helper()
		for _, r := range refs {
			rows, _ := app.Store.FindIOCs(ctx, r.ID)
			if len(rows) != 1 || rows[0].Source != source {
				t.Fatalf("IOC %s: rows %+v, want one learned from the %s", r.Value, rows, source)
			}
		}
	}
	checkSource(append(want, bad), "webhook")

	// A restart with the module off, then two more IOCs, found by the new
	// process's reconcile.
	app.Close(context.Background())
	module.webhooksOff()
	cfg.Intake.Reconcile = "* * * * *"
	app = openTestApp(t, cfg)
	later := []e2eRef{add("ip-dst|port", fmt.Sprintf("127.0.0.78|%d", port)), add("domain", domain)}
	waitHits(later, 4*time.Minute)
	checkSource(later, "reconcile")
	want = append(want, later...)

	// The malformed IOC: refused, with the reason on its tab.
	if s := tab(bad.ID)["Status"]; !strings.HasPrefix(s, "refused:") || !strings.Contains(s, "md5") {
		t.Fatalf("malformed IOC tab status %q, want refused with the reason", s)
	}
	// Let the last writes settle, then read everything back.
	waitDrained(t, app, time.Minute)
	assets, _ := admin.ListAssets(ctx, cid)
	if len(assets) != 1 || assets[0].ID != analystAsset {
		t.Fatalf("assets %+v: the analyst's asset must be the only one", assets)
	}
	detail, _ := admin.Asset(ctx, cid, analystAsset)
	for _, r := range want {
		if !slices.Contains(detail.LinkedIOCs, r.ID) {
			t.Fatalf("the analyst's asset is not linked to IOC %s: %v", r.Value, detail.LinkedIOCs)
		}
	}
	events, _ := admin.ListEvents(ctx, cid)
	markers := map[string]bool{}
	for _, e := range events {
		for _, tag := range strings.Split(e.Tags, ",") {
			if strings.HasPrefix(tag, "vh-") {
				if markers[tag] {
					t.Fatalf("two events with marker %s", tag)
				}
				markers[tag] = true
			}
		}
	}
	hits := 0
	rows, _ := app.Store.CaseIOCs(ctx, cid)
	for _, r := range rows {
		d, _ := app.Store.FindTabData(ctx, r.ID, 1000)
		for _, c := range d.Cases {
			if c.IOC.CaseID == cid {
				hits += c.HitCount
			}
		}
	}
	if len(events) != hits || hits < len(want) {
		t.Fatalf("%d events for %d hits of %d IOCs: one event per hit", len(events), hits, len(want))
	}
	t.Logf("%d IOCs of every kind found, %d events for %d hits, the analyst's asset linked, the malformed IOC refused", len(want), len(events), hits)
}

// e2eRef is an IOC the end-to-end test added.
type e2eRef struct {
	ID    int64
	Value string
}
