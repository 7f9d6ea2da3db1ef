package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestRealScopedHunts: on a real Velociraptor, the Linux client gets a
// label; a server scope that excludes it makes velohunt's hunt run on the
// Windows-impersonating client and not on it, and a kind scope that
// includes only it makes the hunt run on it alone.
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _BINARY, _LINUX_CLIENT, _WINDOWS_CLIENT
func TestRealScopedHunts(t *testing.T) {
	apiCfg, bin := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY")
	linux, windows := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_LINUX_CLIENT"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT")
	if apiCfg == "" || bin == "" || linux == "" || windows == "" {
		t.Skip("needs a real Velociraptor: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _BINARY, _LINUX_CLIENT and _WINDOWS_CLIENT")
	}
	ctx := context.Background()
	label := fmt.Sprintf("velohunt-scope-%d", time.Now().UnixNano()%1000000)
	query := func(vql string) {
		t.Helper()
		if out, err := exec.Command(bin, "--api_config", apiCfg, "query", "--format", "json", vql).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", vql, err, out)
		}
	}
	query(fmt.Sprintf("SELECT label(client_id=%q, labels=[%q], op='set') FROM scope()", linux, label))
	t.Cleanup(func() {
		query(fmt.Sprintf("SELECT label(client_id=%q, labels=[%q], op='remove') FROM scope()", linux, label))
	})

	run := func(name string, tune func(*config.Config)) []string {
		dir := t.TempDir()
		glob, _ := json.Marshal([]string{filepath.ToSlash(dir) + "/nothing-here/**"})
		d, err := startDemoWith(ctx, dir, io.Discard, nil, func(c *config.Config, _ *velotest.Server) {
			c.Velociraptor.Servers = []config.Server{{Name: "real", APIConfig: apiCfg}}
			c.Velociraptor.Default = config.Target{Server: "real"}
			c.Watcher.Schedule = "@every 1s"
			k := c.Hunting.Kinds["file"]
			k.Parameters = map[string]string{"TargetGlobs": string(glob)}
			c.Hunting.Kinds["file"] = k
			tune(c)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		defer stopRealHunts(d.App)
		cid, _ := d.Admin.AddCase(ctx, name, "real velociraptor", 1, "")
		if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: fmt.Sprintf("scope-%d.exe", time.Now().UnixNano()),
			TypeID: iristest.TypeID("filename"), TLPID: 2}); err != nil {
			t.Fatal(err)
		}
		// The clients with a flow in the hunt, once the Windows one (or
		// the Linux one) answered and a few seconds went by for others.
		var clients []string
		for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
			hunts, _ := d.App.Store.RecentHunts(ctx, 5)
			if len(hunts) == 0 {
				continue
			}
			cur, _ := d.App.Store.FlowCursors(ctx, hunts[0].ID)
			clients = clients[:0]
			for _, f := range cur {
				clients = append(clients, f.ClientID)
			}
			if len(clients) > 0 {
				time.Sleep(8 * time.Second)
				cur, _ = d.App.Store.FlowCursors(ctx, hunts[0].ID)
				clients = clients[:0]
				for _, f := range cur {
					clients = append(clients, f.ClientID)
				}
				t.Logf("%s: hunt %s (scope %s) ran on %v", name, hunts[0].VRHuntID, hunts[0].Scope, clients)
				return clients
			}
		}
		t.Fatalf("%s: no flow after 2 minutes", name)
		return nil
	}
	excluded := run("exclude the label", func(c *config.Config) {
		c.Velociraptor.Servers[0].Scope = config.Scope{ExcludeLabels: []string{label}}
	})
	if slices.Contains(excluded, linux) || !slices.Contains(excluded, windows) {
		t.Fatalf("a hunt excluding %s ran on %v: want the Windows client %s, not the Linux one %s", label, excluded, windows, linux)
	}
	included := run("include only the label", func(c *config.Config) {
		k := c.Hunting.Kinds["file"]
		k.Scope = config.Scope{IncludeLabels: []string{label}}
		c.Hunting.Kinds["file"] = k
	})
	if !slices.Equal(included, []string{linux}) {
		t.Fatalf("a hunt including only %s ran on %v, want %s alone", label, included, linux)
	}
}
