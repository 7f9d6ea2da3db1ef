package writeback_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/writeback"
)

// BenchmarkWritebackCeiling writes 10,000 hits found on 5,000 hosts (two
// IOCs each) into an IRIS that serves one request at a time in 22 ms, like
// a stock IRIS 2.4 (one gunicorn eventlet worker, about 43 writes/s from
// one client): one request at a time ("sequential"), then with the default
// bound on requests in flight. Before each, it measures IRIS's own ceiling
// at the same concurrency: that many clients adding timeline events as fast
// as IRIS answers. It reports hits/s, requests per hit against the minimum
// (one asset per host with both links, one event per hit, one tab per IOC),
// the wall time until the last hit is in IRIS, and the fraction of the
// ceiling reached.
//
//	go test -run XXX -bench WritebackCeiling -benchtime 1x -timeout 60m ./internal/writeback
//
// VELOHUNT_BENCH_HITS changes the number of hits (two per host). With
// VELOHUNT_BENCH_REAL_IRIS=1 and the VELOHUNT_TEST_IRIS_URL, _KEY and
// _ADMIN_KEY variables it writes into that real IRIS instead (a new case
// per run, closed at the end).
func BenchmarkWritebackCeiling(b *testing.B) {
	hits := 10000
	if v, err := strconv.Atoi(os.Getenv("VELOHUNT_BENCH_HITS")); err == nil && v >= 2 {
		hits = v
	}
	real := os.Getenv("VELOHUNT_BENCH_REAL_IRIS") == "1"
	for _, conc := range []int{1, writeback.DefaultConcurrency} {
		name := fmt.Sprintf("concurrency-%d", conc)
		if conc == 1 {
			name = "sequential"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				var tg target
				if real {
					tg = realTarget(b)
				} else {
					srv := iristest.Start()
					defer srv.Close()
					tg = target{srv: srv, url: srv.URL(), adminKey: "admin-key", key: "velohunt-key"}
				}
				e := setupOn(b, 2, tg)
				e.w.Now, e.db.Now = time.Now, time.Now
				e.w.Concurrency = conc
				e.hits(b, hits/2, func(h, i int) string { return fmt.Sprintf(`C:\Users\u%d\evil-%d.exe`, h, i) })
				if tg.srv != nil {
					tg.srv.SetLoad(iristest.Load{ServiceTime: 22 * time.Millisecond, Workers: 1})
				}
				ceiling := irisCeiling(b, tg, e.cid, conc)
				before := requests(tg)
				b.ResetTimer()
				start := time.Now()
				e.drainReal(b, 2*time.Hour)
				elapsed := time.Since(start)
				b.StopTimer()
				sent := requests(tg) - before
				minimum := hits/2 + hits + 2
				b.ReportMetric(float64(hits)/elapsed.Seconds(), "hits/s")
				b.ReportMetric(elapsed.Seconds(), "s-to-last-hit")
				b.ReportMetric(float64(sent)/float64(hits), "requests/hit")
				b.ReportMetric(float64(minimum)/float64(hits), "minimum/hit")
				b.ReportMetric(ceiling, "iris-ceiling-req/s")
				b.ReportMetric(float64(sent)/elapsed.Seconds()/ceiling, "fraction-of-ceiling")
			}
		})
	}
}

// realTarget is the real IRIS of the VELOHUNT_TEST_IRIS_* variables.
func realTarget(b *testing.B) target {
	tg := target{sent: &atomic.Int64{}, url: os.Getenv("VELOHUNT_TEST_IRIS_URL"), key: os.Getenv("VELOHUNT_TEST_IRIS_KEY"),
		adminKey: os.Getenv("VELOHUNT_TEST_IRIS_ADMIN_KEY")}
	if tg.url == "" || tg.key == "" || tg.adminKey == "" {
		b.Skip("VELOHUNT_TEST_IRIS_URL, _KEY and _ADMIN_KEY are needed")
	}
	return tg
}

// requests counts the write-path requests IRIS received: the simulator's
// own count, or, for a real IRIS, the writer's requests as counted by its
// client (a real IRIS has no counter a test can read).
func requests(tg target) int {
	if tg.srv == nil {
		return int(tg.sent.Load())
	}
	n := 0
	for route, k := range tg.srv.Requests() {
		switch route {
		case "POST /case/assets/add", "GET /case/assets/{id}", "POST /case/assets/update/{id}", "POST /case/timeline/events/add",
			"POST /case/ioc/update/{id}", "GET /case/assets/list", "GET /case/timeline/events/list":
			n += k
		}
	}
	return n
}

// irisCeiling measures the timeline events per second IRIS takes from conc
// clients adding them as fast as it answers (300 events per client, or 10 s
// on a real IRIS, whichever comes first), in the same case.
func irisCeiling(b *testing.B, tg target, cid int64, conc int) float64 {
	b.Helper()
	c, err := iris.New(iris.Options{URL: tg.url, APIKey: tg.key, Timeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	refs := resolveRefs(b, c)
	ctx := context.Background()
	var n atomic.Int64
	deadline := time.Now().Add(10 * time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300 && time.Now().Before(deadline); i++ {
				_, err := c.AddEvent(ctx, cid, iris.NewEvent{Title: fmt.Sprintf("ceiling %d-%d", w, i), Date: "2026-12-03T08:00:00.000",
					TZ: "+00:00", CategoryID: refs.EventCategoryID, Content: "load", Raw: "{}", Source: "velohunt benchmark", Tags: "velohunt-bench"})
				if err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
