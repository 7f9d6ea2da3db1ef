package iris_test

// The IRIS conformance suite. It runs against the simulated IRIS always,
// and against a real IRIS 2.4 when these are set:
//
//	VELOHUNT_TEST_IRIS_URL        e.g. https://127.0.0.1:8443
//	VELOHUNT_TEST_IRIS_KEY        API key of a non-admin service user
//	VELOHUNT_TEST_IRIS_ADMIN_KEY  API key of an administrator (creates the
//	                              test case, grants nothing else; the tab
//	                              checks add a "velohunt-conformance" tab to
//	                              the IOC template)
//	VELOHUNT_TEST_IRIS_INSECURE   1 to accept a self-signed certificate
//
// Each run creates its own case. A double that disagrees with the real
// IRIS is a bug in the double (contracts/iris-api.md).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
)

// irisEnv is one IRIS to run the suite against.
type irisEnv struct {
	url, key, adminKey string
	insecure           bool
	svc, admin         *iris.Client
	real               bool
	svcUserIsAdmin     bool
}

// RunWithIRIS runs fn against the simulator and, when configured, a real IRIS.
func RunWithIRIS(t *testing.T, fn func(t *testing.T, e *irisEnv)) {
	t.Run("Simulator", func(t *testing.T) {
		srv := iristest.Start()
		defer srv.Close()
		fn(t, newIRISEnv(t, srv.URL(), "velohunt-key", "admin-key", false, false))
	})
	t.Run("Real", func(t *testing.T) {
		url, key, admin := os.Getenv("VELOHUNT_TEST_IRIS_URL"), os.Getenv("VELOHUNT_TEST_IRIS_KEY"), os.Getenv("VELOHUNT_TEST_IRIS_ADMIN_KEY")
		if url == "" || key == "" || admin == "" {
			t.Skip("no real IRIS: set VELOHUNT_TEST_IRIS_URL, VELOHUNT_TEST_IRIS_KEY and VELOHUNT_TEST_IRIS_ADMIN_KEY to run the suite against one")
		}
		e := newIRISEnv(t, url, key, admin, os.Getenv("VELOHUNT_TEST_IRIS_INSECURE") == "1", true)
		fn(t, e)
	})
}

func newIRISEnv(t *testing.T, url, key, admin string, insecure, real bool) *irisEnv {
	t.Helper()
	e := &irisEnv{url: url, key: key, adminKey: admin, insecure: insecure, real: real}
	var err error
	if e.svc, err = iris.New(iris.Options{URL: url, APIKey: key, InsecureSkipVerify: insecure, Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if e.admin, err = iris.New(iris.Options{URL: url, APIKey: admin, InsecureSkipVerify: insecure, Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return e
}

// raw sends a request velohunt's client never sends (to show a trap).
func (e *irisEnv) raw(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return e.rawWith(t, e.adminKey, method, path, body)
}

// rawWith is raw with another API key.
func (e *irisEnv) rawWith(t *testing.T, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	cl := http.DefaultClient
	if e.insecure {
		cl = insecureClient()
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

func (e *irisEnv) newCase(t *testing.T) int64 {
	t.Helper()
	id, err := e.admin.AddCase(context.Background(), fmt.Sprintf("velohunt conformance %d", time.Now().UnixNano()),
		"created by velohunt's IRIS conformance suite", 1, "velohunt-conformance")
	if err != nil {
		t.Fatalf("create the test case (customer 1 must exist): %v", err)
	}
	// Closed at the end: a velohunt later pointed at this IRIS would hunt
	// the case's IOCs and write their tabs (one has null attributes).
	t.Cleanup(func() { e.admin.CloseCase(context.Background(), id) })
	return id
}

func typeID(t *testing.T, c *iris.Client, name string) int64 {
	t.Helper()
	types, err := c.IOCTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ty := range types {
		if ty.Name == name {
			return ty.ID
		}
	}
	t.Fatalf("IRIS has no IOC type %q", name)
	return 0
}

func TestIRISContract(t *testing.T) {
	RunWithIRIS(t, func(t *testing.T, e *irisEnv) {
		ctx := context.Background()
		if v, err := e.svc.Versions(ctx); err != nil || !strings.HasPrefix(v, "v2.") {
			t.Fatalf("Versions=%q err=%v", v, err)
		}
		if _, err := e.svc.WhoAmI(ctx); err != nil {
			t.Fatalf("WhoAmI: %v", err)
		}
		t.Run("ReferenceLists", func(t *testing.T) {
			for name, list := range map[string]func(context.Context) ([]iris.RefItem, error){
				"ioc types": e.svc.IOCTypes, "asset types": e.svc.AssetTypes, "analysis statuses": e.svc.AnalysisStatuses,
				"event categories": e.svc.EventCategories, "compromise statuses": e.svc.CompromiseStatuses, "tlp": e.svc.TLPs} {
				items, err := list(ctx)
				if err != nil || len(items) == 0 {
					t.Fatalf("%s: %d items, err=%v", name, len(items), err)
				}
			}
		})
		cid := e.newCase(t)
		md5 := typeID(t, e.svc, "md5")
		t.Run("CaseIsListedWithTags", func(t *testing.T) {
			cases, err := e.svc.ListCases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(cases, func(c ioc.Case) bool { return c.ID == cid && c.Open }) {
				t.Fatalf("case %d not listed open for the service user (give it access to new cases)", cid)
			}
			cs, err := e.svc.Case(ctx, cid)
			if err != nil || !slices.Contains(cs.Tags, "velohunt-conformance") {
				t.Fatalf("Case=%+v err=%v", cs, err)
			}
		})
		value := fmt.Sprintf("%032x", time.Now().UnixNano())
		before, err := e.svc.IOCState(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		x, err := e.svc.AddIOC(ctx, cid, iris.NewIOC{Value: value, TypeID: md5, TLPID: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Run("IOCStateMoves", func(t *testing.T) {
			if after, err := e.svc.IOCState(ctx, cid); err != nil || after == before {
				t.Fatalf("ioc state %d -> %d err=%v: velohunt relies on it to skip unchanged cases", before, after, err)
			}
		})
		t.Run("DuplicateIOCIs200WithTheSameRow", func(t *testing.T) {
			again, err := e.svc.AddIOC(ctx, cid, iris.NewIOC{Value: value, TypeID: md5, TLPID: 1})
			if err != nil || again.ID != x.ID {
				t.Fatalf("again=%+v err=%v", again, err)
			}
		})
		t.Run("IOCListHasTypeNamesAndNoCaseID", func(t *testing.T) {
			list, err := e.svc.ListIOCs(ctx, cid)
			if err != nil || len(list) != 1 || list[0].TypeName != "md5" {
				t.Fatalf("list=%+v err=%v", list, err)
			}
			one, err := e.svc.IOC(ctx, cid, x.ID)
			if err != nil || one.TypeName != "md5" {
				t.Fatalf("IOC=%+v err=%v", one, err)
			}
		})
		t.Run("MissingCIDUsesTheContextCase", func(t *testing.T) {
			// Without cid IRIS answers for the caller's current case (often
			// #1), not an error: velohunt always sends cid.
			code, body := e.raw(t, "GET", "/case/ioc/list", nil)
			if code != 200 || body["status"] != "success" {
				t.Fatalf("no cid: %d %v", code, body)
			}
		})
		t.Run("UnknownCaseIs403ForNonAdmins", func(t *testing.T) {
			_, err := e.svc.ListIOCs(ctx, 987654321)
			var se *iris.StatusError
			if !errors.As(err, &se) || (se.Status != 403 && se.Status != 404) {
				t.Fatalf("err=%v, want 403 (404 if the service user is an administrator)", err)
			}
		})
		t.Run("NullCustomAttributes", func(t *testing.T) {
			code, body := e.raw(t, "POST", fmt.Sprintf("/case/ioc/add?cid=%d", cid),
				map[string]any{"ioc_value": value + "0", "ioc_type_id": typeID(t, e.svc, "filename"), "ioc_tlp_id": 2})
			if code != 200 {
				t.Fatalf("add without custom_attributes: %d %v", code, body)
			}
			data, _ := body["data"].(map[string]any)
			id := int64(data["ioc_id"].(float64))
			err := e.svc.UpdateIOCAttributes(ctx, cid, id, "velohunt-conformance", map[string]string{"Status": "x"})
			if !errors.Is(err, iris.ErrNullAttributes) {
				// A real IRIS that already had a tab pushed onto null IOCs
				// repairs them; then the update succeeds.
				if err != nil {
					t.Fatalf("err=%v, want ErrNullAttributes", err)
				}
			}
		})
		// No write of the service user gives a null IOC its attributes
		// (IRIS 2.4's merge_custom_attributes reads the stored object's
		// tabs: a tab named crashes on null, an empty object changes
		// nothing), so only an administrator's template push repairs it:
		// velohunt setup does that push.
		t.Run("NullAttributesOnlyTemplatePushRepairs", func(t *testing.T) {
			code, body := e.raw(t, "POST", fmt.Sprintf("/case/ioc/add?cid=%d", cid),
				map[string]any{"ioc_value": value + "-null", "ioc_type_id": typeID(t, e.svc, "filename"), "ioc_tlp_id": 2})
			if code != 200 {
				t.Fatalf("add without custom_attributes: %d %v", code, body)
			}
			id := int64(body["data"].(map[string]any)["ioc_id"].(float64))
			null, err := e.svc.IOCAttributesNull(ctx, cid, id)
			if err != nil || !null {
				t.Fatalf("null=%v err=%v, want null attributes", null, err)
			}
			code, body = e.rawWith(t, e.key, "POST", fmt.Sprintf("/case/ioc/update/%d?cid=%d", id, cid),
				map[string]any{"custom_attributes": map[string]any{}})
			if code != 200 {
				t.Fatalf("update with an empty custom_attributes: %d %v", code, body)
			}
			if null, err := e.svc.IOCAttributesNull(ctx, cid, id); err != nil || !null {
				t.Fatalf("after an empty update: null=%v err=%v, want still null", null, err)
			}
			if err := e.svc.UpdateIOCAttributes(ctx, cid, id, "velohunt-conformance", map[string]string{"Status": "x"}); !errors.Is(err, iris.ErrNullAttributes) {
				t.Fatalf("tab write of a null IOC: err=%v, want ErrNullAttributes", err)
			}
		})
		t.Run("UpdateOfIOCNoLongerInCaseIsHTML500", func(t *testing.T) {
			x, err := e.svc.AddIOC(ctx, cid, iris.NewIOC{Value: value + "gone", TypeID: typeID(t, e.svc, "filename"), TLPID: 2})
			if err != nil {
				t.Fatal(err)
			}
			if code, body := e.raw(t, "POST", fmt.Sprintf("/case/ioc/delete/%d?cid=%d", x.ID, cid), nil); code != 200 {
				t.Fatalf("delete: %d %v", code, body)
			}
			// IRIS 2.4.20 wraps "Invalid IOC ID for this case" in an error
			// it cannot serialise: an HTML 500, not the contract's 400.
			if code, _ := e.raw(t, "POST", fmt.Sprintf("/case/ioc/update/%d?cid=%d", x.ID, cid), map[string]any{"ioc_description": "x"}); code != 500 {
				t.Fatalf("update of a deleted IOC: HTTP %d, want 500", code)
			}
			err = e.svc.UpdateIOCAttributes(ctx, cid, x.ID, "velohunt-conformance", map[string]string{"Status": "x"})
			if !errors.Is(err, iris.ErrIOCNotInCase) {
				t.Fatalf("err=%v, want ErrIOCNotInCase", err)
			}
		})
		t.Run("TabTextFieldsWrittenHTMLFieldsSkipped", func(t *testing.T) {
			tmpls, err := e.admin.AttributeTemplates(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var id int64
			var content map[string]map[string]map[string]any
			for _, tt := range tmpls {
				if tt.For == "ioc" {
					id, content = tt.ID, tt.Content
				}
			}
			if content == nil {
				content = map[string]map[string]map[string]any{}
			}
			content["velohunt-conformance"] = map[string]map[string]any{
				"Status": {"type": "input_string", "mandatory": false, "value": ""},
				"Html":   {"type": "html", "mandatory": false, "value": "default"},
			}
			if err := e.admin.UpdateAttributeTemplate(ctx, id, content); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.UpdateIOCAttributes(ctx, cid, x.ID, "velohunt-conformance", map[string]string{"Status": "<b>hit</b>", "Html": "<script>x</script>"}); err != nil {
				t.Fatal(err)
			}
			got, err := e.svc.IOCAttributes(ctx, cid, x.ID, "velohunt-conformance")
			if err != nil || got["Status"] != "<b>hit</b>" || got["Html"] != "default" {
				t.Fatalf("attributes %v err=%v: text written as is, html left alone", got, err)
			}
			if err := e.svc.UpdateIOCAttributes(ctx, cid, x.ID, "no-such-tab", map[string]string{"a": "b"}); err != nil {
				t.Fatalf("an unknown tab is ignored with success, got %v", err)
			}
		})
		types, _ := e.svc.AssetTypes(ctx)
		statuses, _ := e.svc.AnalysisStatuses(ctx)
		aid, err := e.svc.AddAsset(ctx, cid, iris.NewAsset{Name: "CONFORMANCE-HOST", TypeID: types[0].ID, AnalysisStatusID: statuses[0].ID,
			Tags: "velohunt,vh-conformance", IOCLinks: []int64{x.ID}})
		if err != nil {
			t.Fatal(err)
		}
		t.Run("DuplicateAsset", func(t *testing.T) {
			_, err := e.svc.AddAsset(ctx, cid, iris.NewAsset{Name: "conformance-host", TypeID: types[0].ID, AnalysisStatusID: statuses[0].ID})
			if !errors.Is(err, iris.ErrDuplicateAsset) {
				t.Fatalf("err=%v, want ErrDuplicateAsset (same name, any case, same type)", err)
			}
		})
		t.Run("AssetWithoutAnalysisStatusIsHidden", func(t *testing.T) {
			code, _ := e.raw(t, "POST", fmt.Sprintf("/case/assets/add?cid=%d", cid),
				map[string]any{"asset_name": "no-status", "asset_type_id": types[0].ID, "custom_attributes": map[string]any{}})
			if code != 200 {
				t.Fatalf("add: %d", code)
			}
			list, err := e.svc.ListAssets(ctx, cid)
			if err != nil || slices.ContainsFunc(list, func(a iris.Asset) bool { return a.Name == "no-status" }) || len(list) != 1 {
				t.Fatalf("list=%+v err=%v", list, err)
			}
		})
		t.Run("AssetLinksAreReplaced", func(t *testing.T) {
			last := "f"
			if strings.HasSuffix(value, "f") {
				last = "e" // another value, so another IOC
			}
			y, err := e.svc.AddIOC(ctx, cid, iris.NewIOC{Value: value[:31] + last, TypeID: md5, TLPID: 2})
			if err != nil {
				t.Fatal(err)
			}
			a, err := e.svc.Asset(ctx, cid, aid)
			if err != nil || !slices.Contains(a.LinkedIOCs, x.ID) {
				t.Fatalf("asset=%+v err=%v", a, err)
			}
			if err := e.svc.SetAssetIOCLinks(ctx, cid, a, []int64{y.ID}); err != nil {
				t.Fatal(err)
			}
			a, _ = e.svc.Asset(ctx, cid, aid)
			if slices.Contains(a.LinkedIOCs, x.ID) || !slices.Contains(a.LinkedIOCs, y.ID) {
				t.Fatalf("links %v: ioc_links replaces every link", a.LinkedIOCs)
			}
		})
		t.Run("Events", func(t *testing.T) {
			cats, _ := e.svc.EventCategories(ctx)
			_, err := e.svc.AddEvent(ctx, cid, iris.NewEvent{Title: "x", Date: "2026-11-20T08:00:00", TZ: "+00:00", CategoryID: cats[0].ID})
			if err == nil {
				t.Fatal("IRIS accepted a one-character title or a date without fraction")
			}
			id, err := e.svc.AddEvent(ctx, cid, iris.NewEvent{Title: "velohunt conformance", Date: "2026-11-20T08:00:00.000000", TZ: "+00:00",
				CategoryID: cats[0].ID, Content: "```text\n<script>\n```", Raw: `{"a":1}`, Tags: "velohunt,vh-conf-1",
				Assets: []int64{aid}, IOCs: []int64{x.ID}})
			if err != nil {
				t.Fatal(err)
			}
			list, err := e.svc.ListEvents(ctx, cid)
			if err != nil || !slices.ContainsFunc(list, func(ev iris.EventSummary) bool { return ev.ID == id && strings.Contains(ev.Tags, "vh-conf-1") }) {
				t.Fatalf("events=%+v err=%v", list, err)
			}
			// The 2.4 list has no assets key (read one event for its links).
			code, body := e.raw(t, "GET", fmt.Sprintf("/case/timeline/events/list?cid=%d", cid), nil)
			data, _ := body["data"].(map[string]any)
			rows, _ := data["timeline"].([]any)
			if code != 200 || len(rows) == 0 {
				t.Fatalf("list: %d %v", code, body)
			}
			if _, has := rows[0].(map[string]any)["assets"]; has {
				t.Fatal("the events list has an assets key; the contract says IRIS 2.4 drops it")
			}
		})
	})
}

// TestIRISTemplatePushKeepsValues is issue 8's data-loss check: velohunt's
// template pushes (setup, setup on start, the repair of IOCs with null
// attributes) must keep every value stored on every IOC, velohunt's own and
// everyone else's, while adding a field an older velohunt tab lacks and
// repairing IOCs whose attributes are null.
func TestIRISTemplatePushKeepsValues(t *testing.T) {
	RunWithIRIS(t, func(t *testing.T, e *irisEnv) {
		ctx := context.Background()
		suffix := fmt.Sprint(time.Now().UnixNano())
		ours, analysts := "velohunt-conformance-push-"+suffix, "analyst-tab-"+suffix
		text := func(ty string) map[string]any { return map[string]any{"type": ty, "mandatory": false, "value": ""} }
		// An older velohunt tab (one field) and an analyst's own tab.
		tmpls, err := e.admin.AttributeTemplates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var tid int64
		var content map[string]map[string]map[string]any
		for _, tt := range tmpls {
			if tt.For == "ioc" {
				tid, content = tt.ID, tt.Content
			}
		}
		if content == nil {
			content = map[string]map[string]map[string]any{}
		}
		content[ours] = map[string]map[string]any{"Status": text("input_string")}
		content[analysts] = map[string]map[string]any{"Company field": text("input_string")}
		if err := e.admin.UpdateAttributeTemplate(ctx, tid, content); err != nil {
			t.Fatal(err)
		}
		cid := e.newCase(t)
		x, err := e.svc.AddIOC(ctx, cid, iris.NewIOC{Value: "push-" + suffix + ".exe", TypeID: typeID(t, e.svc, "filename"), TLPID: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.UpdateIOCAttributes(ctx, cid, x.ID, ours, map[string]string{"Status": "HIT: found on 1 host(s)"}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.UpdateIOCAttributes(ctx, cid, x.ID, analysts, map[string]string{"Company field": "written by an analyst"}); err != nil {
			t.Fatal(err)
		}
		// Another IOC made without custom_attributes: null in IRIS.
		code, body := e.raw(t, "POST", fmt.Sprintf("/case/ioc/add?cid=%d", cid),
			map[string]any{"ioc_value": "null-" + suffix + ".exe", "ioc_type_id": typeID(t, e.svc, "filename"), "ioc_tlp_id": 2})
		if code != 200 {
			t.Fatalf("add without custom_attributes: %d %v", code, body)
		}
		nullID := int64(body["data"].(map[string]any)["ioc_id"].(float64))

		check := func(t *testing.T, step string) {
			t.Helper()
			got, err := e.svc.IOCAttributes(ctx, cid, x.ID, ours)
			if err != nil || got["Status"] != "HIT: found on 1 host(s)" {
				t.Fatalf("after %s, velohunt's tab is %v (err %v): a push reset it", step, got, err)
			}
			if _, ok := got["Hits"]; !ok {
				t.Fatalf("after %s, the field the older tab lacked was not added: %v", step, got)
			}
			other, err := e.svc.IOCAttributes(ctx, cid, x.ID, analysts)
			if err != nil || other["Company field"] != "written by an analyst" {
				t.Fatalf("after %s, the analyst's tab is %v (err %v): velohunt changed a value it did not write", step, other, err)
			}
		}
		// setup: the older tab gains the field it lacks.
		pushed, err := e.admin.EnsureIOCTab(ctx, ours, map[string]map[string]any{"Status": text("input_string"), "Hits": text("input_textfield")}, false)
		if err != nil || !pushed {
			t.Fatalf("EnsureIOCTab pushed=%v err=%v", pushed, err)
		}
		check(t, "setup")
		// The null IOC was repaired by that push and takes a tab value.
		if err := e.svc.UpdateIOCAttributes(ctx, cid, nullID, ours, map[string]string{"Status": "queued"}); err != nil {
			t.Fatalf("the null IOC was not repaired by the push: %v", err)
		}
		// The repair of another IOC's null attributes: a forced push.
		code, body = e.raw(t, "POST", fmt.Sprintf("/case/ioc/add?cid=%d", cid),
			map[string]any{"ioc_value": "null2-" + suffix + ".exe", "ioc_type_id": typeID(t, e.svc, "filename"), "ioc_tlp_id": 2})
		if code != 200 {
			t.Fatalf("add without custom_attributes: %d %v", code, body)
		}
		null2 := int64(body["data"].(map[string]any)["ioc_id"].(float64))
		if pushed, err := e.admin.EnsureIOCTab(ctx, ours, map[string]map[string]any{"Status": text("input_string"), "Hits": text("input_textfield")}, true); err != nil || !pushed {
			t.Fatalf("forced push pushed=%v err=%v", pushed, err)
		}
		check(t, "a repair")
		if got, err := e.svc.IOCAttributes(ctx, cid, nullID, ours); err != nil || got["Status"] != "queued" {
			t.Fatalf("the first repaired IOC lost its value: %v %v", got, err)
		}
		if err := e.svc.UpdateIOCAttributes(ctx, cid, null2, ours, map[string]string{"Status": "queued"}); err != nil {
			t.Fatalf("the second null IOC was not repaired: %v", err)
		}
		// Nothing to do: no push at all.
		if pushed, err := e.admin.EnsureIOCTab(ctx, ours, map[string]map[string]any{"Status": text("input_string"), "Hits": text("input_textfield")}, false); err != nil || pushed {
			t.Fatalf("an unchanged template was pushed again: pushed=%v err=%v", pushed, err)
		}
	})
}

// TestIRISSharedIOCs checks what velohunt's intake relies on for IOCs
// shared by cases (IRIS 2.4 IOCs are global): linking an existing IOC to a
// case and unlinking it move no IOC counter, an update moves only the
// counter of the case it was made from, the case IOC list names the other
// cases that link the IOC, and a link keeps the IOC's last writer.
func TestIRISSharedIOCs(t *testing.T) {
	RunWithIRIS(t, func(t *testing.T, e *irisEnv) {
		ctx := context.Background()
		a, b := e.newCase(t), e.newCase(t)
		value := fmt.Sprintf("shared-%d.example", time.Now().UnixNano())
		x, err := e.svc.AddIOC(ctx, a, iris.NewIOC{Value: value, TypeID: typeID(t, e.svc, "domain"), TLPID: 2})
		if err != nil {
			t.Fatal(err)
		}
		stA, _ := e.svc.IOCState(ctx, a)
		stB, _ := e.svc.IOCState(ctx, b)
		// The administrator links it: the IOC keeps its last writer.
		y, err := e.admin.AddIOC(ctx, b, iris.NewIOC{Value: value, TypeID: typeID(t, e.svc, "domain"), TLPID: 2})
		if err != nil || y.ID != x.ID || y.UserID != x.UserID {
			t.Fatalf("link: %+v (first %+v) err=%v: the existing row, with its last writer, is returned", y, x, err)
		}
		if now, _ := e.svc.IOCState(ctx, b); now != stB {
			t.Fatalf("linking moved case b's IOC counter %d -> %d", stB, now)
		}
		list, err := e.svc.ListIOCs(ctx, b)
		if err != nil || len(list) != 1 || !slices.Contains(list[0].LinkedCases, a) {
			t.Fatalf("case b list %+v err=%v: link must name case a", list, err)
		}
		code, body := e.raw(t, "POST", fmt.Sprintf("/case/ioc/update/%d?cid=%d", x.ID, a), map[string]any{"ioc_description": "changed from a"})
		if code != 200 {
			t.Fatalf("update: %d %v", code, body)
		}
		if now, _ := e.svc.IOCState(ctx, a); now == stA {
			t.Fatal("an update did not move the counter of its own case")
		}
		if now, _ := e.svc.IOCState(ctx, b); now != stB {
			t.Fatalf("an update from case a moved case b's counter %d -> %d", stB, now)
		}
		code, body = e.raw(t, "POST", fmt.Sprintf("/case/ioc/delete/%d?cid=%d", x.ID, b), nil)
		if code != 200 || !strings.Contains(fmt.Sprint(body["message"]), "unlinked") {
			t.Fatalf("unlink: %d %v", code, body)
		}
		if now, _ := e.svc.IOCState(ctx, b); now != stB {
			t.Fatalf("unlinking moved case b's counter %d -> %d", stB, now)
		}
	})
}

// TestIRISManualTriggerCase: the webhook of a manual trigger names no case,
// and velohunt reads it from IRIS's module task list, which a non-admin
// service user can read. When the webhooks module is configured with a
// manual trigger on IOCs, a trigger from a case is listed with that case.
func TestIRISManualTriggerCase(t *testing.T) {
	RunWithIRIS(t, func(t *testing.T, e *irisEnv) {
		ctx := context.Background()
		if _, err := e.svc.HookTasks(ctx, 10); err != nil {
			t.Fatalf("the service user cannot read IRIS's module tasks: %v", err)
		}
		cid := e.newCase(t)
		code, body := e.raw(t, "GET", fmt.Sprintf("/dim/hooks/options/ioc/list?cid=%d", cid), nil)
		hooks, _ := body["data"].([]any)
		var hook map[string]any
		for _, h := range hooks {
			if m, _ := h.(map[string]any); m["module_name"] == "iris_webhooks_module" && m["hook_name"] == "on_manual_trigger_ioc" {
				hook = m
			}
		}
		if code != 200 || hook == nil {
			if e.real {
				t.Skipf("the webhooks module has no manual trigger on IOCs here (configure configs/iris-webhooks.json): %d %v", code, body)
			}
			// The simulator fires manual triggers without a module list.
		}
		x, err := e.svc.AddIOC(ctx, cid, iris.NewIOC{Value: fmt.Sprintf("manual-%d.example", time.Now().UnixNano()), TypeID: typeID(t, e.svc, "domain"), TLPID: 2})
		if err != nil {
			t.Fatal(err)
		}
		before, _ := e.svc.HookTasks(ctx, 20)
		code, body = e.raw(t, "POST", fmt.Sprintf("/dim/hooks/call?cid=%d", cid), map[string]any{"hook_name": "on_manual_trigger_ioc",
			"hook_ui_name": hook["manual_hook_ui_name"], "module_name": "iris_webhooks_module", "type": "ioc", "targets": []int64{x.ID}})
		if code != 200 {
			t.Fatalf("manual trigger: %d %v", code, body)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			tasks, err := e.svc.HookTasks(ctx, 20)
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range tasks {
				if tk.Module == "iris_webhooks_module" && tk.Hook == "on_manual_trigger_ioc" && tk.CaseID == cid &&
					!slices.ContainsFunc(before, func(b iris.HookTask) bool { return b.ID == tk.ID }) {
					if tk.Done.IsZero() {
						t.Fatalf("task %+v has no finish time", tk)
					}
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no manual-trigger task listed for case %d: %+v", cid, tasks)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// TestIRISEvidence: the service user (non-admin) reads the evidence types
// and records an evidence in a case; IRIS keeps every field as sent (a
// file name and description from an endpoint, the chain of custody as
// JSON), names the service user as its author, lists it, and refuses a
// file name under 2 characters with 400.
func TestIRISEvidence(t *testing.T) {
	RunWithIRIS(t, func(t *testing.T, e *irisEnv) {
		ctx := context.Background()
		cid := e.newCase(t)
		types, err := e.svc.EvidenceTypes(ctx)
		if err != nil || len(types) == 0 || types[0].Name != "Unspecified" {
			t.Fatalf("evidence types %v err=%v", types, err)
		}
		me, err := e.svc.WhoAmI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
		n := iris.NewEvidence{Filename: `<b>evil</b> "x".exe`, Size: 1234,
			Hash: strings.Repeat("ab", 32), Description: "collected by velohunt `<img src=x>`", TypeID: types[0].ID, Acquired: at,
			ChainOfCustody: []iris.CustodyEntry{{Action: "collected", By: "velohunt", At: at, Detail: "flow F.1 on C.1"}}}
		got, err := e.svc.AddEvidence(ctx, cid, n)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, ev iris.Evidence) {
			t.Helper()
			if ev.ID == 0 || ev.Filename != n.Filename || ev.Size != n.Size || ev.Hash != n.Hash || ev.Description != n.Description ||
				ev.TypeID != n.TypeID || ev.UserID != me || len(ev.ChainOfCustody) != 1 || ev.ChainOfCustody[0] != n.ChainOfCustody[0] {
				t.Fatalf("%s: %+v, want the fields sent (%+v) by user %d", what, ev, n, me)
			}
		}
		check("added", got)
		list, err := e.svc.ListEvidences(ctx, cid)
		if err != nil || len(list) != 1 {
			t.Fatalf("list %+v err=%v", list, err)
		}
		check("listed", list[0])
		_, err = e.svc.AddEvidence(ctx, cid, iris.NewEvidence{Filename: "x", Acquired: at, TypeID: types[0].ID})
		var se *iris.StatusError
		if !errors.As(err, &se) || se.Status != 400 {
			t.Fatalf("a 1-character file name: err=%v, want 400", err)
		}
	})
}

// TestIRISDatastore: the service user (non-admin, full access to the case)
// reads the case's datastore tree (made on first use: root "Case N" with
// Evidences, IOCs and Images), adds a folder under the root, and stores a
// file there password-protected: IRIS keeps the name and description as
// sent, the tags, the password (returned in clear), the SHA-256 and size of
// the bytes sent (the hash upper-case), makes neither an IOC nor an
// evidence of it, and lists it under the folder. A folder or file under a
// node of another case, or none, is refused with 400.
func TestIRISDatastore(t *testing.T) {
	RunWithIRIS(t, func(t *testing.T, e *irisEnv) {
		ctx := context.Background()
		cid := e.newCase(t)
		ds, err := e.svc.ListDatastore(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range ds.Folders {
			if f.Parent == ds.Root {
				names = append(names, f.Name)
			}
		}
		slices.Sort(names)
		if ds.Root == 0 || !slices.Equal(names, []string{"Evidences", "IOCs", "Images"}) || len(ds.Files) != 0 {
			t.Fatalf("new tree %+v, want a root with Evidences, IOCs, Images", ds)
		}
		folder, err := e.svc.AddDatastoreFolder(ctx, cid, ds.Root, "velohunt")
		if err != nil || folder == 0 {
			t.Fatalf("folder %d err=%v", folder, err)
		}
		content := []byte("MZ\x00\x01 velohunt datastore conformance " + time.Now().String())
		sum := sha256.Sum256(content)
		n := iris.NewDatastoreFile{Name: "evil ‹img src=x›.exe", Description: "copy `vh-0123` of <b>x</b>", Tags: "velohunt,vh-0123",
			Password: "infected", Content: bytes.NewReader(content)}
		got, err := e.svc.AddDatastoreFile(ctx, cid, folder, n)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, f iris.DatastoreFile) {
			t.Helper()
			if f.ID == 0 || f.Folder != folder || f.Name != n.Name || f.Description != n.Description || f.Tags != n.Tags ||
				f.Password != n.Password || f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(content)) || f.IsIOC || f.Evidence {
				t.Fatalf("%s: %+v, want the fields sent (%+v), sha256 %x, %d bytes, not an IOC or evidence", what, f, n, sum, len(content))
			}
		}
		check("added", got)
		ds, err = e.svc.ListDatastore(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := ds.Folder("velohunt"); !ok || id != folder || len(ds.Files) != 1 {
			t.Fatalf("tree after %+v, want the folder %d and one file", ds, folder)
		}
		check("listed", ds.Files[0])
		iocs, _ := e.svc.ListIOCs(ctx, cid)
		evs, _ := e.svc.ListEvidences(ctx, cid)
		if len(iocs) != 0 || len(evs) != 0 {
			t.Fatalf("IOCs %+v evidences %+v: the file made some", iocs, evs)
		}
		other := e.newCase(t)
		var se *iris.StatusError
		if _, err := e.svc.AddDatastoreFile(ctx, other, folder, iris.NewDatastoreFile{Name: "x", Content: strings.NewReader("x")}); !errors.As(err, &se) || se.Status != 400 {
			t.Fatalf("a folder of another case: err=%v, want 400", err)
		}
		if _, err := e.svc.AddDatastoreFolder(ctx, other, folder, "x"); !errors.As(err, &se) || se.Status != 400 {
			t.Fatalf("a folder under another case's: err=%v, want 400", err)
		}
	})
}
