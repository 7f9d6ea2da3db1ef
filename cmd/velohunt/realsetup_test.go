package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
)

// TestRealSetupRepairsNullIOCs: on a real IRIS, IOCs the service user
// creates through the API without custom attributes hold null; `velohunt
// setup` finds them in open cases, pushes the template although the tab
// exists, and they take tab values afterwards.
func TestRealSetupRepairsNullIOCs(t *testing.T) {
	e := needRealIRIS(t)
	ctx := context.Background()
	opts := iris.Options{URL: e.url, InsecureSkipVerify: e.insecure, Timeout: 30 * time.Second}
	opts.APIKey = e.adminKey
	admin, err := iris.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.APIKey = e.key
	svc, err := iris.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := realIRISConfig(t.TempDir(), e.url, e.key, e.adminKey, e.insecure, "/nonexistent/api.yaml")
	cfgPath := writeConfig(t, cfg, cfg.Database)
	t.Setenv(config.EnvIRISAdminAPIKey, e.adminKey)
	// The tab exists first (an earlier setup).
	if code, out := runCmd("setup", "-config", cfgPath); code != 0 {
		t.Fatalf("first setup: %s", out)
	}
	cid, err := admin.AddCase(ctx, fmt.Sprintf("velohunt null attributes %d", time.Now().UnixNano()), "IOCs made through the API", 1, "velohunt-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.CloseCase(context.Background(), cid) })
	types, err := svc.IOCTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var typeID int64
	for _, ty := range types {
		if ty.Name == "filename" {
			typeID = ty.ID
		}
	}
	var ids []int64
	for k := range 2 {
		// As a feed import does: no custom_attributes key.
		body, _ := json.Marshal(map[string]any{"ioc_value": fmt.Sprintf("null-%d-%d.exe", time.Now().UnixNano(), k),
			"ioc_type_id": typeID, "ioc_tlp_id": 2, "ioc_description": "", "ioc_tags": ""})
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/case/ioc/add?cid=%d", e.url, cid), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Data struct {
				ID int64 `json:"ioc_id"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if resp.StatusCode != 200 || r.Data.ID == 0 {
			t.Fatalf("add IOC: %d", resp.StatusCode)
		}
		if null, err := svc.IOCAttributesNull(ctx, cid, r.Data.ID); err != nil || !null {
			t.Fatalf("IOC %d made without custom_attributes: null=%v err=%v", r.Data.ID, null, err)
		}
		ids = append(ids, r.Data.ID)
	}
	code, out := runCmd("setup", "-config", cfgPath)
	m := regexp.MustCompile(`repaired (\d+) of (\d+) IOC`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != m[2] {
		t.Fatalf("code %d, output %q", code, out)
	}
	t.Logf("setup: %s", out)
	for _, id := range ids {
		if err := svc.UpdateIOCAttributes(ctx, cid, id, cfg.Writeback.TabName, map[string]string{"Status": "queued"}); err != nil {
			t.Fatalf("tab write after setup: %v", err)
		}
	}
}
