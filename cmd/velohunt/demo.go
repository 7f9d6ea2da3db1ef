package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// DemoCommand runs the real pipeline against a simulated IRIS and a
// simulated Velociraptor, with a SQLite file in a temporary directory.
type DemoCommand struct {
	Stdout, Stderr io.Writer
}

// demoIOC is an IOC the demo adds to its case.
type demoIOC struct{ typ, value string }

// Evidence planted on the simulated endpoints, and IOCs that find it.
var (
	demoInvoiceMD5 = "3b5d5c3712955042212316173ccf37be"
	demoInvoiceSHA = "0f3a6b1c9e2d4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
	demoImplantMD5 = "6f1ed002ab5595859014ebf0951522d9"
	demoImplantSHA = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
	demoCleanSHA1  = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
	demoC2IP       = "203.0.113.66"
	demoCases      = []demoIOC{
		{"md5", demoInvoiceMD5},
		{"sha256", demoImplantSHA},
		{"filename|sha1", "dropper.dll|" + demoCleanSHA1},
		{"ip-dst", demoC2IP},
		{"ip-dst|port", "198.51.100.23|8443"},
		{"domain", "update.evil-cdn.example"},
		{"url", "https://evil-cdn.example/stage2/payload.bin"},
		{"filename", "invoice.pdf.exe"},
		{"file-path", "/tmp/.x/implant"},
		{"md5", "not-a-hash"},
		{"email-src", "attacker@evil-cdn.example"},
	}
)

func demoEndpoints() []velotest.Endpoint {
	t0 := time.Date(2026, 11, 20, 8, 14, 55, 0, time.UTC)
	return []velotest.Endpoint{
		{ClientID: "C.4f1e2d3c4b5a6978", Hostname: "WS-FINANCE-01", FQDN: "ws-finance-01.corp.example", OS: "windows",
			Release: "Windows 11 Enterprise", LastIP: "10.20.1.15", Online: true,
			Files: []velotest.File{{Path: `C:\Users\alice\Downloads\invoice.pdf.exe`, Size: 482304, MD5: demoInvoiceMD5, SHA256: demoInvoiceSHA, Mtime: t0},
				{Path: `C:\Users\alice\Downloads\invoice.pdf.exe`, Size: 482304, MD5: demoInvoiceMD5, SHA256: demoInvoiceSHA, Process: true, Pid: 4242}},
			Conns: []velotest.Conn{{Pid: 4242, Process: "invoice.pdf.exe", LocalIP: "10.20.1.15", LocalPort: 50112,
				RemoteIP: demoC2IP, RemotePort: 443, Status: "ESTABLISHED", Time: t0.Add(40 * time.Second)}},
			DNS: []velotest.DNSEntry{{Name: "update.evil-cdn.example", Record: demoC2IP}}},
		{ClientID: "C.8a7b6c5d4e3f2a1b", Hostname: "srv-web-02", FQDN: "srv-web-02.dmz.example", OS: "linux",
			Release: "Debian 12", LastIP: "10.30.0.8", Online: true,
			Files: []velotest.File{{Path: "/tmp/.x/implant", Size: 1337, SHA256: demoImplantSHA, MD5: demoImplantMD5, Mtime: t0.Add(-26 * time.Hour)}},
			Conns: []velotest.Conn{{Pid: 911, Process: "implant", LocalIP: "10.30.0.8", LocalPort: 41000,
				RemoteIP: "198.51.100.23", RemotePort: 8443, Status: "ESTABLISHED", Time: t0.Add(-25 * time.Hour)}}},
		{ClientID: "C.0123456789abcdef", Hostname: "mac-dev-03", OS: "darwin", Release: "14.6", LastIP: "10.20.7.3", Online: true},
	}
}

// Run implements `velohunt demo`.
func (c *DemoCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-demo", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	verbose := fs.Bool("v", false, "show the service's log")
	keep := fs.Bool("keep", false, "keep the temporary directory (database, api config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "velohunt-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	logOut := io.Discard
	if *verbose {
		logOut = c.Stderr
	}
	d, err := startDemo(ctx, dir, logOut)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Play(ctx, c.Stdout)
}

// demo holds the simulators and the app.
type demo struct {
	IRIS  *iristest.Server
	VR    *velotest.Server
	App   *App
	Admin *iris.Client
	dir   string
	close sync.Once
}

func startDemo(ctx context.Context, dir string, logOut io.Writer) (*demo, error) {
	return startDemoWith(ctx, dir, logOut, demoEndpoints(), nil)
}

// startDemoWith starts the simulators with the given endpoints and the app
// with the demo configuration, adjusted by tune (benchmarks use it).
func startDemoWith(ctx context.Context, dir string, logOut io.Writer, endpoints []velotest.Endpoint, tune func(*config.Config, *velotest.Server)) (*demo, error) {
	d := &demo{IRIS: iristest.Start(), dir: dir}
	var err error
	if d.VR, err = velotest.Start(); err != nil {
		d.IRIS.Close()
		return nil, err
	}
	for _, ep := range endpoints {
		d.VR.AddEndpoint(ep)
	}
	apiPath, err := d.VR.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		d.Close()
		return nil, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	cfg := config.Default()
	cfg.Database = filepath.Join(dir, "velohunt.db")
	cfg.Listen = "127.0.0.1:0"
	cfg.IRIS.URL = d.IRIS.URL()
	cfg.IRIS.APIKey = "velohunt-key"
	cfg.IRIS.AdminAPIKey = "admin-key"
	cfg.IRIS.SetupOnStart = true
	cfg.Webhook.Secret = config.Secret(hex.EncodeToString(secret))
	cfg.Velociraptor.Servers = []config.Server{{Name: "demo", APIConfig: apiPath, GUIURL: "https://velociraptor.demo.invalid:8889"}}
	cfg.Hunting.BatchWindow = config.Duration(time.Second)
	cfg.Intake.SyncDelay = config.Duration(100 * time.Millisecond)
	cfg.Intake.Reconcile = "* * * * *"
	cfg.Watcher.Schedule = "@every 1s"
	// A hash hit collects the matched file: the case gets an IRIS evidence.
	hash := cfg.Hunting.Kinds["hash"]
	hash.Collect = config.CollectKind{File: true}
	cfg.Hunting.Kinds["hash"] = hash
	if tune != nil {
		tune(&cfg, d.VR)
	}
	if err := cfg.Validate(); err != nil {
		d.Close()
		return nil, err
	}
	d.App = &App{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := d.App.Open(ctx); err != nil {
		d.App = nil
		d.Close()
		return nil, err
	}
	d.IRIS.SetWebhook("http://"+d.App.Addr()+cfg.Webhook.Path, map[string]string{"Authorization": "Bearer " + cfg.Webhook.Secret.Reveal()})
	d.Admin, err = iris.New(iris.Options{URL: d.IRIS.URL(), APIKey: "admin-key"})
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close stops everything.
func (d *demo) Close() {
	d.close.Do(func() {
		if d.App != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			d.App.Close(ctx)
			cancel()
		}
		if d.VR != nil {
			d.VR.Close()
		}
		d.IRIS.Close()
	})
}

// Play creates a case with IOCs through IRIS's API and reports what
// velohunt did with them.
func (d *demo) Play(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "velohunt demo\n  simulated IRIS 2.4         %s\n  simulated Velociraptor     %s (%d endpoints online)\n  velohunt webhook endpoint  http://%s%s/{create,update,manual}\n\n",
		d.IRIS.URL(), d.VR.Addr(), len(demoEndpoints()), d.App.Addr(), d.App.Config.Webhook.Path)
	cid, err := d.Admin.AddCase(ctx, "Demo - suspected intrusion", "Phishing attachment followed by C2 traffic", 1, "demo")
	if err != nil {
		return fmt.Errorf("create case: %w", err)
	}
	fmt.Fprintf(w, "An analyst opens case #%d and adds %d IOCs in IRIS; IRIS's webhooks module notifies velohunt.\n\n", cid, len(demoCases))
	for _, x := range demoCases {
		if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: x.value, TypeID: iristest.TypeID(x.typ), TLPID: 2}); err != nil {
			return fmt.Errorf("add IOC: %w", err)
		}
	}
	if err := d.waitHunting(ctx, cid, len(demoCases), 30*time.Second); err != nil {
		return err
	}
	if err := d.report(ctx, w, cid); err != nil {
		return err
	}
	if err := d.waitWritten(ctx, 30*time.Second); err != nil {
		return err
	}
	return d.reportIRIS(ctx, w, cid)
}

// waitWritten waits for exact completion: the watcher read every row each
// hunt served (generated rows included), and every hit is in IRIS (no IRIS
// write pending or parked, and the tab of every IOC hit written since its
// newest hit). A momentarily empty outbox is not completion: rows may
// still be unread, or their tabs not queued yet. On timeout the error says
// what is missing.
func (d *demo) waitWritten(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing, err := d.missing(ctx)
		if err != nil || missing == "" {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("velohunt did not finish writing the hits into IRIS within %s: %s", timeout, missing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// missing says what is not done yet ("" when everything is).
func (d *demo) missing(ctx context.Context) (string, error) {
	var out []string
	stored, err := d.App.Store.RecentHunts(ctx, 100000)
	if err != nil {
		return "", err
	}
	byVR := map[string]store.Hunt{}
	for _, h := range stored {
		byVR[h.VRHuntID] = h
	}
	for _, h := range d.VR.Hunts() {
		sh, ok := byVR[h.ID]
		if !ok {
			out = append(out, fmt.Sprintf("hunt %s not recorded", h.ID))
			continue
		}
		p, err := d.App.Store.HuntProgress(ctx, sh.ID)
		if err != nil {
			return "", err
		}
		if served := int64(h.TotalRows()); p.RowsRead < served {
			out = append(out, fmt.Sprintf("hunt %s: %d of %d rows read", h.ID, p.RowsRead, served))
		}
	}
	ob, err := d.App.Store.OutboxStats(ctx)
	if err != nil {
		return "", err
	}
	if ob.Pending > 0 {
		out = append(out, fmt.Sprintf("%d IRIS writes pending %v (hits waiting: %d)", ob.Pending, ob.ByKind, ob.HitsWaiting))
	}
	if ob.Parked > 0 {
		// Never written: no wait will complete.
		parked, _ := d.App.Store.ParkedWrites(ctx, 0, 5)
		return "", fmt.Errorf("%d IRIS writes parked, e.g. %+v", ob.Parked, parked)
	}
	if live, err := d.App.Store.LiveCollections(ctx); err != nil {
		return "", err
	} else if len(live) > 0 {
		out = append(out, fmt.Sprintf("%d follow-up collection(s) not ended", len(live)))
	}
	if pending, err := d.App.Store.PendingCollectHits(ctx, 1); err != nil {
		return "", err
	} else if len(pending) > 0 {
		out = append(out, "hits the collector has not decided on")
	}
	stale, err := d.App.Store.StaleTabs(ctx, 10)
	if err != nil {
		return "", err
	}
	if len(stale) > 0 {
		out = append(out, fmt.Sprintf("tabs of IRIS IOCs %v not written since their last hit", stale))
	}
	return strings.Join(out, "; "), nil
}

// reportIRIS prints what velohunt wrote into the simulated IRIS.
func (d *demo) reportIRIS(ctx context.Context, w io.Writer, cid int64) error {
	assets := d.IRIS.Assets(cid)
	fmt.Fprintf(w, "\nThe watcher read the hunts' results; velohunt wrote into IRIS case #%d:\n", cid)
	fmt.Fprintf(w, "  %d asset(s), each linked to the IOCs found on it:\n", len(assets))
	for _, a := range assets {
		fmt.Fprintf(w, "    %-16s type=%d  ioc_links=%v  %s\n", a.Name, a.TypeID, a.IOCLinks, clip(a.Description, 70))
	}
	events := d.IRIS.Events(cid)
	fmt.Fprintf(w, "  %d timeline event(s), one per hit and one per hit's collection:\n", len(events))
	for _, e := range events {
		fmt.Fprintf(w, "    %s  %s\n", e.Date, clip(e.Title, 100))
	}
	evidences, err := d.Admin.ListEvidences(ctx, cid)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  %d evidence(s), the files the hash hits collected (the bytes stay in Velociraptor):\n", len(evidences))
	for _, e := range evidences {
		fmt.Fprintf(w, "    %-18s %8d bytes  SHA-256 %s\n", clip(e.Filename, 18), e.Size, e.Hash)
	}
	rows, err := d.App.Store.CaseIOCs(ctx, cid)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.TypeName != "md5" || r.State == store.StateRefused {
			continue
		}
		i, _ := d.IRIS.IOCByID(r.IRISID)
		tab, _ := i.Custom[d.App.Config.Writeback.TabName].(map[string]any)
		fmt.Fprintf(w, "\nThe %q tab of IOC %d (%s %s) in IRIS:\n", d.App.Config.Writeback.TabName, r.IRISID, r.TypeName, r.Value)
		for _, f := range []string{"Status", "Hosts hit", "Hunts", "Hits", "Last update"} {
			field, _ := tab[f].(map[string]any)
			v, _ := field["value"].(string)
			fmt.Fprintf(w, "  [%s]\n", f)
			for _, line := range strings.Split(strings.TrimRight(v, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
		break
	}
	for _, r := range rows {
		if r.State != store.StateRefused {
			continue
		}
		i, _ := d.IRIS.IOCByID(r.IRISID)
		tab, _ := i.Custom[d.App.Config.Writeback.TabName].(map[string]any)
		field, _ := tab["Status"].(map[string]any)
		fmt.Fprintf(w, "\nStatus on the tab of refused IOC %d (%s %q): %v\n", r.IRISID, r.TypeName, r.Value, field["value"])
		break
	}
	return nil
}

// waitHunting waits until every IOC of the case is hunted or refused and
// no launch is pending.
func (d *demo) waitHunting(ctx context.Context, cid int64, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		rows, err := d.App.Store.CaseIOCs(ctx, cid)
		if err != nil {
			return err
		}
		queued := 0
		for _, r := range rows {
			if r.State == store.StateQueued {
				queued++
			}
		}
		st, err := d.App.Store.Stats(ctx)
		if err != nil {
			return err
		}
		// Hunted means covered by a started hunt: none left to launch.
		unstarted := st.Hunts[store.HuntPlanned] + st.Hunts[store.HuntCreated]
		if len(rows) == n && queued == 0 && unstarted == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("velohunt did not hunt the IOCs within %s: %d of %d IOCs known, %d queued, %d hunts not started",
				timeout, len(rows), n, queued, unstarted)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *demo) report(ctx context.Context, w io.Writer, cid int64) error {
	hunts := d.VR.Hunts()
	fmt.Fprintf(w, "Hunts started in Velociraptor (created paused, then started, so online clients join within seconds):\n")
	for _, h := range hunts {
		fmt.Fprintf(w, "  %s  %-24s state=%-7s scheduled=%d finished=%d rows=%d\n      %s\n      IOCs=%s\n",
			h.ID, h.Artifact, h.State, len(h.Scheduled), len(h.Finished), len(h.Rows), h.Description, h.Params["IOCs"])
	}
	rows, err := d.App.Store.CaseIOCs(ctx, cid)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nIOCs of case #%d in velohunt:\n", cid)
	for _, r := range rows {
		line := fmt.Sprintf("  %-14s %-46q %-8s", r.TypeName, clip(r.Value, 44), r.State)
		if r.Reason != "" {
			line += " refused: " + r.Reason
		} else {
			line += fmt.Sprintf(" hunted as %s %q", r.Kind, r.HuntValue)
		}
		fmt.Fprintln(w, line)
	}
	return nil
}
