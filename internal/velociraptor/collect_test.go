package velociraptor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
	"github.com/velohunt/velohunt/templates"
)

// mustCollectSim starts the simulator with Custom.Velohunt.Collect
// uploaded and one endpoint.
func mustCollectSim(t *testing.T, ep velotest.Endpoint) (*velotest.Server, *velociraptor.Client) {
	t.Helper()
	srv, c := MustStart(t)
	defs, err := templates.Artifacts("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetArtifact(context.Background(), "", defs[velociraptor.CollectArtifact]); err != nil {
		t.Fatal(err)
	}
	srv.AddEndpoint(ep)
	return srv, c
}

// Ensure the simulator records what was asked: the spec (Collect first,
// with its marker, path and cap), urgency, the flow's max_bytes, timeout
// and throttles.
func TestCollectClient_Request(t *testing.T) {
	ctx := context.Background()
	srv, c := mustCollectSim(t, velotest.Endpoint{ClientID: "C.1", OS: "windows", Online: true,
		Files: []velotest.File{{Path: `C:\Users\x\evil.exe`, Content: []byte("evil")}}})
	t.Run("OK", func(t *testing.T) {
		flow, err := c.CollectClient(ctx, velociraptor.CollectRequest{ClientID: "C.1", Marker: "vh-1", Path: `c:\users\X\EVIL.exe`,
			MaxBytes: 1000, MaxUploadBytes: 5000, Timeout: 90 * time.Second, CPULimit: 20, OpsPerSecond: 7, Urgent: true,
			Artifacts: []velociraptor.ArtifactSpec{{Name: "Generic.Client.Info", Params: map[string]string{"A": "b"}}}})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := srv.CollectionByID(flow)
		if !ok {
			t.Fatalf("no collection %s", flow)
		}
		if got.Artifacts[0] != velociraptor.CollectArtifact || got.Artifacts[1] != "Generic.Client.Info" || !got.Urgent ||
			got.MaxBytes != 5000 || got.Timeout != 90 || got.CPULimit != 20 || got.OpsPerSec != 7 {
			t.Fatalf("collection %+v", got)
		}
		if p := got.Spec[velociraptor.CollectArtifact]; p["Marker"] != "vh-1" || p["Path"] != `c:\users\X\EVIL.exe` || p["MaxBytes"] != "1000" {
			t.Fatalf("Collect spec %v", p)
		}
		if got.Spec["Generic.Client.Info"]["A"] != "b" {
			t.Fatalf("spec %v", got.Spec)
		}
		// Windows paths match case-insensitively; the row says the
		// path as it was asked for, as stat() does on a client.
		row, err := c.CollectedFile(ctx, "", "C.1", flow)
		if err != nil || !row.Uploaded || row.Path != `c:\users\X\EVIL.exe` || row.Size != 4 {
			t.Fatalf("row %+v err=%v", row, err)
		}
	})
	t.Run("Defaults", func(t *testing.T) {
		flow, err := c.CollectClient(ctx, velociraptor.CollectRequest{ClientID: "C.1", Marker: "vh-2"})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := srv.CollectionByID(flow)
		if got.Urgent || got.MaxBytes != velociraptor.DefaultCollectMaxBytes || got.Spec[velociraptor.CollectArtifact]["MaxBytes"] != "104857600" {
			t.Fatalf("collection %+v", got)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, r := range []velociraptor.CollectRequest{
			{ClientID: "C.1"},
			{Marker: "vh-3"},
			{ClientID: "C.1", Marker: "vh-3", Artifacts: []velociraptor.ArtifactSpec{{Name: velociraptor.CollectArtifact}}},
			{ClientID: "C.1", Marker: "vh-3", Artifacts: []velociraptor.ArtifactSpec{{Name: "A"}, {Name: "A"}}},
		} {
			if _, err := c.CollectClient(ctx, r); ioc.ErrorCode(err) != ioc.EINVALID {
				t.Errorf("%+v: err=%v, want EINVALID", r, err)
			}
		}
	})
}

// Ensure a user without COLLECT_CLIENT gets EPERMISSION, and a refused
// collect_client() carries the server's line.
func TestCollectClient_Errors(t *testing.T) {
	ctx := context.Background()
	srv, _ := mustCollectSim(t, velotest.Endpoint{ClientID: "C.1", OS: "linux", Online: true})
	srv.SetUser("reader", velotest.PermAnyQuery, velotest.PermReadResults)
	reader := MustClient(t, srv, "reader")
	if _, err := reader.CollectClient(ctx, velociraptor.CollectRequest{ClientID: "C.1", Marker: "vh-1"}); ioc.ErrorCode(err) != ioc.EPERMISSION {
		t.Fatalf("err=%v, want EPERMISSION", err)
	}
	c := MustClient(t, srv, "velohunt")
	srv.SetCollectFailure("collect_client: something the server did not like")
	_, err := c.CollectClient(ctx, velociraptor.CollectRequest{ClientID: "C.1", Marker: "vh-1"})
	if ioc.ErrorCode(err) != ioc.EINTERNAL || !strings.Contains(err.Error(), "did not like") {
		t.Fatalf("err=%v, want EINTERNAL with the log line", err)
	}
}

// Ensure an offline endpoint's collection runs when it comes online, a
// hung one stays IN_PROGRESS until CompleteCollection, a FlowError ends
// it in ERROR, and an upload over the flow's max_bytes fails it.
func TestCollectClient_Lifecycle(t *testing.T) {
	ctx := context.Background()
	file := velotest.File{Path: "/tmp/evil", Content: []byte("0123456789")}
	srv, c := mustCollectSim(t, velotest.Endpoint{ClientID: "C.1", OS: "linux", Files: []velotest.File{file}})
	ask := func(r velociraptor.CollectRequest) string {
		t.Helper()
		r.ClientID, r.Marker, r.Path = "C.1", "vh-x", file.Path
		flow, err := c.CollectClient(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return flow
	}
	state := func(flow string) velociraptor.FlowStatus {
		t.Helper()
		st, err := c.FlowStatus(ctx, "", "C.1", flow)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	flow := ask(velociraptor.CollectRequest{})
	if st := state(flow); st.State != "RUNNING" || !st.Started.IsZero() {
		t.Fatalf("offline: %+v", st)
	}
	if _, err := c.CollectedFile(ctx, "", "C.1", flow); ioc.ErrorCode(err) != ioc.ENOTFOUND {
		t.Fatalf("row of a flow not run: err=%v, want ENOTFOUND", err)
	}
	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", OS: "linux", Online: true, Files: []velotest.File{file}})
	if st := state(flow); st.State != "FINISHED" || st.UploadedBytes != 10 {
		t.Fatalf("online: %+v", st)
	}

	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", OS: "linux", Online: true, Hang: true, Files: []velotest.File{file}})
	hung := ask(velociraptor.CollectRequest{})
	if st := state(hung); st.State != "IN_PROGRESS" {
		t.Fatalf("hung: %+v", st)
	}
	if err := srv.CompleteCollection(hung); err != nil {
		t.Fatal(err)
	}
	if row, err := c.CollectedFile(ctx, "", "C.1", hung); err != nil || !row.Uploaded {
		t.Fatalf("completed: %+v err=%v", row, err)
	}
	failing := ask(velociraptor.CollectRequest{})
	if err := srv.FailCollection(failing, "Timeout Error"); err != nil {
		t.Fatal(err)
	}
	if st := state(failing); st.State != "ERROR" || st.Status != "Timeout Error" {
		t.Fatalf("failed: %+v", st)
	}

	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", OS: "linux", Online: true, FlowError: "query failed", Files: []velotest.File{file}})
	if st := state(ask(velociraptor.CollectRequest{})); st.State != "ERROR" || st.Status != "query failed" {
		t.Fatalf("FlowError: %+v", st)
	}
	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", OS: "linux", Online: true, Files: []velotest.File{file}})
	over := ask(velociraptor.CollectRequest{MaxBytes: 100, MaxUploadBytes: 5})
	if st := state(over); st.State != "ERROR" || !strings.Contains(st.Status, "upload limits") {
		t.Fatalf("over max_bytes: %+v", st)
	}
}
