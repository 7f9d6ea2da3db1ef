package main

// Late hosts against a real Velociraptor: clients that come online after
// the hunt started, over several watcher passes. It runs only when asked:
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG     api_client config
//	VELOHUNT_TEST_VELOCIRAPTOR_BINARY         the velociraptor binary
//	VELOHUNT_TEST_VELOCIRAPTOR_CLIENT_CONFIG  a client config of that server
//
// It starts two extra clients on this machine (each with its own writeback
// file, so its own client id) one after the other, while velohunt watches a
// hunt for a planted file's md5, and checks that every client's hit is read.

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
)

func TestRealVelociraptorLateClients(t *testing.T) {
	apiCfg, bin, clientCfg := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY"),
		os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT_CONFIG")
	if apiCfg == "" || bin == "" || clientCfg == "" {
		t.Skip("needs a real Velociraptor: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _BINARY and _CLIENT_CONFIG")
	}
	ctx := context.Background()
	dir := t.TempDir()
	content := make([]byte, 64)
	rand.Read(content)
	planted := filepath.Join(dir, "evidence", "late.bin")
	os.MkdirAll(filepath.Dir(planted), 0o755)
	if err := os.WriteFile(planted, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(content)
	glob, _ := json.Marshal([]string{filepath.ToSlash(filepath.Dir(planted)) + "/**"})
	d := startRealVRDemo(t, dir, apiCfg, func(c *config.Config) {
		c.Watcher.Schedule = "@every 2s"
		k := c.Hunting.Kinds["hash"]
		k.Parameters = map[string]string{"TargetGlobs": string(glob)}
		c.Hunting.Kinds["hash"] = k
	})
	cid, _ := d.Admin.AddCase(ctx, "late clients", "real velociraptor", 1, "")
	x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: hex.EncodeToString(sum[:]), TypeID: iristest.TypeID("md5"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	clients := func() map[string]bool {
		out := map[string]bool{}
		rows, _ := d.App.Store.FindIOCs(ctx, x.ID)
		for _, r := range rows {
			data, _ := d.App.Store.FindTabData(ctx, r.ID, 100)
			for _, c := range data.Cases {
				for _, h := range c.Hits {
					out[h.ClientID] = true
				}
			}
		}
		return out
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for len(clients()) < n {
			if time.Now().After(deadline) {
				var logs string
				for _, name := range []string{"late-1", "late-2"} {
					b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
					logs += "\n--- " + name + " ---\n" + tail(b, 3000)
				}
				t.Fatalf("hits from %d client(s) after 3 minutes, want %d: %v%s", len(clients()), n, clients(), logs)
			}
			time.Sleep(time.Second)
		}
	}
	base := len(clients())
	waitFor(base + 1) // the clients already online
	base = len(clients())
	cfgBytes, err := os.ReadFile(clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"late-1", "late-2"} {
		// Let a few watcher passes go by first.
		time.Sleep(6 * time.Second)
		wb := filepath.Join(dir, name+".writeback.yaml")
		var lines []string
		for _, l := range strings.Split(string(cfgBytes), "\n") {
			if strings.Contains(l, "writeback_linux:") {
				l = "  writeback_linux: " + wb
			}
			lines = append(lines, l)
		}
		cfg := filepath.Join(dir, name+".client.yaml")
		os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600)
		cmd := exec.Command(bin, "--config", cfg, "client", "-v")
		clientLog, _ := os.Create(filepath.Join(dir, name+".log"))
		defer clientLog.Close()
		cmd.Stdout, cmd.Stderr = clientLog, clientLog
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		waitFor(base + i + 1)
	}
	// Each hit's event follows its asset through the outbox.
	for end := time.Now().Add(time.Minute); len(d.IRIS.Events(cid)) < len(clients()); time.Sleep(time.Second) {
		if time.Now().After(end) {
			t.Fatalf("%d events for %d clients with hits", len(d.IRIS.Events(cid)), len(clients()))
		}
	}
	t.Logf("hits read from %d clients, two of which joined the running hunt later", len(clients()))
}
