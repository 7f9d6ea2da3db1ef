package main

// The end-to-end scenario against a real IRIS and a real Velociraptor with
// a client enrolled on this machine. It runs only when asked:
//
//	VELOHUNT_TEST_E2E=1
//	VELOHUNT_TEST_IRIS_URL, VELOHUNT_TEST_IRIS_KEY, VELOHUNT_TEST_IRIS_ADMIN_KEY
//	VELOHUNT_TEST_IRIS_INSECURE=1 (self-signed IRIS)
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG (roles investigator,artifact_writer)
//
// It plants a file with a known SHA256 in a temporary folder, adds that hash
// as an IOC through IRIS's API, and waits until IRIS shows the host as an
// asset, a timeline event and a HIT on the IOC's tab.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	sum := sha256.Sum256(secret)
	hash := hex.EncodeToString(sum[:])
	globs, _ := json.Marshal([]string{filepath.ToSlash(filepath.Dir(planted)) + "/**"})

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
	hashKind := cfg.Hunting.Kinds["hash"]
	hashKind.Parameters = map[string]string{"TargetGlobs": string(globs)}
	cfg.Hunting.Kinds["hash"] = hashKind
	cfg.Intake.Reconcile = "* * * * *" // no webhook from the real IRIS here: the reconcile finds the IOC
	cfg.Watcher.Schedule = "@every 5s"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	app := &App{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := app.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())

	admin, _ := iris.New(iris.Options{URL: cfg.IRIS.URL, APIKey: cfg.IRIS.AdminAPIKey.Reveal(), InsecureSkipVerify: cfg.IRIS.InsecureSkipVerify})
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt e2e %d", time.Now().Unix()), "end-to-end test", 1, "velohunt-e2e")
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
	var sha int64
	for _, ty := range types {
		if ty.Name == "sha256" {
			sha = ty.ID
		}
	}
	x, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: hash, TypeID: sha, TLPID: 2, Description: "planted by velohunt's e2e test"})
	if err != nil {
		t.Fatal(err)
	}
	app.Intake.RequestFullSync()

	deadline := time.Now().Add(5 * time.Minute)
	for {
		assets, _ := admin.ListAssets(ctx, cid)
		events, _ := admin.ListEvents(ctx, cid)
		tab, _ := admin.IOCAttributes(ctx, cid, x.ID, cfg.Writeback.TabName)
		if len(assets) == 1 && len(events) >= 1 && strings.HasPrefix(tab["Status"], "HIT") {
			if !strings.Contains(tab["Hits"], "velohunt-e2e.bin") {
				t.Fatalf("the tab's hits do not name the planted file: %q", tab["Hits"])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes: %d asset(s), %d event(s), tab status %q", len(assets), len(events), tab["Status"])
		}
		time.Sleep(5 * time.Second)
	}
}
