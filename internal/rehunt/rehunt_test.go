package rehunt_test

import (
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/rehunt"
	"github.com/velohunt/velohunt/internal/store"
)

var now = time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)

func TestNeedsRehunt(t *testing.T) {
	tests := []struct {
		name    string
		state   string
		last    time.Time
		minAge  time.Duration
		overlap bool
		want    rehunt.Reason
	}{
		{"HuntedLongAgo", store.StateHunted, now.Add(-25 * time.Hour), 24 * time.Hour, false, rehunt.Selected},
		{"HuntedTooRecently", store.StateHunted, now.Add(-2 * time.Hour), 24 * time.Hour, false, rehunt.TooRecent},
		{"ExactlyMinAge", store.StateHunted, now.Add(-24 * time.Hour), 24 * time.Hour, false, rehunt.Selected},
		{"NoMinAge", store.StateHunted, now, 0, false, rehunt.Selected},
		{"NeverHunted", store.StateHunted, time.Time{}, time.Hour, false, rehunt.Selected},
		{"StillHunting", store.StateHunting, now.Add(-48 * time.Hour), time.Hour, false, rehunt.StillHunting},
		{"OverlapAllowed", store.StateHunting, now.Add(-48 * time.Hour), time.Hour, true, rehunt.Selected},
		{"OverlapButTooRecent", store.StateHunting, now.Add(-10 * time.Minute), time.Hour, true, rehunt.TooRecent},
		{"Queued", store.StateQueued, time.Time{}, 0, true, rehunt.NotHuntable},
		{"Refused", store.StateRefused, time.Time{}, 0, true, rehunt.NotHuntable},
		{"Removed", store.StateRemoved, time.Time{}, 0, true, rehunt.NotHuntable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rehunt.NeedsRehunt(tt.state, tt.last, now, tt.minAge, tt.overlap); got != tt.want {
				t.Fatalf("NeedsRehunt=%q, want %q", got, tt.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	cfg := config.Default()
	cfg.Rehunt.Rules = []config.RehuntRule{{Name: "r", Schedule: "0 6 * * *", Kinds: []string{"hash", "ip"},
		TLP: []string{"Red", "amber"}, CaseStates: []string{"Containment"}, CaseTags: []string{"ransomware"},
		Customers: []string{"ACME Corp"}, MinAge: config.Duration(time.Hour)}}
	rules, err := rehunt.Compile(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rules[0]
	base := store.RehuntCandidate{IOC: store.IOC{Kind: ioc.KindHash, State: store.StateHunted, LastHuntAt: now.Add(-2 * time.Hour)},
		TLPID: 2, Case: store.Case{Case: ioc.Case{Customer: "acme corp", Tags: []string{"x", "Ransomware"}, State: "Containment", Open: true}}}
	tests := []struct {
		name string
		mod  func(c *store.RehuntCandidate)
		want rehunt.Reason
	}{
		{"Selected", func(c *store.RehuntCandidate) {}, rehunt.Selected},
		{"OtherKind", func(c *store.RehuntCandidate) { c.IOC.Kind = ioc.KindFile }, rehunt.OtherKind},
		{"OtherTLP", func(c *store.RehuntCandidate) { c.TLPID = 3 }, rehunt.OtherTLP},
		{"OtherState", func(c *store.RehuntCandidate) { c.Case.State = "Open" }, rehunt.OtherState},
		{"NoTag", func(c *store.RehuntCandidate) { c.Case.Tags = []string{"phishing"} }, rehunt.OtherTag},
		{"OtherCustomer", func(c *store.RehuntCandidate) { c.Case.Customer = "Globex" }, rehunt.OtherCustomer},
		{"TooRecent", func(c *store.RehuntCandidate) { c.IOC.LastHuntAt = now.Add(-time.Minute) }, rehunt.TooRecent},
		{"Hunting", func(c *store.RehuntCandidate) { c.IOC.State = store.StateHunting }, rehunt.StillHunting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Case.Tags = append([]string(nil), base.Case.Tags...)
			tt.mod(&c)
			if got := r.Select(c, now); got != tt.want {
				t.Fatalf("Select=%q, want %q", got, tt.want)
			}
		})
	}
	t.Run("ErrUnknownTLP", func(t *testing.T) {
		_, err := rehunt.Compile(cfg, map[string]int64{"red": 1})
		if err == nil {
			t.Fatal("want an error for a TLP IRIS lacks")
		}
	})
}
