// Package fleet tells how well velohunt can hunt on each Velociraptor
// server's fleet: it counts the clients by the release they run (clients(),
// grouped on the server) and compares each release with velohunt's table
// of what every supported release offers its artifacts (internal/vqlcompat).
// A client release that lacks a function or argument an artifact calls
// searches less than asked: its hosts read incomplete, never clean, and
// `velohunt check` and `velohunt status` say how many there are and what
// is missing on them.
package fleet

import (
	"fmt"
	"slices"
	"strings"

	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/vqlcompat"
)

// Support says how well velohunt hunts on a client release.
type Support string

// Levels of support.
const (
	// Full: a release velohunt was checked against, which lacks nothing
	// its artifacts call.
	Full Support = "full"
	// Partial: a checked release that lacks something an artifact calls;
	// Missing says what.
	Partial Support = "partial"
	// Unchecked: not a release velohunt was checked against (older, newer,
	// between two checked releases, no version, not a version); Why says
	// which.
	Unchecked Support = "unchecked"
)

// MaxVersions caps the versions kept per server and org: clients report
// their own version, and a fleet of hostile clients could report any
// number of them. The least common ones beyond it are counted together.
const MaxVersions = 50

// Version is a client version of a fleet and how well velohunt hunts
// there.
type Version struct {
	Version string // as the clients report it (endpoint data)
	Clients int64
	Support Support
	// Release is the table's tag of the version ("" when unchecked).
	Release string
	// Missing lists what the release lacks, as "artifact: function
	// name(arg=)".
	Missing []string
	// Why says why an unchecked version was not checked.
	Why string
}

// Summary is a fleet's versions and its clients counted by support.
type Summary struct {
	Versions                          []Version // most clients first
	Clients, Full, Partial, Unchecked int64
	Releases                          []string // of the table, for the report
}

// Assessor compares client versions with the table for a set of
// artifacts.
type Assessor struct {
	table    *vqlcompat.Table
	findings []vqlcompat.Finding
}

// NewAssessor checks the artifacts (name -> YAML) against the table once.
func NewAssessor(t *vqlcompat.Table, artifacts map[string]string) (*Assessor, error) {
	fs, err := t.CheckAll(artifacts)
	if err != nil {
		return nil, err
	}
	return &Assessor{table: t, findings: fs}, nil
}

// lacks returns what a release of the table lacks, and the problems that
// hold for every release (a call the table does not know).
func (a *Assessor) lacks(tag string) (missing, problems []string) {
	for _, f := range a.findings {
		what := fmt.Sprintf("%s: %s %s()", f.Artifact, f.Kind, f.Call)
		if f.Arg != "" {
			what = fmt.Sprintf("%s: %s %s(%s=)", f.Artifact, f.Kind, f.Call, f.Arg)
		}
		switch {
		case f.Problem != "":
			problems = append(problems, what+": "+f.Problem)
		case slices.Contains(f.Releases, tag):
			missing = append(missing, what)
		}
	}
	return missing, problems
}

// Assess says how well velohunt hunts on clients reporting version v.
func (a *Assessor) Assess(v string, clients int64) Version {
	out := Version{Version: v, Clients: clients, Support: Unchecked}
	p := a.table.Place(v)
	if p.Release == "" {
		out.Why = p.Why
		if p.Below != "" {
			out.Why += "; " + a.neighbour(p.Below) + ", " + a.neighbour(p.Above)
		}
		return out
	}
	out.Release = p.Release
	missing, problems := a.lacks(p.Release)
	switch {
	case len(problems) > 0:
		out.Why = "the artifacts call what velohunt's table does not know: " + strings.Join(problems, "; ")
	case len(missing) > 0:
		out.Support, out.Missing = Partial, missing
	default:
		out.Support = Full
	}
	return out
}

// neighbour says what a checked release lacks, for a version near it.
func (a *Assessor) neighbour(tag string) string {
	missing, _ := a.lacks(tag)
	if len(missing) == 0 {
		return tag + " lacks nothing"
	}
	return tag + " lacks " + strings.Join(missing, ", ")
}

// Summarize assesses a fleet's version counts: the most common first, at
// most MaxVersions of them (the rest counted in one unchecked entry).
func (a *Assessor) Summarize(counts []velociraptor.VersionCount) Summary {
	merged := map[string]int64{}
	for _, c := range counts {
		merged[c.Version] += c.Clients
	}
	list := make([]velociraptor.VersionCount, 0, len(merged))
	for v, n := range merged {
		list = append(list, velociraptor.VersionCount{Version: v, Clients: n})
	}
	slices.SortFunc(list, func(x, y velociraptor.VersionCount) int {
		if x.Clients != y.Clients {
			return int(y.Clients - x.Clients)
		}
		return strings.Compare(x.Version, y.Version)
	})
	s := Summary{Releases: a.table.Tags()}
	var rest velociraptor.VersionCount
	restN := 0
	for i, c := range list {
		if i >= MaxVersions-1 && len(list) > MaxVersions {
			rest.Clients += c.Clients
			restN++
			continue
		}
		s.add(a.Assess(c.Version, c.Clients))
	}
	if restN > 0 {
		s.add(Version{Version: fmt.Sprintf("(%d other versions)", restN), Clients: rest.Clients, Support: Unchecked,
			Why: fmt.Sprintf("more than %d distinct versions: the least common are counted together", MaxVersions)})
	}
	return s
}

func (s *Summary) add(v Version) {
	s.Versions = append(s.Versions, v)
	s.Clients += v.Clients
	switch v.Support {
	case Full:
		s.Full += v.Clients
	case Partial:
		s.Partial += v.Clients
	default:
		s.Unchecked += v.Clients
	}
}

// Line is the one-line summary of a fleet: its clients by support.
func (s Summary) Line() string {
	if s.Clients == 0 {
		return "no client"
	}
	return fmt.Sprintf("%d client(s): %d on releases velohunt fully hunts on, %d on releases it cannot fully hunt on, "+
		"%d on releases it was not checked against", s.Clients, s.Full, s.Partial, s.Unchecked)
}
