package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
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
		close(stop)
		wg.Wait()

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
		if len(seen) != 4*perKind || st.IOCs[store.StateHunting] != 4*perKind {
			b.Fatalf("%d distinct values hunted, store %+v", len(seen), st.IOCs)
		}
		b.ReportMetric(float64(4*perKind)/elapsed.Seconds(), "iocs/s")
		b.ReportMetric(float64(len(d.VR.Hunts())), "hunts")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
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
