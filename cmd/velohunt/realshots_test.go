package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestRealIRISScreenshots: the README's screenshots, taken in the real
// IRIS web UI (the browser of TestRealIRISUI, same variables). A case as
// an analyst would have it: a SHA-256 IOC and a filename IOC of a file
// found on two of three simulated Windows workstations, the file collected
// (hash kind) into two IRIS evidences. The browser reads the timeline, the
// IOC dialog, the assets and the evidences; with
// VELOHUNT_TEST_SCREENSHOTS=<dir> it saves there timeline.png,
// ioc-tab.png, assets.png, evidence.png and evidence-dialog.png
// (docs/screenshots in the repository).
func TestRealIRISScreenshots(t *testing.T) {
	password, pw := os.Getenv("VELOHUNT_TEST_IRIS_ADMIN_PASSWORD"), os.Getenv("VELOHUNT_TEST_PLAYWRIGHT")
	if password == "" || pw == "" {
		t.Skip("needs a real IRIS and a browser: set the VELOHUNT_TEST_IRIS_* variables, VELOHUNT_TEST_IRIS_ADMIN_PASSWORD and VELOHUNT_TEST_PLAYWRIGHT")
	}
	env := needRealIRIS(t)
	shots := os.Getenv("VELOHUNT_TEST_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()

	// The file: a small "executable", unique to the run so that its hash
	// IOC is new in IRIS.
	content := append([]byte("MZ\x90\x00invoice viewer 2.1 "), make([]byte, 4096)...)
	rand.Read(content[len(content)-64:])
	sum := sha256.Sum256(content)
	const name = "invoice_viewer.exe"
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.4f1c2a9e7b3d5a10", Hostname: "ws-finance-07", OS: "windows", Online: true, LastIP: "10.20.7.41",
		Files: []velotest.File{{Path: `C:\Users\jdoe\AppData\Local\Temp\` + name, Content: content}}})
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.8b2e6d0f1a9c4e37", Hostname: "ws-finance-12", OS: "windows", Online: true, LastIP: "10.20.7.58",
		Files: []velotest.File{{Path: `C:\Users\mbaker\Downloads\` + name, Content: content}}})
	vr.AddEndpoint(velotest.Endpoint{ClientID: "C.1d7a3f5e9b0c2d64", Hostname: "ws-hr-03", OS: "windows", Online: true, LastIP: "10.20.9.17"})
	apiPath, _ := vr.WriteAPIConfig(dir, "velohunt")
	cfg := realIRISConfig(dir, env.url, env.key, env.adminKey, env.insecure, apiPath)
	cfg.Intake.Reconcile = "* * * * *"
	cfg.Velociraptor.Servers[0].Name = "main"
	cfg.Velociraptor.Servers[0].GUIURL = "https://velociraptor.corp.example:8889"
	k := cfg.Hunting.Kinds["hash"]
	k.Collect = config.CollectKind{File: true}
	cfg.Hunting.Kinds["hash"] = k
	cfg.Writeback.TabMinInterval = 0
	admin, _ := iris.New(iris.Options{URL: env.url, APIKey: env.adminKey, InsecureSkipVerify: env.insecure, Timeout: 30 * time.Second})
	cid, err := admin.AddCase(ctx, "Phishing: fake invoice viewer on finance workstations",
		"Mail 'Overdue invoice #4471' delivered to the finance team; its attachment drops invoice_viewer.exe.", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	// Closed at the end: a later run's velohunt does not hunt it again.
	defer admin.CloseCase(context.Background(), cid)
	hash, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: hex.EncodeToString(sum[:]), TypeID: iocTypeID(t, admin, "sha256"), TLPID: 2,
		Description: "SHA-256 of invoice_viewer.exe, dropped by the attachment of the phishing mail"})
	if err != nil {
		t.Fatal(err)
	}
	fileIOC, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: name, TypeID: iocTypeID(t, admin, "filename"), TLPID: 2,
		Description: "File name of the dropper"})
	if err != nil {
		t.Fatal(err)
	}
	// IRIS keeps one IOC per value: the file name's tab may hold what
	// another velohunt instance (another test's) wrote, which this one
	// leaves alone. Blanked, it is this run's to write.
	if tab, err := admin.IOCAttributes(ctx, cid, fileIOC.ID, cfg.Writeback.TabName); err == nil && len(tab) > 0 {
		blank := map[string]string{}
		for f := range tab {
			blank[f] = ""
		}
		if err := admin.UpdateIOCAttributes(ctx, cid, fileIOC.ID, cfg.Writeback.TabName, blank); err != nil {
			t.Fatal(err)
		}
	}
	app := openTestApp(t, cfg)
	defer app.Close(context.Background())
	app.Intake.RequestFullSync()

	// Both IOCs hit on both hosts, the file collected from each.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		evidences, _ := admin.ListEvidences(ctx, cid)
		events, _ := admin.ListEvents(ctx, cid)
		collected := 0
		for _, e := range events {
			if strings.Contains(e.Tags, "collected") {
				collected++
			}
		}
		hashTab, _ := admin.IOCAttributes(ctx, cid, hash.ID, cfg.Writeback.TabName)
		fileTab, _ := admin.IOCAttributes(ctx, cid, fileIOC.ID, cfg.Writeback.TabName)
		if len(evidences) == 2 && collected == 2 && len(events) >= 6 &&
			strings.HasPrefix(hashTab["Status"], "HIT") && strings.HasPrefix(fileTab["Status"], "HIT") &&
			strings.Count(hashTab["Hits"], "collected: SHA-256") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the case is not complete after 3 minutes: %d evidences, %d events (%d collected), tabs %q / %q\n%s\n%s",
				len(evidences), len(events), collected, hashTab["Status"], fileTab["Status"], hashTab["Last update"], fileTab["Last update"]+"\n"+hashTab["Hits"])
		}
		time.Sleep(time.Second)
	}
	waitDrained(t, app, time.Minute)

	seen := runIRISBrowser(t, env.url, password, pw, cid, hash.ID, true, cfg.Writeback.TabName, shots)
	events := strings.Join(seen.Events, "\n")
	for _, want := range []string{"ws-finance-07", "ws-finance-12", `C:\Users\jdoe\AppData\Local\Temp\` + name} {
		if !strings.Contains(events, want) {
			t.Errorf("the timeline does not show %q", want)
		}
	}
	for _, host := range []string{"ws-finance-07", "ws-finance-12"} {
		if !strings.Contains(seen.Assets, host) {
			t.Errorf("the assets table does not show %q", host)
		}
	}
	if !strings.Contains(seen.Evidences, name) || seen.Evidence == nil || seen.Evidence.Inputs["filename"] != name {
		t.Errorf("the evidence list or dialog does not show %s:\n%s", name, seen.Evidences)
	}
	if seen.Dialogs != 0 {
		t.Errorf("%d JavaScript dialogs opened", seen.Dialogs)
	}
	if shots != "" {
		for _, f := range []string{"timeline.png", "ioc-tab.png", "assets.png", "evidence.png", "evidence-dialog.png"} {
			st, err := os.Stat(filepath.Join(shots, f))
			if err != nil {
				t.Errorf("screenshot %s: %v", f, err)
				continue
			}
			t.Logf("%s: %d bytes", f, st.Size())
		}
	}
	t.Logf("case %d: %d events, IOC tab %d fields; screenshots in %q", cid, len(seen.Events), len(seen.IOC), shots)
}
