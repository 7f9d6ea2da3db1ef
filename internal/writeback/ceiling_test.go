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
// bound on requests in flight. Around each, it measures IRIS's own ceiling
// at the same concurrency: that many clients sending the same writes (an
// asset with two IOC links, two events) as fast as IRIS answers. It reports hits/s, requests per hit against the minimum
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
				var iocs []int64
				for _, r := range e.rows {
					iocs = append(iocs, r.IRISID)
				}
				ceiling := irisCeiling(b, tg, e.cid, conc, iocs, "before")
				var evBefore, asBefore int
				if tg.srv != nil {
					evBefore, asBefore = len(tg.srv.Events(e.cid)), len(tg.srv.Assets(e.cid))
				}
				before := requests(tg)
				b.ResetTimer()
				start := time.Now()
				stop := make(chan struct{})
				var samples, bounds, flying atomic.Int64
				var sampler sync.WaitGroup
				sampler.Add(1)
				go func() {
					defer sampler.Done()
					t := time.NewTicker(100 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							l, n := e.w.ConcurrencyInUse()
							samples.Add(1)
							bounds.Add(int64(l))
							flying.Add(int64(n))
						}
					}
				}()
				e.drainReal(b, 2*time.Hour)
				elapsed := time.Since(start)
				if tg.srv != nil {
					got, assets := len(tg.srv.Events(e.cid))-evBefore, len(tg.srv.Assets(e.cid))-asBefore
					if got != hits || assets != hits/2 {
						b.Fatalf("%d events and %d assets written, want %d and %d", got, assets, hits, hits/2)
					}
				}
				close(stop)
				sampler.Wait()
				b.StopTimer()
				if k := samples.Load(); k > 0 {
					b.ReportMetric(float64(bounds.Load())/float64(k), "mean-bound")
					b.ReportMetric(float64(flying.Load())/float64(k), "mean-in-flight")
				}
				sent := requests(tg) - before
				ceiling = (ceiling + irisCeiling(b, tg, e.cid, conc, iocs, "after")) / 2
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

// irisCeiling measures the requests per second IRIS serves to conc clients
// sending, as fast as it answers, the same writes as the write-back: an
// asset linked to two IOCs, then two timeline events linked to it, over and
// over (for 10 s), in the same case. A real IRIS gets slower as a case
// fills, so the ceiling is measured before and after the run and averaged.
func irisCeiling(b *testing.B, tg target, cid int64, conc int, iocs []int64, tag string) float64 {
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
			for i := 0; time.Now().Before(deadline); i++ {
				id, err := c.AddAsset(ctx, cid, iris.NewAsset{Name: fmt.Sprintf("ceiling-%s-%d-%d", tag, w, i), TypeID: refs.AssetTypes["linux"],
					AnalysisStatusID: refs.AnalysisStatusID, CompromiseStatusID: refs.CompromiseStatusID, Description: "load", Tags: "velohunt-bench", IOCLinks: iocs})
				if err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
				for k := range 2 {
					_, err := c.AddEvent(ctx, cid, iris.NewEvent{Title: fmt.Sprintf("ceiling %s %d-%d-%d", tag, w, i, k), Date: "2026-12-03T08:00:00.000",
						TZ: "+00:00", CategoryID: refs.EventCategoryID, Content: "load", Raw: "{}", Source: "velohunt benchmark", Tags: "velohunt-bench",
						Assets: []int64{id}, IOCs: iocs[k : k+1]})
					if err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
