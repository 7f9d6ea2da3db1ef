package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// BenchmarkIntakeBurst creates 10,000 IOCs (2,500 of each kind) in a burst
// through the simulated IRIS's API. IRIS posts one webhook per IOC to the
// real service, which must queue, batch and launch them. It reports IOCs per
// second from the first IOC added to the last IOC covered by a started hunt,
// the hunts created, and the peak heap. It fails if any kind needs more than
// ceil(2,500 / list size) hunts or any IOC is hunted twice.
//
//	go test -run XXX -bench IntakeBurst -benchtime 1x ./cmd/velohunt
func BenchmarkIntakeBurst(b *testing.B) {
	const perKind = 2500
	for range b.N {
		ctx := context.Background()
		d, err := startDemo(ctx, b.TempDir(), io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		listSize := d.App.Config.Hunting.MaxIOCsPerHunt
		cid, err := d.Admin.AddCase(ctx, "burst", "benchmark", 1, "")
		if err != nil {
			b.Fatal(err)
		}
		peak := sampleHeap()
		b.ResetTimer()
		start := time.Now()
		var adders sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			adders.Add(1)
			go func() {
				defer adders.Done()
				for i := w; i < 4*perKind; i += 8 {
					typ, val := burstIOC(i)
					if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: val, TypeID: iristest.TypeID(typ), TLPID: 2}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		adders.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		added := time.Since(start)
		if err := d.waitHunting(ctx, cid, 4*perKind, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		peakHeap := peak()

		perArtifact := map[string]int{}
		seen := map[string]bool{}
		for _, h := range d.VR.Hunts() {
			perArtifact[h.Artifact]++
			var vals []string
			json.Unmarshal([]byte(h.Params["IOCs"]), &vals)
			for _, v := range vals {
				if seen[v] {
					b.Fatalf("IOC %s hunted twice", v)
				}
				seen[v] = true
			}
		}
		maxHunts := (perKind + listSize - 1) / listSize
		for art, n := range perArtifact {
			if n > maxHunts {
				b.Fatalf("%s: %d hunts, want at most %d", art, n, maxHunts)
			}
		}
		st, _ := d.App.Store.Stats(ctx)
		if len(seen) != 4*perKind || st.IOCs[store.StateHunting]+st.IOCs[store.StateHit] != 4*perKind {
			b.Fatalf("%d distinct values hunted, store %+v", len(seen), st.IOCs)
		}
		b.ReportMetric(float64(4*perKind)/elapsed.Seconds(), "iocs/s")
		b.ReportMetric(float64(len(d.VR.Hunts())), "hunts")
		b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(added.Seconds(), "s-to-add")
		b.ReportMetric(elapsed.Seconds(), "s-to-hunted")
		d.Close()
	}
}

// burstIOC returns the i-th IOC of the burst: kinds in turn.
func burstIOC(i int) (string, string) {
	n := i / 4
	switch i % 4 {
	case 0:
		h := md5.Sum([]byte(fmt.Sprint(n)))
		return "md5", hex.EncodeToString(h[:])
	case 1:
		return "ip-dst", fmt.Sprintf("10.%d.%d.%d", n/65536, n/256%256, n%256)
	case 2:
		return "domain", fmt.Sprintf("host%d.evil.example", n)
	default:
		return "filename", fmt.Sprintf("dropper-%d.exe", n)
	}
}

// BenchmarkResultsWriteback runs the second half of the loop at scale: one
// hunt of 100 md5 IOCs returns 1,000,000 result rows from 5,000 clients, 1%
// of them hits (2 per client, on 2 IOCs). The service reads them all
// (streamed from a cursor), records the hits and writes assets, links,
// timeline events and tabs into the simulated IRIS. It reports rows per
// second, peak heap, and IRIS requests against the minimum the issue names
// (one per new asset, one per event, one tab update per IOC per pass).
//
//	go test -run XXX -bench ResultsWriteback -benchtime 1x ./cmd/velohunt
func BenchmarkResultsWriteback(b *testing.B) {
	const (
		rows    = 1_000_000
		clients = 5000
		iocs    = 100
	)
	hashes := make([]string, iocs)
	for i := range hashes {
		h := md5.Sum([]byte(fmt.Sprint("ioc", i)))
		hashes[i] = hex.EncodeToString(h[:])
	}
	var endpoints []velotest.Endpoint
	for c := range clients {
		os := []string{"windows", "linux"}[c%2]
		endpoints = append(endpoints, velotest.Endpoint{ClientID: fmt.Sprintf("C.%016x", c), Hostname: fmt.Sprintf("host-%04d", c),
			OS: os, LastIP: fmt.Sprintf("10.1.%d.%d", c/250, c%250+1)})
	}
	// Each client's flow has rows/clients rows: the blocks of 100 rows k
	// and k+clients of the million.
	clientID := func(c int) string { return fmt.Sprintf("C.%016x", c) }
	source := velotest.RowSource{Clients: clients, RowsPerClient: rows / clients, ClientID: clientID, Row: func(c, j int) map[string]any {
		k := c + (j/100)*clients
		i := k*100 + j%100
		client := clientID(c)
		path := fmt.Sprintf(`C:\Data\share\file-%07d.bin`, i)
		if i%100 != 7 {
			// Not a match: rows of an artifact that lists more than hits.
			return map[string]any{"IOC": "", "Source": "file", "Evidence": path, "ClientId": client, "Size": 1024}
		}
		return map[string]any{"IOC": hashes[(k*7+k/clients)%iocs], "Source": "file", "Evidence": path, "ClientId": client,
			"EventTime": "2026-11-20T08:14:55Z", "OSPath": path, "Size": 1024}
	}}
	for range b.N {
		ctx := context.Background()
		d, err := startDemoWith(ctx, b.TempDir(), io.Discard, endpoints, func(c *config.Config, vr *velotest.Server) {
			vr.SetRowSource("Custom.Velohunt.Hash", source)
			c.Hunting.BatchWindow = config.Duration(200 * time.Millisecond)
			// The benchmark waits until everything is in IRIS; with the
			// default interval the second tab write of each IOC waits five
			// minutes after its first. Tab writes are still one per change
			// of substance (counted below).
			c.Writeback.TabMinInterval = 0
		})
		if err != nil {
			b.Fatal(err)
		}
		cid, _ := d.Admin.AddCase(ctx, "scale", "benchmark", 1, "")
		peak := sampleHeap()
		before := d.IRIS.Requests()
		b.ResetTimer()
		start := time.Now()
		for _, h := range hashes {
			if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: h, TypeID: iristest.TypeID("md5"), TLPID: 2}); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.waitHunting(ctx, cid, iocs, time.Minute); err != nil {
			b.Fatal(err)
		}
		if err := d.waitWritten(ctx, 30*time.Minute); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		peakHeap := peak()

		events, assets := d.IRIS.Events(cid), d.IRIS.Assets(cid)
		if len(events) != rows/100 || len(assets) != clients {
			b.Fatalf("%d events and %d assets, want %d and %d", len(events), len(assets), rows/100, clients)
		}
		after := d.IRIS.Requests()
		writes := map[string]int{}
		total := 0
		for route, n := range after {
			if delta := n - before[route]; delta > 0 && !strings.HasPrefix(route, "GET /manage/") &&
				route != "POST /case/ioc/add" && route != "GET /api/versions" && route != "GET /user/whoami" &&
				route != "GET /manage/cases/list" && route != "GET /case/ioc/list" && route != "GET /case/ioc/state" {
				writes[route] = delta
				total += delta
			}
		}
		tabs := writes["POST /case/ioc/update/{id}"]
		minimum := len(assets) + len(events) + tabs
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(total), "iris-requests")
		b.ReportMetric(float64(minimum), "iris-minimum")
		b.ReportMetric(float64(tabs), "tab-updates")
		b.ReportMetric(elapsed.Seconds(), "s-total")
		b.Logf("IRIS write-path requests by route: %v", writes)
		d.Close()
	}
}

// sampleHeap samples the heap in use every 20ms until the returned function
// is called; that function returns the peak seen.
func sampleHeap() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak.Load()
	}
}
