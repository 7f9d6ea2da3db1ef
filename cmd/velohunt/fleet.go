package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/fleet"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/vqlcompat"
	"github.com/velohunt/velohunt/templates"
)

// fleetAssessor compares client versions with velohunt's table of
// releases, for the artifacts of the configured kinds.
func fleetAssessor(c config.Config) (*fleet.Assessor, error) {
	defs, err := templates.Artifacts(c.Hunting.ArtifactsDir)
	if err != nil {
		return nil, err
	}
	used := map[string]string{}
	for _, k := range c.Hunting.Kinds {
		if d, ok := defs[k.Artifact]; ok {
			used[k.Artifact] = d
		}
	}
	tab, err := vqlcompat.Embedded()
	if err != nil {
		return nil, err
	}
	return fleet.NewAssessor(tab, used)
}

// checkFleet reports a server's (and org's) client releases: how many
// hosts run each, and what velohunt's artifacts miss on them.
func checkFleet(ctx context.Context, a *App, cl *velociraptor.Client, t ioc.Route, where string) []finding {
	as, err := fleetAssessor(a.Config)
	if err != nil {
		return []finding{{where, "client releases", checkWarn, "cannot check the artifacts against velohunt's table of releases: " + err.Error()}}
	}
	counts, err := cl.ClientVersions(ctx, t.Org)
	if err != nil {
		return []finding{{where, "client releases", checkWarn, "cannot count the clients by version (clients() needs READ_RESULTS): " + ioc.ErrorMessage(err)}}
	}
	s := as.Summarize(counts)
	status := checkOK
	if s.Partial+s.Unchecked > 0 {
		status = checkWarn
	}
	out := []finding{{where, "client releases", status, s.Line() + "; velohunt is checked against " + tagRange(s.Releases) +
		" (README \"Supported Velociraptor clients\")"}}
	for _, v := range s.Versions {
		out = append(out, finding{where, "clients on " + versionName(v.Version), versionStatus(v), versionDetail(v.Clients, string(v.Support), v.Missing, v.Why)})
	}
	return out
}

func versionStatus(v fleet.Version) string {
	if v.Support == fleet.Full {
		return checkOK
	}
	return checkWarn
}

// versionName shows a version reported by clients (endpoint data).
func versionName(v string) string {
	if v == "" {
		return "no version"
	}
	return inert(v, 40)
}

// versionDetail says how velohunt hunts on clients of one version.
func versionDetail(clients int64, support string, missing []string, why string) string {
	switch support {
	case string(fleet.Full):
		return fmt.Sprintf("%d client(s): velohunt's artifacts run in full", clients)
	case string(fleet.Partial):
		return fmt.Sprintf("%d client(s) cannot be fully hunted: the release lacks %s (their coverage says so: such hosts read incomplete, never clean; "+
			"upgrade them)", clients, strings.Join(missing, ", "))
	}
	return fmt.Sprintf("%d client(s) not checked: %s", clients, inert(why, 300))
}

// supportedRange is the range of releases velohunt is checked against.
func supportedRange() string {
	tab, err := vqlcompat.Embedded()
	if err != nil {
		return "?"
	}
	return tagRange(tab.Tags())
}

func tagRange(tags []string) string {
	if len(tags) == 0 {
		return "no release"
	}
	return strings.TrimPrefix(tags[0], "v") + " to " + strings.TrimPrefix(tags[len(tags)-1], "v")
}

// FleetLine is a server's (and org's) client releases in the status, as
// serve last read them.
type FleetLine struct {
	Server    string        `json:"server"`
	Org       string        `json:"org"`
	CheckedAt string        `json:"checked_at,omitempty"`
	Error     string        `json:"last_error,omitempty"`
	Clients   int64         `json:"clients"`
	Full      int64         `json:"clients_fully_hunted"`
	Partial   int64         `json:"clients_not_fully_hunted"`
	Unchecked int64         `json:"clients_on_unchecked_releases"`
	Versions  []VersionLine `json:"versions"`
}

// VersionLine is one client version of a fleet.
type VersionLine struct {
	Version string   `json:"version"`
	Clients int64    `json:"clients"`
	Support string   `json:"support"`
	Release string   `json:"release,omitempty"`
	Missing []string `json:"missing,omitempty"`
	Why     string   `json:"why_unchecked,omitempty"`
}

func fleetLines(list []store.Fleet) []FleetLine {
	var out []FleetLine
	for _, f := range list {
		l := FleetLine{Server: f.Server, Org: orgName(f.Org), CheckedAt: stamp(f.CheckedAt), Error: f.Error}
		for _, v := range f.Versions {
			vl := VersionLine{Version: v.Version, Clients: v.Clients, Support: v.Support, Release: v.Release, Why: v.Why}
			if v.Missing != "" {
				vl.Missing = strings.Split(v.Missing, "; ")
			}
			l.Versions = append(l.Versions, vl)
			l.Clients += v.Clients
			switch fleet.Support(v.Support) {
			case fleet.Full:
				l.Full += v.Clients
			case fleet.Partial:
				l.Partial += v.Clients
			default:
				l.Unchecked += v.Clients
			}
		}
		out = append(out, l)
	}
	return out
}

func printFleets(w io.Writer, list []FleetLine) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintf(w, "\nclient releases (read by serve every %s from clients(); velohunt is checked against Velociraptor %s):\n",
		fleet.DefaultEvery, supportedRange())
	for _, f := range list {
		as := "never read yet"
		if f.CheckedAt != "" {
			as = "as of " + f.CheckedAt
		}
		fmt.Fprintf(w, "  %s org %s, %s: ", f.Server, f.Org, as)
		if f.CheckedAt == "" && f.Error == "" {
			fmt.Fprintln(w, "-")
			continue
		}
		s := fleet.Summary{Clients: f.Clients, Full: f.Full, Partial: f.Partial, Unchecked: f.Unchecked}
		fmt.Fprintln(w, s.Line())
		if f.Error != "" {
			fmt.Fprintf(w, "    last read failed: %s\n", inert(f.Error, 200))
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, v := range f.Versions {
			fmt.Fprintf(tw, "    %s\t%s\n", versionName(v.Version), versionDetail(v.Clients, v.Support, v.Missing, v.Why))
		}
		tw.Flush()
	}
}
