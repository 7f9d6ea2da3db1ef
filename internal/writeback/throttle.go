package writeback

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/iris"
)

// throttle bounds the IRIS requests in flight and lowers the bound when IRIS
// shows strain, so that velohunt never becomes the reason IRIS is slow for
// the analysts using it:
//
//   - an answer that says "too busy" (429, 502, 503, 504, a timeout or a
//     dropped connection) halves the bound and pauses every request for the
//     Retry-After IRIS sent (else the least backoff), capped by maxPause;
//   - latency rising: each answer's latency divided by the requests that
//     were in flight when it was sent is smoothed twice, quickly (the last
//     few answers) and slowly (the last few hundred: what IRIS usually
//     takes). The quick figure at twice the slow one cuts the bound by 30%,
//     at most once per second. A case that grows makes IRIS slower slowly,
//     which moves both; analysts or other modules loading IRIS at once
//     move the quick one first;
//   - otherwise the bound grows back by 1/bound per answer (one step per
//     round trip of a full window), up to the configured maximum.
//
// The figures use the real clock: they pace real requests.
type throttle struct {
	max      int
	minPause time.Duration
	maxPause time.Duration

	mu       sync.Mutex
	limit    float64
	inflight int
	pause    time.Time
	changed  chan struct{} // closed and replaced when a slot frees or the bound moves
	fast     float64       // seconds per request in flight, smoothed over the last few answers
	slow     float64       // the same over the last few hundred
	lastCut  time.Time
}

func newThrottle(max int, minPause, maxPause time.Duration) *throttle {
	if max < 1 {
		max = 1
	}
	return &throttle{max: max, minPause: minPause, maxPause: maxPause, limit: float64(max), changed: make(chan struct{})}
}

func (t *throttle) bound() int { return max(1, int(t.limit)) }

// acquire waits for a slot.
func (t *throttle) acquire(ctx context.Context) error {
	for {
		t.mu.Lock()
		wait := time.Until(t.pause)
		if wait <= 0 && t.inflight < t.bound() {
			t.inflight++
			t.mu.Unlock()
			return nil
		}
		ch := t.changed
		t.mu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return ctx.Err()
		case <-ch:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// release frees a slot.
func (t *throttle) release() {
	t.mu.Lock()
	t.inflight--
	t.signal()
	t.mu.Unlock()
}

func (t *throttle) signal() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// observe records one IRIS answer: its latency, the requests in flight when
// it was sent, and its error.
func (t *throttle) observe(latency time.Duration, inflight int, err error) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.signal()
	if busy(err) {
		t.limit = max(1, t.limit/2)
		d := iris.RetryAfter(err)
		if d <= 0 {
			d = t.minPause
		}
		if t.pause.Before(now.Add(min(d, t.maxPause))) {
			t.pause = now.Add(min(d, t.maxPause))
		}
		return
	}
	if err != nil && !iris.IsRetryable(err) && isIRIS(err) {
		// A refusal (4xx) says nothing about load, but its latency does.
		err = nil
	}
	if err != nil {
		return
	}
	per := latency.Seconds() / float64(max(inflight, 1))
	if t.slow == 0 {
		t.fast, t.slow = per, per
	} else {
		t.fast = 0.8*t.fast + 0.2*per
		t.slow = 0.99*t.slow + 0.01*per
	}
	switch {
	case latency > 10*time.Second:
		t.limit, t.lastCut = 1, now
	case t.fast > 2*t.slow && t.fast-t.slow > 0.005:
		if now.Sub(t.lastCut) >= time.Second {
			t.limit, t.lastCut = max(1, t.limit*0.7), now
		}
	case t.limit < float64(t.max):
		t.limit = min(float64(t.max), t.limit+1/t.limit)
	}
}

// busy reports an answer that says IRIS (or the proxy before it) is
// overloaded: 429, 502, 503, 504, a timeout or a dropped connection.
func busy(err error) bool {
	var se *iris.StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case 0, 429, 502, 503, 504:
		return true
	}
	return false
}

// state returns the current bound and the requests in flight.
func (t *throttle) state() (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bound(), t.inflight
}

// metered is the IRIS client as the writer calls it: every request's
// latency and outcome feed the throttle.
type metered struct {
	api IRIS
	t   *throttle
}

func (m metered) observe(start time.Time, inflight int, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	m.t.observe(time.Since(start), inflight, err)
}

func (m metered) inFlight() int {
	_, n := m.t.state()
	return n
}

// timed runs one request and tells the throttle how it went.
func timed[T any](m metered, f func() (T, error)) (T, error) {
	start, n := time.Now(), m.inFlight()
	v, err := f()
	m.observe(start, n, err)
	return v, err
}

func (m metered) ListAssets(ctx context.Context, cid int64) ([]iris.Asset, error) {
	return timed(m, func() ([]iris.Asset, error) { return m.api.ListAssets(ctx, cid) })
}

func (m metered) Asset(ctx context.Context, cid, id int64) (iris.AssetDetail, error) {
	return timed(m, func() (iris.AssetDetail, error) { return m.api.Asset(ctx, cid, id) })
}

func (m metered) AddAsset(ctx context.Context, cid int64, a iris.NewAsset) (int64, error) {
	return timed(m, func() (int64, error) { return m.api.AddAsset(ctx, cid, a) })
}

func (m metered) SetAssetIOCLinks(ctx context.Context, cid int64, a iris.AssetDetail, links []int64) error {
	_, err := timed(m, func() (struct{}, error) { return struct{}{}, m.api.SetAssetIOCLinks(ctx, cid, a, links) })
	return err
}

func (m metered) ListEvents(ctx context.Context, cid int64) ([]iris.EventSummary, error) {
	return timed(m, func() ([]iris.EventSummary, error) { return m.api.ListEvents(ctx, cid) })
}

func (m metered) AddEvent(ctx context.Context, cid int64, e iris.NewEvent) (int64, error) {
	return timed(m, func() (int64, error) { return m.api.AddEvent(ctx, cid, e) })
}

func (m metered) IOCAttributes(ctx context.Context, cid, iocID int64, tab string) (map[string]string, error) {
	return timed(m, func() (map[string]string, error) { return m.api.IOCAttributes(ctx, cid, iocID, tab) })
}

func (m metered) UpdateIOCAttributes(ctx context.Context, cid, iocID int64, tab string, fields map[string]string) error {
	_, err := timed(m, func() (struct{}, error) { return struct{}{}, m.api.UpdateIOCAttributes(ctx, cid, iocID, tab, fields) })
	return err
}

// keyedLocks serialises work on one IRIS object (an asset, a case's asset
// name) across the writer's concurrent jobs.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu    sync.Mutex
	users int
}

// lock locks key and returns its unlock.
func (k *keyedLocks) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

func (m metered) AddEvidence(ctx context.Context, cid int64, e iris.NewEvidence) (iris.Evidence, error) {
	return timed(m, func() (iris.Evidence, error) { return m.api.AddEvidence(ctx, cid, e) })
}

func (m metered) ListEvidences(ctx context.Context, cid int64) ([]iris.Evidence, error) {
	return timed(m, func() ([]iris.Evidence, error) { return m.api.ListEvidences(ctx, cid) })
}

func (m metered) ListDatastore(ctx context.Context, cid int64) (iris.Datastore, error) {
	return timed(m, func() (iris.Datastore, error) { return m.api.ListDatastore(ctx, cid) })
}

func (m metered) AddDatastoreFolder(ctx context.Context, cid, parent int64, name string) (int64, error) {
	return timed(m, func() (int64, error) { return m.api.AddDatastoreFolder(ctx, cid, parent, name) })
}

func (m metered) AddDatastoreFile(ctx context.Context, cid, folder int64, f iris.NewDatastoreFile) (iris.DatastoreFile, error) {
	return timed(m, func() (iris.DatastoreFile, error) { return m.api.AddDatastoreFile(ctx, cid, folder, f) })
}
