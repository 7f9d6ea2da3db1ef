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

	"github.com/velohunt/velohunt/internal/config"
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
		Files: []velotest.File{{Path: file, Content: content}}})
	apiPath, _ := vr.WriteAPIConfig(dir, "velohunt")
	cfg := realIRISConfig(dir, url, key, adminKey, insecure, apiPath)
	cfg.Intake.Reconcile = "* * * * *"
	// The hit is collected: an evidence whose name and description carry
	// the endpoint's text, and a "collected" event.
	k := cfg.Hunting.Kinds["hash"]
	k.Collect = config.CollectKind{File: true}
	cfg.Hunting.Kinds["hash"] = k
	cfg.Writeback.TabMinInterval = 0
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
		evidences, _ := admin.ListEvidences(ctx, cid)
		tab, _ := admin.IOCAttributes(ctx, cid, x.ID, cfg.Writeback.TabName)
		if len(events) > 1 && len(evidences) > 0 && strings.HasPrefix(tab["Status"], "HIT") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit and evidence in IRIS after 3 minutes: %d events, %d evidences, tab %q", len(events), len(evidences), tab["Status"])
		}
		time.Sleep(time.Second)
	}

	waitDrained(t, app, time.Minute)

	seen := runIRISBrowser(t, url, password, pw, cid, x.ID, true, "", "")
	if seen.Dialogs != 0 {
		t.Fatalf("%d JavaScript dialogs opened: endpoint text ran as script", seen.Dialogs)
	}
	for _, img := range seen.Images {
		if img.Src == "x" || strings.Contains(strings.ToLower(img.HTML), "onerror") {
			t.Fatalf("the %s shows an <img> made from endpoint text: %s", img.Where, img.HTML)
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
	// Evidence list: the file's name as velohunt wrote it (‹ ›), as text.
	shownName := strings.NewReplacer("<", "‹", ">", "›").Replace(file[strings.LastIndex(file, `\`)+1:])
	if !strings.Contains(seen.Evidences, shownName) {
		t.Fatalf("the evidence list (/case/evidences) does not show %q:\n%s", shownName, seen.Evidences)
	}
	// Evidence dialog: the name field, and the description as IRIS renders
	// it (Markdown to HTML): the file path and host name as velohunt wrote
	// them (code blocks, with the ‹ › substitution), as text, no element
	// made from them.
	ev := seen.Evidence
	if ev == nil {
		t.Fatal("the evidence dialog was not read")
	}
	if ev.Inputs["filename"] != shownName {
		t.Fatalf("the evidence dialog's name field shows %q, want %q", ev.Inputs["filename"], shownName)
	}
	if !ev.PreviewShown {
		t.Fatal("the evidence dialog's description preview (#target_evidence_desc) is not displayed")
	}
	if !strings.Contains(ev.Preview, shownFile) || !strings.Contains(ev.Preview, shownHost) {
		t.Fatalf("the evidence dialog's description preview (#target_evidence_desc) does not show %q and %q as text:\n%s", shownFile, shownHost, ev.Preview)
	}
	for _, tag := range ev.PreviewTags {
		switch tag {
		case "img", "i", "script", "iframe", "svg", "object", "embed", "style", "form", "input":
			t.Fatalf("the evidence dialog's description preview (#target_evidence_desc) has a <%s> element (endpoint text became HTML); elements: %v\n%s", tag, ev.PreviewTags, ev.Preview)
		}
	}
	t.Logf("timeline, IOC tab, assets, evidence list and evidence dialog show the planted names; %d dialogs; preview elements %v", seen.Dialogs, ev.PreviewTags)
}

// irisSeen is what testdata/iris_ui.mjs read in the browser.
type irisSeen struct {
	Events    []string `json:"events"`
	IOC       []string `json:"ioc"`
	Assets    string   `json:"assets"`
	Evidences string   `json:"evidences"`
	Evidence  *struct {
		Inputs       map[string]string `json:"inputs"`
		Preview      string            `json:"preview"`
		PreviewTags  []string          `json:"previewTags"`
		PreviewShown bool              `json:"previewShown"`
	} `json:"evidence"`
	Dialogs int `json:"dialogs"`
	Images  []struct {
		Where string `json:"where"`
		Src   string `json:"src"`
		HTML  string `json:"html"`
	} `json:"images"`
}

// runIRISBrowser runs testdata/iris_ui.mjs in headless Chromium, logged
// in to IRIS at url as the administrator, on case cid and IOC iocID; with
// evidence, it reads the evidence list and dialog too. With shots set, the
// script saves its screenshots there, the IOC dialog on the tab tabName.
func runIRISBrowser(t *testing.T, url, password, pw string, cid, iocID int64, evidence bool, tabName, shots string) irisSeen {
	t.Helper()
	work := t.TempDir()
	script, err := os.ReadFile("testdata/iris_ui.mjs")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(work, "iris_ui.mjs"), script, 0o644)
	if err := os.Symlink(filepath.Join(pw, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "iris_ui.mjs")
	cmd.Dir = work
	ev := "0"
	if evidence {
		ev = "1"
	}
	cmd.Env = append(os.Environ(), "IRIS_URL="+strings.TrimRight(url, "/"), "IRIS_USER=administrator", "IRIS_PASSWORD="+password,
		fmt.Sprintf("CASE_ID=%d", cid), fmt.Sprintf("IOC_ID=%d", iocID), "CHROMIUM="+os.Getenv("VELOHUNT_TEST_CHROMIUM"),
		"EVIDENCE="+ev, "TAB_NAME="+tabName, "SCREENSHOT_DIR="+shots)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("browser: %v\n%s", err, stderr)
	}
	var seen irisSeen
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	return seen
}
