// Package collect starts a follow-up collection on a hit's client — the
// matched file, uploaded by velohunt's own artifact, and the artifacts the
// team names — watches its flow, and records how it ended, so that the
// writer records it in the case as an IRIS evidence and a "collected"
// timeline event. A collection is made at most once per client and target
// (a file's path, or a hit's evidence), is held back visibly by its
// server's limits, and ends for good: collected, or failed with why.
package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// Velociraptor is what the collector calls on one server.
type Velociraptor interface {
	CollectClient(ctx context.Context, r velociraptor.CollectRequest) (string, error)
	// FindCollection finds a flow by its marker, or ENOTFOUND.
	FindCollection(ctx context.Context, org, clientID, marker string) (string, error)
	// FlowStatus reads a flow's state, or ENOTFOUND.
	FlowStatus(ctx context.Context, org, clientID, flowID string) (velociraptor.FlowStatus, error)
	CancelFlow(ctx context.Context, org, clientID, flowID string) error
	// CollectedFile reads the row of velohunt's collect artifact, or
	// ENOTFOUND.
	CollectedFile(ctx context.Context, org, clientID, flowID string) (velociraptor.CollectedFile, error)
}

// Store is the part of the store the collector uses.
type Store interface {
	PendingCollectHits(ctx context.Context, limit int) ([]store.CollectHit, error)
	DecideCollect(ctx context.Context, hitID int64, nc *store.NewCollection) (int64, bool, error)
	LiveCollections(ctx context.Context) ([]store.Collection, error)
	CollectUsage(ctx context.Context, server string, since time.Time) (store.CollectUsage, error)
	HoldCollection(ctx context.Context, id int64, reason string) error
	BeginCollectionLaunch(ctx context.Context, id, reserved int64) error
	CollectionLaunched(ctx context.Context, id int64, flowID string) error
	RetryCollection(ctx context.Context, id int64, reason string, next time.Time) error
	DeferCollection(ctx context.Context, id int64, reason string, next time.Time) error
	SetCollectionFlowState(ctx context.Context, id int64, state string) error
	EndCollection(ctx context.Context, id int64, r store.CollectionResult) error
}

// Recorder counts collections by server and outcome (queued, started,
// collected, failed).
type Recorder interface {
	Collection(server, outcome string)
}

func (c *Collector) record(server, outcome string) {
	if c.Recorder != nil {
		c.Recorder.Collection(server, outcome)
	}
}

// Kind is what a hit of one kind collects.
type Kind struct {
	File      bool
	MaxBytes  int64
	Artifacts []velociraptor.ArtifactSpec
}

// Limits bound a server's collections.
type Limits struct {
	InFlight      int
	PerHostPerDay int
	BytesPerDay   int64
}

// Collector runs follow-up collections.
type Collector struct {
	Store   Store
	Servers map[string]Velociraptor
	Kinds   map[ioc.Kind]Kind
	Limits  map[string]Limits
	// Timeout bounds a collection's run on the client; Expire is how long
	// a collection may take from its hit, waiting for its client included,
	// before its flow is cancelled and it fails.
	Timeout, Expire time.Duration
	// Never are path patterns (path.Match, case-insensitive, "/" for
	// "\\") of files never uploaded, whatever IOC matched them:
	// credential stores an IOC could otherwise pull into Velociraptor.
	Never []string
	// MaxAge: a hit older than this when the collector first sees it (one
	// recorded while collections were off) collects nothing (default 1h).
	MaxAge time.Duration
	// Every is the pass interval when no collection launched recently
	// runs (default 5s).
	Every time.Duration
	// Recorder counts collections (metrics); nil counts nothing.
	Recorder Recorder
	// Ended, when set, is called after a collection ended (it wakes the
	// writer).
	Ended  func()
	Logger *slog.Logger
	Now    func() time.Time

	mu   sync.Mutex
	wake chan struct{}
}

// Launch attempts before a collection fails for good.
const maxAttempts = 5

// launchGrace is how long after a start whose outcome was not recorded
// the collector waits before it looks for the flow by marker.
const launchGrace = 30 * time.Second

func (c *Collector) init() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxAge == 0 {
		c.MaxAge = time.Hour
	}
	if c.Every == 0 {
		c.Every = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Wake asks for a pass soon (new hits were recorded).
func (c *Collector) Wake() {
	c.init()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// fresh is how long after its launch a collection is checked every
// second (a file upload from an online client ends within seconds),
// instead of every Every.
const fresh = 2 * time.Minute

// Run makes passes until ctx ends: when woken, every second while a
// collection launched recently runs, else every Every, and with backoff
// while passes fail.
func (c *Collector) Run(ctx context.Context) {
	c.init()
	var errs loop.ErrorLog
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		soon, err := c.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		next := c.Every
		if failures := errs.Report(c.Logger, "collector pass", err); failures > 0 {
			next = loop.Backoff(failures, 5*time.Minute)
		} else if soon {
			next = time.Second
		}
		t.Reset(next)
	}
}

// Pass decides on new hits, launches what the limits allow and reads the
// flows of running collections.
func (c *Collector) Pass(ctx context.Context) error {
	_, err := c.pass(ctx)
	return err
}

// pass is Pass; it reports whether a collection launched recently is
// still live (the next pass should come soon).
func (c *Collector) pass(ctx context.Context) (bool, error) {
	c.init()
	if err := c.decide(ctx); err != nil {
		return false, err
	}
	live, err := c.Store.LiveCollections(ctx)
	if err != nil {
		return false, err
	}
	ps := &passState{usage: map[string]*store.CollectUsage{}}
	var errs []error
	for _, col := range live {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if col.State == store.CollectLaunching || (col.State == store.CollectRunning && c.Now().Sub(col.Launched) < fresh) {
			ps.soon = true
		}
		if err := c.step(ctx, col, ps); err != nil {
			errs = append(errs, fmt.Errorf("collection %d on %s %s: %w", col.ID, col.Server, col.ClientID, err))
		}
	}
	return ps.soon, errors.Join(errs...)
}

// passState is what one pass learns as it goes: each server's usage of its
// limits (read once, counted up as collections launch), and whether a
// collection launched recently may end soon.
type passState struct {
	usage map[string]*store.CollectUsage
	soon  bool
}

// decide links each new hit to the collection it calls for, or to none.
func (c *Collector) decide(ctx context.Context) error {
	for {
		hits, err := c.Store.PendingCollectHits(ctx, 500)
		if err != nil || len(hits) == 0 {
			return err
		}
		for _, h := range hits {
			nc := c.plan(h)
			id, made, err := c.Store.DecideCollect(ctx, h.HitID, nc)
			if err != nil && ctx.Err() == nil && nc != nil {
				// One hit's decision failing must not stop every other
				// collection: it collects nothing, and says so in the log.
				c.Logger.Error("hit's collection not decided; it collects nothing", "hit", h.HitID, "client_id", h.ClientID, "error", err)
				_, _, err = c.Store.DecideCollect(ctx, h.HitID, nil)
			}
			if err != nil {
				return err
			}
			if made {
				c.record(h.Server, "queued")
				c.Logger.Info("collection queued", "collection", id, "server", h.Server, "client_id", h.ClientID, "case_id", h.CaseID)
			}
		}
		if len(hits) < 500 {
			return nil
		}
	}
}

// absPath is an absolute path as a hunt reports a file: /... or C:\...
var absPath = regexp.MustCompile(`^(/|[A-Za-z]:[\\/])`)

// shortName is a Windows 8.3 short name (PROGRA~1): a spelling of a path
// that collect.never_paths, written with long names, would not match.
var shortName = regexp.MustCompile(`[\\/][^\\/.]{1,6}~[0-9]+(\.[^\\/]{0,3})?([\\/]|$)`)

// indirect reports a path that names a file through another one: under
// /proc (/proc/self/root/etc/shadow is /etc/shadow, and its links are
// root's, so the artifact follows them), or with 8.3 short names. Hunts
// report such paths only for an IOC typed that way; they are not
// collected, so that no spelling goes round collect.never_paths.
func indirect(p string) bool {
	lp := strings.ToLower(p)
	return lp == "/proc" || strings.HasPrefix(lp, "/proc/") || shortName.MatchString(p)
}

// maxPath is the longest path a hit carries whole (hits clip evidence at
// 4096 bytes): a longer one may be clipped and is not collected.
const maxPath = 4000

// plan is what a hit collects, nil for nothing.
func (c *Collector) plan(h store.CollectHit) *store.NewCollection {
	k, ok := c.Kinds[h.Kind]
	if !ok || h.NoCollect || !h.CaseOpen || c.Now().Sub(h.Created) > c.MaxAge {
		return nil
	}
	arts, _ := json.Marshal(nonNil(k.Artifacts))
	file := k.File && (h.Source == "file" || h.Source == "process") && absPath.MatchString(h.Evidence) &&
		len(h.Evidence) < maxPath && !strings.ContainsAny(h.Evidence, "\x00\n\r") && !indirect(h.Evidence)
	if file && c.never(h.Evidence) {
		c.Logger.Warn("hit's file not collected: its path is on collect.never_paths", "hit", h.HitID, "client_id", h.ClientID)
		file = false
	}
	switch {
	case file:
		return &store.NewCollection{Target: "file:" + h.Evidence, Path: h.Evidence, Artifacts: string(arts), MaxBytes: k.MaxBytes,
			Expect: expected(h.Row)}
	case len(k.Artifacts) > 0:
		return &store.NewCollection{Target: "hit:" + h.EvidenceKey, Artifacts: string(arts), MaxBytes: k.MaxBytes}
	}
	return nil
}

// expected is the hash a hash hunt's row found ("sha256:<hex>", else
// "md5:<hex>"), "" when it has none (a file name hit).
func expected(row []byte) string {
	var r struct{ SHA256, MD5 string }
	json.Unmarshal(row, &r)
	switch {
	case sha256Hex.MatchString(strings.ToLower(r.SHA256)):
		return "sha256:" + strings.ToLower(r.SHA256)
	case md5Hex.MatchString(strings.ToLower(r.MD5)):
		return "md5:" + strings.ToLower(r.MD5)
	}
	return ""
}

var md5Hex = regexp.MustCompile(`^[0-9a-f]{32}$`)

func nonNil(a []velociraptor.ArtifactSpec) []velociraptor.ArtifactSpec {
	if a == nil {
		return []velociraptor.ArtifactSpec{}
	}
	return a
}

// step moves one live collection on.
func (c *Collector) step(ctx context.Context, col store.Collection, ps *passState) error {
	vr, ok := c.Servers[col.Server]
	if !ok {
		return c.fail(ctx, col, fmt.Sprintf("server %q is no longer configured", col.Server))
	}
	// A collection whose flow cannot be read (the peer keeps failing)
	// still ends: it would hold a slot of its server for ever.
	expired := c.Now().Sub(col.Created) > c.Expire
	if expired && (col.State == store.CollectLaunching || col.State == store.CollectRunning) {
		if col.FlowID != "" {
			if err := vr.CancelFlow(ctx, col.Org, col.ClientID, col.FlowID); err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
				c.Logger.Warn("cannot cancel an expired collection", "collection", col.ID, "flow_id", col.FlowID, "error", err)
			}
		}
		return c.fail(ctx, col, fmt.Sprintf("not done within %s (flow %s)", c.Expire, strings.ToLower(orDash(col.FlowState))))
	}
	switch col.State {
	case store.CollectLaunching:
		// A start cut off by a crash is looked up by marker only once the
		// server has surely recorded a flow the request made.
		if c.Now().Before(col.NextAt) || c.Now().Sub(col.Launched) < launchGrace {
			return nil
		}
		return c.recover(ctx, vr, col)
	case store.CollectRunning:
		return c.watch(ctx, vr, col)
	}
	// A collection a limit holds waits for it (the limits' windows are as
	// long as Expire: it would never start); one that cannot start for
	// another reason expires.
	now := c.Now()
	if expired && col.State != store.CollectHeld {
		why := "not started within " + c.Expire.String()
		if col.Reason != "" {
			why += ": " + col.Reason
		}
		return c.fail(ctx, col, why)
	}
	if now.Before(col.NextAt) {
		return nil
	}
	if !col.Wanted {
		return c.fail(ctx, col, "not started: the case was closed, the IOC removed, or collections turned off for the case")
	}
	var arts []velociraptor.ArtifactSpec
	if err := json.Unmarshal([]byte(col.Artifacts), &arts); err != nil {
		return c.fail(ctx, col, "its artifacts cannot be read: "+err.Error())
	}
	u, err := c.usage(ctx, col.Server, ps.usage)
	if err != nil {
		return err
	}
	// What it counts against the day's byte budget until it ends: its
	// flow's upload cap.
	reserve := uploadCap(col.MaxBytes, len(arts))
	if why := c.limited(col, u, reserve); why != "" {
		return c.Store.HoldCollection(ctx, col.ID, why)
	}
	if err := c.launch(ctx, vr, col, arts, u, reserve); err != nil {
		return err
	}
	ps.soon = true
	return nil
}

func (c *Collector) usage(ctx context.Context, server string, cache map[string]*store.CollectUsage) (*store.CollectUsage, error) {
	if u, ok := cache[server]; ok {
		return u, nil
	}
	u, err := c.Store.CollectUsage(ctx, server, c.Now().Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	cache[server] = &u
	return &u, nil
}

// artifactsUpload is what the named artifacts of a collection may upload
// beside the file (a triage's files).
const artifactsUpload = 512 << 20

// uploadCap caps all a collection's flow uploads: the file's cap, plus
// artifactsUpload when artifacts are named.
func uploadCap(fileCap int64, artifacts int) int64 {
	if artifacts > 0 {
		return fileCap + artifactsUpload
	}
	return fileCap
}

// limited says which of its server's limits holds a collection back, or "".
func (c *Collector) limited(col store.Collection, u *store.CollectUsage, reserve int64) string {
	l := c.Limits[col.Server]
	switch {
	case l.InFlight > 0 && u.InFlight >= l.InFlight:
		return fmt.Sprintf("held: %d collection(s) in flight on server %s (limit %d)", u.InFlight, col.Server, l.InFlight)
	case l.PerHostPerDay > 0 && u.PerHost[col.Org+"/"+col.ClientID] >= l.PerHostPerDay:
		return fmt.Sprintf("held: %d collection(s) from this client in 24 h (limit %d)", u.PerHost[col.Org+"/"+col.ClientID], l.PerHostPerDay)
	case l.BytesPerDay > 0 && u.Bytes+reserve > l.BytesPerDay:
		return fmt.Sprintf("held: %d bytes collected or reserved on server %s in 24 h, this one may add %d (limit %d)",
			u.Bytes, col.Server, reserve, l.BytesPerDay)
	}
	return ""
}

// launch asks Velociraptor for the collection. The launch is recorded
// first, so a crash before the flow id is stored is found again by marker.
func (c *Collector) launch(ctx context.Context, vr Velociraptor, col store.Collection, arts []velociraptor.ArtifactSpec,
	u *store.CollectUsage, reserve int64) error {
	if err := c.Store.BeginCollectionLaunch(ctx, col.ID, reserve); err != nil {
		return err
	}
	u.InFlight++
	u.PerHost[col.Org+"/"+col.ClientID]++
	u.Bytes += reserve
	flow, err := vr.CollectClient(ctx, velociraptor.CollectRequest{Org: col.Org, ClientID: col.ClientID, Marker: col.Marker,
		Path: col.Path, MaxBytes: col.MaxBytes, MaxUploadBytes: reserve, Artifacts: arts,
		Timeout: c.Timeout, Urgent: true})
	if err != nil {
		return c.launchFailed(ctx, col, err)
	}
	c.record(col.Server, "started")
	c.Logger.Info("collection started", "collection", col.ID, "server", col.Server, "client_id", col.ClientID, "flow_id", flow)
	return c.Store.CollectionLaunched(ctx, col.ID, flow)
}

// launchFailed retries a failed launch with backoff, or fails the
// collection when Velociraptor refused it or after maxAttempts.
func (c *Collector) launchFailed(ctx context.Context, col store.Collection, err error) error {
	why := clip(err.Error(), 300)
	code := ioc.ErrorCode(err)
	if code == ioc.EINVALID || code == ioc.EPERMISSION || col.Attempts+1 >= maxAttempts {
		return c.fail(ctx, col, "could not be started: "+why)
	}
	// The request may have made the flow before its answer was lost: the
	// collection stays launching, and the next attempt looks for the flow
	// by marker before it asks again.
	next := c.Now().Add(loop.Backoff(col.Attempts+3, 10*time.Minute))
	c.Logger.Warn("collection not started; retried", "collection", col.ID, "error", err, "next", next)
	return c.Store.DeferCollection(ctx, col.ID, "start failed, retried: "+why, next)
}

// recover finds the flow of a launch whose outcome was not recorded (a
// crash between asking and recording), by the collection's marker; a
// launch that never reached Velociraptor goes back to the queue.
func (c *Collector) recover(ctx context.Context, vr Velociraptor, col store.Collection) error {
	flow, err := vr.FindCollection(ctx, col.Org, col.ClientID, col.Marker)
	switch {
	case err == nil:
		c.Logger.Info("collection found after an interrupted start", "collection", col.ID, "flow_id", flow)
		return c.Store.CollectionLaunched(ctx, col.ID, flow)
	case ioc.ErrorCode(err) == ioc.ENOTFOUND:
		if col.Attempts >= maxAttempts {
			return c.fail(ctx, col, "could not be started")
		}
		reason := col.Reason
		if reason == "" {
			reason = "start interrupted, retried"
		}
		return c.Store.RetryCollection(ctx, col.ID, reason, c.Now())
	}
	return err
}

// watch reads a running collection's flow and ends it when the flow ended
// (step has ended it already when it expired).
func (c *Collector) watch(ctx context.Context, vr Velociraptor, col store.Collection) error {
	st, err := vr.FlowStatus(ctx, col.Org, col.ClientID, col.FlowID)
	switch {
	case ioc.ErrorCode(err) == ioc.ENOTFOUND:
		return c.fail(ctx, col, "its flow "+col.FlowID+" is gone from Velociraptor")
	case err != nil:
		return err
	}
	switch st.State {
	case "FINISHED":
		return c.finished(ctx, vr, col, st)
	case "ERROR":
		why := "the flow failed"
		if st.Status != "" {
			why += ": " + clip(st.Status, 300)
		}
		return c.fail(ctx, col, why)
	}
	state := st.State
	if state == "RUNNING" && st.Started.IsZero() {
		// 0.77.2 calls a flow RUNNING before the client took it (an
		// offline client): shown as waiting for the client.
		state = "WAITING"
	}
	return c.Store.SetCollectionFlowState(ctx, col.ID, state)
}

// sha256Hex is a SHA-256 as upload() reports it.
var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// finished records a finished flow: the file's row must name the path the
// hit reported, and carry a hash and a size within the cap; otherwise the
// collection failed, with the client's reason.
func (c *Collector) finished(ctx context.Context, vr Velociraptor, col store.Collection, st velociraptor.FlowStatus) error {
	f, err := vr.CollectedFile(ctx, col.Org, col.ClientID, col.FlowID)
	if ioc.ErrorCode(err) == ioc.ENOTFOUND {
		return c.fail(ctx, col, "the flow finished without velohunt's row (the artifact did not run)")
	} else if err != nil {
		return err
	}
	if f.Marker != "" && f.Marker != col.Marker {
		return c.fail(ctx, col, "the flow's row belongs to another collection")
	}
	res := store.CollectionResult{State: store.CollectDone, Uploaded: st.UploadedBytes}
	if col.Path != "" {
		switch {
		case !f.Uploaded:
			why := f.Error
			if why == "" {
				why = "nothing uploaded"
			}
			return c.fail(ctx, col, "the file was not collected: "+clip(why, 300))
		case f.Path != col.Path:
			return c.fail(ctx, col, fmt.Sprintf("the client uploaded another path than the hit's (%s): not recorded", clip(f.Path, 200)))
		case !sha256Hex.MatchString(strings.ToLower(f.SHA256)):
			return c.fail(ctx, col, "the upload carries no SHA-256")
		case f.Size < 0 || (col.MaxBytes > 0 && f.Size > col.MaxBytes):
			return c.fail(ctx, col, fmt.Sprintf("the upload's size %d is over the cap %d", f.Size, col.MaxBytes))
		}
		res.FilePath, res.FileSize, res.SHA256, res.MD5 = f.Path, f.Size, strings.ToLower(f.SHA256), strings.ToLower(f.MD5)
		if kind, want, ok := strings.Cut(col.Expect, ":"); ok {
			got := res.SHA256
			if kind == "md5" {
				got = res.MD5
			}
			if got != want {
				return c.fail(ctx, col, fmt.Sprintf("the collected file's %s (%s) is not the one the hunt found (%s): it changed since the hunt, not recorded as evidence",
					strings.ToUpper(kind), got, want))
			}
		}
	}
	c.Logger.Info("collection done", "collection", col.ID, "client_id", col.ClientID, "flow_id", col.FlowID, "bytes", res.FileSize)
	return c.end(ctx, col, res)
}

func (c *Collector) fail(ctx context.Context, col store.Collection, why string) error {
	c.Logger.Warn("collection failed", "collection", col.ID, "server", col.Server, "client_id", col.ClientID, "flow_id", col.FlowID, "reason", why)
	return c.end(ctx, col, store.CollectionResult{State: store.CollectFailed, Reason: why})
}

// end records how a collection ended and tells Ended (the writer has
// records to write).
func (c *Collector) end(ctx context.Context, col store.Collection, res store.CollectionResult) error {
	if err := c.Store.EndCollection(ctx, col.ID, res); err != nil {
		return err
	}
	c.record(col.Server, res.State)
	if c.Ended != nil {
		c.Ended()
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// never reports whether a path matches one of the Never patterns.
func (c *Collector) never(p string) bool {
	p = strings.ToLower(strings.ReplaceAll(p, `\`, "/"))
	for _, pat := range c.Never {
		if ok, _ := path.Match(strings.ToLower(strings.ReplaceAll(pat, `\`, "/")), p); ok {
			return true
		}
	}
	return false
}
