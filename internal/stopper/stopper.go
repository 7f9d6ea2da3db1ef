// Package stopper stops velohunt's own hunts on an operator's request
// (`velohunt hunts stop`), for a team that wants its fleet quiet again.
// It stops only hunts recorded in velohunt's store, and in Velociraptor
// only a hunt that still carries the marker tag velohunt stored for it:
// a database row changed to name another hunt never makes velohunt stop a
// hunt it did not start. A stopped hunt is recorded as stopped by the
// operator, so the planner never launches it and the watcher no longer
// reads it; the tabs of its IOCs say so.
package stopper

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// Velociraptor is what the stopper asks of one server.
type Velociraptor interface {
	// HuntInfo returns a hunt's state and tags, or ENOTFOUND.
	HuntInfo(ctx context.Context, org, huntID string) (velociraptor.HuntInfo, error)
	// FindHuntByTag returns the hunt carrying tag, or ENOTFOUND.
	FindHuntByTag(ctx context.Context, org, tag string) (string, string, error)
	// StopHunt stops a hunt.
	StopHunt(ctx context.Context, org, huntID string) error
}

// Store is the part of the store the stopper uses.
type Store interface {
	OpenHunts(ctx context.Context) ([]store.Hunt, error)
	FindHunt(ctx context.Context, id int64) (store.Hunt, error)
	HuntIOCs(ctx context.Context, huntID int64) ([]store.HuntIOC, error)
	StopByOperator(ctx context.Context, id int64) (bool, error)
}

// Selection names the hunts to stop: every open hunt, or those of a case.
type Selection struct {
	All    bool
	CaseID int64
	// Force stops a hunt of the case that also hunts IOCs of other open
	// cases (it then stops for them too); without it such a hunt is left
	// running and named.
	Force bool
}

// Action is what Stop does to a hunt.
type Action string

// Actions.
const (
	// Stop stops the hunt in Velociraptor, then records it stopped.
	Stop Action = "stop"
	// Record records it stopped: it has nothing running in Velociraptor
	// (never created, already stopped there, or gone).
	Record Action = "record"
	// Refuse leaves it alone (Why says why).
	Refuse Action = "refuse"
	// Unverified leaves it alone: Velociraptor could not be asked.
	Unverified Action = "unverified"
)

// Item is one hunt of the selection.
type Item struct {
	Hunt store.Hunt
	// VRHuntID is the Velociraptor hunt checked (the row's, or the one
	// found by its marker for a launch cut short).
	VRHuntID string
	// Cases are the open cases whose IOCs it hunts; Others those of them
	// that are not the selected case.
	Cases  []int64
	Others []int64
	IOCs   int // (case, IOC) rows it hunts
	Action Action
	Why    string
	// Result says what Stop did ("" before Stop).
	Result string
	Done   bool // stopped, or recorded stopped
	// Ended is set when the hunt had ended otherwise before Stop reached
	// it (finished, expired, stopped for another reason).
	Ended bool
}

// Stopper stops velohunt's hunts.
type Stopper struct {
	Store   Store
	Servers map[string]Velociraptor
	Logger  *slog.Logger
}

// Select returns the open hunts the selection names and what Stop would do
// to each. It changes nothing: it reads the store and asks Velociraptor for
// each hunt's tags.
func (s *Stopper) Select(ctx context.Context, sel Selection) ([]Item, error) {
	hunts, err := s.Store.OpenHunts(ctx)
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, h := range hunts {
		rows, err := s.Store.HuntIOCs(ctx, h.ID)
		if err != nil {
			return nil, err
		}
		it, ok := s.item(h, rows, sel)
		if !ok {
			continue
		}
		if it.Action == "" {
			s.check(ctx, &it)
		}
		out = append(out, it)
	}
	return out, nil
}

// item says whether the selection names a hunt, and fills in its cases;
// a hunt shared with other cases is refused unless forced.
func (s *Stopper) item(h store.Hunt, rows []store.HuntIOC, sel Selection) (Item, bool) {
	it := Item{Hunt: h, VRHuntID: h.VRHuntID}
	mine := false
	cases := map[int64]bool{}
	for _, r := range rows {
		if r.CaseID == sel.CaseID {
			mine = true
		}
		if r.Live {
			it.IOCs++
			cases[r.CaseID] = true
		}
	}
	if !sel.All && !mine {
		return it, false
	}
	for c := range cases {
		it.Cases = append(it.Cases, c)
		if !sel.All && c != sel.CaseID {
			it.Others = append(it.Others, c)
		}
	}
	sort.Slice(it.Cases, func(i, j int) bool { return it.Cases[i] < it.Cases[j] })
	sort.Slice(it.Others, func(i, j int) bool { return it.Others[i] < it.Others[j] })
	if len(it.Others) > 0 && !sel.Force {
		it.Action = Refuse
		it.Why = fmt.Sprintf("it also hunts IOCs of case(s) %s, which stopping it would stop there too: run with -force to stop it anyway",
			caseList(it.Others))
	}
	return it, true
}

// check decides what to do with a hunt from what Velociraptor says of it:
// stop it only if it carries velohunt's marker tag, the one stored for it.
func (s *Stopper) check(ctx context.Context, it *Item) {
	h := it.Hunt
	it.VRHuntID, it.Action, it.Why = h.VRHuntID, "", ""
	if !store.ValidMarker(h.Marker) {
		it.Action, it.Why = Refuse, fmt.Sprintf("its marker %q in the database is not one velohunt makes: the row was changed", h.Marker)
		return
	}
	vr, ok := s.Servers[h.Server]
	if !ok {
		it.Action, it.Why = Unverified, fmt.Sprintf("server %q is not in the configuration", h.Server)
		return
	}
	if it.VRHuntID == "" {
		if h.Attempts == 0 {
			it.Action, it.Why = Record, "never launched"
			return
		}
		// A launch may have created it and stopped before recording it.
		id, _, err := vr.FindHuntByTag(ctx, h.Org, h.Marker)
		switch {
		case ioc.ErrorCode(err) == ioc.ENOTFOUND:
			it.Action, it.Why = Record, "not created in Velociraptor"
			return
		case err != nil:
			it.Action, it.Why = Unverified, "cannot ask Velociraptor: "+err.Error()
			return
		}
		it.VRHuntID = id
	}
	info, err := vr.HuntInfo(ctx, h.Org, it.VRHuntID)
	switch {
	case ioc.ErrorCode(err) == ioc.ENOTFOUND:
		it.Action, it.Why = Record, "no longer in Velociraptor"
		return
	case err != nil:
		it.Action, it.Why = Unverified, "cannot ask Velociraptor: "+err.Error()
		return
	}
	if info.ID != it.VRHuntID || !slices.Contains(info.Tags, "velohunt") || !slices.Contains(info.Tags, h.Marker) {
		it.Action, it.Why = Refuse, fmt.Sprintf("hunt %s in Velociraptor does not carry velohunt's marker %s (its tags: %s): velohunt did not start it, or the database was changed",
			it.VRHuntID, h.Marker, strings.Join(info.Tags, ", "))
		return
	}
	switch info.State {
	case "STOPPED", "ARCHIVED", "DELETED":
		it.Action, it.Why = Record, "already "+strings.ToLower(info.State)+" in Velociraptor"
	default:
		it.Action = Stop
	}
}

// Stop stops the items Select marked Stop or Record, each checked again
// against the store and Velociraptor right before: in Velociraptor first,
// then in the store, so that a failure never leaves velohunt believing a
// running hunt ended. It returns the items with their results, and the
// first store error.
func (s *Stopper) Stop(ctx context.Context, items []Item) ([]Item, error) {
	for i := range items {
		it := &items[i]
		if it.Action != Stop && it.Action != Record {
			it.Result = "left running: " + it.Why
			continue
		}
		cur, err := s.Store.FindHunt(ctx, it.Hunt.ID)
		if err != nil {
			return items, err
		}
		switch cur.State {
		case store.HuntPlanned, store.HuntCreated, store.HuntRunning:
		default:
			it.Result, it.Ended = "already ended ("+cur.State+")", true
			continue
		}
		it.Hunt = cur
		s.check(ctx, it)
		switch it.Action {
		case Stop:
			if err := s.Servers[cur.Server].StopHunt(ctx, cur.Org, it.VRHuntID); err != nil && ioc.ErrorCode(err) != ioc.ENOTFOUND {
				it.Result = "not stopped: Velociraptor answered: " + err.Error()
				continue
			}
		case Record:
		default:
			it.Result = "left running: " + it.Why
			continue
		}
		ok, err := s.Store.StopByOperator(ctx, cur.ID)
		if err != nil {
			return items, err
		}
		if !ok {
			after, _ := s.Store.FindHunt(ctx, cur.ID)
			it.Result, it.Ended = "already ended ("+after.State+")", true
			continue
		}
		it.Done = true
		it.Result = "stopped"
		if it.Action == Record {
			it.Result = "recorded stopped (" + it.Why + ")"
		}
		s.Logger.Info("hunt stopped by operator", "hunt", cur.ID, "hunt_id", it.VRHuntID, "server", cur.Server, "org", cur.Org,
			"cases", caseList(it.Cases))
	}
	return items, nil
}

func caseList(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("#%d", id)
	}
	return strings.Join(parts, ", ")
}
