// Package rehunt keeps the IOCs of open cases hunted on the schedules the
// team sets. A rule's cron schedule only marks a run as due in the store;
// the runner then selects the rule's IOCs and queues them, so the planner
// batches re-hunts like new IOCs. A run never overlaps the previous one,
// and an IOC that an unexpired hunt still covers is not hunted again unless
// the rule allows it.
package rehunt

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// Rule is a compiled re-hunt rule.
type Rule struct {
	Name       string
	Spec       string
	Schedule   cron.Schedule
	Kinds      map[ioc.Kind]bool // empty: any
	TLPs       map[int64]bool    // empty: any
	CaseStates map[string]bool   // lower-case IRIS state names; "open" or empty: any open case
	CaseTags   map[string]bool   // lower-case; empty: any
	Customers  map[string]bool   // lower-case; empty: any
	MinAge     time.Duration
	Overlap    bool
}

// Compile turns configured rules into Rules. tlpIDs maps TLP names to IRIS
// ids (resolved by name; the seeded ids when nil).
func Compile(c config.Config, tlpIDs map[string]int64) ([]Rule, error) {
	if tlpIDs == nil {
		tlpIDs = map[string]int64{}
		for i, n := range config.TLPNames {
			tlpIDs[n] = int64(i + 1)
		}
	}
	var out []Rule
	for _, rc := range c.Rehunt.Rules {
		tz := rc.TimeZone
		if tz == "" {
			tz = c.Intake.TimeZone
		}
		sched, err := cron.ParseStandard("CRON_TZ=" + tz + " " + rc.Schedule)
		if err != nil {
			return nil, fmt.Errorf("rehunt rule %s: %w", rc.Name, err)
		}
		r := Rule{Name: rc.Name, Spec: rc.Schedule, Schedule: sched, MinAge: rc.MinAge.D(), Overlap: rc.Overlap,
			Kinds: map[ioc.Kind]bool{}, TLPs: map[int64]bool{}, CaseStates: lowerSet(rc.CaseStates),
			CaseTags: lowerSet(rc.CaseTags), Customers: lowerSet(rc.Customers)}
		for _, k := range rc.Kinds {
			r.Kinds[ioc.Kind(k)] = true
		}
		for _, t := range rc.TLP {
			id, ok := tlpIDs[strings.ToLower(t)]
			if !ok {
				return nil, fmt.Errorf("rehunt rule %s: IRIS has no TLP %q", rc.Name, t)
			}
			r.TLPs[id] = true
		}
		out = append(out, r)
	}
	return out, nil
}

func lowerSet(list []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range list {
		m[strings.ToLower(strings.TrimSpace(v))] = true
	}
	return m
}

// Reason says why a rule does or does not select an IOC.
type Reason string

// Reasons.
const (
	Selected      Reason = ""
	OtherKind     Reason = "kind not selected"
	OtherTLP      Reason = "TLP not selected"
	OtherState    Reason = "case state not selected"
	OtherTag      Reason = "case has none of the tags"
	OtherCustomer Reason = "customer not selected"
	TooRecent     Reason = "last hunt too recent"
	StillHunting  Reason = "an unexpired hunt still covers it"
	NotHuntable   Reason = "not huntable in its state"
)

// Select decides whether the rule re-hunts a candidate now.
func (r Rule) Select(c store.RehuntCandidate, now time.Time) Reason {
	switch {
	case len(r.Kinds) > 0 && !r.Kinds[c.IOC.Kind]:
		return OtherKind
	case len(r.TLPs) > 0 && !r.TLPs[c.TLPID]:
		return OtherTLP
	case !r.stateOK(c.Case.State):
		return OtherState
	case len(r.CaseTags) > 0 && !anyIn(c.Case.Tags, r.CaseTags):
		return OtherTag
	case len(r.Customers) > 0 && !r.Customers[strings.ToLower(c.Case.Customer)]:
		return OtherCustomer
	}
	return NeedsRehunt(c.IOC.State, c.IOC.LastHuntAt, now, r.MinAge, r.Overlap)
}

func (r Rule) stateOK(state string) bool {
	if len(r.CaseStates) == 0 || r.CaseStates["open"] {
		return true // candidates come from open cases only
	}
	return r.CaseStates[strings.ToLower(state)]
}

func anyIn(list []string, set map[string]bool) bool {
	for _, v := range list {
		if set[strings.ToLower(strings.TrimSpace(v))] {
			return true
		}
	}
	return false
}

// NeedsRehunt is the timing decision: an IOC is re-hunted when its last hunt
// started at least minAge ago and, unless overlap is allowed, no unexpired
// hunt still covers it.
func NeedsRehunt(state string, lastHunt, now time.Time, minAge time.Duration, overlap bool) Reason {
	switch state {
	case store.StateHunted:
	case store.StateHunting:
		if !overlap {
			return StillHunting
		}
	default:
		return NotHuntable
	}
	if !lastHunt.IsZero() && now.Sub(lastHunt) < minAge {
		return TooRecent
	}
	return Selected
}
