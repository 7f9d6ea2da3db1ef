package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/fleet"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/vqlcompat"
	"github.com/velohunt/velohunt/templates"
)

func mustAssessor(t *testing.T, artifacts map[string]string) *fleet.Assessor {
	t.Helper()
	tab, err := vqlcompat.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if artifacts == nil {
		if artifacts, err = templates.Artifacts(""); err != nil {
			t.Fatal(err)
		}
	}
	a, err := fleet.NewAssessor(tab, artifacts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Ensure each version is said fully huntable, partly (with what its
// release lacks: 0.72 has no ip(parse=) for the Network artifact), or not
// checked, with why.
func TestAssess(t *testing.T) {
	a := mustAssessor(t, nil)
	network := "Custom.Velohunt.Network: function ip(parse=)"
	tests := []struct {
		version string
		support fleet.Support
		missing []string
		why     string
	}{
		{"0.77.2", fleet.Full, nil, ""},
		{"0.74.5", fleet.Full, nil, ""},
		{"0.76.4", fleet.Full, nil, ""},
		{"0.72.0", fleet.Partial, []string{network}, ""},
		{"0.72.4", fleet.Unchecked, nil, "(it lies between v0.72 and v0.73); v0.72 lacks " + network + ", v0.73 lacks nothing"},
		{"0.76.1", fleet.Unchecked, nil, "(it lies between v0.75.7 and v0.76.2); v0.75.7 lacks nothing, v0.76.2 lacks nothing"},
		{"0.6.9", fleet.Unchecked, nil, "older than v0.72"},
		{"0.80.0", fleet.Unchecked, nil, "newer than v0.77.2"},
		{"", fleet.Unchecked, nil, "not been interrogated"},
		{"\x1b[2J", fleet.Unchecked, nil, "not a Velociraptor version number"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			v := a.Assess(tt.version, 3)
			if v.Support != tt.support || !reflect.DeepEqual(v.Missing, tt.missing) || !strings.Contains(v.Why, tt.why) || v.Clients != 3 {
				t.Fatalf("Assess(%q) = %+v, want %s %v %q", tt.version, v, tt.support, tt.missing, tt.why)
			}
			if (v.Release == "") != (tt.support == fleet.Unchecked) {
				t.Fatalf("release %q for %s", v.Release, tt.support)
			}
		})
	}
	t.Run("CallNotInTable", func(t *testing.T) {
		a := mustAssessor(t, map[string]string{"Custom.X": "name: Custom.X\nsources:\n  - query: SELECT brand_new(x=1) FROM scope()\n"})
		if v := a.Assess("0.77.2", 1); v.Support != fleet.Unchecked || !strings.Contains(v.Why, "brand_new") {
			t.Fatalf("%+v", v)
		}
	})
}

// Ensure a fleet's clients are counted by support, the most common
// versions first, and at most fleet.MaxVersions of them.
func TestSummarize(t *testing.T) {
	a := mustAssessor(t, nil)
	s := a.Summarize([]velociraptor.VersionCount{{Version: "0.77.2", Clients: 10}, {Version: "0.72.0", Clients: 4},
		{Version: "0.74.5", Clients: 4}, {Version: "", Clients: 1}, {Version: "0.77.2", Clients: 2}})
	var got []string
	for _, v := range s.Versions {
		got = append(got, fmt.Sprintf("%s=%d:%s", v.Version, v.Clients, v.Support))
	}
	if want := []string{"0.77.2=12:full", "0.72.0=4:partial", "0.74.5=4:full", "=1:unchecked"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("versions %v, want %v", got, want)
	}
	if s.Clients != 21 || s.Full != 16 || s.Partial != 4 || s.Unchecked != 1 {
		t.Fatalf("counts %+v", s)
	}
	if !strings.HasPrefix(s.Line(), "21 client(s): 16 on releases velohunt fully hunts on, 4 ") {
		t.Fatalf("line %q", s.Line())
	}
	t.Run("Capped", func(t *testing.T) {
		var many []velociraptor.VersionCount
		for i := range 80 {
			many = append(many, velociraptor.VersionCount{Version: fmt.Sprintf("hostile-%02d", i), Clients: int64(100 - i)})
		}
		s := a.Summarize(many)
		last := s.Versions[len(s.Versions)-1]
		if len(s.Versions) != fleet.MaxVersions || last.Version != "(31 other versions)" || s.Unchecked != s.Clients {
			t.Fatalf("%d versions, last %+v", len(s.Versions), last)
		}
	})
}

type fakeVR struct {
	counts []velociraptor.VersionCount
	err    error
}

func (f *fakeVR) ClientVersions(context.Context, string) ([]velociraptor.VersionCount, error) {
	return f.counts, f.err
}

// Ensure a refresh stores each fleet's assessment, keeps the last one
// with the error when a read fails, and forgets unconfigured fleets.
func TestRefresh(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	main := &fakeVR{counts: []velociraptor.VersionCount{{Version: "0.72.0", Clients: 2}, {Version: "0.77.2", Clients: 5}}}
	r := &fleet.Refresher{Servers: map[string]fleet.Velociraptor{"main": main}, Store: db, Assessor: mustAssessor(t, nil),
		Targets: []ioc.Route{{Server: "main"}, {Server: "main", Org: "O1"}}}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := db.Fleets(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("fleets %+v err=%v", list, err)
	}
	f := list[0]
	if f.Server != "main" || f.Org != "" || f.CheckedAt.IsZero() || len(f.Versions) != 2 || f.Versions[0].Version != "0.77.2" ||
		f.Versions[1].Support != "partial" || f.Versions[1].Missing != "Custom.Velohunt.Network: function ip(parse=)" || f.Versions[1].Release != "v0.72" {
		t.Fatalf("fleet %+v", f)
	}
	main.err = &ioc.Error{Code: ioc.EUNAVAILABLE, Message: "connection refused"}
	if err := r.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err=%v", err)
	}
	list, _ = db.Fleets(ctx)
	if f := list[0]; f.Error != "connection refused" || len(f.Versions) != 2 || f.CheckedAt.IsZero() {
		t.Fatalf("after a failed read: %+v", f)
	}
	main.err = nil
	r.Targets = r.Targets[:1]
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _ = db.Fleets(ctx); len(list) != 1 || list[0].Error != "" {
		t.Fatalf("after the org left the config: %+v", list)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	main.err = context.Canceled
	if err := r.Refresh(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err=%v", err)
	}
}
