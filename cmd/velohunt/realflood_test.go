package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestRealWebhookFlood: while anyone who can reach velohunt's webhook
// sends it 1,000 requests a second without the secret, on paths of every
// kind, IRIS's real webhooks module delivers every event (velohunt
// accepts each IOC's create event), and /metrics gains no series.
func TestRealWebhookFlood(t *testing.T) {
	ctx := context.Background()
	g := startRealIRISRig(t, velotest.Endpoint{ClientID: "C.4444444444444444", Hostname: "flood-host", OS: "linux", Online: true},
		func(c *config.Config) { c.Intake.SyncDelay = config.Duration(300 * time.Millisecond) })
	admin, app, run := g.admin, g.app, time.Now().UnixNano()
	base := "http://" + app.Addr()
	scrape := func() (series map[string]bool, accepted float64) {
		series = map[string]bool{}
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "#") || l == "" {
				continue
			}
			series[l[:strings.LastIndexByte(l, ' ')]] = true
			if strings.HasPrefix(l, `velohunt_webhook_requests_total{event="create",result="Accepted"}`) {
				accepted, _ = strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			}
		}
		return
	}
	cid := g.newCase(t, "flood")
	domain := g.typeID(t, "domain")
	add := func(i int) {
		if _, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: fmt.Sprintf("f%d-%d.flood.example", i, run), TypeID: domain, TLPID: 2}); err != nil {
			t.Error(err)
		}
	}
	post := func(path, auth string) int {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(`{"iocs":[{"ioc_id":5,"ioc_value":"x","ioc_type_id":20,"user_id":1}]}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Every kind of answer once, and one event of IRIS, before counting.
	add(0)
	for range 50 { // past the limit of unauthenticated requests: 429 too
		post("/iris/webhook/create", "Bearer wrong")
		post("/iris/webhook/guess/create", "")
		post("/iris/webhook/guess", "")
	}
	waitAccepted := func(n float64) {
		t.Helper()
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			if _, got := scrape(); got >= n {
				return
			}
			if time.Now().After(end) {
				_, got := scrape()
				t.Fatalf("%v create events accepted after 2 minutes, want %v", got, n)
			}
		}
	}
	waitAccepted(1)
	time.Sleep(2 * time.Second) // the first hunt's series (planned, started, rows) appear
	before, first := scrape()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, limited atomic.Int64
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond) // 100/s each, 1,000/s in all
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				var code int
				switch i % 3 {
				case 0:
					code = post(fmt.Sprintf("/iris/webhook/guess-%d-%d/create", g, i), "")
				case 1:
					code = post(fmt.Sprintf("/iris/webhook/guess-%d-%d", g, i), "")
				default:
					code = post(fmt.Sprintf("/iris/webhook/x%d%d", g, i), "Bearer wrong")
				}
				sent.Add(1)
				if code == http.StatusTooManyRequests {
					limited.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	for i := 1; i <= 20; i++ {
		add(i)
		time.Sleep(300 * time.Millisecond)
	}
	waitAccepted(first + 20)
	close(stop)
	wg.Wait()
	secs := time.Since(start).Seconds()
	t.Logf("%d unauthenticated requests in %.1f s (%.0f/s), %d answered 429; IRIS's 20 create events all accepted",
		sent.Load(), secs, float64(sent.Load())/secs, limited.Load())
	if sent.Load() < int64(500*secs) {
		t.Fatalf("only %d requests in %.1f s: the flood was not a flood", sent.Load(), secs)
	}
	time.Sleep(2 * time.Second)
	after, _ := scrape()
	// New series of the request paths the flood faces (webhook, intake)
	// would be its doing; the hunts of the 20 accepted IOCs add series of
	// their own (Velociraptor requests, rows read) whenever the watcher
	// reaches them, which says nothing of the flood.
	var added []string
	for k := range after {
		if before[k] {
			continue
		}
		if strings.HasPrefix(k, "velohunt_webhook_") || strings.HasPrefix(k, "velohunt_iocs_received") ||
			strings.Contains(k, "guess") || strings.Contains(k, "wrong") || strings.Contains(k, "/iris/webhook") {
			added = append(added, k)
		}
	}
	if len(added) > 0 {
		t.Fatalf("metric series after the flood that were not there before: %v", added)
	}
}
