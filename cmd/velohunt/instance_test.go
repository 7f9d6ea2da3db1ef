package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// TestCheckOtherInstance: `velohunt check` names this velohunt's instance,
// and fails, with the way out, once a tab was left alone because another
// velohunt instance wrote it.
func TestCheckOtherInstance(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := config.Default()
	cfg.Database = path
	a := &App{Config: cfg} // check opens the database itself, read-only
	id, _ := db.InstanceID(ctx)
	f := checkInstance(ctx, a)
	if f.Status != checkOK || !strings.Contains(f.Detail, id) {
		t.Fatalf("%+v, want OK naming %s", f, id)
	}
	db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"})
	if _, err := db.SyncCaseIOCs(ctx, 1, []store.IOCInput{{IOC: ioc.IOC{ID: 7, TypeName: "filename", Value: "x.exe"},
		Target: ioc.Target{Kind: ioc.KindFile, Value: "x.exe"}}}, "test", true); err != nil {
		t.Fatal(err)
	}
	due, _ := db.DueWrites(ctx, 10)
	if len(due) != 1 {
		t.Fatalf("due writes %+v", due)
	}
	db.WritePark(ctx, due[0].ID, store.ReasonForeignTab+" (vi-0123456789abcdef)")
	var b bytes.Buffer
	f = checkInstance(ctx, a)
	if printFindings(&b, []finding{f}); f.Status != checkFail || !strings.Contains(f.Detail, "Moving an IRIS to a new velohunt") {
		t.Fatalf("%s", b.String())
	}
}

// TestInstanceAdopt: a new database takes the instance id of the velohunt
// it replaces, before its first tab; never after.
func TestInstanceAdopt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "v.yaml")
	cfg := "database: " + filepath.Join(dir, "v.db") + `
iris: {url: "http://127.0.0.1:1", api_key: k}
webhook: {secret: "instance-test-secret-0123456789"}
velociraptor: {servers: [{name: main, api_config: "/nonexistent/api.yaml"}]}
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	code := run(ctx, []string{"instance", "-config", cfgPath, "-adopt", "vi-0123456789abcdef"}, &out, &errs)
	if code != 0 || strings.TrimSpace(out.String()) != "vi-0123456789abcdef" {
		t.Fatalf("code %d, out %q, err %q", code, out.String(), errs.String())
	}
	db, err := store.Open(ctx, filepath.Join(dir, "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetTabWritten(ctx, 7, "fp", "queued for the next hunt", db.Now())
	db.Close()
	out.Reset()
	if code := run(ctx, []string{"instance", "-config", cfgPath, "-adopt", "vi-fedcba9876543210"}, &out, &errs); code == 0 {
		t.Fatalf("adopted an id after a tab was written: %q", out.String())
	}
}
