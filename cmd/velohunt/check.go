package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/rehunt"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/templates"
)

// CheckCommand connects to IRIS and to every Velociraptor server and org,
// and reports what is wrong and how to fix it. It changes nothing and
// touches no endpoint.
type CheckCommand struct {
	Stdout, Stderr io.Writer
}

// finding is one line of the report.
type finding struct {
	Where, What, Status, Detail string
}

// Results of a check.
const (
	checkOK   = "OK"
	checkWarn = "WARN"
	checkFail = "FAIL"
)

// rolePermissions maps Velociraptor roles to the permissions velohunt needs
// (contracts/velociraptor-api.md §2).
var rolePermissions = map[string][]string{
	"reader":          {"READ_RESULTS"},
	"api":             {"ANY_QUERY", "READ_RESULTS"},
	"analyst":         {"READ_RESULTS", "ANY_QUERY"},
	"investigator":    {"READ_RESULTS", "ANY_QUERY", "COLLECT_CLIENT", "START_HUNT"},
	"artifact_writer": {"ARTIFACT_WRITER"},
	"administrator":   {"READ_RESULTS", "ANY_QUERY", "COLLECT_CLIENT", "START_HUNT", "ARTIFACT_WRITER"},
}

// Run implements `velohunt check`.
func (c *CheckCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-check", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	out, err := runChecks(ctx, cfg)
	if err != nil {
		return err
	}
	if failed := printFindings(c.Stdout, out); failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}

// runChecks checks IRIS and every server and org the config routes to.
func runChecks(ctx context.Context, cfg config.Config) ([]finding, error) {
	app := &App{Config: cfg, Logger: newLogger(config.Log{Level: "error", Format: "text"}, io.Discard), storeMode: storeNone}
	if err := app.Build(ctx); err != nil {
		app.closeClients()
		return nil, err
	}
	defer app.closeClients()
	out := checkIRIS(ctx, app)
	out = append(out, checkInstance(ctx, app))
	for _, t := range cfg.Targets() {
		out = append(out, checkVelociraptor(ctx, app, t)...)
	}
	return out, nil
}

func printFindings(w io.Writer, list []finding) int {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHERE\tCHECK\tRESULT\tDETAIL / FIX")
	failed := 0
	for _, f := range list {
		if f.Status == checkFail {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Where, f.What, f.Status, f.Detail)
	}
	tw.Flush()
	return failed
}

func checkIRIS(ctx context.Context, a *App) []finding {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	where := "IRIS " + a.Config.IRIS.URL
	var out []finding
	add := func(what, status, detail string) { out = append(out, finding{where, what, status, detail}) }
	v, err := a.IRIS.Versions(ctx)
	if err != nil {
		fix := "check iris.url, TLS (iris.ca_file) and that the API key (VELOHUNT_IRIS_API_KEY) belongs to an active user"
		add("connect and authenticate", checkFail, ioc.ErrorMessage(err)+"; "+fix)
		return out
	}
	status := checkOK
	if !strings.HasPrefix(v, "v2.4") && !strings.HasPrefix(v, "v2.5") {
		status = checkWarn
	}
	add("version", status, v+" (velohunt targets IRIS 2.4; 2.5 serves the same routes)")
	if old, ok := olderThan(v, 2, 4, 15); ok && old {
		add("webhooks module", checkWarn, fmt.Sprintf("IRIS %s bundles iris-webhooks-module before 1.0.8, which sends no request_headers: "+
			"every webhook would get 401. Put the secret in the path instead: request_url %s/<secret>/create (and /update, /manual), "+
			"and no request_headers; see README", v, a.Config.Webhook.Path))
	}
	if id, err := a.IRIS.WhoAmI(ctx); err != nil {
		add("service user", checkWarn, "cannot learn the API key's user id; set iris.service_user_id so velohunt ignores its own updates")
	} else {
		add("service user", checkOK, fmt.Sprintf("user id %d", id))
	}
	cases, err := a.IRIS.ListCases(ctx)
	if err != nil {
		add("list cases", checkFail, err.Error())
	} else {
		open := 0
		for _, cs := range cases {
			if cs.Open {
				open++
			}
		}
		add("list cases", checkOK, fmt.Sprintf("%d case(s) visible, %d open; give the service user access to every case to hunt", len(cases), open))
	}
	if types, err := a.IRIS.IOCTypes(ctx); err != nil {
		add("IOC types", checkFail, err.Error())
	} else {
		var missing []string
		for _, n := range ioc.HuntableTypes() {
			if !slices.ContainsFunc(types, func(t iris.RefItem) bool { return t.Name == n }) {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			add("IOC types", checkWarn, "IRIS lacks huntable types: "+strings.Join(missing, ", "))
		} else {
			add("IOC types", checkOK, fmt.Sprintf("%d types, every huntable one present", len(types)))
		}
	}
	if _, err := a.resolveRefs(ctx); err != nil {
		add("write-back names", checkFail, err.Error())
	} else {
		what := "asset types, analysis and compromise statuses, event category resolved"
		if a.Config.Collecting() {
			what = "asset types, analysis and compromise statuses, event category and evidence type (collect.evidence_type) resolved"
		}
		add("write-back names", checkOK, what)
	}
	if len(a.Config.Rehunt.Rules) > 0 {
		if _, err := rehunt.Compile(a.Config, a.tlpIDs(ctx)); err != nil {
			add("re-hunt rules", checkFail, err.Error())
		} else {
			add("re-hunt rules", checkOK, fmt.Sprintf("%d rule(s)", len(a.Config.Rehunt.Rules)))
		}
	}
	out = append(out, checkTab(ctx, a, where)...)
	return out
}

// checkInstance reports this velohunt's instance id (written on every tab
// it writes) and the tabs it did not write because another instance wrote
// them: one velohunt per IRIS.
// check creates no database: it reads the one serve made, read-only, if
// there is one.
func checkInstance(ctx context.Context, a *App) finding {
	where := "IRIS " + a.Config.IRIS.URL
	db, err := store.OpenWith(ctx, a.Config.Database, store.Options{ReadOnly: true})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return finding{where, "one velohunt per IRIS", checkWarn, "no database yet: serve makes it and this velohunt's instance id"}
		}
		return finding{where, "one velohunt per IRIS", checkFail, err.Error()}
	}
	defer db.Close()
	id, err := db.ReadInstanceID(ctx)
	if err != nil {
		return finding{where, "one velohunt per IRIS", checkFail, err.Error()}
	}
	if id == "" {
		id = "not assigned yet"
	}
	n, err := db.ForeignTabs(ctx)
	if err != nil {
		return finding{where, "one velohunt per IRIS", checkFail, err.Error()}
	}
	if n > 0 {
		return finding{where, "one velohunt per IRIS", checkFail, fmt.Sprintf("%d IOC tab(s) were written by another velohunt instance, "+
			"so this one (%s) leaves them alone: run one velohunt per IRIS; to move an IRIS to this velohunt, see README "+
			"\"Moving an IRIS to a new velohunt\"", n, id)}
	}
	return finding{where, "one velohunt per IRIS", checkOK, fmt.Sprintf("instance %s; no tab written by another instance seen", id)}
}

// checkTab verifies that IRIS's IOC template has the tab (with the
// administrator key; without it the check is only a warning).
func checkTab(ctx context.Context, a *App, where string) []finding {
	tab := a.Config.Writeback.TabName
	if a.Config.IRIS.AdminAPIKey == "" {
		return []finding{{where, "IOC tab", checkWarn, "no administrator key to read IRIS's IOC template; run `velohunt setup` once with VELOHUNT_IRIS_ADMIN_API_KEY"}}
	}
	admin, err := adminClient(a.Config)
	if err != nil {
		return []finding{{where, "IOC tab", checkFail, err.Error()}}
	}
	list, err := admin.AttributeTemplates(ctx)
	if err != nil {
		return []finding{{where, "IOC tab", checkFail, "reading the IOC template with the administrator key: " + err.Error()}}
	}
	for _, t := range list {
		if t.For != "ioc" {
			continue
		}
		fields := t.Content[tab]
		for name := range render.TabTemplate() {
			if _, ok := fields[name]; !ok {
				return []finding{{where, "IOC tab", checkFail, fmt.Sprintf("the IOC template lacks %q/%q; run `velohunt setup`", tab, name)}}
			}
		}
		return []finding{{where, "IOC tab", checkOK, fmt.Sprintf("%q has every field", tab)}}
	}
	return []finding{{where, "IOC tab", checkFail, "IRIS has no IOC attribute template"}}
}

func checkVelociraptor(ctx context.Context, a *App, t ioc.Route) []finding {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	where := "Velociraptor " + t.Server + " org " + orgName(t.Org)
	var out []finding
	add := func(what, status, detail string) { out = append(out, finding{where, what, status, detail}) }
	cl := a.VR[t.Server]
	v, err := cl.Version(ctx, t.Org)
	if err != nil {
		fix := "check api_connection_string and that the server is up"
		if ioc.ErrorCode(err) == ioc.EPERMISSION {
			fix = "grant the API user a role with ANY_QUERY in this org (velociraptor acl grant NAME --role investigator,artifact_writer --org ORG)"
		}
		add("connect (ANY_QUERY)", checkFail, ioc.ErrorMessage(err)+"; "+fix)
		return out
	}
	add("connect (ANY_QUERY)", checkOK, "Velociraptor "+v)
	have := map[string]bool{"ANY_QUERY": true}
	name, roles, err := cl.WhoAmI(ctx, t.Org)
	switch {
	case err != nil:
		add("roles", checkWarn, "cannot read the API user's roles: "+ioc.ErrorMessage(err))
	case roles == nil:
		add("roles", checkWarn, "the server did not tell the roles of "+name)
	default:
		for _, r := range roles {
			for _, p := range rolePermissions[r] {
				have[p] = true
			}
		}
		add("roles", checkOK, name+": "+strings.Join(roles, ", "))
	}
	if err := cl.ProbeReadResults(ctx, t.Org); err != nil {
		add("READ_RESULTS", checkFail, ioc.ErrorMessage(err)+"; grant role investigator (or reader)")
	} else {
		add("READ_RESULTS", checkOK, "can read hunts and results")
	}
	for _, p := range []struct{ perm, fix string }{
		{"START_HUNT", "grant role investigator"},
		{"ARTIFACT_WRITER", "grant role artifact_writer (or upload the artifacts yourself and set hunting.upload_artifacts: false)"},
	} {
		switch {
		case roles == nil:
			add(p.perm, checkWarn, "unknown (roles unreadable); "+p.fix+" if hunts fail")
		case have[p.perm]:
			add(p.perm, checkOK, "granted")
		default:
			add(p.perm, checkFail, "missing; "+p.fix)
		}
	}
	out = append(out, checkFleet(ctx, a, cl, t, where)...)
	defs, err := templates.Artifacts(a.Config.Hunting.ArtifactsDir)
	if err != nil {
		add("artifacts", checkFail, err.Error())
		return out
	}
	var names []string
	for _, k := range a.Config.Hunting.Kinds {
		names = append(names, k.Artifact)
	}
	got, err := cl.Artifacts(ctx, t.Org, names)
	if err != nil {
		add("artifacts", checkFail, ioc.ErrorMessage(err))
		return out
	}
	for _, n := range names {
		def, ours := defs[n]
		raw, present := got[n]
		switch {
		case !present && ours:
			add("artifact "+n, checkWarn, "not uploaded yet; `serve` uploads it at start-up (needs ARTIFACT_WRITER)")
		case !present:
			add("artifact "+n, checkFail, "configured in hunting.kinds but not on the server")
		case ours && raw != "" && raw != def:
			add("artifact "+n, checkWarn, "differs from templates/artifacts; `serve` uploads the new version at start-up")
		default:
			add("artifact "+n, checkOK, "present")
		}
	}
	return out
}

// olderThan reports whether an IRIS version string ("v2.4.14") is older
// than major.minor.patch; ok is false when it cannot be read.
func olderThan(v string, major, minor, patch int) (older, ok bool) {
	var a, b, c int
	if n, _ := fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d.%d.%d", &a, &b, &c); n < 3 {
		return false, false
	}
	for _, p := range [][2]int{{a, major}, {b, minor}, {c, patch}} {
		if p[0] != p[1] {
			return p[0] < p[1], true
		}
	}
	return false, true
}
