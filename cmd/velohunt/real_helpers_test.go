package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// loopbackConnection opens a live TCP connection to a listener on the
// loopback address ip, for the Network artifact to find; both close when
// the test ends. It returns the listener's port.
func loopbackConnection(t *testing.T, ip string) int {
	t.Helper()
	lis, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return lis.Addr().(*net.TCPAddr).Port
}

// realIRISEnv is the real IRIS named by the VELOHUNT_TEST_IRIS_* variables.
type realIRISEnv struct {
	url, key, adminKey string // key: the (non-admin) service user's
	insecure           bool
}

// needRealIRIS reads the VELOHUNT_TEST_IRIS_* variables, and skips the test
// when they do not name a real IRIS.
func needRealIRIS(t testing.TB) realIRISEnv {
	t.Helper()
	e := realIRISEnv{url: os.Getenv("VELOHUNT_TEST_IRIS_URL"), key: os.Getenv("VELOHUNT_TEST_IRIS_KEY"),
		adminKey: os.Getenv("VELOHUNT_TEST_IRIS_ADMIN_KEY"), insecure: os.Getenv("VELOHUNT_TEST_IRIS_INSECURE") == "1"}
	if e.url == "" || e.key == "" || e.adminKey == "" {
		t.Skip("needs a real IRIS: set VELOHUNT_TEST_IRIS_URL, VELOHUNT_TEST_IRIS_KEY and VELOHUNT_TEST_IRIS_ADMIN_KEY")
	}
	return e
}

// realIRISConfig is the configuration of a velohunt against a real IRIS
// (the VELOHUNT_TEST_IRIS_* values) and the Velociraptor of apiPath, with
// a database in dir and short loop intervals for tests.
func realIRISConfig(dir, url, key, adminKey string, insecure bool, apiPath string) config.Config {
	cfg := config.Default()
	cfg.Database = filepath.Join(dir, "v.db")
	cfg.Listen = "127.0.0.1:0"
	cfg.IRIS.URL, cfg.IRIS.InsecureSkipVerify = url, insecure
	cfg.IRIS.APIKey, cfg.IRIS.AdminAPIKey = config.Secret(key), config.Secret(adminKey)
	cfg.IRIS.SetupOnStart = true
	cfg.Webhook.Secret = config.Secret(fmt.Sprintf("velohunt-test-secret-%d", time.Now().UnixNano()))
	cfg.Velociraptor.Servers = []config.Server{{Name: "sim", APIConfig: apiPath}}
	cfg.Hunting.BatchWindow = config.Duration(time.Second)
	cfg.Watcher.Schedule = "@every 1s"
	return cfg
}

// openTestApp validates cfg and opens velohunt with it, its log discarded.
// The caller closes it.
func openTestApp(t testing.TB, cfg config.Config) *App {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	app := &App{Config: cfg, Logger: slog.New(slog.NewTextHandler(realTestLog(), nil))}
	if err := app.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every run of the real-server tests is one velohunt to the IRIS they
	// share: IRIS keeps one row per IOC value, so a later run meets the
	// tabs of an earlier one, which another instance would leave alone.
	id := os.Getenv("VELOHUNT_TEST_INSTANCE_ID")
	if id == "" {
		id = "vi-7e57000000000001"
	}
	if cur, _ := app.Store.ReadInstanceID(context.Background()); cur != id {
		if err := app.Store.AdoptInstanceID(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	return app
}

// waitDrained waits until velohunt's outbox is empty (every IRIS write
// done) and fails on a parked write.
func waitDrained(t *testing.T, app *App, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		st, _ := app.Store.OutboxStats(ctx)
		if st.Parked != 0 {
			parked, _ := app.Store.ParkedWrites(ctx, 0, 5)
			t.Fatalf("parked writes: %+v", parked)
		}
		if st.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained after %s: %+v", within, st)
		}
		time.Sleep(time.Second)
	}
}

// stopRealHunts stops every hunt velohunt started on a real Velociraptor.
// velohunt's hunts run for a week by design: left running, every client
// that enrols later (a test's late clients, the next run's) would run them
// all first. Call it before the app closes.
func stopRealHunts(app *App) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hunts, _ := app.Store.RecentHunts(ctx, 1000)
	for _, h := range hunts {
		if cl := app.VR[h.Server]; cl != nil && h.VRHuntID != "" {
			cl.StopHunt(ctx, h.Org, h.VRHuntID)
		}
	}
}

// realTestLog is where the real-server tests' velohunt logs:
// VELOHUNT_TEST_LOG names a file to append to, else nowhere.
func realTestLog() io.Writer {
	if p := os.Getenv("VELOHUNT_TEST_LOG"); p != "" {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
			return f
		}
	}
	return io.Discard
}

// realIRISRig is a velohunt serving a real IRIS (the VELOHUNT_TEST_IRIS_*
// variables), whose webhooks module posts to it, with one simulated
// Velociraptor endpoint.
type realIRISRig struct {
	env   realIRISEnv
	r     *realIRIS
	admin *iris.Client
	app   *App
	cfg   config.Config
}

// startRealIRISRig starts the rig (skipping the test without a real IRIS);
// everything stops, and the webhooks module is put back, when the test
// ends.
func startRealIRISRig(t *testing.T, ep velotest.Endpoint, tune func(*config.Config)) *realIRISRig {
	t.Helper()
	g := &realIRISRig{env: needRealIRIS(t)}
	g.r = newRealIRIS(t, g.env.url, g.env.adminKey, g.env.insecure)
	g.admin, _ = iris.New(iris.Options{URL: g.env.url, APIKey: g.env.adminKey, InsecureSkipVerify: g.env.insecure, Timeout: 30 * time.Second})
	dir := t.TempDir()
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vr.Close)
	vr.AddEndpoint(ep)
	apiPath, err := vr.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	g.cfg = realIRISConfig(dir, g.env.url, g.env.key, g.env.adminKey, g.env.insecure, apiPath)
	if tune != nil {
		tune(&g.cfg)
	}
	g.app = openTestApp(t, g.cfg)
	t.Cleanup(func() { g.app.Close(context.Background()) })
	t.Cleanup(g.r.webhooksTo(g.app.Addr(), g.cfg.Webhook.Secret.Reveal()))
	return g
}

// newCase adds an open case, closed when the test ends.
func (g *realIRISRig) newCase(t *testing.T, name string) int64 {
	t.Helper()
	id, err := g.admin.AddCase(context.Background(), fmt.Sprintf("%s %d", name, time.Now().UnixNano()), "velohunt real-IRIS test", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.admin.CloseCase(context.Background(), id) })
	return id
}

// typeID is the id of an IOC type of the real IRIS.
func (g *realIRISRig) typeID(t *testing.T, name string) int64 {
	t.Helper()
	types, _ := g.admin.IOCTypes(context.Background())
	for _, ty := range types {
		if ty.Name == name {
			return ty.ID
		}
	}
	t.Fatalf("IRIS has no IOC type %s", name)
	return 0
}

// startRealVRDemo starts the demo's simulated IRIS with velohunt hunting on
// the real Velociraptor of apiCfg (server "real", the default), tuned by
// tune; when the test ends velohunt's hunts there are stopped and the demo
// closes.
func startRealVRDemo(t *testing.T, dir, apiCfg string, tune func(*config.Config)) *demo {
	t.Helper()
	d, err := startDemoWith(context.Background(), dir, io.Discard, nil, func(c *config.Config, _ *velotest.Server) {
		c.Velociraptor.Servers = []config.Server{{Name: "real", APIConfig: apiCfg}}
		c.Velociraptor.Default = config.Target{Server: "real"}
		tune(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	t.Cleanup(func() { stopRealHunts(d.App) })
	return d
}

// firstHitAt is when velohunt recorded the first hit of an IRIS IOC (zero
// while there is none).
func firstHitAt(ctx context.Context, app *App, irisIOC int64) time.Time {
	if rows, _ := app.Store.FindIOCs(ctx, irisIOC); len(rows) > 0 {
		if d, _ := app.Store.FindTabData(ctx, rows[0].ID, 10); len(d.Cases) > 0 && len(d.Cases[0].Hits) > 0 {
			return d.Cases[0].Hits[0].FirstSeen
		}
	}
	return time.Time{}
}
