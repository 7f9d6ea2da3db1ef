package main

// What an analyst sees in IRIS's web UI, read in a real browser: hostile
// endpoint text planted on a simulated endpoint reaches a real IRIS through
// velohunt, and headless Chromium (driven by playwright-core, script in
// testdata/iris_ui.mjs) reads the timeline, the IOC dialog's tab and the
// assets table back. It runs when these are set:
//
//	VELOHUNT_TEST_IRIS_URL, VELOHUNT_TEST_IRIS_KEY, VELOHUNT_TEST_IRIS_ADMIN_KEY
//	VELOHUNT_TEST_IRIS_ADMIN_PASSWORD  the administrator's password (browser login)
//	VELOHUNT_TEST_PLAYWRIGHT           a folder whose node_modules has playwright-core
//	                                   (npm install playwright-core); Chromium at
//	                                   /usr/bin/chromium or VELOHUNT_TEST_CHROMIUM

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

func TestRealIRISUI(t *testing.T) {
	password, pw := os.Getenv("VELOHUNT_TEST_IRIS_ADMIN_PASSWORD"), os.Getenv("VELOHUNT_TEST_PLAYWRIGHT")
	if password == "" || pw == "" {
		t.Skip("needs a real IRIS and a browser: set the VELOHUNT_TEST_IRIS_* variables, VELOHUNT_TEST_IRIS_ADMIN_PASSWORD and VELOHUNT_TEST_PLAYWRIGHT")
	}
	env := needRealIRIS(t)
	url, key, adminKey, insecure := env.url, env.key, env.adminKey, env.insecure
	ctx := context.Background()
	dir := t.TempDir()
	content := make([]byte, 32)
	rand.Read(content)
	sum := md5.Sum(content)
	run := time.Now().UnixNano() % 100000
	// Endpoint text an attacker controls: a file name and a host name.
	file := fmt.Sprintf(`C:\Users\a\<img src=x onerror=alert(%d)>.txt`, run)
	host := fmt.Sprintf("<i>ws-%d</i>", run)
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.3333333333333333", Hostname: host, OS: "windows", Online: true,
		Files: []velotest.File{{Path: file, Size: 32, MD5: hex.EncodeToString(sum[:])}}})
	apiPath, _ := vr.WriteAPIConfig(dir, "velohunt")
	cfg := realIRISConfig(dir, url, key, adminKey, insecure, apiPath)
	cfg.Intake.Reconcile = "* * * * *"
	app := openTestApp(t, cfg)
	defer app.Close(context.Background())
	admin, _ := iris.New(iris.Options{URL: url, APIKey: adminKey, InsecureSkipVerify: insecure, Timeout: 30 * time.Second})
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt UI %d", run), "what the analyst sees", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	// Closed at the end, so that a later run's velohunt (another database)
	// does not hunt this run's IOCs again and rewrite their tabs.
	defer func() {
		for _, id := range []int64{cid} {
			admin.CloseCase(context.Background(), id)
		}
	}()
	types, _ := admin.IOCTypes(ctx)
	var md5Type int64
	for _, ty := range types {
		if ty.Name == "md5" {
			md5Type = ty.ID
		}
	}
	x, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: hex.EncodeToString(sum[:]), TypeID: md5Type, TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	app.Intake.RequestFullSync()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		events, _ := admin.ListEvents(ctx, cid)
		tab, _ := admin.IOCAttributes(ctx, cid, x.ID, cfg.Writeback.TabName)
		if len(events) > 0 && strings.HasPrefix(tab["Status"], "HIT") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit in IRIS after 3 minutes: %d events, tab %q", len(events), tab["Status"])
		}
		time.Sleep(time.Second)
	}

	// The browser.
	work := t.TempDir()
	script, _ := os.ReadFile("testdata/iris_ui.mjs")
	os.WriteFile(filepath.Join(work, "iris_ui.mjs"), script, 0o644)
	if err := os.Symlink(filepath.Join(pw, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "iris_ui.mjs")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "IRIS_URL="+strings.TrimRight(url, "/"), "IRIS_USER=administrator", "IRIS_PASSWORD="+password,
		fmt.Sprintf("CASE_ID=%d", cid), fmt.Sprintf("IOC_ID=%d", x.ID), "CHROMIUM="+os.Getenv("VELOHUNT_TEST_CHROMIUM"))
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("browser: %v\n%s", err, stderr)
	}
	var seen struct {
		Events  []string `json:"events"`
		IOC     []string `json:"ioc"`
		Assets  string   `json:"assets"`
		Dialogs int      `json:"dialogs"`
		Images  []string `json:"images"`
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	if seen.Dialogs != 0 {
		t.Fatalf("%d JavaScript dialogs opened: endpoint text ran as script", seen.Dialogs)
	}
	for _, src := range seen.Images {
		if src == "x" {
			t.Fatal("the timeline shows an <img> made from endpoint text")
		}
	}
	// Timeline: title and content show the file name with the documented
	// substitution (‹ ›), never eaten.
	shownFile := strings.NewReplacer("<", "‹", ">", "›").Replace(file)
	shownHost := strings.NewReplacer("<", "‹", ">", "›").Replace(host)
	events := strings.Join(seen.Events, "\n")
	if !strings.Contains(events, shownFile) || !strings.Contains(events, shownHost) {
		t.Fatalf("the timeline does not show %q and %q as velohunt wrote them:\n%s", shownFile, shownHost, events)
	}
	// The IOC dialog's tab: IRIS escapes tab fields, so the exact text shows.
	var tab string
	for _, v := range seen.IOC {
		tab += v + "\n"
	}
	if !strings.Contains(tab, file) || !strings.Contains(tab, host) {
		t.Fatalf("the IOC tab does not show %q and %q exactly:\n%s", file, host, tab)
	}
	// Assets: the host name as velohunt wrote it.
	if !strings.Contains(seen.Assets, shownHost) {
		t.Fatalf("the assets table does not show %q:\n%s", shownHost, seen.Assets)
	}
	t.Logf("timeline, IOC tab and assets show the planted names; %d dialogs", seen.Dialogs)
}
