package velociraptor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// MustStart starts a simulated server and a client for user "velohunt".
func MustStart(tb testing.TB) (*velotest.Server, *velociraptor.Client) {
	tb.Helper()
	srv, err := velotest.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	return srv, MustClient(tb, srv, "velohunt")
}

// MustClient dials the simulator with an api_client config for user.
func MustClient(tb testing.TB, srv *velotest.Server, user string) *velociraptor.Client {
	tb.Helper()
	path, err := srv.WriteAPIConfig(tb.TempDir(), user)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := velociraptor.LoadAPIConfig(path)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := velociraptor.Dial(cfg, velociraptor.Options{Timeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

const hashArtifact = `name: Custom.Velohunt.Hash
type: CLIENT
parameters:
  - name: IOCs
    type: json_array
sources:
  - query: SELECT * FROM scope()
`

func TestHuntLifecycle(t *testing.T) {
	ctx := context.Background()
	srv, c := MustStart(t)
	hash := strings.Repeat("ab", 32)
	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.1", Hostname: "ws1", OS: "windows", Online: true,
		Files: []velotest.File{{Path: `C:\Users\bob\evil.exe`, SHA256: hash, Size: 10}}})
	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.2", Hostname: "ws2", OS: "linux", Online: true})

	if v, err := c.Version(ctx, ""); err != nil || v == "" {
		t.Fatalf("Version=%q err=%v", v, err)
	}
	t.Run("ErrUnknownArtifact", func(t *testing.T) {
		_, err := c.CreateHunt(ctx, velociraptor.HuntRequest{Artifact: "Custom.Velohunt.Hash", Expires: time.Hour})
		if ioc.ErrorCode(err) != ioc.EINVALID || !strings.Contains(err.Error(), "Unknown artifact") {
			t.Fatalf("err=%v, want EINVALID Unknown artifact", err)
		}
	})
	if name, err := c.SetArtifact(ctx, "", hashArtifact); err != nil || name != "Custom.Velohunt.Hash" {
		t.Fatalf("SetArtifact=%q err=%v", name, err)
	}
	got, err := c.Artifacts(ctx, "", []string{"Custom.Velohunt.Hash", "Custom.Missing"})
	if err != nil || got["Custom.Velohunt.Hash"] != hashArtifact || len(got) != 1 {
		t.Fatalf("Artifacts=%v err=%v", got, err)
	}

	list, _ := json.Marshal([]string{hash})
	id, err := c.CreateHunt(ctx, velociraptor.HuntRequest{Artifact: "Custom.Velohunt.Hash", Description: "test",
		Tags: []string{"velohunt", "velohunt-m1"}, Params: map[string]string{"IOCs": string(list)},
		Expires: time.Hour, ClientTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "H.") {
		t.Fatalf("hunt id %q", id)
	}
	if h, _ := srv.HuntByID(id); h.State != "PAUSED" {
		t.Fatalf("hunt state %q, want PAUSED (created paused, started explicitly)", h.State)
	}
	if found, _, err := c.FindHuntByTag(ctx, "", "velohunt-m1"); err != nil || found != id {
		t.Fatalf("FindHuntByTag=%q err=%v", found, err)
	}
	if _, _, err := c.FindHuntByTag(ctx, "", "velohunt-other"); ioc.ErrorCode(err) != ioc.ENOTFOUND {
		t.Fatalf("FindHuntByTag(other) err=%v, want ENOTFOUND", err)
	}
	if err := c.StartHunt(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	info, err := c.HuntInfo(ctx, "", id)
	if err != nil {
		t.Fatal(err)
	}
	// One hit, and each host's two coverage rows (files, processes).
	if info.State != "RUNNING" || info.Scheduled != 2 || info.Finished != 2 || info.Rows != 1+4 {
		t.Fatalf("info=%+v", info)
	}
	if !slices.Equal(info.Tags, []string{"velohunt", "velohunt-m1"}) {
		t.Fatalf("tags %v", info.Tags)
	}
	flows, err := c.HuntFlows(ctx, "", id)
	if err != nil || len(flows) != 2 {
		t.Fatalf("flows=%+v err=%v", flows, err)
	}
	var c1 velociraptor.Flow
	for _, f := range flows {
		if f.ClientID == "C.1" {
			c1 = f
		}
	}
	if !c1.Done() || c1.Rows != 1+2 || c1.FlowID != "F."+strings.TrimPrefix(id, "H.")+".H" {
		t.Fatalf("flow of C.1 %+v", c1)
	}
	var rows []map[string]any
	err = c.FlowResults(ctx, "", "C.1", c1.FlowID, "Custom.Velohunt.Hash", 0, func(r json.RawMessage) error {
		var m map[string]any
		json.Unmarshal(r, &m)
		rows = append(rows, m)
		return nil
	})
	// A flow's rows carry only the artifact's columns (real 0.77.2).
	if _, has := rows[0]["ClientId"]; err != nil || len(rows) != 1+2 || rows[0]["IOC"] != hash || has || rows[1]["Source"] != "coverage" {
		t.Fatalf("rows=%v err=%v", rows, err)
	}
	t.Run("FlowResultsFromOffset", func(t *testing.T) {
		n := 0
		err := c.FlowResults(ctx, "", "C.1", c1.FlowID, "Custom.Velohunt.Hash", 1, func(json.RawMessage) error { n++; return nil })
		if err != nil || n != 2 { // the two coverage rows
			t.Fatalf("n=%d err=%v", n, err)
		}
	})
	t.Run("WrongSourceHasNoRows", func(t *testing.T) {
		n := 0
		err := c.FlowResults(ctx, "", "C.1", c1.FlowID, "Custom.Velohunt.Hash/Nope", 0, func(json.RawMessage) error { n++; return nil })
		if err != nil || n != 0 {
			t.Fatalf("n=%d err=%v", n, err)
		}
	})
	ci, err := c.ClientInfo(ctx, "", "C.1")
	if err != nil || ci.Hostname != "ws1" || ci.OS != "windows" {
		t.Fatalf("ClientInfo=%+v err=%v", ci, err)
	}
	if _, err := c.ClientInfo(ctx, "", "C.404"); ioc.ErrorCode(err) != ioc.ENOTFOUND {
		t.Fatalf("ClientInfo(unknown) err=%v", err)
	}
	if err := c.StopHunt(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	if h, _ := srv.HuntByID(id); h.State != "STOPPED" {
		t.Fatalf("state=%q after stop", h.State)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	srv, _ := MustStart(t)
	req := velociraptor.HuntRequest{Artifact: "Generic.Client.Info", Expires: time.Hour}

	t.Run("PermissionDeniedLogLine", func(t *testing.T) {
		srv.SetUser("reader", velotest.PermAnyQuery, velotest.PermReadResults)
		c := MustClient(t, srv, "reader")
		_, err := c.CreateHunt(ctx, req)
		if ioc.ErrorCode(err) != ioc.EPERMISSION || !strings.Contains(err.Error(), "START_HUNT") {
			t.Fatalf("err=%v, want EPERMISSION naming START_HUNT", err)
		}
	})
	t.Run("NoAnyQuery", func(t *testing.T) {
		srv.SetUser("nobody")
		c := MustClient(t, srv, "nobody")
		if _, err := c.Version(ctx, ""); ioc.ErrorCode(err) != ioc.EPERMISSION {
			t.Fatalf("err=%v, want EPERMISSION", err)
		}
	})
	t.Run("UserNotFound", func(t *testing.T) {
		c := MustClient(t, srv, "stranger")
		if _, err := c.Version(ctx, ""); ioc.ErrorCode(err) != ioc.EPERMISSION || !strings.Contains(err.Error(), "User not found") {
			t.Fatalf("err=%v", err)
		}
	})
	c := MustClient(t, srv, "velohunt")
	t.Run("NullHunt", func(t *testing.T) {
		srv.SetHuntFailure("hunt: something went wrong")
		defer srv.SetHuntFailure("")
		if _, err := c.CreateHunt(ctx, req); err == nil || !strings.Contains(err.Error(), "no hunt id") {
			t.Fatalf("err=%v, want null hunt error", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		srv.SetHuntFailure("collect: Timeout Error: Collection timed out after 10s")
		defer srv.SetHuntFailure("")
		if _, err := c.CreateHunt(ctx, req); ioc.ErrorCode(err) != ioc.EUNAVAILABLE {
			t.Fatalf("err=%v, want EUNAVAILABLE", err)
		}
	})
	t.Run("Unavailable", func(t *testing.T) {
		srv.FailNext(codes.Unavailable)
		if _, err := c.Version(ctx, ""); ioc.ErrorCode(err) != ioc.EUNAVAILABLE {
			t.Fatalf("err=%v, want EUNAVAILABLE", err)
		}
	})
	t.Run("Org", func(t *testing.T) {
		id, err := c.CreateHunt(ctx, velociraptor.HuntRequest{Org: "O123", Artifact: "Generic.Client.Info", Expires: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := srv.HuntByID(id); h.Org != "O123" {
			t.Fatalf("org=%q", h.Org)
		}
		if _, err := c.HuntInfo(ctx, "", id); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("hunt of another org visible from root: %v", err)
		}
	})
}

func TestAPIConfig(t *testing.T) {
	srv, _ := MustStart(t)
	dir := t.TempDir()
	path, err := srv.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ErrWorldReadable", func(t *testing.T) {
		os.Chmod(path, 0o644)
		defer os.Chmod(path, 0o600)
		if _, err := velociraptor.LoadAPIConfig(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("err=%v", err)
		}
	})
	t.Run("ErrEncryptedKey", func(t *testing.T) {
		b, _ := os.ReadFile(path)
		b = []byte(strings.Replace(string(b), "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", -1))
		if _, err := velociraptor.ParseAPIConfig(b); err == nil || !strings.Contains(err.Error(), "password") {
			t.Fatalf("err=%v", err)
		}
	})
	t.Run("ErrMissingKey", func(t *testing.T) {
		if _, err := velociraptor.ParseAPIConfig([]byte("ca_certificate: x\n")); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("ErrWrongServerName", func(t *testing.T) {
		b, _ := os.ReadFile(path)
		cfg, _ := velociraptor.ParseAPIConfig(b)
		cfg.PinnedServerName = "NotTheServer"
		c, err := velociraptor.Dial(cfg, velociraptor.Options{Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Version(context.Background(), ""); ioc.ErrorCode(err) != ioc.EUNAVAILABLE {
			t.Fatalf("err=%v, want a TLS failure reported as EUNAVAILABLE", err)
		}
	})
}

// FuzzHostileIOC feeds hostile values through hunt creation against the
// simulator: the VQL text received is always one of the package's constant
// queries, and the value arrives intact in the spec variable.
func FuzzHostileIOC(f *testing.F) {
	for _, s := range []string{`'); SELECT * FROM info() --`, `" OR 1=1 --`, "line1\nline2", "ü日本\u202e", "`backtick`", "\x00", strings.Repeat("A", 1<<20)} {
		f.Add(s)
	}
	srv, err := velotest.Start()
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	c := MustClient(f, srv, "velohunt")
	known := velociraptor.Queries()
	f.Fuzz(func(t *testing.T, value string) {
		list, _ := json.Marshal([]string{value})
		before := len(srv.Received())
		_, err := c.CreateHunt(context.Background(), velociraptor.HuntRequest{Artifact: "Generic.Client.Info",
			Description: value, Tags: []string{value}, Params: map[string]string{"IOCs": string(list)}, Expires: time.Hour})
		if err != nil {
			t.Fatalf("CreateHunt: %v", err)
		}
		got := srv.Received()[before:]
		if len(got) != 1 {
			t.Fatalf("%d queries sent", len(got))
		}
		if !slices.Contains(known, got[0].VQL) {
			t.Fatalf("VQL text is not one of the package's constants: %q", got[0].VQL)
		}
		var spec map[string]map[string]string
		if err := json.Unmarshal([]byte(got[0].Env["VhSpec"]), &spec); err != nil {
			t.Fatal(err)
		}
		var back []string
		json.Unmarshal([]byte(spec["Generic.Client.Info"]["IOCs"]), &back)
		// Invalid UTF-8 becomes U+FFFD on the way (JSON and protobuf need
		// valid text); nothing else may change.
		var want []string
		json.Unmarshal(list, &want)
		if len(back) != 1 || back[0] != want[0] {
			t.Fatalf("value changed in transit: %q", back)
		}
		if got[0].Env["VhDescription"] != strings.ToValidUTF8(value, "\uFFFD") {
			t.Fatalf("description changed in transit")
		}
	})
}

// TestStalledStream: a results stream whose server stops answering ends
// after the client's timeout with a retryable error, instead of holding
// the watcher forever.
func TestStalledStream(t *testing.T) {
	srv, _ := MustStart(t)
	path, _ := srv.WriteAPIConfig(t.TempDir(), "velohunt")
	cfg, _ := velociraptor.LoadAPIConfig(path)
	c, err := velociraptor.Dial(cfg, velociraptor.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.SetDelay(time.Minute)
	start := time.Now()
	err = c.FlowResults(context.Background(), "", "C.1", "F.X.H", "Custom.Velohunt.Hash", 0, func(json.RawMessage) error { return nil })
	if ioc.ErrorCode(err) != ioc.EUNAVAILABLE || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("err=%v, want EUNAVAILABLE 'no answer'", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %s", took)
	}
}

// Ensure clients are counted by version per org, a client never
// interrogated under "", and a user without READ_RESULTS is refused.
func TestClientVersions(t *testing.T) {
	ctx := context.Background()
	srv, c := MustStart(t)
	for i, v := range []string{"0.74.5", "", "0.74.5", velotest.NoVersion} {
		srv.AddEndpoint(velotest.Endpoint{ClientID: fmt.Sprintf("C.%016d", i), Version: v})
	}
	srv.AddEndpoint(velotest.Endpoint{ClientID: "C.o2", Org: "O123", Version: "0.72.0"})
	got, err := c.ClientVersions(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []velociraptor.VersionCount{{Version: "0.74.5", Clients: 2}, {Version: "0.77.2", Clients: 1}, {Version: "", Clients: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("root org: %+v, want %+v", got, want)
	}
	if got, err := c.ClientVersions(ctx, "O123"); err != nil || len(got) != 1 || got[0] != (velociraptor.VersionCount{Version: "0.72.0", Clients: 1}) {
		t.Fatalf("org O123: %+v err=%v", got, err)
	}
	srv.SetUser("blind", velotest.PermAnyQuery)
	if _, err := MustClient(t, srv, "blind").ClientVersions(ctx, ""); ioc.ErrorCode(err) != ioc.EPERMISSION {
		t.Fatalf("err=%v, want EPERMISSION", err)
	}
}
