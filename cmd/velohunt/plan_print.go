package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Plan is what `velohunt plan` prints.
type Plan struct {
	IRIS      string       `json:"iris"`
	OpenCases int          `json:"open_cases"`
	Database  PlanDatabase `json:"database"`
	Targets   []PlanTarget `json:"targets"`
	// NewHunts and NewIOCs total the hunts that would start now and the
	// (case, IOC) rows they would hunt.
	NewHunts int           `json:"new_hunts"`
	NewIOCs  int           `json:"new_iocs"`
	Refused  []RefusedLine `json:"refused_iocs"`
	Rules    []PlanRule    `json:"rehunt_rules,omitempty"`
	// Problems are what could not be read; the plan covers the rest.
	Problems []string `json:"problems,omitempty"`
}

// PlanDatabase is what the plan knew from velohunt's database.
type PlanDatabase struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	// OpenHunts counts velohunt's hunts not ended in it.
	OpenHunts int        `json:"open_hunts"`
	Serve     *ServeLine `json:"serve,omitempty"`
}

// PlanTarget is one Velociraptor server and org and what it would get.
type PlanTarget struct {
	Server string  `json:"server"`
	Org    string  `json:"org"`
	Cases  []int64 `json:"cases"`
	// Velociraptor says whether the server answered (read-only: its
	// version), or why not.
	Velociraptor string     `json:"velociraptor"`
	Limits       PlanLimits `json:"limits"`
	Kinds        []PlanKind `json:"kinds"`
	Hunts        int        `json:"new_hunts"`
	IOCs         int        `json:"new_iocs"`
	// HeldBack is the server limit that holds queued IOCs back ("" none).
	HeldBack string `json:"held_back,omitempty"`
}

// PlanLimits are a server's limits as the planner applies them.
type PlanLimits struct {
	MaxIOCsPerHunt  int `json:"max_iocs_per_hunt"`
	MaxActiveHunts  int `json:"max_active_hunts,omitempty"`
	MaxHuntsPerHour int `json:"max_hunts_per_hour,omitempty"`
	// ActiveNow counts the server's active hunts in the database.
	ActiveNow int `json:"active_hunts_now"`
}

// PlanKind is one kind of IOC on a target. IOCs are (case, IOC) rows; an
// IOC linked to two cases routed alike is one value in the hunt's list.
type PlanKind struct {
	Kind     string `json:"kind"`
	Artifact string `json:"artifact"`
	IOCs     int    `json:"to_hunt"`
	Values   int    `json:"to_hunt_values"`
	// HuntSizes are the new hunts' sizes, in IOC rows.
	HuntSizes []int `json:"new_hunts"`
	// Held are the IOCs a limit holds back (they stay queued).
	Held int `json:"held_back"`
	// Hunting are covered by an unexpired hunt: not hunted again now.
	Hunting int `json:"already_hunting"`
	// Hunted were hunted before; only a re-hunt rule, a manual trigger or
	// `velohunt hunt` hunts them again.
	Hunted int `json:"hunted_before"`
}

// PlanRule is what a re-hunt rule would do at its next run.
type PlanRule struct {
	Name         string `json:"name"`
	Schedule     string `json:"schedule"`
	Next         string `json:"next_run"`
	Queue        int    `json:"would_queue"`
	StillHunting int    `json:"skipped_still_hunting"`
	TooRecent    int    `json:"skipped_too_recent"`
}

// printPlan prints a plan for an operator about to start serve.
func printPlan(w io.Writer, p Plan) {
	fmt.Fprintln(w, "velohunt plan: what `velohunt serve` would hunt if it started now.")
	fmt.Fprintln(w, "Nothing was changed: IRIS was only read, no hunt was created or artifact uploaded, the database was not written.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "IRIS %s: %d open case(s) the service user can see\n", p.IRIS, p.OpenCases)
	d := p.Database
	switch {
	case !d.Exists:
		fmt.Fprintf(w, "database %s: none yet; this is a first start: every huntable IOC of every open case above is new\n", d.Path)
	default:
		fmt.Fprintf(w, "database %s (read-only): %d hunt(s) of velohunt not ended; IOCs it hunted are not hunted again now\n", d.Path, d.OpenHunts)
	}
	if d.Serve != nil {
		fmt.Fprintf(w, "serve: running (pid %d, since %s): it acts on this plan by itself, within its batch window\n", d.Serve.PID, d.Serve.Since)
	}
	for _, t := range p.Targets {
		printTarget(w, t)
	}
	fmt.Fprintln(w)
	if p.NewHunts == 0 {
		fmt.Fprintln(w, "in all: no new hunt")
	} else {
		fmt.Fprintf(w, "in all: %d new hunt(s) for %d IOC(s), each on every endpoint of its server and org, started within seconds of one another\n",
			p.NewHunts, p.NewIOCs)
	}
	if len(p.Refused) > 0 {
		fmt.Fprintf(w, "\nrefused IOCs, never hunted (%d):\n", len(p.Refused))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  case\tioc\ttype\tvalue\treason")
		for _, r := range p.Refused {
			fmt.Fprintf(tw, "  #%d\t%d\t%s\t%q\t%s\n", r.CaseID, r.IOCID, r.Type, r.Value, r.Reason)
		}
		tw.Flush()
	}
	if len(p.Rules) > 0 {
		fmt.Fprintln(w, "\nre-hunt rules, at their next run (with the hunts above started now):")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  rule\tschedule\tnext run\twould queue\tskipped: still hunted\tskipped: hunted too recently")
		for _, r := range p.Rules {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\n", r.Name, r.Schedule, r.Next, r.Queue, r.StillHunting, r.TooRecent)
		}
		tw.Flush()
	} else {
		fmt.Fprintln(w, "\nre-hunt rules: none; IOCs are hunted once (and again on a manual trigger or `velohunt hunt`)")
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "\nnote: %s\n", pr)
	}
	fmt.Fprintln(w, "\nTo hunt less at once: route cases to servers and orgs (velociraptor.routes), set each server's limits")
	fmt.Fprintln(w, "(max_active_hunts, max_hunts_per_hour, max_iocs_per_hunt), and limit which customers' cases the IRIS service")
	fmt.Fprintln(w, "user can see; see README, \"Before the first start\". `velohunt hunts stop` stops velohunt's hunts.")
}

func printTarget(w io.Writer, t PlanTarget) {
	fmt.Fprintf(w, "\nserver %s, org %s: %d case(s): %s\n", t.Server, orgName(t.Org), len(t.Cases), caseIDs(t.Cases, 20))
	fmt.Fprintf(w, "  Velociraptor: %s\n", t.Velociraptor)
	l := t.Limits
	lim := fmt.Sprintf("up to %d IOC(s) per hunt", l.MaxIOCsPerHunt)
	if l.MaxActiveHunts > 0 {
		lim += fmt.Sprintf(", at most %d active hunt(s) (%d now)", l.MaxActiveHunts, l.ActiveNow)
	} else {
		lim += fmt.Sprintf(", active hunts not limited (%d now)", l.ActiveNow)
	}
	if l.MaxHuntsPerHour > 0 {
		lim += fmt.Sprintf(", at most %d hunt(s) per hour", l.MaxHuntsPerHour)
	} else {
		lim += ", hunts per hour not limited"
	}
	fmt.Fprintf(w, "  limits: %s\n", lim)
	if len(t.Kinds) == 0 {
		fmt.Fprintln(w, "  no huntable IOC")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  kind\tartifact\thunt now\tin hunts of\theld back by limits\talready hunting\thunted before")
	for _, k := range t.Kinds {
		sizes := "-"
		if len(k.HuntSizes) > 0 {
			parts := make([]string, len(k.HuntSizes))
			for i, n := range k.HuntSizes {
				parts[i] = fmt.Sprint(n)
			}
			sizes = strings.Join(parts, "+")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d (%d values)\t%s\t%d\t%d\t%d\n", k.Kind, k.Artifact, k.IOCs, k.Values, sizes, k.Held, k.Hunting, k.Hunted)
	}
	tw.Flush()
	if t.Hunts > 0 {
		fmt.Fprintf(w, "  => %d new hunt(s) for %d IOC(s) on every endpoint of %s/%s\n", t.Hunts, t.IOCs, t.Server, orgName(t.Org))
	} else {
		fmt.Fprintln(w, "  => no new hunt")
	}
	if t.HeldBack != "" {
		fmt.Fprintf(w, "  held back: %s (they stay queued and go as the limit allows)\n", t.HeldBack)
	}
}

// caseIDs lists case ids as "#1, #2", at most n of them.
func caseIDs(ids []int64, n int) string {
	var parts []string
	for i, id := range ids {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("#%d", id))
	}
	return strings.Join(parts, ", ")
}
