package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/collect"
	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/fleet"
	"github.com/velohunt/velohunt/internal/intake"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/metrics"
	"github.com/velohunt/velohunt/internal/planner"
	"github.com/velohunt/velohunt/internal/rehunt"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/schedule"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/watcher"
	"github.com/velohunt/velohunt/internal/writeback"
	"github.com/velohunt/velohunt/templates"
	"golang.org/x/time/rate"
)

// The adapters satisfy the interfaces their consumers declare.
var (
	_ intake.IRIS          = (*iris.Client)(nil)
	_ intake.Store         = (*store.DB)(nil)
	_ planner.Store        = (*store.DB)(nil)
	_ planner.Velociraptor = (*velociraptor.Client)(nil)
	_ watcher.Velociraptor = (*velociraptor.Client)(nil)
	_ watcher.Store        = (*store.DB)(nil)
	_ writeback.IRIS       = (*iris.Client)(nil)
	_ writeback.Store      = (*store.DB)(nil)
	_ writeback.Files      = (*velociraptor.Client)(nil)
	_ fleet.Velociraptor   = (*velociraptor.Client)(nil)
	_ fleet.Store          = (*store.DB)(nil)
)

// App is the velohunt service: its store, clients and loops.
type App struct {
	Config config.Config
	Logger *slog.Logger

	Store   *store.DB
	IRIS    *iris.Client
	VR      map[string]*velociraptor.Client
	Syncer  *intake.Syncer
	Intake  *intake.Intake
	Planner *planner.Planner
	Watcher *watcher.Watcher
	Writer  *writeback.Writer
	// Collector runs follow-up collections on hits; nil when none is
	// configured.
	Collector *collect.Collector
	Rehunt    *rehunt.Runner
	Fleet     *fleet.Refresher // nil when the artifacts cannot be checked
	Cron      *schedule.Scheduler
	Metrics   *metrics.Metrics
	// ReadyWindow is how long a successful request to a peer counts for
	// /readyz before the peer is asked again (default 5m).
	ReadyWindow time.Duration

	// storeMode says how Build opens the database (serve: create it).
	storeMode storeMode

	lock     *serveLock
	listener net.Listener
	server   *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Build opens the store and creates the clients and components, without
// starting anything. The hunt command uses it alone.
func (a *App) Build(ctx context.Context) error {
	c := a.Config
	if err := a.openStore(ctx); err != nil {
		return err
	}
	var err error
	opts := irisOptions(c)
	opts.Observe = a.Metrics.ObserveIRIS
	a.IRIS, err = iris.New(opts)
	if err != nil {
		return err
	}
	a.VR = map[string]*velociraptor.Client{}
	servers := map[string]planner.Velociraptor{}
	for _, s := range c.Velociraptor.Servers {
		api, err := velociraptor.LoadAPIConfig(s.APIConfig)
		if err != nil {
			return fmt.Errorf("velociraptor server %s: %w", s.Name, err)
		}
		cl, err := velociraptor.Dial(api, velociraptor.Options{Timeout: s.Timeout.D(), Observe: a.Metrics.VelociraptorObserver(s.Name)})
		if err != nil {
			return fmt.Errorf("velociraptor server %s: %w", s.Name, err)
		}
		a.VR[s.Name], servers[s.Name] = cl, cl
	}
	a.Syncer = newSyncer(c, a.IRIS, a.Store, a.Logger)
	a.Syncer.Recorder = a.Metrics
	a.Planner = newPlanner(c, a.Store, servers, a.Logger)
	a.Planner.Prepare, a.Planner.Recorder = a.uploadArtifacts, a.Metrics
	watchServers := map[string]watcher.Velociraptor{}
	for name, cl := range a.VR {
		watchServers[name] = cl
	}
	if a.Store != nil { // check builds without a store
		a.Store.CollectHits = c.Collecting()
		a.Collector = a.newCollector()
	}
	ws := watchStore{DB: a.Store, Logger: a.Logger.With("component", "watcher")}
	if a.Collector != nil {
		ws.NewHits = a.Collector.Wake
	}
	a.Watcher = &watcher.Watcher{Store: ws, Servers: watchServers, EventPerHost: c.Writeback.EventPer == "host", Recorder: a.Metrics,
		Logger: a.Logger.With("component", "watcher")}
	files, err := templates.IRIS(c.Writeback.TemplatesDir)
	if err != nil {
		return err
	}
	rnd, err := render.New(files)
	if err != nil {
		return err
	}
	a.Writer = &writeback.Writer{IRIS: a.IRIS, Store: a.Store, Render: rnd, TabName: c.Writeback.TabName,
		EventColor: c.Writeback.EventColor, MaxHitsOnTab: c.Writeback.MaxHitsOnTab, TabMinInterval: c.Writeback.TabMinInterval.D(),
		GUIURL: a.huntURL, FlowURL: a.flowURL, Settle: c.Writeback.Settle.D(), Concurrency: c.Writeback.Concurrency,
		Resolve: a.resolveRefs, Recorder: a.Metrics, Logger: a.Logger.With("component", "writeback"),
		DatastoreMaxBytes: c.Collect.IRISDatastoreMaxBytes, Files: map[string]writeback.Files{}}
	for name, cl := range a.VR {
		a.Writer.Files[name] = cl
	}
	if a.Collector != nil {
		a.Collector.Ended = a.Writer.Wake
	}
	a.Metrics.WriterConcurrency(a.Writer.ConcurrencyInUse)
	if c.IRIS.AdminAPIKey != "" {
		admin, err := adminClient(c)
		if err != nil {
			return err
		}
		a.Writer.Repair = func(ctx context.Context) error {
			_, err := pushTab(ctx, admin, c.Writeback.TabName, true)
			return err
		}
	}
	return nil
}

// irisOptions is the IRIS client of the configuration, with the service
// user's key.
func irisOptions(c config.Config) iris.Options {
	return iris.Options{URL: c.IRIS.URL, APIKey: c.IRIS.APIKey.Reveal(), CAFile: c.IRIS.CAFile,
		InsecureSkipVerify: c.IRIS.InsecureSkipVerify, Timeout: c.IRIS.Timeout.D()}
}

// newSyncer is the intake syncer of a configuration over a store: serve,
// hunt and plan read IRIS, parse and route its IOCs through the same one.
func newSyncer(c config.Config, cl intake.IRIS, db *store.DB, log *slog.Logger) *intake.Syncer {
	return &intake.Syncer{IRIS: cl, Store: syncStore{db}, Route: c.Route, NeedDetails: c.NeedCaseDetails(), Override: c.CaseOverride,
		Logger: log.With("component", "intake")}
}

// newPlanner is the planner of a configuration (kinds, batching, limits)
// over a store and servers: serve, hunt and plan batch hunts with the same
// one.
func newPlanner(c config.Config, db planner.Store, servers map[string]planner.Velociraptor, log *slog.Logger) *planner.Planner {
	kinds := map[ioc.Kind]planner.Artifact{}
	for name, k := range c.Hunting.Kinds {
		kinds[ioc.Kind(name)] = planner.Artifact{Name: k.Artifact, Parameter: k.Parameter, Format: k.Format, Params: k.Parameters,
			Scope: k.Scope.IOC()}
	}
	limits := map[string]planner.Limits{}
	for _, s := range c.Velociraptor.Servers {
		l := s.Limits
		limits[s.Name] = planner.Limits{MaxActiveHunts: l.MaxActiveHunts, MaxHuntsPerHour: l.MaxHuntsPerHour,
			MaxIOCsPerHunt: l.MaxIOCsPerHunt, CPULimit: l.CPULimit, OpsPerSecond: l.OpsPerSecond, ClientTimeout: l.ClientTimeout.D(),
			Parameters: s.Parameters, Scope: s.Scope.IOC()}
	}
	rules := map[string]ioc.Scope{}
	for _, r := range c.Rehunt.Rules {
		rules[r.Name] = r.Scope.IOC()
	}
	return &planner.Planner{Store: db, Servers: servers, Kinds: kinds, Limits: limits, RuleScopes: rules, Window: c.Hunting.BatchWindow.D(), MaxWait: c.Hunting.BatchMaxWait.D(),
		MaxPerHunt: c.Hunting.MaxIOCsPerHunt, Expiry: c.Hunting.Expiry.D(), ClientTimeout: c.Hunting.ClientTimeout.D(),
		CPULimit: c.Hunting.CPULimit, OpsPerSecond: c.Hunting.OpsPerSecond, Logger: log.With("component", "planner")}
}

// huntURL links to a hunt in the Velociraptor GUI of its server.
func (a *App) huntURL(server, org, huntID string) string {
	if huntID == "" {
		return ""
	}
	return a.guiURL(server, org, "/hunts/"+url.PathEscape(huntID)+"/overview")
}

// guiURL links to a page (the fragment after "#") of the Velociraptor GUI
// of a server in an org; "" when the server has no gui_url.
func (a *App) guiURL(server, org, page string) string {
	s, ok := a.Config.Server(server)
	if !ok || s.GUIURL == "" {
		return ""
	}
	if org == "" {
		org = "root"
	}
	return strings.TrimRight(s.GUIURL, "/") + "/app/index.html?org_id=" + url.QueryEscape(org) + "#" + page
}

// resolveRefs reads IRIS's reference lists and maps the configured names to
// ids. An unknown name is a configuration error, reported with the choices.
func (a *App) resolveRefs(ctx context.Context) (writeback.Refs, error) {
	wb := a.Config.Writeback
	refs := writeback.Refs{AssetTypes: map[string]int64{}}
	types, err := a.IRIS.AssetTypes(ctx)
	if err != nil {
		return refs, err
	}
	if a.Config.Collecting() {
		types, err := a.IRIS.EvidenceTypes(ctx)
		if err != nil {
			return refs, err
		}
		if refs.EvidenceTypeID, err = byName(types, a.Config.Collect.EvidenceType, "collect.evidence_type"); err != nil {
			return refs, err
		}
	}
	for key, name := range wb.AssetTypes {
		id, err := byName(types, name, "writeback.asset_types."+key)
		if err != nil {
			return refs, err
		}
		refs.AssetTypes[key] = id
	}
	for _, r := range []struct {
		list  func(context.Context) ([]iris.RefItem, error)
		name  string
		field string
		dst   *int64
	}{
		{a.IRIS.AnalysisStatuses, wb.AssetAnalysisStatus, "writeback.asset_analysis_status", &refs.AnalysisStatusID},
		{a.IRIS.CompromiseStatuses, wb.AssetCompromiseStatus, "writeback.asset_compromise_status", &refs.CompromiseStatusID},
		{a.IRIS.EventCategories, wb.EventCategory, "writeback.event_category", &refs.EventCategoryID},
	} {
		items, err := r.list(ctx)
		if err != nil {
			return refs, err
		}
		if *r.dst, err = byName(items, r.name, r.field); err != nil {
			return refs, err
		}
	}
	return refs, nil
}

func byName(items []iris.RefItem, name, field string) (int64, error) {
	var names []string
	for _, it := range items {
		if strings.EqualFold(it.Name, name) {
			return it.ID, nil
		}
		names = append(names, it.Name)
	}
	return 0, &config.FieldError{Field: field, Err: fmt.Errorf("IRIS has no %q (it has: %s)", name, strings.Join(names, ", "))}
}

// Open takes the database's serve lock, binds the HTTP listener, builds
// the app and starts the loops. It returns once everything runs; Close
// stops it. The listener is bound before the store is opened, so that a
// failed bind leaves no new database behind.
func (a *App) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			a.abort()
		}
	}()
	c := a.Config
	if a.lock, err = acquireLock(c.Database); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.Listen, err)
	}
	a.listener = lis
	if err := a.lock.write(lockInfo{PID: os.Getpid(), Listen: lis.Addr().String(), Started: time.Now().UTC(), Version: version()}); err != nil {
		return err
	}
	if err := a.Build(ctx); err != nil {
		return err
	}
	own, err := a.ownUserID(ctx)
	if err != nil {
		return err
	}
	a.checkIOCTypes(ctx)
	a.Intake = intake.New(a.Syncer, a.Store, own, c.Intake.SyncDelay.D(), a.Planner.Wake, a.Logger.With("component", "intake"))
	a.Intake.FullEvery = c.Intake.FullSyncEvery.D()

	loc, _ := time.LoadLocation(c.Intake.TimeZone)
	a.Cron = schedule.New(loc, a.Logger.With("component", "cron"))
	if err := a.Cron.Add("reconcile", c.Intake.Reconcile, a.Intake.RequestFullSync); err != nil {
		return err
	}
	if err := a.Cron.Add("watcher", c.Watcher.Schedule, a.Watcher.Wake); err != nil {
		return err
	}
	rules, err := rehunt.Compile(c, a.tlpIDs(ctx))
	if err != nil {
		return err
	}
	a.Rehunt = &rehunt.Runner{Store: a.Store, Rules: rules, Queued: a.Planner.Wake, Logger: a.Logger.With("component", "rehunt")}
	for _, r := range c.Rehunt.Rules {
		name := r.Name
		tz := r.TimeZone
		if tz == "" {
			tz = c.Intake.TimeZone
		}
		if err := a.Cron.Add("rehunt:"+name, "CRON_TZ="+tz+" "+r.Schedule, func() { a.Rehunt.MarkDue(context.Background(), name) }); err != nil {
			return err
		}
	}
	a.Fleet = a.newFleetRefresher()
	if c.IRIS.SetupOnStart {
		admin, err := adminClient(c)
		if err == nil {
			_, err = ensureTab(ctx, admin, c.Writeback.TabName)
		}
		if err != nil {
			a.Logger.Warn("setup at start-up failed; run `velohunt setup`", "error", err)
		}
	}

	mux := http.NewServeMux()
	hook := &intake.Webhook{Store: a.Store, Secret: c.Webhook.Secret.Reveal(),
		MaxBody: c.Webhook.MaxBodyBytes, Wake: a.Intake.Wake, Recorder: a.Metrics, OwnUserID: own,
		Limiter: rate.NewLimiter(rate.Limit(c.Webhook.RateLimit), int(2*c.Webhook.RateLimit)+1),
		Logger:  a.Logger.With("component", "webhook")}
	mux.Handle("POST "+c.Webhook.Path+"/{event}", hook)
	// For iris-webhooks-module before 1.0.8 (IRIS before 2.4.15), which
	// cannot send headers: the secret as a path element.
	mux.Handle("POST "+c.Webhook.Path+"/{secret}/{event}", hook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.Handle("GET /metrics", a.Metrics.Handler())
	mux.HandleFunc("GET /status", a.serveStatus)
	a.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.goLoop(func() {
		if err := a.server.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Logger.Error("http server", "error", err)
		}
	})
	a.goLoop(func() { a.Intake.Run(runCtx) })
	a.goLoop(func() {
		if err := a.Planner.PrepareAll(runCtx, c.Targets()); err != nil && runCtx.Err() == nil {
			a.Logger.Warn("artifact upload at start-up failed; retried before the first hunt", "error", err)
		}
	})
	a.goLoop(func() { a.Planner.Run(runCtx) })
	a.goLoop(func() { a.Watcher.Run(runCtx) })
	a.goLoop(func() { a.Rehunt.Run(runCtx) })
	a.goLoop(func() { a.Writer.Run(runCtx) })
	if a.Collector != nil {
		a.goLoop(func() { a.Collector.Run(runCtx) })
	}
	if a.Fleet != nil {
		a.goLoop(func() { a.Fleet.Run(runCtx) })
	}
	if c.Watcher.WatchFlows {
		for _, t := range c.Targets() {
			t := t
			a.goLoop(func() { a.watchFlows(runCtx, t) })
		}
	}
	a.Watcher.Wake()
	a.Cron.Start()
	a.Logger.Info("velohunt started", "listen", lis.Addr().String(), "servers", len(a.VR), "iris_user_id", own)
	return nil
}

// newFleetRefresher reads every server's and org's client versions every
// hour (fleet.DefaultEvery) for `velohunt status` and the metrics; nil,
// with a warning, when the artifacts cannot be checked against velohunt's
// table of releases.
func (a *App) newFleetRefresher() *fleet.Refresher {
	as, err := fleetAssessor(a.Config)
	if err != nil {
		a.Logger.Warn("client releases will not be read: cannot check the artifacts against velohunt's table of releases", "error", err)
		return nil
	}
	servers := map[string]fleet.Velociraptor{}
	for name, cl := range a.VR {
		servers[name] = cl
	}
	return &fleet.Refresher{Servers: servers, Targets: a.Config.Targets(), Store: a.Store, Assessor: as,
		Logger: a.Logger.With("component", "fleet")}
}

func (a *App) goLoop(fn func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn()
	}()
}

// watchFlows keeps a watch_monitoring(System.Flow.Completion) stream open
// on one server and org, and wakes the watcher when a hunt flow completes.
// The stream is re-opened with capped backoff when it breaks.
func (a *App) watchFlows(ctx context.Context, t ioc.Route) {
	cl := a.VR[t.Server]
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		err := cl.WatchHuntFlows(ctx, t.Org, func(huntID, clientID string) error {
			a.Watcher.Wake()
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			failures = 0
		}
		failures++
		if failures == 3 {
			a.Logger.Warn("flow completion stream keeps failing; relying on the watcher schedule", "server", t.Server, "org", t.Org, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Second<<min(failures, 8), 5*time.Minute)):
		}
	}
}

// Addr is the HTTP listener's address.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Close stops the loops and servers in reverse order of start, within ctx.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.Cron != nil {
		errs = append(errs, a.Cron.Stop(ctx))
	}
	if a.server != nil {
		errs = append(errs, a.server.Shutdown(ctx))
	}
	if a.cancel != nil {
		a.cancel()
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("loops did not stop: %w", ctx.Err()))
	}
	a.closeClients()
	a.lock.release()
	return errors.Join(errs...)
}

// abort undoes a failed Open.
func (a *App) abort() {
	if a.listener != nil {
		a.listener.Close()
	}
	a.closeClients()
	a.lock.release()
}

func (a *App) closeClients() {
	for _, c := range a.VR {
		c.Close()
	}
	if a.Store != nil {
		a.Store.Close()
	}
}

// tlpIDs maps TLP names to IRIS ids; nil (the seeded ids) when IRIS
// cannot be asked.
func (a *App) tlpIDs(ctx context.Context) map[string]int64 {
	return tlpIDs(ctx, a.Config, a.IRIS, a.Logger)
}

// tlpIDs reads IRIS's TLP ids by name when re-hunt rules need them (nil,
// the seeded ids, when there are none or IRIS cannot be asked).
func tlpIDs(ctx context.Context, c config.Config, cl *iris.Client, log *slog.Logger) map[string]int64 {
	if len(c.Rehunt.Rules) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := cl.TLPs(ctx)
	if err != nil {
		log.Warn("cannot read IRIS TLPs; using the seeded ids", "error", err)
		return nil
	}
	m := map[string]int64{}
	for _, t := range list {
		m[strings.ToLower(t.Name)] = t.ID
	}
	return m
}

// ownUserID is the configured IRIS user id of velohunt, else IRIS's answer.
// Without it, velohunt's own updates trigger harmless extra syncs. An API
// key IRIS refuses stops the start: nothing would work.
func (a *App) ownUserID(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if id := a.Config.IRIS.ServiceUserID; id > 0 {
		if _, err := a.IRIS.Versions(ctx); keyRefused(err) {
			return 0, errKeyRefused(err)
		}
		return id, nil
	}
	id, err := a.IRIS.WhoAmI(ctx)
	switch {
	case keyRefused(err):
		return 0, errKeyRefused(err)
	case err != nil:
		a.Logger.Warn("cannot learn velohunt's IRIS user id; set iris.service_user_id", "error", err)
		return 0, nil
	}
	return id, nil
}

// keyRefused reports an IRIS answer 401: the API key is wrong, or its user
// is deactivated.
func keyRefused(err error) bool {
	var se *iris.StatusError
	return errors.As(err, &se) && se.Status == http.StatusUnauthorized
}

// errKeyRefused says that IRIS refused the API key, and what to fix.
func errKeyRefused(err error) error {
	return fmt.Errorf("IRIS refused velohunt's API key (HTTP 401): set %s or iris.api_key_file to the API key of an active IRIS user "+
		"(`velohunt check` tells more): %w", config.EnvIRISAPIKey, err)
}

// checkIOCTypes warns about huntable IOC types this IRIS does not have.
func (a *App) checkIOCTypes(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	types, err := a.IRIS.IOCTypes(ctx)
	if err != nil {
		a.Logger.Warn("cannot read IRIS IOC types", "error", err)
		return
	}
	have := map[string]bool{}
	for _, t := range types {
		have[t.Name] = true
	}
	for _, name := range ioc.HuntableTypes() {
		if !have[name] {
			a.Logger.Warn("IRIS has no IOC type of this name; IOCs of it cannot arrive", "type", name)
		}
	}
}

// uploadArtifacts uploads velohunt's artifacts used by the configured kinds
// to one server and org when they are missing or differ.
func (a *App) uploadArtifacts(ctx context.Context, server, org string) error {
	if !a.Config.Hunting.UploadArtifacts {
		return nil
	}
	defs, err := templates.Artifacts(a.Config.Hunting.ArtifactsDir)
	if err != nil {
		return err
	}
	var names []string
	for _, k := range a.Config.Hunting.Kinds {
		if _, ok := defs[k.Artifact]; ok {
			names = append(names, k.Artifact)
		}
	}
	if _, ok := defs[velociraptor.CollectArtifact]; ok && a.Config.Collecting() {
		names = append(names, velociraptor.CollectArtifact)
	}
	cl := a.VR[server]
	have, err := cl.Artifacts(ctx, org, names)
	if err != nil {
		return err
	}
	for _, n := range names {
		if have[n] == defs[n] {
			continue
		}
		if _, err := cl.SetArtifact(ctx, org, defs[n]); err != nil {
			return fmt.Errorf("upload artifact %s: %w", n, err)
		}
		a.Logger.Info("artifact uploaded", "artifact", n, "server", server, "org", org)
	}
	return nil
}
