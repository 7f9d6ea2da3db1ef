package main

// The client releases of a real Velociraptor's fleet, as check reads them
// and as status shows them from what serve stored. Runs with
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG  api_client config (investigator)
//	VELOHUNT_TEST_VELOCIRAPTOR_ORG         org id ("" = root)

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/fleet"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

func TestRealFleetReleases(t *testing.T) {
	apiCfg := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	if apiCfg == "" {
		t.Skip("needs a real Velociraptor: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	}
	ctx := context.Background()
	api, err := velociraptor.LoadAPIConfig(apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := velociraptor.Dial(api, velociraptor.Options{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	route := ioc.Route{Server: "real", Org: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_ORG")}
	cfg := config.Default()
	found := checkFleet(ctx, &App{Config: cfg}, cl, route, "Velociraptor real")
	var b strings.Builder
	printFindings(&b, found)
	t.Logf("check:\n%s", b.String())
	if len(found) < 2 || found[0].What != "client releases" || !strings.Contains(found[0].Detail, "client(s): ") {
		t.Fatalf("check found no client release:\n%s", b.String())
	}

	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	as, err := fleetAssessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &fleet.Refresher{Servers: map[string]fleet.Velociraptor{"real": cl}, Targets: []ioc.Route{route}, Store: db, Assessor: as}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := collectStatus(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	printStatus(&out, st)
	t.Logf("status:\n%s", out.String())
	if len(st.Fleets) != 1 || st.Fleets[0].Clients == 0 {
		t.Fatalf("status fleets %+v", st.Fleets)
	}
	// Status says what check said, version by version.
	for _, v := range st.Fleets[0].Versions {
		line := "clients on " + versionName(v.Version)
		ok := false
		for _, f := range found {
			ok = ok || f.What == line && f.Detail == versionDetail(v.Clients, v.Support, v.Missing, v.Why)
		}
		if !ok {
			t.Errorf("status shows %+v, which check did not say", v)
		}
	}
}
