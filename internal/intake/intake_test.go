package intake_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/intake"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/metrics"
	"github.com/velohunt/velohunt/internal/store"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	irisSrv *iristest.Server
	admin   *iris.Client
	db      *store.DB
	syncer  *intake.Syncer
	in      *intake.Intake
	queued  int
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{irisSrv: iristest.Start()}
	t.Cleanup(e.irisSrv.Close)
	var err error
	e.db, err = store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	svc, _ := iris.New(iris.Options{URL: e.irisSrv.URL(), APIKey: "velohunt-key"})
	e.admin, _ = iris.New(iris.Options{URL: e.irisSrv.URL(), APIKey: "admin-key"})
	e.syncer = &intake.Syncer{IRIS: svc, Store: e.db, Logger: discard,
		Route: func(c ioc.Case) ioc.Route { return ioc.Route{Server: "main"} }}
	e.in = intake.New(e.syncer, e.db, 2, 0, func() { e.queued++ }, discard)
	return e
}

func (e *env) states(t *testing.T, cid int64) map[string]string {
	t.Helper()
	rows, err := e.db.CaseIOCs(context.Background(), cid)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range rows {
		m[r.Value] = r.State
	}
	return m
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	cid, err := e.admin.AddCase(ctx, "case a", "desc", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	e.admin.AddIOC(ctx, cid, iris.NewIOC{Value: "203.0.113.9", TypeID: iristest.TypeID("ip-dst")})
	e.admin.AddIOC(ctx, cid, iris.NewIOC{Value: "bogus", TypeID: iristest.TypeID("sha1")})
	rep, err := e.syncer.Sync(ctx, "reconcile", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 2 || rep.Refused != 1 || rep.Cases != 2 {
		t.Fatalf("report=%+v", rep)
	}
	t.Run("UnchangedCounterSkipsList", func(t *testing.T) {
		before := e.irisSrv.Requests()["GET /case/ioc/list"]
		rep, err := e.syncer.Sync(ctx, "webhook", false)
		if err != nil || rep.Synced != 0 {
			t.Fatalf("rep=%+v err=%v", rep, err)
		}
		if after := e.irisSrv.Requests()["GET /case/ioc/list"]; after != before {
			t.Fatalf("listed IOCs %d times for unchanged cases", after-before)
		}
	})
	t.Run("FullSyncIsIdempotent", func(t *testing.T) {
		rep, err := e.syncer.Sync(ctx, "reconcile", true)
		if err != nil || rep.Added+rep.Changed+rep.Removed != 0 {
			t.Fatalf("rep=%+v err=%v", rep, err)
		}
	})
	t.Run("ClosedCase", func(t *testing.T) {
		e.admin.CloseCase(ctx, cid)
		rep, err := e.syncer.Sync(ctx, "reconcile", false)
		if err != nil || rep.Closed != 1 {
			t.Fatalf("rep=%+v err=%v", rep, err)
		}
		if got := e.states(t, cid)["203.0.113.9"]; got != store.StateRemoved {
			t.Fatalf("queued IOC of a closed case is %q, want removed", got)
		}
	})
}

func TestReconcileTrustsCountersBetweenFullSyncs(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.in.FullEvery = time.Hour
	cid, _ := e.admin.AddCase(ctx, "case c", "desc", 1, "")
	e.admin.AddIOC(ctx, cid, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain")})
	if err := e.in.Step(ctx); err != nil { // start-up: complete listing
		t.Fatal(err)
	}
	lists := func() int { return e.irisSrv.Requests()["GET /case/ioc/list"] }
	before := lists()
	e.in.RequestFullSync()
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if lists() != before {
		t.Fatalf("a reconcile within the hour listed unchanged cases (%d lists)", lists()-before)
	}
	e.admin.AddIOC(ctx, cid, iris.NewIOC{Value: "evil2.example", TypeID: iristest.TypeID("domain")})
	e.in.RequestFullSync()
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.states(t, cid)["evil2.example"]; got != store.StateQueued {
		t.Fatalf("a changed case was not re-listed: state %q", got)
	}
}

func TestInboxEvents(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	cid, _ := e.admin.AddCase(ctx, "case b", "desc", 1, "")
	if err := e.in.Step(ctx); err != nil { // initial full sync
		t.Fatal(err)
	}
	x, _ := e.admin.AddIOC(ctx, cid, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain")})
	payload := `{"iocs":[{"ioc_id":` + itoa(x.ID) + `,"ioc_value":"evil.example","ioc_type_id":20,"user_id":1,"ioc_type":{"type_name":"domain"}}]}`
	if err := e.db.AddInbox(ctx, intake.EventCreate, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.states(t, cid)["evil.example"]; got != store.StateQueued {
		t.Fatalf("state=%q, want queued", got)
	}
	if items, _ := e.db.PeekInbox(ctx, 10); len(items) != 0 {
		t.Fatalf("%d events left in the inbox", len(items))
	}
	if e.queued == 0 {
		t.Fatal("planner not woken")
	}

	t.Run("OwnUpdateIgnored", func(t *testing.T) {
		before := e.irisSrv.Requests()["GET /manage/cases/list"]
		own := strings.Replace(payload, `"user_id":1`, `"user_id":2`, 1)
		e.db.AddInbox(ctx, intake.EventUpdate, []byte(own))
		if err := e.in.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if after := e.irisSrv.Requests()["GET /manage/cases/list"]; after != before {
			t.Fatal("velohunt's own update caused a sync")
		}
	})
	t.Run("ManualRequeuesHunted", func(t *testing.T) {
		// Pretend the IOC's hunt ended.
		g, _ := e.db.QueuedGroups(ctx)
		_, err := e.db.PlanHunt(ctx, g[0], 10, "A", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.states(t, cid)["evil.example"]; got != store.StateHunting {
			t.Fatalf("state=%q", got)
		}
		// A manual trigger ("Hunt in Velociraptor") re-hunts at once, even
		// while a hunt runs: an analyst asked for it.
		manual := strings.Replace(payload, `"user_id":1`, `"user_id":2`, 1) // last writer is velohunt
		e.db.AddInbox(ctx, intake.EventManual, []byte(manual))
		e.in.Step(ctx)
		if got := e.states(t, cid)["evil.example"]; got != store.StateQueued {
			t.Fatalf("state=%q after manual trigger during a hunt, want queued", got)
		}
		g, _ = e.db.QueuedGroups(ctx)
		if len(g) != 1 || !g[0].Urgent {
			t.Fatalf("groups %+v: a manual re-hunt must not wait for the batch window", g)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestWebhook(t *testing.T) {
	e := setup(t)
	woken := 0
	h := &intake.Webhook{Store: e.db, Secret: "0123456789abcdef-secret", MaxBody: 2048, Wake: func() { woken++ }, OwnUserID: 2, Logger: discard}
	mux := http.NewServeMux()
	mux.Handle("POST /iris/webhook/{event}", h)
	mux.Handle("POST /iris/webhook/{secret}/{event}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	good := `{"iocs":[{"ioc_id":5,"ioc_value":"x","ioc_type_id":20,"user_id":1}]}`
	tests := []struct {
		name, event, auth, body string
		want                    int
	}{
		{"OK", "create", "Bearer 0123456789abcdef-secret", good, 202},
		{"OKHeaderWithoutBearer", "manual", "0123456789abcdef-secret", good, 202},
		{"OwnUpdateNotStored", "update", "Bearer 0123456789abcdef-secret", strings.Replace(good, `"user_id":1`, `"user_id":2`, 1), 202},
		{"ManualByOwnUserStored", "manual", "Bearer 0123456789abcdef-secret", strings.Replace(good, `"user_id":1`, `"user_id":2`, 1), 202},
		// A link of an IOC whose last writer is velohunt (it wrote the tab).
		{"CreateByOwnUserStored", "create", "Bearer 0123456789abcdef-secret", strings.Replace(good, `"user_id":1`, `"user_id":2`, 1), 202},
		// Webhooks modules before 1.0.8 send no header: the secret in the path.
		{"SecretInPath", "0123456789abcdef-secret/create", "", good, 202},
		{"ErrWrongSecretInPath", "0123456789abcdef-secreT/create", "", good, 401},
		{"ErrPathSecretOverridesHeader", "wrong/create", "Bearer 0123456789abcdef-secret", good, 401},
		{"ErrNoSecret", "create", "", good, 401},
		{"ErrWrongSecret", "create", "Bearer 0123456789abcdef-secreT", good, 401},
		{"ErrPrefixOfSecret", "create", "Bearer 0123456789abcdef", good, 401},
		{"ErrUnknownEvent", "delete", "Bearer 0123456789abcdef-secret", good, 404},
		{"ErrNotJSON", "create", "Bearer 0123456789abcdef-secret", "iocs=1", 400},
		{"RenderingModeBodyHasNoIOC", "create", "Bearer 0123456789abcdef-secret", `{"text":"[N/A] Ioc created"}`, 202},
		{"ErrTooLarge", "create", "Bearer 0123456789abcdef-secret", `{"iocs":[],"pad":"` + strings.Repeat("a", 4096) + `"}`, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/iris/webhook/"+tt.event, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status=%d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	items, _ := e.db.PeekInbox(context.Background(), 10)
	if len(items) != 5 || woken != 5 {
		t.Fatalf("stored %d events, woke %d times; want 5 and 5 (own updates are not stored)", len(items), woken)
	}
}

func TestWebhookRateLimit(t *testing.T) {
	e := setup(t)
	h := &intake.Webhook{Store: e.db, Secret: "0123456789abcdef-secret", MaxBody: 2048, Wake: func() {},
		Limiter: rate.NewLimiter(0, 2), Logger: discard}
	mux := http.NewServeMux()
	mux.Handle("POST /iris/webhook/{event}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var codes []int
	for range 4 {
		req, _ := http.NewRequest("POST", srv.URL+"/iris/webhook/create", strings.NewReader(`{"iocs":[]}`))
		req.Header.Set("Authorization", "Bearer wrong") // requests without the secret are limited
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 401 || codes[1] != 401 || codes[2] != 429 || codes[3] != 429 {
		t.Fatalf("codes %v, want 401 401 429 429", codes)
	}
}

// TestWebhookFlood: 1,000 requests without the secret, on paths of every
// kind, while IRIS's events arrive: no event of IRIS is refused, and the
// metrics gain no series (every refused request counts under "other").
func TestWebhookFlood(t *testing.T) {
	e := setup(t)
	m := metrics.New(e.db)
	h := &intake.Webhook{Store: e.db, Secret: "0123456789abcdef-secret", MaxBody: 2048, Wake: func() {},
		Limiter: rate.NewLimiter(5, 10), Recorder: m, Logger: discard}
	mux := http.NewServeMux()
	mux.Handle("POST /iris/webhook/{event}", h)
	mux.Handle("POST /iris/webhook/{secret}/{event}", h)
	mux.Handle("GET /metrics", m.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(path, auth string) int {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(`{"iocs":[{"ioc_id":5,"ioc_value":"x","ioc_type_id":20,"user_id":1}]}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	series := func() int {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "velohunt_webhook_requests_total{") {
				n++
			}
		}
		return n
	}
	const good = "Bearer 0123456789abcdef-secret"
	// Every kind of answer once.
	post("/iris/webhook/create", good)
	post("/iris/webhook/0123456789abcdef-secret/manual", "")
	for range 20 {
		post("/iris/webhook/create", "Bearer wrong")
	}
	before := series()

	var wg sync.WaitGroup
	var refused atomic.Int64
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				switch i % 3 {
				case 0:
					post(fmt.Sprintf("/iris/webhook/guess-%d-%d/create", g, i), "")
				case 1:
					post(fmt.Sprintf("/iris/webhook/guess-%d-%d", g, i), "")
				default:
					post(fmt.Sprintf("/iris/webhook/x%d%d", g, i), "Bearer wrong")
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100 {
			path := "/iris/webhook/create"
			if i%2 == 1 {
				path = "/iris/webhook/0123456789abcdef-secret/manual"
			}
			auth := good
			if i%2 == 1 {
				auth = ""
			}
			if code := post(path, auth); code != http.StatusAccepted {
				refused.Add(1)
			}
		}
	}()
	wg.Wait()
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d of IRIS's 100 events refused during the flood", n)
	}
	if after := series(); after != before {
		t.Fatalf("%d webhook metric series after the flood, %d before", after, before)
	}
}

// TestRoutingOverride: a case custom attribute ("server" or "server/org")
// routes the case, whatever the configured routes say; a value naming no
// server is ignored.
func TestRoutingOverride(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	cfg := config.Default()
	cfg.Velociraptor.Servers = []config.Server{{Name: "main", APIConfig: "/x"}, {Name: "acme", APIConfig: "/y"}}
	cfg.Velociraptor.Default = config.Target{Server: "main"}
	cfg.Velociraptor.CaseAttribute = config.CaseAttribute{Tab: "Velohunt", Field: "Velociraptor"}
	e.syncer.Route, e.syncer.Override, e.syncer.NeedDetails = cfg.Route, cfg.CaseOverride, cfg.NeedCaseDetails()
	routed, _ := e.admin.AddCase(ctx, "routed", "desc", 1, "")
	bad, _ := e.admin.AddCase(ctx, "bad override", "desc", 1, "")
	plain, _ := e.admin.AddCase(ctx, "plain", "desc", 1, "")
	e.irisSrv.SetCaseAttribute(routed, "Velohunt", "Velociraptor", "acme/O42")
	e.irisSrv.SetCaseAttribute(bad, "Velohunt", "Velociraptor", "nowhere")
	if _, err := e.syncer.Sync(ctx, "reconcile", true); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]ioc.Route{routed: {Server: "acme", Org: "O42"}, bad: {Server: "main"}, plain: {Server: "main"}} {
		c, err := e.db.FindCase(ctx, id)
		if err != nil || c.Route != want {
			t.Fatalf("case %d routed to %+v (err %v), want %+v", id, c.Route, err, want)
		}
	}
}

// TestWebhookBodyOfRealModule stores and handles the exact body
// iris-webhooks-module 1.0.8 posted for an IOC added over the API to a real
// IRIS 2.4.20 (contract, "Observed on a real IRIS", item 16).
func TestWebhookBodyOfRealModule(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	cid, _ := e.admin.AddCase(ctx, "case", "desc", 1, "")
	x, _ := e.admin.AddIOC(ctx, cid, iris.NewIOC{Value: "0123456789abcdef0123456789abcdef", TypeID: iristest.TypeID("md5"), TLPID: 2})
	body := `{"iocs":[{"ioc_id":` + itoa(x.ID) + `,"user_id":1,"ioc_value":"0123456789abcdef0123456789abcdef","ioc_type_id":90,` +
		`"ioc_type":{"type_id":90,"type_name":"md5","type_description":"A checksum in md5 format","type_taxonomy":null,` +
		`"type_validation_regex":null,"type_validation_expect":null},"ioc_tlp_id":2,"ioc_tags":"","ioc_description":"from the API",` +
		`"custom_attributes":null,"ioc_uuid":"0b4b7c7e-8a36-4c4e-9d57-1d1cf1e0f0a1","ioc_misp":null,"ioc_enrichment":null,"modification_history":null}]}`
	h := &intake.Webhook{Store: e.db, Secret: "0123456789abcdef-secret", MaxBody: 1 << 20, Wake: func() {}, OwnUserID: 2, Logger: discard}
	req := httptest.NewRequest("POST", "/iris/webhook/create", strings.NewReader(body))
	req.SetPathValue("event", "create")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer 0123456789abcdef-secret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 202 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	iocs, err := iris.ParseWebhookIOCs([]byte(body))
	if err != nil || len(iocs) != 1 || iocs[0].ID != x.ID || iocs[0].TypeName != "md5" || iocs[0].UserID != 1 || iocs[0].TLPID != 2 {
		t.Fatalf("parsed %+v err=%v", iocs, err)
	}
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.states(t, cid)["0123456789abcdef0123456789abcdef"]; got != store.StateQueued {
		t.Fatalf("state %q, want queued", got)
	}
}

// TestNamedIOCsSyncTheirCases is issue 8's part 4: an IOC linked to a
// second case, or updated from another case, moves no IOC counter of the
// case that changed, and its webhook's user_id may be velohunt's (the last
// writer of the tab). The IOCs a webhook names have their cases synced
// anyway, without waiting for the full sync.
func TestNamedIOCsSyncTheirCases(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.in.FullEvery = time.Hour
	a, _ := e.admin.AddCase(ctx, "case a", "desc", 1, "")
	b, _ := e.admin.AddCase(ctx, "case b", "desc", 1, "")
	x, _ := e.admin.AddIOC(ctx, a, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain"), TLPID: 2})
	// velohunt writes the tab: it becomes the IOC's last writer.
	svc, _ := iris.New(iris.Options{URL: e.irisSrv.URL(), APIKey: "velohunt-key"})
	if err := svc.UpdateIOCAttributes(ctx, a, x.ID, "Velociraptor hunt", map[string]string{"Status": "queued"}); err != nil {
		t.Fatal(err)
	}
	if err := e.in.Step(ctx); err != nil { // the first, complete sync
		t.Fatal(err)
	}
	if e.states(t, a)["evil.example"] != store.StateQueued {
		t.Fatal("not synced")
	}
	event := func(kind string) {
		t.Helper()
		got, _ := svc.IOC(ctx, a, x.ID)
		payload := `{"iocs":[{"ioc_id":` + itoa(x.ID) + `,"ioc_value":"` + got.Value + `","ioc_type_id":20,"user_id":` + itoa(got.UserID) + `,"ioc_type":{"type_name":"domain"}}]}`
		if err := e.db.AddInbox(ctx, kind, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		if err := e.in.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stateB, _ := svc.IOCState(ctx, b)
	if _, err := e.admin.AddIOC(ctx, b, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain"), TLPID: 2}); err != nil {
		t.Fatal(err)
	}
	if now, _ := svc.IOCState(ctx, b); now != stateB {
		t.Fatal("the simulator moved the counter on a link; IRIS 2.4.20 does not")
	}
	lists := e.irisSrv.Requests()["GET /case/ioc/list"]
	event(intake.EventCreate) // user_id is velohunt's
	if got := e.states(t, b)["evil.example"]; got != store.StateQueued {
		t.Fatalf("linked IOC in case b: state %q, want queued", got)
	}
	if n := e.irisSrv.Requests()["GET /case/ioc/list"] - lists; n > 2 {
		t.Fatalf("%d IOC lists read for one link, want at most 2 (the IOC's cases, not every open case)", n)
	}
	// An analyst changes the value from case a: only a's counter moves.
	req, _ := http.NewRequest("POST", e.irisSrv.URL()+"/case/ioc/update/"+itoa(x.ID)+"?cid="+itoa(a), strings.NewReader(`{"ioc_value":"evil2.example"}`))
	req.Header.Set("Authorization", "Bearer admin-key")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("update: %v %v", resp, err)
	}
	event(intake.EventUpdate)
	if got := e.states(t, b)["evil2.example"]; got != store.StateQueued {
		t.Fatalf("IOC changed from case a, in case b: %v", e.states(t, b))
	}
}

// TestManualTriggerHuntsItsCase: the webhook of a manual trigger names no
// case; IRIS's module task list does. An IOC linked to two cases is
// re-hunted only in the case the analyst clicked in; when IRIS lists no
// task for it, in every open case that links it (issue 8, part 2).
func TestManualTriggerHuntsItsCase(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.in.ManualWait = 2 * time.Second
	h := &intake.Webhook{Store: e.db, Secret: "0123456789abcdef-secret", MaxBody: 1 << 20, Wake: func() {}, OwnUserID: 2, Logger: discard}
	mux := http.NewServeMux()
	mux.Handle("POST /iris/webhook/{event}", h)
	hook := httptest.NewServer(mux)
	defer hook.Close()
	a, _ := e.admin.AddCase(ctx, "case a", "desc", 1, "")
	b, _ := e.admin.AddCase(ctx, "case b", "desc", 1, "")
	x, _ := e.admin.AddIOC(ctx, a, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain"), TLPID: 2})
	e.admin.AddIOC(ctx, b, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain"), TLPID: 2})
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	// Both rows hunted once.
	g, _ := e.db.QueuedGroups(ctx)
	if len(g) != 1 {
		t.Fatalf("groups %+v", g)
	}
	hunt, _ := e.db.PlanHunt(ctx, g[0], 10, "A", time.Hour)
	if _, err := e.db.EndHunt(ctx, hunt.ID, store.HuntFinished); err != nil {
		t.Fatal(err)
	}
	if e.states(t, a)["evil.example"] != store.StateHunted || e.states(t, b)["evil.example"] != store.StateHunted {
		t.Fatalf("states a=%v b=%v", e.states(t, a), e.states(t, b))
	}
	e.irisSrv.SetWebhook(hook.URL+"/iris/webhook", map[string]string{"Authorization": "Bearer 0123456789abcdef-secret"})
	e.irisSrv.TriggerManual(b, x.ID)
	deadline := time.Now().Add(5 * time.Second)
	for items, _ := e.db.PeekInbox(ctx, 10); len(items) == 0; items, _ = e.db.PeekInbox(ctx, 10) {
		if time.Now().After(deadline) {
			t.Fatal("no webhook")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.states(t, b)["evil.example"]; got != store.StateQueued {
		t.Fatalf("case b (clicked): %q, want queued", got)
	}
	if got := e.states(t, a)["evil.example"]; got != store.StateHunted {
		t.Fatalf("case a (not clicked): %q, want hunted", got)
	}

	// A trigger IRIS lists no new task for (its task already used): every
	// open case that links the IOC.
	g, _ = e.db.QueuedGroups(ctx)
	hunt, _ = e.db.PlanHunt(ctx, g[0], 10, "A", time.Hour)
	e.db.EndHunt(ctx, hunt.ID, store.HuntFinished)
	payload := `{"iocs":[{"ioc_id":` + itoa(x.ID) + `,"ioc_value":"evil.example","ioc_type_id":20,"user_id":1,"ioc_type":{"type_name":"domain"}}]}`
	e.db.AddInbox(ctx, intake.EventManual, []byte(payload))
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := e.states(t, a)["evil.example"], e.states(t, b)["evil.example"]; a != store.StateQueued || b != store.StateQueued {
		t.Fatalf("without a task: a=%q b=%q, want both queued", a, b)
	}
}

// manualEnv is a webhook endpoint fed by the simulated IRIS, cases a and
// b, IOC X linked to both and IOC Y to b only, each row hunted once.
type manualEnv struct {
	*env
	a, b int64
	x, y int64
}

func setupManual(t *testing.T) *manualEnv {
	t.Helper()
	ctx := context.Background()
	m := &manualEnv{env: setup(t)}
	m.in.ManualWait = 2 * time.Second
	h := &intake.Webhook{Store: m.db, Secret: "0123456789abcdef-secret", MaxBody: 1 << 20, Wake: func() {}, OwnUserID: 2, Logger: discard}
	mux := http.NewServeMux()
	mux.Handle("POST /iris/webhook/{event}", h)
	hook := httptest.NewServer(mux)
	t.Cleanup(hook.Close)
	m.a, _ = m.admin.AddCase(ctx, "case a", "desc", 1, "")
	m.b, _ = m.admin.AddCase(ctx, "case b", "desc", 1, "")
	x, _ := m.admin.AddIOC(ctx, m.a, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain"), TLPID: 2})
	m.admin.AddIOC(ctx, m.b, iris.NewIOC{Value: "evil.example", TypeID: iristest.TypeID("domain"), TLPID: 2})
	y, _ := m.admin.AddIOC(ctx, m.b, iris.NewIOC{Value: "other.example", TypeID: iristest.TypeID("domain"), TLPID: 2})
	m.x, m.y = x.ID, y.ID
	if err := m.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	m.huntAll(t)
	m.irisSrv.SetWebhook(hook.URL+"/iris/webhook", map[string]string{"Authorization": "Bearer 0123456789abcdef-secret"})
	return m
}

// huntAll plans and ends a hunt of every queued row.
func (m *manualEnv) huntAll(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g, _ := m.db.QueuedGroups(ctx)
	for _, q := range g {
		hunt, err := m.db.PlanHunt(ctx, q, 10, "A", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.db.EndHunt(ctx, hunt.ID, store.HuntFinished); err != nil {
			t.Fatal(err)
		}
	}
}

// waitInbox waits until n events are stored.
func (m *manualEnv) waitInbox(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for items, _ := m.db.PeekInbox(context.Background(), 10); len(items) < n; items, _ = m.db.PeekInbox(context.Background(), 10) {
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook events stored, want %d", len(items), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// queued returns the cases where an IOC value is queued.
func (m *manualEnv) queued(t *testing.T, value string) []int64 {
	t.Helper()
	var out []int64
	for _, c := range []int64{m.a, m.b} {
		if m.states(t, c)[value] == store.StateQueued {
			out = append(out, c)
		}
	}
	return out
}

// TestManualTriggerTaskUsedOnce: Y (only in case b) is triggered from b,
// then X (in a and b) from a. The task of Y's trigger names b; it is used
// by Y's trigger, so X is re-hunted in a only.
func TestManualTriggerTaskUsedOnce(t *testing.T) {
	ctx := context.Background()
	m := setupManual(t)
	m.irisSrv.TriggerManual(m.b, m.y)
	m.waitInbox(t, 1)
	if err := m.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.queued(t, "other.example"); len(got) != 1 || got[0] != m.b {
		t.Fatalf("Y queued in %v, want [%d]", got, m.b)
	}
	m.huntAll(t)
	m.irisSrv.TriggerManual(m.a, m.x)
	m.waitInbox(t, 1)
	if err := m.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.queued(t, "evil.example"); len(got) != 1 || got[0] != m.a {
		t.Fatalf("X triggered from case %d queued in %v, want only there", m.a, got)
	}
}

// TestManualTriggersOneBatch: two analysts trigger X, one from a and one
// from b; both webhooks are handled in one batch while IRIS lists b's task
// 600 ms late. X is re-hunted in a and in b, and neither task is left for
// a later trigger.
func TestManualTriggersOneBatch(t *testing.T) {
	ctx := context.Background()
	m := setupManual(t)
	m.irisSrv.DelayTasks(m.b, 600*time.Millisecond)
	m.irisSrv.TriggerManual(m.a, m.x)
	m.irisSrv.TriggerManual(m.b, m.x)
	m.waitInbox(t, 2)
	if err := m.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.queued(t, "evil.example"); len(got) != 2 {
		t.Fatalf("X queued in %v, want both cases", got)
	}
	// X from a again: its own task tells the case, not a leftover of the batch.
	m.huntAll(t)
	m.irisSrv.DelayTasks(m.b, 0)
	m.irisSrv.TriggerManual(m.a, m.x)
	m.waitInbox(t, 1)
	if err := m.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.queued(t, "evil.example"); len(got) != 1 || got[0] != m.a {
		t.Fatalf("X triggered again from case %d queued in %v, want only there (no task left over)", m.a, got)
	}
}

// duringList calls fn with the first case it listed IOCs of, when the
// sync lists the IOCs of a second case: the first is done by then.
type duringList struct {
	intake.IRIS
	first int64
	fn    func(first int64)
}

func (d *duringList) ListIOCs(ctx context.Context, cid int64) ([]ioc.IOC, error) {
	switch {
	case d.first == 0:
		d.first = cid
	case d.fn != nil:
		d.fn(d.first)
		d.fn = nil
	}
	return d.IRIS.ListIOCs(ctx, cid)
}

// A full sync requested while one runs (a cron tick, or the start-up sync
// running when an IOC is added to a case it already listed) runs after
// it: the running one's end used to clear the request, and the IOC waited
// for the next tick (found by the real hit-to-evidence test, which waited
// up to 5 minutes on an IRIS with many cases).
func TestFullSyncRequestedDuringSync(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.admin.AddCase(ctx, "case d1", "desc", 1, "")
	e.admin.AddCase(ctx, "case d2", "desc", 1, "")
	var late int64
	e.syncer.IRIS = &duringList{IRIS: e.syncer.IRIS, fn: func(first int64) {
		late = first
		e.admin.AddIOC(ctx, first, iris.NewIOC{Value: "late.example", TypeID: iristest.TypeID("domain")})
		e.in.RequestFullSync()
	}}
	if err := e.in.Step(ctx); err != nil { // start-up sync
		t.Fatal(err)
	}
	if err := e.in.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.states(t, late)["late.example"]; got != store.StateQueued {
		t.Fatalf("the IOC added during a sync was not synced by the one requested then: state %q", got)
	}
}
