package main

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
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
)

// TestRealRelaunchedFlowIsRead: on a real Velociraptor, a host whose flow
// errored (a 3-second client timeout, over files too large to hash in it)
// makes the hunt incomplete; the analyst relaunches the client in the
// hunt (hunt_add(relaunch=TRUE): a new flow id), the tree is small by then
// and holds the evidence, and velohunt reads the new flow from its first
// row: the host has its hit and is no longer errored.
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _BINARY, _LINUX_CLIENT
func TestRealRelaunchedFlowIsRead(t *testing.T) {
	apiCfg, bin, linux := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY"),
		os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_LINUX_CLIENT")
	if apiCfg == "" || bin == "" || linux == "" {
		t.Skip("needs a real Velociraptor: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _BINARY and _LINUX_CLIENT")
	}
	ctx := context.Background()
	dir := t.TempDir()
	// On a disk, not in /tmp: the client's glob sees what is planted.
	root, err := os.MkdirTemp("/srv", "velohunt-relaunch-")
	if err != nil {
		root, err = os.MkdirTemp("", "velohunt-relaunch-")
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	// Sparse files just under the artifact's MaxSize: 2 GiB to hash (every
	// hash of each), far more than the timeout allows, and no disk used.
	slow := filepath.Join(root, "slow")
	os.MkdirAll(slow, 0o755)
	for i := range 20 {
		f, err := os.Create(filepath.Join(slow, fmt.Sprintf("big-%d.bin", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(100<<20 - 1)
		f.Close()
	}
	content := make([]byte, 64)
	rand.Read(content)
	sum := md5.Sum(content)
	glob, _ := json.Marshal([]string{filepath.ToSlash(root) + "/**"})
	d := startRealVRDemo(t, dir, apiCfg, func(c *config.Config) {
		c.Hunting.ClientTimeout = config.Duration(3 * time.Second)
		c.Watcher.Schedule = "@every 2s"
		k := c.Hunting.Kinds["hash"]
		k.Parameters = map[string]string{"TargetGlobs": string(glob)}
		c.Hunting.Kinds["hash"] = k
	})
	cid, _ := d.Admin.AddCase(ctx, "relaunch", "real velociraptor", 1, "")
	x, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: hex.EncodeToString(sum[:]), TypeID: iristest.TypeID("md5"), TLPID: 2})
	if err != nil {
		t.Fatal(err)
	}
	// linuxFlows returns the Linux client's flows in the hunt, newest last,
	// and the hunt.
	linuxFlows := func() ([]store.FlowCursor, store.Hunt) {
		hunts, _ := d.App.Store.RecentHunts(ctx, 10)
		for _, h := range hunts {
			cur, _ := d.App.Store.FlowCursors(ctx, h.ID)
			var out []store.FlowCursor
			for _, f := range cur {
				if f.ClientID == linux {
					out = append(out, f)
				}
			}
			if len(out) > 0 {
				for i := range out {
					for j := i + 1; j < len(out); j++ {
						if out[j].CreatedUS < out[i].CreatedUS {
							out[i], out[j] = out[j], out[i]
						}
					}
				}
				return out, h
			}
		}
		return nil, store.Hunt{}
	}
	tabHunt := func() store.TabHunt {
		rows, _ := d.App.Store.FindIOCs(ctx, x.ID)
		data, _ := d.App.Store.FindTabData(ctx, rows[0].ID, 100)
		if len(data.Cases) == 0 || len(data.Cases[0].Hunts) == 0 {
			return store.TabHunt{}
		}
		return data.Cases[0].Hunts[0]
	}
	linuxHits := func() int {
		rows, _ := d.App.Store.FindIOCs(ctx, x.ID)
		data, _ := d.App.Store.FindTabData(ctx, rows[0].ID, 100)
		n := 0
		for _, c := range data.Cases {
			for _, h := range c.Hits {
				if h.ClientID == linux {
					n++
				}
			}
		}
		return n
	}
	var h store.Hunt
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		flows, hunt := linuxFlows()
		if len(flows) > 0 && flows[len(flows)-1].State == "ERROR" {
			h = hunt
			t.Logf("first flow %s: %s", flows[0].FlowID, flows[0].Status)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Linux client's flow did not error within 3 minutes: %+v", flows)
		}
	}
	// Every host done (the other clients on this machine time out too).
	before := tabHunt()
	for deadline := time.Now().Add(2 * time.Minute); before.Scheduled == 0 || before.Finished < before.Scheduled; before = tabHunt() {
		if time.Now().After(deadline) {
			t.Fatalf("hosts not done after 2 minutes: %+v", before.Progress)
		}
		time.Sleep(time.Second)
	}
	if before.Errored == 0 || before.FirstError == "" {
		t.Fatalf("tab before the relaunch: %+v, want errored hosts", before.Progress)
	}
	// The analyst fixes the cause (here: the tree is small now) and
	// relaunches the client in the hunt.
	if err := os.RemoveAll(slow); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "evidence.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	vql := fmt.Sprintf("SELECT hunt_add(hunt_id=%q, client_id=%q, relaunch=TRUE) AS flow FROM scope()", h.VRHuntID, linux)
	out, err := exec.Command(bin, "--api_config", apiCfg, "query", "--format", "json", vql).CombinedOutput()
	if err != nil {
		t.Fatalf("relaunch: %v\n%s", err, out)
	}
	t.Logf("relaunch: %s", out)
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		flows, _ := linuxFlows()
		if len(flows) >= 2 && flows[len(flows)-1].State == "FINISHED" && linuxHits() > 0 {
			t.Logf("relaunched flow %s finished, %d row(s) read", flows[len(flows)-1].FlowID, flows[len(flows)-1].RowsRead)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the relaunch: flows %+v, %d hit(s) of the Linux client", flows, linuxHits())
		}
	}
	after := tabHunt()
	if after.Errored != before.Errored-1 {
		t.Fatalf("errored hosts %d before, %d after the relaunch, want one fewer", before.Errored, after.Errored)
	}
	t.Logf("tab: %d of %d hosts errored before, %d after", before.Errored, before.Scheduled, after.Errored)
}
