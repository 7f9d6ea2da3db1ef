package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/planner"
	"github.com/velohunt/velohunt/internal/rehunt"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// `velohunt plan` answers "what would serve hunt if it started now?"
// with the code serve runs, on a scratch copy of the store in memory: the
// intake syncer reads IRIS as the reconcile does (parsing, refusing and
// routing each IOC), the planner batches what is queued under the
// server's limits, the re-hunt rules select what they would at their next
// run; then the command reads what that code did. IRIS is only read, the
// database only opened read-only (never created), and the planner's
// Velociraptor refuses every call: nothing is launched, uploaded or
// written anywhere.

// PlanCommand prints what the next serve would hunt, touching nothing.
type PlanCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt plan`.
func (c *PlanCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-plan", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := makePlan(ctx, cfg, log)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	printPlan(c.Stdout, p)
	return nil
}

// makePlan computes the plan of a configuration.
func makePlan(ctx context.Context, cfg config.Config, log *slog.Logger) (Plan, error) {
	p := Plan{IRIS: cfg.IRIS.URL, Database: PlanDatabase{Path: cfg.Database}}
	scratch, err := scratchStore(ctx, cfg, &p.Database, log)
	if err != nil {
		return p, err
	}
	defer scratch.Close()
	cl, err := iris.New(irisOptions(cfg))
	if err != nil {
		return p, err
	}
	rep, err := newSyncer(cfg, cl, scratch, log).Sync(ctx, "plan", true)
	switch {
	case keyRefused(err):
		return p, errKeyRefused(err)
	case err != nil && rep.Cases == 0:
		return p, fmt.Errorf("read IRIS: %w", err)
	case err != nil:
		p.Problems = append(p.Problems, "some cases could not be read from IRIS, the plan leaves them out: "+err.Error())
	}
	before, err := scratch.IOCCounts(ctx)
	if err != nil {
		return p, err
	}
	targets, err := planTargets(ctx, cfg, scratch, &p)
	if err != nil {
		return p, err
	}
	servers := map[string]planner.Velociraptor{}
	for _, s := range cfg.Velociraptor.Servers {
		servers[s.Name] = noLaunch{}
	}
	planned, err := newPlanner(cfg, scratch, servers, log).Plan(ctx, true)
	if err != nil {
		return p, fmt.Errorf("plan: %w", err)
	}
	after, err := scratch.IOCCounts(ctx)
	if err != nil {
		return p, err
	}
	if err := fillKinds(ctx, cfg, scratch, targets, before, after, planned); err != nil {
		return p, err
	}
	holds, err := scratch.ServerHolds(ctx)
	if err != nil {
		return p, err
	}
	for _, t := range targets {
		t.HeldBack = holds[t.Server]
		p.NewHunts += t.Hunts
		p.NewIOCs += t.IOCs
		p.Targets = append(p.Targets, *t)
	}
	refused, err := scratch.RefusedIOCs(ctx, 10000)
	if err != nil {
		return p, err
	}
	for _, r := range refused {
		p.Refused = append(p.Refused, RefusedLine{CaseID: r.CaseID, IOCID: r.IRISID, Type: r.TypeName, Value: clip(r.Value, 60), Reason: r.Reason})
	}
	if p.Rules, err = planRules(ctx, cfg, scratch, tlpIDs(ctx, cfg, cl, log)); err != nil {
		return p, err
	}
	reachVelociraptor(ctx, cfg, p.Targets)
	return p, nil
}

// scratchStore is a copy in memory of the database, opened read-only, or
// an empty store when there is no database yet: the plan's scratch pad.
func scratchStore(ctx context.Context, cfg config.Config, d *PlanDatabase, log *slog.Logger) (*store.DB, error) {
	holder, held, err := lockHolder(cfg.Database)
	if err != nil {
		return nil, err
	}
	if held {
		d.Serve = &ServeLine{Running: true, PID: holder.PID, Listen: holder.Listen, Since: stamp(holder.Started), Version: holder.Version}
	}
	if _, err := os.Stat(cfg.Database); errors.Is(err, fs.ErrNotExist) {
		return store.OpenMemory(ctx)
	}
	ro, err := store.OpenWith(ctx, cfg.Database, store.Options{ReadOnly: true, AnySchema: true, Logger: log})
	if err != nil {
		return nil, err
	}
	defer ro.Close()
	d.Exists = true
	scratch, err := ro.Scratch(ctx)
	if err != nil {
		return nil, err
	}
	open, err := scratch.OpenHunts(ctx)
	if err != nil {
		scratch.Close()
		return nil, err
	}
	d.OpenHunts = len(open)
	return scratch, nil
}

// planTargets lists the server and org of every open case, with its cases
// and limits, in the configuration's order of servers.
func planTargets(ctx context.Context, cfg config.Config, db *store.DB, p *Plan) ([]*PlanTarget, error) {
	cases, err := db.OpenCases(ctx)
	if err != nil {
		return nil, err
	}
	p.OpenCases = len(cases)
	byRoute := map[ioc.Route]*PlanTarget{}
	var out []*PlanTarget
	for _, c := range cases {
		where := ioc.Route{Server: c.Route.Server, Org: c.Route.Org} // a routing rule's scope does not split it
		t := byRoute[where]
		if t == nil {
			t = &PlanTarget{Server: c.Route.Server, Org: c.Route.Org}
			s, _ := cfg.Server(c.Route.Server)
			t.Limits = PlanLimits{MaxIOCsPerHunt: cfg.Hunting.MaxIOCsPerHunt, MaxActiveHunts: s.Limits.MaxActiveHunts,
				MaxHuntsPerHour: s.Limits.MaxHuntsPerHour}
			if s.Limits.MaxIOCsPerHunt > 0 {
				t.Limits.MaxIOCsPerHunt = s.Limits.MaxIOCsPerHunt
			}
			if t.Limits.ActiveNow, err = db.ActiveHunts(ctx, c.Route.Server); err != nil {
				return nil, err
			}
			byRoute[where] = t
			out = append(out, t)
		}
		t.Cases = append(t.Cases, c.ID)
	}
	order := map[string]int{}
	for i, s := range cfg.Velociraptor.Servers {
		order[s.Name] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return order[out[i].Server] < order[out[j].Server]
		}
		return out[i].Org < out[j].Org
	})
	return out, nil
}

// fillKinds counts, per target and kind, what the planner hunted in the
// scratch store, what it left queued (held back by a limit), and what the
// database had already hunted.
func fillKinds(ctx context.Context, cfg config.Config, db *store.DB, targets []*PlanTarget,
	before, after []store.IOCCount, planned []store.Hunt) error {
	type key struct {
		route ioc.Route
		kind  ioc.Kind
	}
	kinds := map[key]*PlanKind{}
	get := func(r ioc.Route, k ioc.Kind) *PlanKind {
		if kinds[key{r, k}] == nil {
			kinds[key{r, k}] = &PlanKind{Kind: string(k), Artifact: cfg.Hunting.Kinds[string(k)].Artifact}
		}
		return kinds[key{r, k}]
	}
	for _, c := range before {
		switch c.State {
		case store.StateHunting:
			get(c.Route, c.Kind).Hunting += c.Rows
		case store.StateHunted:
			get(c.Route, c.Kind).Hunted += c.Rows
		}
	}
	for _, c := range after {
		if c.State == store.StateQueued {
			get(c.Route, c.Kind).Held += c.Rows
		}
	}
	values := map[key]map[string]bool{}
	for _, h := range planned {
		rows, err := db.HuntIOCs(ctx, h.ID)
		if err != nil {
			return err
		}
		k := key{ioc.Route{Server: h.Server, Org: h.Org}, h.Kind}
		pk := get(k.route, k.kind)
		pk.IOCs += len(rows)
		pk.HuntSizes = append(pk.HuntSizes, len(rows))
		if values[k] == nil {
			values[k] = map[string]bool{}
		}
		for _, r := range rows {
			values[k][r.HuntValue] = true
		}
		pk.Values = len(values[k])
	}
	for _, t := range targets {
		for _, k := range ioc.Kinds {
			pk := kinds[key{ioc.Route{Server: t.Server, Org: t.Org}, k}]
			if pk == nil {
				continue
			}
			t.Kinds = append(t.Kinds, *pk)
			t.Hunts += len(pk.HuntSizes)
			t.IOCs += pk.IOCs
		}
	}
	return nil
}

// planRules says what each re-hunt rule would queue at its next run, were
// the plan's hunts started now: an IOC stays "hunting" until the last hunt
// covering it expires.
func planRules(ctx context.Context, cfg config.Config, db *store.DB, tlps map[string]int64) ([]PlanRule, error) {
	rules, err := rehunt.Compile(cfg, tlps)
	if err != nil || len(rules) == 0 {
		return nil, err
	}
	cands, err := db.RehuntCandidates(ctx)
	if err != nil {
		return nil, err
	}
	cover, err := db.HuntCover(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []PlanRule
	for _, r := range rules {
		next := r.Schedule.Next(now)
		line := PlanRule{Name: r.Name, Schedule: r.Spec, Next: next.Format(time.RFC3339)}
		for _, c := range cands {
			if c.IOC.State == store.StateHunting && !cover[c.IOC.ID].After(next) {
				c.IOC.State = store.StateHunted
			}
			switch r.Select(c, next) {
			case rehunt.Selected:
				line.Queue++
			case rehunt.StillHunting:
				line.StillHunting++
			case rehunt.TooRecent:
				line.TooRecent++
			}
		}
		out = append(out, line)
	}
	return out, nil
}

// reachVelociraptor asks each target's server for its version, read only,
// and says on the target whether it answered: the plan is printed either
// way.
func reachVelociraptor(ctx context.Context, cfg config.Config, targets []PlanTarget) {
	clients := map[string]*velociraptor.Client{}
	dialErr := map[string]error{}
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := range targets {
		t := &targets[i]
		s, ok := cfg.Server(t.Server)
		if !ok {
			t.Velociraptor = "not reached: no such server in the configuration"
			continue
		}
		cl, seen := clients[s.Name]
		if !seen && dialErr[s.Name] == nil {
			api, err := velociraptor.LoadAPIConfig(s.APIConfig)
			if err == nil {
				timeout := s.Timeout.D()
				if timeout <= 0 || timeout > 15*time.Second {
					timeout = 15 * time.Second
				}
				cl, err = velociraptor.Dial(api, velociraptor.Options{Timeout: timeout})
			}
			if err != nil {
				dialErr[s.Name] = err
			} else {
				clients[s.Name] = cl
			}
		}
		if err := dialErr[s.Name]; err != nil {
			t.Velociraptor = "not reached: " + err.Error()
			continue
		}
		v, err := cl.Version(ctx, t.Org)
		if err != nil {
			t.Velociraptor = "not reached: " + err.Error()
			continue
		}
		t.Velociraptor = "answered, version " + v
	}
}

// errPlanOnly is what the plan's Velociraptor answers to every call.
var errPlanOnly = errors.New("velohunt plan never calls Velociraptor to hunt")

// noLaunch is the planner's Velociraptor in a plan: planning never calls
// it, and a call would reach nothing.
type noLaunch struct{}

func (noLaunch) CreateHunt(context.Context, velociraptor.HuntRequest) (string, error) {
	return "", errPlanOnly
}
func (noLaunch) StartHunt(context.Context, string, string) error { return errPlanOnly }
func (noLaunch) StopHunt(context.Context, string, string) error  { return errPlanOnly }
func (noLaunch) FindHuntByTag(context.Context, string, string) (string, string, error) {
	return "", "", errPlanOnly
}
