package main

// A scenario of a shared IRIS: a real IRIS 2.4 (its webhooks module
// included) with the simulated Velociraptor. It runs when the IRIS
// variables of the conformance suite are set:
//
//	VELOHUNT_TEST_IRIS_URL, VELOHUNT_TEST_IRIS_KEY (a non-admin service
//	user), VELOHUNT_TEST_IRIS_ADMIN_KEY, VELOHUNT_TEST_IRIS_INSECURE=1
//
// It points IRIS's webhooks module (configs/iris-webhooks.json) at the
// velohunt it starts, so run it against a test IRIS only. It adds a second
// customer, gives the service user access to it, and adds a tab of its own
// to the IOC template, as an analyst's company fields would be.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// realIRIS calls IRIS routes velohunt's client does not have (test set-up).
type realIRIS struct {
	t          *testing.T
	url, admin string
	http       *http.Client
}

func newRealIRIS(t *testing.T, url, adminKey string, insecure bool) *realIRIS {
	return &realIRIS{t: t, url: strings.TrimRight(url, "/"), admin: adminKey,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}}}}
}

// webhooksTo configures IRIS's webhooks module from
// configs/iris-webhooks.json to post to the velohunt at addr, and enables
// it. The configuration is IRIS-wide: run it against a test IRIS only. The
// returned function puts the module back as it was (its configuration and
// whether it was enabled), for the tests that run after.
func (r *realIRIS) webhooksTo(addr, secret string) (restore func()) {
	r.t.Helper()
	hooks, err := os.ReadFile("../../configs/iris-webhooks.json")
	if err != nil {
		r.t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(hooks), "http://velohunt:8080", "http://"+addr)
	conf = strings.ReplaceAll(conf, "REPLACE-WITH-THE-WEBHOOK-SECRET", secret)
	id, active := r.webhooksModule()
	saved := r.call("GET", fmt.Sprintf("/manage/modules/export-config/%d", id), nil)["data"].(map[string]any)["module_configuration"]
	param := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%d##wh_configuration", id)))
	r.call("POST", "/manage/modules/set-parameter/"+param, map[string]any{"parameter_value": conf})
	r.call("POST", fmt.Sprintf("/manage/modules/enable/%d", id), nil)
	time.Sleep(2 * time.Second) // the module registers its hooks asynchronously
	return func() {
		r.t.Helper()
		r.call("POST", fmt.Sprintf("/manage/modules/import-config/%d", id), map[string]any{"module_configuration": saved})
		state := "disable"
		if active {
			state = "enable"
		}
		r.call("POST", fmt.Sprintf("/manage/modules/%s/%d", state, id), nil)
	}
}

// webhooksOff disables IRIS's webhooks module.
func (r *realIRIS) webhooksOff() {
	r.t.Helper()
	id, _ := r.webhooksModule()
	r.call("POST", fmt.Sprintf("/manage/modules/disable/%d", id), nil)
}

// webhooksModule returns the id of IRIS's webhooks module and whether it
// is enabled.
func (r *realIRIS) webhooksModule() (int64, bool) {
	r.t.Helper()
	for _, m := range r.call("GET", "/manage/modules/list", nil)["data"].([]any) {
		if mm := m.(map[string]any); mm["module_human_name"] == "IrisWebHooks" {
			active, _ := mm["is_active"].(bool)
			return int64(mm["id"].(float64)), active
		}
	}
	r.t.Fatal("IRIS has no webhooks module")
	return 0, false
}

func (r *realIRIS) call(method, path string, body any) map[string]any {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+r.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("%s %s: HTTP %d %v (%v)", method, path, resp.StatusCode, v, err)
	}
	return v
}

func TestRealIRISSharedByCasesAndModules(t *testing.T) {
	env := needRealIRIS(t)
	url, key, adminKey, insecure := env.url, env.key, env.adminKey, env.insecure
	ctx := context.Background()
	r := newRealIRIS(t, url, adminKey, insecure)
	admin, _ := iris.New(iris.Options{URL: url, APIKey: adminKey, InsecureSkipVerify: insecure, Timeout: 30 * time.Second})
	svc, _ := iris.New(iris.Options{URL: url, APIKey: key, InsecureSkipVerify: insecure, Timeout: 30 * time.Second})
	run := time.Now().UnixNano()

	// A second customer, which the service user may access.
	other := r.call("POST", "/manage/customers/add", map[string]any{"customer_name": fmt.Sprintf("velohunt other %d", run)})
	otherID := int64(other["data"].(map[string]any)["customer_id"].(float64))
	svcID, err := svc.WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	user := r.call("GET", fmt.Sprintf("/manage/users/%d", svcID), nil)["data"].(map[string]any)
	var customers []int64
	for _, c := range user["user_customers"].([]any) {
		customers = append(customers, int64(c.(map[string]any)["customer_id"].(float64)))
	}
	r.call("POST", fmt.Sprintf("/manage/users/%d/customers/update", svcID), map[string]any{"customers_membership": append(customers, otherID)})

	// An analyst's own IOC tab, as a company's fields would be.
	analystTab := fmt.Sprintf("Company %d", run)
	field := map[string]any{"type": "input_string", "mandatory": false, "value": ""}
	if _, err := admin.EnsureIOCTab(ctx, analystTab, map[string]map[string]any{"Owner": field}, false); err != nil {
		t.Fatal(err)
	}

	// Endpoints of the simulated Velociraptor, with evidence.
	dir := t.TempDir()
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	md5 := func(i int) string { return fmt.Sprintf("%016x%016x", run, i) }
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.1111111111111111", Hostname: fmt.Sprintf("WS-%d", run%100000), OS: "windows",
		Release: "Windows 11", LastIP: "10.0.0.1", Online: true, Files: []velotest.File{
			{Path: `C:\Users\a\x.exe`, Size: 10, MD5: md5(1)}, {Path: `C:\Users\a\n.exe`, Size: 10, MD5: md5(3)}}})
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.2222222222222222", Hostname: fmt.Sprintf("srv-%d", run%100000), OS: "linux",
		Release: "Debian 12", LastIP: "10.0.0.2", Online: true, Files: []velotest.File{{Path: "/opt/y", Size: 10, MD5: md5(2)}}})
	apiPath, err := vr.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		t.Fatal(err)
	}

	cfg := realIRISConfig(dir, url, key, adminKey, insecure, apiPath)
	cfg.Intake.SyncDelay = config.Duration(500 * time.Millisecond)
	cfg.Writeback.TabMinInterval = config.Duration(2 * time.Second)
	app := openTestApp(t, cfg)
	defer app.Close(context.Background())

	// IRIS's webhooks module posts to this velohunt.
	defer r.webhooksTo(app.Addr(), cfg.Webhook.Secret.Reveal())()

	// Cases A and B of the first customer, C of the other.
	a, _ := admin.AddCase(ctx, fmt.Sprintf("shared A %d", run), "velohunt shared-IRIS test", 1, "")
	b, _ := admin.AddCase(ctx, fmt.Sprintf("shared B %d", run), "velohunt shared-IRIS test", 1, "")
	c, err := admin.AddCase(ctx, fmt.Sprintf("shared C %d", run), "velohunt shared-IRIS test", otherID, "")
	if err != nil {
		t.Fatal(err)
	}
	// Closed at the end, so that a later run's velohunt (another database)
	// does not hunt this run's IOCs again and rewrite their tabs.
	defer func() {
		for _, id := range []int64{a, b, c} {
			admin.CloseCase(context.Background(), id)
		}
	}()
	typ := func(name string) int64 {
		types, _ := admin.IOCTypes(ctx)
		for _, ty := range types {
			if ty.Name == name {
				return ty.ID
			}
		}
		t.Fatalf("no IOC type %s", name)
		return 0
	}
	// The analyst already added the host as an asset of case A.
	assetTypes, _ := admin.AssetTypes(ctx)
	var winType int64
	for _, at := range assetTypes {
		if at.Name == "Windows - Computer" {
			winType = at.ID
		}
	}
	statuses, _ := admin.AnalysisStatuses(ctx)
	if _, err := admin.AddAsset(ctx, a, iris.NewAsset{Name: strings.ToLower(fmt.Sprintf("WS-%d", run%100000)), TypeID: winType,
		AnalysisStatusID: statuses[0].ID, Description: "added by an analyst"}); err != nil {
		t.Fatal(err)
	}
	// X in A, with an analyst's value in the company tab; Y in A and in C
	// (two customers); N made without custom_attributes (null) in B.
	x, err := admin.AddIOC(ctx, a, iris.NewIOC{Value: md5(1), TypeID: typ("md5"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.UpdateIOCAttributes(ctx, a, x.ID, analystTab, map[string]string{"Owner": "written by an analyst"}); err != nil {
		t.Fatal(err)
	}
	y, _ := admin.AddIOC(ctx, a, iris.NewIOC{Value: md5(2), TypeID: typ("md5"), TLPID: 2})
	if _, err := admin.AddIOC(ctx, c, iris.NewIOC{Value: md5(2), TypeID: typ("md5"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	nul := r.call("POST", fmt.Sprintf("/case/ioc/add?cid=%d", b), map[string]any{"ioc_value": md5(3), "ioc_type_id": typ("md5"), "ioc_tlp_id": 2})
	nID := int64(nul["data"].(map[string]any)["ioc_id"].(float64))

	tab := func(cid, id int64) map[string]string {
		v, _ := admin.IOCAttributes(ctx, cid, id, cfg.Writeback.TabName)
		return v
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tx, ty, tn := tab(a, x.ID), tab(c, y.ID), tab(b, nID)
		if strings.HasPrefix(tx["Status"], "HIT") && strings.Contains(ty["Status"], "customers") && strings.HasPrefix(tn["Status"], "HIT") {
			break
		}
		if time.Now().After(deadline) {
			st, _ := collectStatus(ctx, app.Store)
			b, _ := json.MarshalIndent(st, "", " ")
			xRows, _ := app.Store.FindIOCs(ctx, x.ID)
			nRows, _ := app.Store.FindIOCs(ctx, nID)
			t.Fatalf("after 3 minutes: X %q, Y %q, N %q; X rows %+v; N rows %+v\nstatus %s", tx["Status"], ty["Status"], tn["Status"], xRows, nRows, b)
		}
		time.Sleep(time.Second)
	}
	// Y's tab says "customers" from its first write: wait for the hits of
	// both cases in IRIS (an asset in each) and every write done.
	for end := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		inA, _ := admin.ListAssets(ctx, a)
		inC, _ := admin.ListAssets(ctx, c)
		if len(inA) == 2 && len(inC) == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("assets after a minute: case A %+v, case C %+v", inA, inC)
		}
	}
	waitDrained(t, app, time.Minute)
	if v, _ := admin.IOCAttributes(ctx, a, x.ID, analystTab); v["Owner"] != "written by an analyst" {
		t.Fatalf("the analyst's tab on X is %v: velohunt changed a value it did not write", v)
	}
	// The shared IOC's tab names no host of either customer's fleet.
	for f, v := range tab(a, y.ID) {
		if strings.Contains(v, fmt.Sprint(run%100000)) || strings.Contains(v, "/opt/y") {
			t.Fatalf("Y's tab field %s shows %q to both customers", f, v)
		}
	}
	// Hits are in each case's assets and events; the analyst's asset is
	// reused and linked, not duplicated nor parked.
	assetsA, _ := admin.ListAssets(ctx, a)
	if len(assetsA) != 2 {
		t.Fatalf("case A assets %+v, want the analyst's host and the server", assetsA)
	}
	for _, as := range assetsA {
		if strings.HasPrefix(strings.ToLower(as.Name), "ws-") {
			d, _ := admin.Asset(ctx, a, as.ID)
			if !slices.Contains(d.LinkedIOCs, x.ID) {
				t.Fatalf("the analyst's asset is not linked to X: %+v", d)
			}
		}
	}
	if assetsC, _ := admin.ListAssets(ctx, c); len(assetsC) != 1 {
		t.Fatalf("case C assets %+v", assetsC)
	}
	if parked, _ := app.Store.ParkedWrites(ctx, 0, 5); len(parked) != 0 {
		t.Fatalf("parked writes: %+v", parked)
	}
	// IRIS's module task log: velohunt's tab writes fire
	// on_postload_ioc_update; few of them.
	time.Sleep(3 * time.Second)
	tasks, _ := admin.HookTasks(ctx, 500)
	updates := 0
	for _, tk := range tasks {
		if tk.Hook == "on_postload_ioc_update" && (tk.CaseID == a || tk.CaseID == b || tk.CaseID == c) {
			updates++
		}
	}
	t.Logf("IRIS ran %d on_postload_ioc_update module tasks for the 3 IOCs in cases %d, %d, %d", updates, a, b, c)
	if updates > 3*4 {
		t.Fatalf("%d IOC update hooks for 3 IOCs: tabs are written too often", updates)
	}
}
