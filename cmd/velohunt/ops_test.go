package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/asnobody"
	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/testlog"
)

// writeConfig writes cfg's essentials as a configuration file for the
// commands that read one, with the database at db.
func writeConfig(t *testing.T, cfg config.Config, db string) string {
	t.Helper()
	body := fmt.Sprintf(`database: %q
listen: %q
iris:
  url: %q
  api_key: %q
webhook:
  secret: %q
velociraptor:
  servers:
    - name: %q
      api_config: %q
`, db, "127.0.0.1:0", cfg.IRIS.URL, cfg.IRIS.APIKey.Reveal(), cfg.Webhook.Secret.Reveal(),
		cfg.Velociraptor.Servers[0].Name, cfg.Velociraptor.Servers[0].APIConfig)
	path := filepath.Join(t.TempDir(), "velohunt.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// demoWithConfig starts the demo (closed when the test ends) and writes a
// configuration file of it for the commands.
func demoWithConfig(t *testing.T) (*demo, string) {
	t.Helper()
	d, err := startDemo(context.Background(), t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, writeConfig(t, d.App.Config, d.App.Config.Database)
}

// playedDemo starts the demo and plays its scenario; the demo closes when
// the test ends (closing it earlier is fine).
func playedDemo(t *testing.T) *demo {
	t.Helper()
	ctx := context.Background()
	d, err := startDemo(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.Play(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	return d
}

// runCmd runs a velohunt command line and returns its exit code and output.
func runCmd(args ...string) (int, string) {
	var out bytes.Buffer
	code := run(context.Background(), args, &out, &out)
	return code, out.String()
}

func quietApp(cfg config.Config) *App {
	return &App{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestServeLock: a second serve on the same database exits naming the
// first; status still reads the database and says who holds it, and when
// the serve last finished a sync, a watcher pass and a write.
func TestServeLock(t *testing.T) {
	ctx := context.Background()
	d := playedDemo(t)
	second := quietApp(d.App.Config) // listen 127.0.0.1:0: another port
	err := second.Open(ctx)
	var locked *errLocked
	if !errors.As(err, &locked) {
		second.Close(ctx)
		t.Fatalf("second serve: err=%v, want the database in use", err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", os.Getpid()), "listening on " + d.App.Addr()} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not name the first serve (%s)", err, want)
		}
	}
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)
	code, out := runCmd("status", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("serve: running (pid %d, listening on %s", os.Getpid(), d.App.Addr())) {
		t.Fatalf("status while serve runs: code %d\n%s", code, out)
	}
	if line := out[strings.Index(out, "last finished:"):]; strings.Contains(line[:strings.Index(line, "\n")], "never") {
		t.Fatalf("status after the demo names work never done:\n%s", out)
	}
	code, body := httpGet(t, "http://"+d.App.Addr()+"/metrics")
	for _, want := range []string{"velohunt_build_info{goversion=", "velohunt_last_sync_timestamp_seconds 1",
		"velohunt_last_watcher_pass_timestamp_seconds 1", "velohunt_last_write_timestamp_seconds 1"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	d.Close()
	code, out = runCmd("status", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "serve: not running") {
		t.Fatalf("status after serve stopped: code %d\n%s", code, out)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzFailsWhenStoreFails: /readyz asks the store what the metrics
// ask, not only whether its connection is open.
func TestReadyzFailsWhenStoreFails(t *testing.T) {
	ctx := context.Background()
	d, err := startDemo(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if code, body := httpGet(t, "http://"+d.App.Addr()+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	raw, err := sql.Open("sqlite3", "file:"+d.App.Config.Database+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DROP TABLE inbox`); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, "http://"+d.App.Addr()+"/readyz")
	if code != 503 || !strings.Contains(body, `"store"`) {
		t.Fatalf("/readyz with a failing store: %d %s", code, body)
	}
	if _, body := httpGet(t, "http://"+d.App.Addr()+"/metrics"); !strings.Contains(body, "velohunt_store_up 0") {
		t.Fatal("velohunt_store_up is not 0")
	}
}

// TestServeStartRefusals: what stops a serve at start, and what it leaves
// behind (nothing).
func TestServeStartRefusals(t *testing.T) {
	ctx := context.Background()
	d, err := startDemo(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	t.Run("DamagedDatabase", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "v.db")
		db, err := store.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			if err := db.UpsertCase(ctx, ioc.Case{ID: int64(i + 1), Name: strings.Repeat("x", 200), Open: true}, ioc.Route{Server: "demo"}); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		fi, _ := f.Stat()
		f.WriteAt(bytes.Repeat([]byte{0x5A}, 3*4096), fi.Size()/2/4096*4096)
		f.Close()
		cfg := d.App.Config
		cfg.Database = path
		app := quietApp(cfg)
		err = app.Open(ctx)
		if err == nil {
			app.Close(ctx)
			t.Fatal("a damaged database was opened")
		}
		if !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "velohunt backup") {
			t.Fatalf("err=%v", err)
		}
		if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
			t.Fatal("the lock file was left behind")
		}
	})
	t.Run("WrongIRISKey", func(t *testing.T) {
		for _, uid := range []int64{0, 7} {
			cfg := d.App.Config
			cfg.Database = filepath.Join(t.TempDir(), "v.db")
			cfg.IRIS.APIKey = "wrong-key"
			cfg.IRIS.SetupOnStart = false
			cfg.IRIS.ServiceUserID = uid
			app := quietApp(cfg)
			err := app.Open(ctx)
			if err == nil {
				app.Close(ctx)
				t.Fatalf("service_user_id %d: serve started with a key IRIS refuses", uid)
			}
			if !strings.Contains(err.Error(), "IRIS refused velohunt's API key (HTTP 401)") || strings.Contains(err.Error(), "wrong-key") {
				t.Fatalf("service_user_id %d: err=%v", uid, err)
			}
		}
	})
	t.Run("FailedBind", func(t *testing.T) {
		cfg := d.App.Config
		cfg.Database = filepath.Join(t.TempDir(), "v.db")
		cfg.Listen = d.App.Addr() // in use
		app := quietApp(cfg)
		if err := app.Open(ctx); err == nil || !strings.Contains(err.Error(), "listen "+cfg.Listen) {
			app.Close(ctx)
			t.Fatalf("err=%v", err)
		}
		for _, p := range []string{cfg.Database, cfg.Database + ".lock"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("%s left behind after a failed bind", filepath.Base(p))
			}
		}
	})
}

// TestCommandsNeverCreateDatabase: a mistyped database is an error for
// every command but serve, and no file appears.
func TestCommandsNeverCreateDatabase(t *testing.T) {
	ctx := context.Background()
	d, err := startDemo(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	typo := filepath.Join(t.TempDir(), "velohnut.db")
	cfgPath := writeConfig(t, d.App.Config, typo)
	for _, args := range [][]string{{"status"}, {"retry-parked"}, {"hunt", "-case", "1"}, {"hunts", "list"}, {"hunts", "stop", "-all"},
		{"check"}, {"plan"}} {
		code, out := runCmd(append(args, "-config", cfgPath)...)
		if args[0] == "plan" && code != 0 {
			t.Errorf("%s: code %d, output %q", args[0], code, out)
		}
		if args[0] != "check" && args[0] != "plan" && (code == 0 || !strings.Contains(out, "database "+typo+" does not exist")) {
			t.Errorf("%s: code %d, output %q", args[0], code, out)
		}
		if _, err := os.Stat(typo); !os.IsNotExist(err) {
			t.Fatalf("%s created %s", args[0], typo)
		}
	}
}

// TestHuntBadInput: the hunt command's bad inputs and their messages.
func TestHuntBadInput(t *testing.T) {
	_, cfgPath := demoWithConfig(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoCase", []string{}, "-case is required"},
		{"NegativeCase", []string{"-case", "-1"}, "case must be a positive number"},
		{"ZeroCase", []string{"-case", "0"}, "case must be a positive number"},
		{"NegativeIOC", []string{"-case", "1", "-ioc", "-3"}, "ioc must be a positive number"},
		{"NotANumber", []string{"-case", "abc"}, `invalid value "abc" for flag -case`},
		{"UnknownCase", []string{"-case", "99999"}, "case 99999 does not exist or the service user cannot see it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCmd(append([]string{"hunt", "-config", cfgPath}, tc.args...)...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("code %d, output %q, want %q", code, out, tc.want)
			}
		})
	}
}

// TestCheckValidatesListen: check reads the configuration as serve does,
// listen included, before it connects to anything.
func TestCheckValidatesListen(t *testing.T) {
	cfg := config.Default()
	cfg.IRIS.URL, cfg.IRIS.APIKey = "https://iris.invalid", "k"
	cfg.Webhook.Secret = "0123456789abcdef"
	cfg.Velociraptor.Servers = []config.Server{{Name: "main", APIConfig: "/x"}}
	path := writeConfig(t, cfg, filepath.Join(t.TempDir(), "v.db"))
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), `listen: "127.0.0.1:0"`, "listen: 18192", 1)), 0o600)
	code, out := runCmd("check", "-config", path)
	if code == 0 || !strings.Contains(out, `config key listen: "18192" is not host:port`) {
		t.Fatalf("code %d, output %q", code, out)
	}
}

// TestInfoLogOfHitsAndEvents: one info line per new hit (case, IOC, host)
// and per accepted webhook event (kind, IOC count).
func TestInfoLogOfHitsAndEvents(t *testing.T) {
	ctx := context.Background()
	logs := &testlog.Buffer{}
	d, err := startDemoWith(ctx, t.TempDir(), logs, demoEndpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Play(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	var hits, events int
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, `"level":"INFO","msg":"new hit"`):
			hits++
			for _, want := range []string{`"case_id":101`, `"ioc_id":`, `"client_id":"C.`, `"hostname":"`} {
				if !strings.Contains(line, want) {
					t.Fatalf("hit line lacks %s: %s", want, line)
				}
			}
		case strings.Contains(line, `"level":"INFO","msg":"webhook event accepted"`):
			events++
			if !strings.Contains(line, `"event":"create","iocs":1`) {
				t.Fatalf("event line: %s", line)
			}
		}
	}
	if hits != 10 || events == 0 {
		t.Fatalf("%d hit lines (want 10, one per hit), %d accepted event lines", hits, events)
	}
}

// TestBackupCommand: `velohunt backup` while serve runs writes a database
// that status reads; a second backup to the same file is refused.
func TestBackupCommand(t *testing.T) {
	d := playedDemo(t)
	cfgPath := writeConfig(t, d.App.Config, d.App.Config.Database)
	dst := filepath.Join(t.TempDir(), "backup.db")
	if code, out := runCmd("backup", "-config", cfgPath, dst); code != 0 || !strings.Contains(out, "written to "+dst) {
		t.Fatalf("backup: code %d\n%s", code, out)
	}
	if code, out := runCmd("backup", "-config", cfgPath, dst); code == 0 || !strings.Contains(out, "exists") {
		t.Fatalf("backup over a file: code %d\n%s", code, out)
	}
	code, out := runCmd("status", "-config", writeConfig(t, d.App.Config, dst))
	if code != 0 || !strings.Contains(out, "hunts: running=4") {
		t.Fatalf("status of the backup: code %d\n%s", code, out)
	}
}

// TestSystemdUnit: the unit in configs/ runs serve as its own user, keeps
// the database under /var/lib/velohunt, reads secrets as credentials and
// restarts on failure.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../configs/velohunt.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=velohunt", "StateDirectory=velohunt", "Restart=on-failure", "UMask=0077",
		"LoadCredential=iris_api_key:", "LoadCredential=webhook_secret:", "ExecStart=/usr/local/bin/velohunt serve -config /etc/velohunt/velohunt.yaml"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("velohunt.service lacks %s", want)
		}
	}
	t.Setenv(config.EnvIRISAPIKey, "")
	t.Setenv(config.EnvWebhookSecret, "")
	cfg, err := config.Load("../../configs/velohunt.systemd.yaml")
	if err == nil || !strings.Contains(err.Error(), "/run/credentials/velohunt.service/") {
		// Outside systemd the credentials do not exist: the error names them.
		t.Fatalf("cfg=%+v err=%v", cfg.Database, err)
	}
}

// TestVersion: a stamped version wins; without one, the module version or
// the VCS revision the toolchain recorded.
func TestVersion(t *testing.T) {
	info := func(mod string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: mod}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	for _, tc := range []struct {
		name, stamped string
		read          func() (*debug.BuildInfo, bool)
		want          string
	}{
		{"Stamped", "1.4.0", info("v1.3.0"), "1.4.0"},
		{"GoInstall", "dev", info("v1.3.0"), "v1.3.0"},
		{"Checkout", "dev", info("(devel)", rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "dev-0123456789ab+dirty"},
		{"Nothing", "dev", info("(devel)"), "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionFrom(tc.stamped, tc.read); got != tc.want {
				t.Fatalf("version %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServeReadOnlyDirectory: serve in a directory it cannot write names
// the database, the directory and the permission. Root ignores
// permissions: as root the test runs itself again as nobody.
func TestServeReadOnlyDirectory(t *testing.T) {
	if os.Getuid() == 0 {
		asnobody.Rerun(t, "TestServeReadOnlyDirectory")
		return
	}
	dir, err := os.MkdirTemp("", "velohunt-ro")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	cfg := config.Default()
	cfg.Database = filepath.Join(dir, "velohunt.db")
	cfg.Listen = "127.0.0.1:0"
	app := quietApp(cfg)
	err = app.Open(context.Background())
	want := "cannot create database " + cfg.Database + ": permission denied on directory " + dir
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		if err == nil {
			app.Close(context.Background())
		}
		t.Fatalf("err=%v\nwant %s", err, want)
	}
}

// TestSetupRepairsNullIOCs: setup finds the IOCs of open cases whose
// custom attributes are null (created through IRIS's API without them),
// pushes the template although the tab exists, and says how many it
// repaired; a second run has nothing to do.
func TestSetupRepairsNullIOCs(t *testing.T) {
	ctx := context.Background()
	d, cfgPath := demoWithConfig(t)
	t.Setenv(config.EnvIRISAdminAPIKey, "admin-key")
	open, err := d.Admin.AddCase(ctx, "null attributes", "API-made IOCs", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	closed, err := d.Admin.AddCase(ctx, "closed", "a closed case", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	a := d.IRIS.AddIOCDirect(open, "filename", "null-a.exe")
	b := d.IRIS.AddIOCDirect(open, "filename", "null-b.exe")
	d.IRIS.AddIOCDirect(closed, "filename", "null-c.exe") // not looked for
	if err := d.Admin.CloseCase(ctx, closed); err != nil {
		t.Fatal(err)
	}
	code, out := runCmd("setup", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "repaired 2 of 2 IOC(s) of open cases whose custom attributes were null") {
		t.Fatalf("code %d, output %q", code, out)
	}
	for _, id := range []int64{a, b} {
		if null, err := d.Admin.IOCAttributesNull(ctx, open, id); err != nil || null {
			t.Fatalf("IOC %d: null=%v err=%v after setup", id, null, err)
		}
	}
	code, out = runCmd("setup", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "nothing to push") || !strings.Contains(out, "no IOC of an open case has null custom attributes") {
		t.Fatalf("second run: code %d, output %q", code, out)
	}
}
