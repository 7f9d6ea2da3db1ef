// Package planner turns queued IOCs into Velociraptor hunts: it batches the
// IOCs of one kind routed to the same server and org into hunts of a bounded
// list size, then launches each hunt paused and starts it (clients join in
// seconds instead of at their next check-in). Planning is one store
// transaction; launching survives a crash at any point without starting a
// hunt twice, because every hunt carries a marker tag that is looked up
// before a retried create.
package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/loop"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// Velociraptor is what the planner asks of one server.
type Velociraptor interface {
	// CreateHunt creates a paused hunt and returns its id.
	CreateHunt(ctx context.Context, r velociraptor.HuntRequest) (string, error)
	// StartHunt starts a paused hunt.
	StartHunt(ctx context.Context, org, huntID string) error
	// FindHuntByTag returns the hunt carrying tag, or ENOTFOUND.
	FindHuntByTag(ctx context.Context, org, tag string) (string, string, error)
	// StopHunt stops a hunt.
	StopHunt(ctx context.Context, org, huntID string) error
}

// Store is the part of the store the planner uses.
type Store interface {
	QueuedGroups(ctx context.Context) ([]store.Group, error)
	PlanHunt(ctx context.Context, g store.Group, max int, artifact string, expiry time.Duration) (store.Hunt, error)
	DueLaunches(ctx context.Context, limit int) ([]store.Hunt, error)
	FindHunt(ctx context.Context, id int64) (store.Hunt, error)
	HuntIOCs(ctx context.Context, huntID int64) ([]store.HuntIOC, error)
	ClaimLaunch(ctx context.Context, id int64, lease time.Duration) (bool, error)
	ReleaseClaims(ctx context.Context, grace time.Duration) (int, error)
	SetHuntCreated(ctx context.Context, id int64, vrHuntID string) error
	SetHuntRunning(ctx context.Context, id int64) error
	SetLaunchError(ctx context.Context, id int64, msg string, next time.Time) error
	EndHuntWithReason(ctx context.Context, id int64, state, reason string) ([]int64, error)
	ActiveHunts(ctx context.Context, server string) (int, error)
	HuntsPlannedSince(ctx context.Context, server string, t time.Time) (int, error)
	SetServerHold(ctx context.Context, server, reason string) error
}

// Recorder counts what the planner does (metrics).
type Recorder interface {
	HuntPlanned(server string, kind ioc.Kind)
	HuntStarted(server string)
	HuntLaunchFailed(server, code string)
}

type noRecorder struct{}

func (noRecorder) HuntPlanned(string, ioc.Kind)    {}
func (noRecorder) HuntStarted(string)              {}
func (noRecorder) HuntLaunchFailed(string, string) {}

// Limits protect one server's fleet; zero means no limit or the planner's
// default.
type Limits struct {
	MaxActiveHunts  int
	MaxHuntsPerHour int
	MaxIOCsPerHunt  int
	CPULimit        int
	OpsPerSecond    int
	ClientTimeout   time.Duration
	// Parameters override artifact parameters, by IOC kind.
	Parameters map[string]map[string]string
	// Scope limits every hunt on the server to some clients.
	Scope ioc.Scope
}

// Artifact is how one kind is hunted.
type Artifact struct {
	Name      string
	Parameter string            // receives the list of hunt values
	Format    string            // json, lines, csv or regex
	Params    map[string]string // extra parameters
	// Scope limits the kind's hunts to some clients, within the server's.
	Scope ioc.Scope
}

// Planner plans and launches hunts.
type Planner struct {
	Store   Store
	Servers map[string]Velociraptor
	Kinds   map[ioc.Kind]Artifact
	// Window gathers IOCs of one group: a partial batch is hunted once no
	// IOC joined it for Window, or its oldest IOC has waited MaxWait, so a
	// long burst becomes full batches and a steady trickle still moves.
	Window     time.Duration
	MaxWait    time.Duration
	MaxPerHunt int
	Expiry     time.Duration
	// Per-endpoint limits passed to Velociraptor.
	ClientTimeout time.Duration
	CPULimit      int
	OpsPerSecond  int
	// Limits by server name.
	Limits map[string]Limits
	// RuleScopes are the scopes of the re-hunt rules, by name.
	RuleScopes map[string]ioc.Scope
	// Prepare runs once per server and org before the first launch there
	// (artifact upload); a failure postpones the launch.
	Prepare  func(ctx context.Context, server, org string) error
	Recorder Recorder
	Logger   *slog.Logger
	Now      func() time.Time

	mu       sync.Mutex
	prepared map[string]bool
	wake     chan struct{}
}

// lease is how long a launch attempt holds a hunt; an attempt gives up
// attemptLimit after it began, well before its lease ends, so that a live
// launcher's claim never runs out under it. A claim of a launcher that
// ended is taken over claimGrace after it was made (store.ReleaseClaims).
const (
	lease        = 2 * time.Minute
	attemptLimit = 90 * time.Second
	claimGrace   = 15 * time.Second
)

// Wake asks the loop to plan soon.
func (p *Planner) Wake() {
	p.init()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Planner) init() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake == nil {
		p.wake = make(chan struct{}, 1)
		p.prepared = map[string]bool{}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Recorder == nil {
		p.Recorder = noRecorder{}
	}

}

// Run plans and launches until ctx ends. It ticks often enough to honour
// the batch window.
func (p *Planner) Run(ctx context.Context) {
	p.init()
	tick := min(max(p.Window/4, 200*time.Millisecond), 5*time.Second)
	loop.Every(ctx, tick, p.wake, p.Logger, "planner", func(ctx context.Context) error { return p.Step(ctx, false) })
}

// Step plans what is due (every queued IOC when flush is true) and launches
// due hunts. It returns the first error; launch errors are stored on the
// hunt and retried with backoff, not returned.
func (p *Planner) Step(ctx context.Context, flush bool) error {
	p.init()
	if _, err := p.Plan(ctx, flush); err != nil {
		return err
	}
	_, err := p.LaunchDue(ctx)
	return err
}

// Plan records hunts for the queued IOCs: full batches at once, a partial
// batch when the group was quiet for the window, waited MaxWait, or flush
// is set.
func (p *Planner) Plan(ctx context.Context, flush bool) ([]store.Hunt, error) {
	p.init()
	groups, err := p.Store.QueuedGroups(ctx)
	if err != nil {
		return nil, err
	}
	var planned []store.Hunt
	now := p.Now()
	holds := map[string]string{}
	for _, g := range groups {
		art, ok := p.Kinds[g.Kind]
		if !ok {
			continue
		}
		if _, ok := p.Servers[g.Server]; !ok {
			p.Logger.Warn("queued IOCs routed to an unknown server", "server", g.Server, "count", g.Count)
			continue
		}
		max := p.MaxPerHunt
		if l := p.Limits[g.Server].MaxIOCsPerHunt; l > 0 {
			max = l
		}
		n := g.Count / max
		quiet := now.Sub(g.Newest) >= p.Window || g.Urgent
		waited := p.MaxWait > 0 && now.Sub(g.Oldest) >= p.MaxWait
		if g.Count%max != 0 && (flush || quiet || waited) {
			n++
		}
		if n > 0 {
			allowed, why, err := p.allowance(ctx, g.Server, n)
			if err != nil {
				return planned, err
			}
			if allowed < n {
				holds[g.Server] = fmt.Sprintf("%s; %d queued IOC(s) wait", why, g.Count)
			}
			n = allowed
		}
		// The server's scope, narrowed by the case's routing rule, the
		// kind and the re-hunt rule that queued the IOCs.
		route, err := ioc.DecodeScope(g.RouteScope)
		if err != nil {
			return planned, err
		}
		g.Scope = p.Limits[g.Server].Scope.Narrow(route).Narrow(art.Scope).Narrow(p.RuleScopes[g.Rule]).Encode()
		for range n {
			h, err := p.Store.PlanHunt(ctx, g, max, art.Name, p.Expiry)
			if ioc.ErrorCode(err) == ioc.ENOTFOUND {
				break
			} else if err != nil {
				return planned, err
			}
			planned = append(planned, h)
			p.Recorder.HuntPlanned(g.Server, g.Kind)
			p.Logger.Info("hunt planned", "hunt", h.ID, "server", g.Server, "org", g.Org, "kind", g.Kind)
		}
	}
	for name := range p.Servers {
		if err := p.Store.SetServerHold(ctx, name, holds[name]); err != nil {
			return planned, err
		}
	}
	return planned, nil
}

// allowance is how many of n new hunts a server's limits allow now, and
// the limit that holds the others back.
func (p *Planner) allowance(ctx context.Context, server string, n int) (int, string, error) {
	l := p.Limits[server]
	if l.MaxActiveHunts > 0 {
		active, err := p.Store.ActiveHunts(ctx, server)
		if err != nil {
			return 0, "", err
		}
		if free := l.MaxActiveHunts - active; free < n {
			return max(free, 0), fmt.Sprintf("server %s has %d active hunt(s), the limit is %d", server, active, l.MaxActiveHunts), nil
		}
	}
	if l.MaxHuntsPerHour > 0 {
		recent, err := p.Store.HuntsPlannedSince(ctx, server, p.Now().Add(-time.Hour))
		if err != nil {
			return 0, "", err
		}
		if free := l.MaxHuntsPerHour - recent; free < n {
			return max(free, 0), fmt.Sprintf("server %s started %d hunt(s) in the last hour, the limit is %d", server, recent, l.MaxHuntsPerHour), nil
		}
	}
	return n, "", nil
}

// LaunchDue launches every hunt whose launch is due and returns how many
// started.
func (p *Planner) LaunchDue(ctx context.Context) (int, error) {
	p.init()
	released, err := p.Store.ReleaseClaims(ctx, claimGrace)
	if err != nil {
		return 0, err
	}
	if released > 0 {
		p.Logger.Info("launch claims of a process that ended released", "hunts", released)
	}
	started := 0
	for {
		due, err := p.Store.DueLaunches(ctx, 50)
		if err != nil || len(due) == 0 {
			return started, err
		}
		progress := false
		for _, h := range due {
			ok, err := p.Launch(ctx, h)
			if err != nil {
				return started, err
			}
			if ok {
				started++
				progress = true
			}
		}
		if !progress {
			return started, nil
		}
	}
}

// Launch claims one hunt and brings it to running. It returns true when
// the hunt was started; a failed attempt is recorded on the hunt with the
// time of the next try, and only store errors are returned.
func (p *Planner) Launch(ctx context.Context, h store.Hunt) (bool, error) {
	p.init()
	ok, err := p.Store.ClaimLaunch(ctx, h.ID, lease)
	if err != nil || !ok {
		return false, err
	}
	h.Attempts++
	actx, cancel := context.WithTimeout(ctx, attemptLimit)
	err = p.launch(actx, h)
	cancel()
	if errors.Is(err, errLostClaim) {
		return false, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		p.Recorder.HuntLaunchFailed(h.Server, ioc.ErrorCode(err))
		next := p.Now().Add(backoff(h.Attempts))
		p.Logger.Warn("hunt launch failed", "hunt", h.ID, "server", h.Server, "attempt", h.Attempts, "retry_at", next, "error", err)
		return false, p.Store.SetLaunchError(ctx, h.ID, err.Error(), next)
	}
	return true, nil
}

func (p *Planner) launch(ctx context.Context, h store.Hunt) error {
	vr, ok := p.Servers[h.Server]
	if !ok {
		return fmt.Errorf("server %q is not configured", h.Server)
	}
	if err := p.prepare(ctx, h.Server, h.Org); err != nil {
		return err
	}
	rows, err := p.Store.HuntIOCs(ctx, h.ID)
	if err != nil {
		return err
	}
	if !anyLive(rows) {
		// Every IOC was removed or changed while the hunt waited.
		if h.VRHuntID != "" {
			if err := vr.StopHunt(ctx, h.Org, h.VRHuntID); err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
				return err
			}
		}
		_, err := p.Store.EndHuntWithReason(ctx, h.ID, store.HuntStopped, "no IOC of it is hunted any more")
		return err
	}
	id := h.VRHuntID
	if id == "" && h.Attempts > 1 {
		// An earlier attempt may have created the hunt and crashed before
		// recording it: find it by its marker instead of creating a twin.
		found, _, err := vr.FindHuntByTag(ctx, h.Org, h.Marker)
		if err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
			return err
		}
		id = found
	}
	created := false
	if id == "" {
		req, err := p.request(h, rows)
		if err != nil {
			return err
		}
		if id, err = vr.CreateHunt(ctx, req); err != nil {
			return err
		}
		created = true
	}
	if h.VRHuntID == "" {
		if err := p.Store.SetHuntCreated(ctx, h.ID, id); err != nil {
			return err
		}
	}
	// What other processes did meanwhile, read once: another launcher that
	// recorded a hunt of its own, or an operator who ended this one
	// (`velohunt hunts stop`): the paused hunt is stopped, never started.
	cur, err := p.Store.FindHunt(ctx, h.ID)
	if err != nil {
		return err
	}
	if lost, err := p.lostTo(ctx, vr, h, cur, id, created); err != nil {
		return err
	} else if lost {
		return errLostClaim
	}
	if ended, err := p.endedMeanwhile(ctx, vr, h, cur, id); ended || err != nil {
		return err
	}
	if err := vr.StartHunt(ctx, h.Org, id); err != nil {
		return err
	}
	if err := p.Store.SetHuntRunning(ctx, h.ID); err != nil {
		return err
	}
	// Or ended while it was started: it is stopped at once.
	if cur, err = p.Store.FindHunt(ctx, h.ID); err != nil {
		return err
	}
	if ended, err := p.endedMeanwhile(ctx, vr, h, cur, id); ended || err != nil {
		return err
	}
	p.Recorder.HuntStarted(h.Server)
	p.Logger.Info("hunt started", "hunt", h.ID, "hunt_id", id, "server", h.Server, "org", h.Org, "kind", h.Kind, "artifact", h.Artifact)
	return nil
}

// errLostClaim ends an attempt whose hunt another launcher recorded.
var errLostClaim = errors.New("another launcher recorded the hunt")

// lostTo reports whether another launcher recorded another Velociraptor
// hunt for h (cur, its row as just read) while this attempt created or
// found id (this attempt's claim ran out under it, a pause of the process
// for instance): the twin this attempt created is stopped, paused as it
// is, and never started.
func (p *Planner) lostTo(ctx context.Context, vr Velociraptor, h, cur store.Hunt, id string, created bool) (bool, error) {
	if cur.VRHuntID == id {
		return false, nil
	}
	if created {
		if err := vr.StopHunt(ctx, h.Org, id); err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
			p.Logger.Error("another launcher recorded this hunt first; the twin this attempt created could not be stopped: stop it in Velociraptor",
				"hunt", h.ID, "hunt_id", id, "recorded", cur.VRHuntID, "server", h.Server, "org", h.Org, "error", err)
			return true, fmt.Errorf("stop twin hunt %s: %w", id, err)
		}
	}
	p.Logger.Warn("another launcher recorded this hunt first; this attempt's hunt was stopped, never started",
		"hunt", h.ID, "hunt_id", id, "recorded", cur.VRHuntID, "server", h.Server, "org", h.Org)
	return true, nil
}

// endedMeanwhile reports whether a hunt being launched was ended in the
// store (cur, its row as just read) by someone else (an operator's
// `velohunt hunts stop`, which ends planned hunts without waiting for a
// launch in flight), and if so stops the Velociraptor hunt id this launch
// made or found: velohunt leaves none of its hunts running that its store
// says ended.
func (p *Planner) endedMeanwhile(ctx context.Context, vr Velociraptor, h, cur store.Hunt, id string) (bool, error) {
	switch cur.State {
	case store.HuntPlanned, store.HuntCreated, store.HuntRunning:
		return false, nil
	}
	if err := vr.StopHunt(ctx, h.Org, id); err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
		p.Logger.Error("a hunt ended while it was launched and could not be stopped in Velociraptor; stop it there",
			"hunt", h.ID, "hunt_id", id, "server", h.Server, "org", h.Org, "error", err)
		return true, fmt.Errorf("stop hunt %s, ended while it was launched: %w", id, err)
	}
	p.Logger.Info("hunt ended while it was launched; stopped in Velociraptor", "hunt", h.ID, "hunt_id", id,
		"server", h.Server, "org", h.Org, "state", cur.State, "reason", cur.EndReason)
	return true, nil
}

// PrepareAll prepares every given server and org now (at start-up) and
// returns the joined errors; targets that fail are prepared again before
// their first launch.
func (p *Planner) PrepareAll(ctx context.Context, targets []ioc.Route) error {
	p.init()
	var errs []error
	for _, t := range targets {
		if err := p.prepare(ctx, t.Server, t.Org); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Planner) prepare(ctx context.Context, server, org string) error {
	key := server + "\x00" + org
	p.mu.Lock()
	done := p.prepared[key]
	p.mu.Unlock()
	if done || p.Prepare == nil {
		return nil
	}
	if err := p.Prepare(ctx, server, org); err != nil {
		return fmt.Errorf("prepare server %s org %q: %w", server, org, err)
	}
	p.mu.Lock()
	p.prepared[key] = true
	p.mu.Unlock()
	return nil
}

// fileNames returns the file names of a hash hunt whose every hash came
// with one (filename|md5 and the like), as a JSON list, or "": the hash
// artifact hashes only files of those names when asked to
// (OnlyNamedFiles), which is right only if no hash lacks a name.
func fileNames(rows []store.HuntIOC) string {
	var names []string
	for _, r := range rows {
		if !r.Live {
			continue
		}
		t, err := ioc.Parse(r.TypeName, r.Value)
		if err != nil || t.Context == "" || t.Value != r.HuntValue {
			return "" // a hash any file may carry (a plain md5, even beside a named one)
		}
		n := strings.ToLower(t.Context)
		n = n[strings.LastIndexAny(n, `/\`)+1:]
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	b, _ := json.Marshal(names)
	return string(b)
}

// request builds the hunt for a planned row from the IOCs it covers: the
// distinct values of the live ones, in the kind's list format.
func (p *Planner) request(h store.Hunt, rows []store.HuntIOC) (velociraptor.HuntRequest, error) {
	seen := map[string]bool{}
	cases := map[int64]bool{}
	var values []string
	for _, r := range rows {
		if !r.Live {
			continue
		}
		cases[r.CaseID] = true
		if !seen[r.HuntValue] {
			seen[r.HuntValue] = true
			values = append(values, r.HuntValue)
		}
	}
	sort.Strings(values)
	art := p.Kinds[h.Kind]
	if art.Name == "" {
		art = Artifact{Name: h.Artifact, Parameter: "IOCs", Format: "json"}
	}
	list, err := FormatList(values, art.Format)
	if err != nil {
		return velociraptor.HuntRequest{}, err
	}
	params := map[string]string{}
	for k, v := range art.Params {
		params[k] = v
	}
	params[art.Parameter] = list
	if names := fileNames(rows); names != "" && h.Artifact == "Custom.Velohunt.Hash" {
		params["FileNames"] = names
	}
	expires := h.ExpiresAt.Sub(p.Now())
	if expires < time.Minute {
		expires = time.Minute
	}
	cpu, ops, timeout := p.CPULimit, p.OpsPerSecond, p.ClientTimeout
	l := p.Limits[h.Server]
	if l.CPULimit > 0 {
		cpu = l.CPULimit
	}
	if l.OpsPerSecond > 0 {
		ops = l.OpsPerSecond
	}
	if l.ClientTimeout > 0 {
		timeout = l.ClientTimeout
	}
	for k, v := range l.Parameters[string(h.Kind)] {
		if k != art.Parameter {
			params[k] = v
		}
	}
	// The scope recorded when the hunt was planned, with the labels the
	// configuration excludes now: a hunt waiting to launch never reaches a
	// client an operator has since excluded.
	scope, err := ioc.DecodeScope(h.Scope)
	if err != nil {
		return velociraptor.HuntRequest{}, err
	}
	now := l.Scope.Narrow(art.Scope)
	scope = scope.Narrow(ioc.Scope{ExcludeLabels: now.ExcludeLabels})
	return velociraptor.HuntRequest{
		Org: h.Org, Artifact: h.Artifact, Params: params, Expires: expires,
		Description:   fmt.Sprintf("velohunt: %d %s IOC(s) from IRIS case(s) %s", len(values), h.Kind, caseList(cases)),
		Tags:          []string{"velohunt", h.Marker},
		ClientTimeout: timeout, CPULimit: cpu, OpsPerSecond: ops,
		IncludeLabels: scope.IncludeLabels, ExcludeLabels: scope.ExcludeLabels, OS: scope.OS,
	}, nil
}

func anyLive(rows []store.HuntIOC) bool {
	for _, r := range rows {
		if r.Live {
			return true
		}
	}
	return false
}

// FormatList renders hunt values for an artifact parameter.
func FormatList(values []string, format string) (string, error) {
	switch format {
	case "json", "":
		b, err := json.Marshal(values)
		return string(b), err
	case "lines":
		return strings.Join(values, "\n"), nil
	case "csv":
		return strings.Join(values, ","), nil
	case "regex":
		q := make([]string, len(values))
		for i, v := range values {
			q[i] = regexp.QuoteMeta(v)
		}
		return strings.Join(q, "|"), nil
	}
	return "", fmt.Errorf("unknown list format %q", format)
}

func caseList(cases map[int64]bool) string {
	ids := make([]int64, 0, len(cases))
	for id := range cases {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, 0, len(ids))
	for i, id := range ids {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-10))
			break
		}
		parts = append(parts, fmt.Sprintf("#%d", id))
	}
	return strings.Join(parts, ", ")
}

// backoff is the delay before launch attempt n+1: 5s doubling, capped at 10m.
func backoff(attempts int) time.Duration {
	d := 5 * time.Second << min(max(attempts-1, 0), 8)
	return min(d, 10*time.Minute)
}
