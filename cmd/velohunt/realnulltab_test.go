package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestRealNullIOCFirstStatus: an IOC a script creates through IRIS's API
// without custom attributes (null: every tab write fails until a template
// push) has its status in its tab within 10 s of its first hit, with the
// administrator key configured: the push repairs it and the write that
// failed is retried at once.
func TestRealNullIOCFirstStatus(t *testing.T) {
	ctx := context.Background()
	run := time.Now().UnixNano()
	md5 := fmt.Sprintf("%016x%016x", run, 7)
	g := startRealIRISRig(t, velotest.Endpoint{ClientID: "C.5555555555555555", Hostname: fmt.Sprintf("null-%d", run%100000), OS: "linux",
		Online: true, Files: []velotest.File{{Path: "/opt/null/evil", Size: 10, MD5: md5}}}, nil)
	env, admin, app, cfg := g.env, g.admin, g.app, g.cfg
	cid := g.newCase(t, "null IOC")
	md5Type := g.typeID(t, "md5")
	// As a feed import does: the service user's key, no custom_attributes.
	body, _ := json.Marshal(map[string]any{"ioc_value": md5, "ioc_type_id": md5Type, "ioc_tlp_id": 2, "ioc_description": "", "ioc_tags": ""})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/case/ioc/add?cid=%d", env.url, cid), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+env.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var added struct {
		Data struct {
			ID int64 `json:"ioc_id"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&added)
	resp.Body.Close()
	id := added.Data.ID
	if null, err := admin.IOCAttributesNull(ctx, cid, id); err != nil || !null {
		t.Fatalf("IOC made without custom_attributes: null=%v err=%v", null, err)
	}
	var firstHit time.Time
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if firstHit.IsZero() {
			firstHit = firstHitAt(ctx, app, id)
		}
		v, _ := admin.IOCAttributes(ctx, cid, id, cfg.Writeback.TabName)
		if strings.HasPrefix(v["Status"], "HIT") && !firstHit.IsZero() {
			lag := time.Since(firstHit)
			t.Logf("HIT in the tab %.1f s after the first hit was read", lag.Seconds())
			if lag > 10*time.Second {
				t.Fatalf("the first status reached the tab %s after the first hit, want within 10 s", lag)
			}
			return
		}
		if time.Now().After(end) {
			rows, _ := app.Store.FindIOCs(ctx, id)
			t.Fatalf("after 2 minutes: tab %v, first hit %v, rows %+v", v, firstHit, rows)
		}
	}
}
