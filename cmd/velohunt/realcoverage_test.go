package main

// Coverage on the real clients of ../shared/real-peers: the client that
// impersonates Windows has netstat (and wmi) disabled by Velociraptor's own
// remapping; its flows finish, but it searched no connection. Runs with
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG     api_client config
//	VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT the Windows-impersonating client's id

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
)

// TestRealCoverage: a network hunt over the real fleet is "incomplete" and
// names the Windows-impersonating host, which could not read connections;
// the Linux host, which could, is not named.
func TestRealCoverage(t *testing.T) {
	apiCfg, win := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT")
	if apiCfg == "" || win == "" {
		t.Skip("needs the real Velociraptor of ../shared/real-peers: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG and VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT")
	}
	ctx := context.Background()
	d := startRealVRDemo(t, t.TempDir(), apiCfg, func(c *config.Config) {
		c.Hunting.ClientTimeout = config.Duration(2 * time.Minute)
		c.Writeback.TabMinInterval = 0
	})
	cid, _ := d.Admin.AddCase(ctx, "real coverage", "coverage check", 1, "")
	x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: "192.0.2.199", TypeID: iristest.TypeID("ip-dst"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tab, _ := d.Admin.IOCAttributes(ctx, cid, x.ID, d.App.Config.Writeback.TabName)
		if strings.Contains(tab["Hunts"], "WIN-VELOHUNT: connections: searched nothing") {
			if !strings.HasPrefix(tab["Status"], "incomplete") && !strings.HasPrefix(tab["Status"], "hunting") {
				t.Fatalf("status %q with a host that searched no connection", tab["Status"])
			}
			if host != "" && strings.Contains(tab["Hunts"], host+": connections") {
				t.Fatalf("the Linux host, which read its connections, is named:\n%s", tab["Hunts"])
			}
			t.Logf("status: %s\nhunts:\n%s", tab["Status"], tab["Hunts"])
			return
		}
		if time.Now().After(deadline) {
			st, _ := collectStatus(ctx, d.App.Store)
			t.Fatalf("tab after 3 minutes: %q\n%s\nstatus: %+v", tab["Status"], tab["Hunts"], st.Recent)
		}
		time.Sleep(time.Second)
	}
}
