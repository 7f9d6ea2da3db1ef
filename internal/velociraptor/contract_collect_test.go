package velociraptor_test

// The follow-up collection's conformance suite: CollectClient,
// FindCollection, FlowStatus, CancelFlow, CollectedFile and
// Custom.Velohunt.Collect on endpoints. It runs against the simulator
// always, and against the real server of contract_test.go's variables; its
// endpoint tests need, besides,
//
//	VELOHUNT_TEST_VELOCIRAPTOR_CLIENT=1        clients run on this machine
//	VELOHUNT_TEST_VELOCIRAPTOR_LINUX_CLIENT    the Linux client's id (files
//	                                           are planted under /srv/velohunt-test)
//	VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT  the Windows-impersonating
//	VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_ROOT    client's id and the folder
//	                                           that is C: on it
//	VELOHUNT_TEST_VELOCIRAPTOR_OFFLINE_CLIENT  a client the server knows
//	                                           that is offline (its flow is
//	                                           asked for and cancelled)
//
// It uploads Custom.Velohunt.Collect and two harmless artifacts,
// Custom.Velohunt.Conformance (one constant row) and
// Custom.Velohunt.Conformance.Sleep (waits two minutes, then is cancelled).

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
	"github.com/velohunt/velohunt/templates"
)

const sleepArtifact = `name: Custom.Velohunt.Conformance.Sleep
description: Uploaded by velohunt's conformance suite; waits, to be cancelled.
type: CLIENT
sources:
  - query: SELECT sleep(time=120) AS Slept FROM scope()
`

// collectHost is an endpoint the suite collects from.
type collectHost struct {
	name   string
	client string
	// plant writes a regular file and returns its path as the client
	// spells it.
	plant func(t *testing.T, name string, content []byte) string
	// link makes name, as an unprivileged user, a symbolic link to the
	// planted file target (its name), and returns its path.
	link func(t *testing.T, name, target string) string
	// missing is a path where nothing is.
	missing string
}

// Simulated endpoints: their files, set again with AddEndpoint.
const (
	simLinux   = "C.c011ec7000000001"
	simWindows = "C.c011ec7000000002"
	simHang    = "C.c011ec7000000003"
)

// simHosts are a Linux and a Windows endpoint of the simulator whose
// files the tests plant, and an endpoint that hangs.
func simHosts(srv *velotest.Server) []collectHost {
	var hosts []collectHost
	for _, h := range []struct{ id, os, dir, sep string }{{simLinux, "linux", "/home/eve", "/"}, {simWindows, "windows", `C:\Users\eve`, `\`}} {
		ep := velotest.Endpoint{ClientID: h.id, Hostname: "collect-" + h.os, OS: h.os, Online: true}
		srv.AddEndpoint(ep)
		add := func(f velotest.File) string {
			ep.Files = append(ep.Files, f)
			srv.AddEndpoint(ep)
			return f.Path
		}
		hosts = append(hosts, collectHost{name: h.os, client: h.id, missing: h.dir + h.sep + "missing.bin",
			plant: func(t *testing.T, name string, content []byte) string {
				return add(velotest.File{Path: h.dir + h.sep + name, Content: content})
			},
			link: func(t *testing.T, name, target string) string {
				return add(velotest.File{Path: h.dir + h.sep + name, Link: target, Size: int64(len(target))})
			}})
	}
	srv.AddEndpoint(velotest.Endpoint{ClientID: simHang, Hostname: "collect-hang", OS: "linux", Online: true, Hang: true})
	srv.SetRowSource("Custom.Velohunt.Conformance", velotest.RowSource{Clients: 2, RowsPerClient: 1,
		ClientID: func(c int) string { return []string{simLinux, simWindows}[c] },
		Row:      func(c, j int) map[string]any { return map[string]any{"IOC": "conformance"} }})
	return hosts
}

// realHosts are the real clients the environment names.
func realHosts(t *testing.T) []collectHost {
	if os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT") != "1" {
		return nil
	}
	var hosts []collectHost
	if id := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_LINUX_CLIENT"); id != "" {
		dir := quietDir(t)
		os.Chown(dir, nobody, nobody)
		hosts = append(hosts, collectHost{name: "linux", client: id, missing: filepath.Join(dir, "missing.bin"),
			plant: func(t *testing.T, name string, content []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, content, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			link: func(t *testing.T, name, target string) string {
				asNobody(t, fmt.Sprintf("cd %s && ln -s %s %s", dir, target, name))
				return filepath.Join(dir, name)
			}})
	}
	id, root := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_ROOT")
	if id != "" && root != "" {
		name := fmt.Sprintf("vh-collect-%d", time.Now().UnixNano())
		dir := filepath.Join(root, "Users", "Public", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, nobody, nobody)
		t.Cleanup(func() { os.RemoveAll(dir) })
		win := `C:\Users\Public\` + name + `\`
		hosts = append(hosts, collectHost{name: "windows", client: id, missing: win + "missing.exe",
			plant: func(t *testing.T, file string, content []byte) string {
				if err := os.WriteFile(filepath.Join(dir, file), content, 0o644); err != nil {
					t.Fatal(err)
				}
				return win + file
			},
			link: func(t *testing.T, file, target string) string {
				asNobody(t, fmt.Sprintf("cd %s && ln -s %s %s", dir, target, file))
				return win + file
			}})
	}
	return hosts
}

// waitDone reads the flow's status until it ends.
func waitDone(t *testing.T, c *velociraptor.Client, org, client, flow string) velociraptor.FlowStatus {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		st, err := c.FlowStatus(context.Background(), org, client, flow)
		if err != nil {
			t.Fatalf("FlowStatus %s: %v", flow, err)
		}
		if st.Done() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow %s of %s not done after 3 minutes: %+v", flow, client, st)
		}
	}
}

// collect runs one collection of path on the host to its end and returns
// the flow, its status and its row.
func collect(t *testing.T, c *velociraptor.Client, org string, h collectHost, r velociraptor.CollectRequest) (string, velociraptor.FlowStatus, velociraptor.CollectedFile) {
	t.Helper()
	r.Org, r.ClientID, r.Urgent = org, h.client, true
	if r.Marker == "" {
		r.Marker = fmt.Sprintf("vh-%016x", time.Now().UnixNano())
	}
	if r.Timeout == 0 {
		r.Timeout = 2 * time.Minute
	}
	flow, err := c.CollectClient(context.Background(), r)
	if err != nil {
		t.Fatalf("CollectClient: %v", err)
	}
	st := waitDone(t, c, org, h.client, flow)
	if st.State != "FINISHED" {
		t.Fatalf("flow %s: %+v, want FINISHED", flow, st)
	}
	got, err := c.CollectedFile(context.Background(), org, h.client, flow)
	if err != nil {
		t.Fatalf("CollectedFile: %v", err)
	}
	if got.Marker != r.Marker {
		t.Fatalf("row marker %q, want %q", got.Marker, r.Marker)
	}
	t.Logf("%s %s: %+v row %+v", h.name, flow, st, got)
	return flow, st, got
}

func TestCollectContract(t *testing.T) {
	RunWithServer(t, func(t *testing.T, c *velociraptor.Client, org string, srv *velotest.Server) {
		ctx := context.Background()
		defs, err := templates.Artifacts("")
		if err != nil {
			t.Fatal(err)
		}
		for _, def := range []string{defs[velociraptor.CollectArtifact], conformanceArtifact, sleepArtifact} {
			if _, err := c.SetArtifact(ctx, org, def); err != nil {
				t.Fatal(err)
			}
		}
		t.Run("ErrUnknownClient", func(t *testing.T) {
			const unknown = "C.00000000000000aa"
			_, err := c.CollectClient(ctx, velociraptor.CollectRequest{Org: org, ClientID: unknown, Marker: "vh-unknown-client"})
			if ioc.ErrorCode(err) != ioc.ENOTFOUND || !strings.Contains(err.Error(), "not known") {
				t.Fatalf("err=%v, want ENOTFOUND with the server's line", err)
			}
			if _, err := c.FindCollection(ctx, org, unknown, "vh-unknown-client"); ioc.ErrorCode(err) != ioc.ENOTFOUND {
				t.Fatalf("FindCollection err=%v, want ENOTFOUND", err)
			}
			if _, err := c.FlowStatus(ctx, org, unknown, "F.DOESNOTEXIST"); ioc.ErrorCode(err) != ioc.ENOTFOUND {
				t.Fatalf("FlowStatus err=%v, want ENOTFOUND", err)
			}
			if _, err := c.CollectClient(ctx, velociraptor.CollectRequest{Org: org, ClientID: `x'; bad`, Marker: "vh-bad-id"}); ioc.ErrorCode(err) != ioc.EINVALID {
				t.Fatalf("malformed client id: err=%v, want EINVALID", err)
			}
		})
		t.Run("OfflineClient", func(t *testing.T) {
			// A flow for a client that is offline is RUNNING with no
			// start time until the client takes it (0.77.2 reports no
			// WAITING then), and can be cancelled.
			client := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_OFFLINE_CLIENT")
			if srv != nil {
				client = "C.c011ec70000000ff"
				srv.AddEndpoint(velotest.Endpoint{ClientID: client, Hostname: "collect-offline", OS: "linux"})
			}
			if client == "" {
				t.Skip("set VELOHUNT_TEST_VELOCIRAPTOR_OFFLINE_CLIENT to a client the server knows that is offline")
			}
			flow, err := c.CollectClient(ctx, velociraptor.CollectRequest{Org: org, ClientID: client, Marker: fmt.Sprintf("vh-offline-%d", time.Now().UnixNano()),
				Path: "/tmp/never-read", Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			st, err := c.FlowStatus(ctx, org, client, flow)
			if err != nil || st.State != "RUNNING" || !st.Started.IsZero() || st.Done() {
				t.Fatalf("status %+v err=%v, want RUNNING, not started", st, err)
			}
			if err := c.CancelFlow(ctx, org, client, flow); err != nil {
				t.Fatal(err)
			}
			if st, err := c.FlowStatus(ctx, org, client, flow); err != nil || st.State != "ERROR" || !strings.Contains(st.Status, "Cancelled") {
				t.Fatalf("after cancel: %+v err=%v, want ERROR Cancelled", st, err)
			}
		})
		hosts := realHostsOrSim(t, srv)
		if len(hosts) == 0 {
			t.Skip("no endpoint: set VELOHUNT_TEST_VELOCIRAPTOR_CLIENT=1 and the LINUX_CLIENT or WINDOWS_CLIENT/_ROOT variables")
		}
		for _, h := range hosts {
			t.Run(h.name, func(t *testing.T) { collectOnHost(t, c, org, h, srv) })
		}
	})
}

func realHostsOrSim(t *testing.T, srv *velotest.Server) []collectHost {
	if srv != nil {
		return simHosts(srv)
	}
	return realHosts(t)
}

func collectOnHost(t *testing.T, c *velociraptor.Client, org string, h collectHost, srv *velotest.Server) {
	ctx := context.Background()
	content := []byte(fmt.Sprintf("velohunt collect conformance %s %d\n", h.name, time.Now().UnixNano()))
	sum, md := sha256.Sum256(content), md5.Sum(content)
	path := h.plant(t, "evil.exe", content)
	var okFlow string
	t.Run("OK", func(t *testing.T) {
		marker := fmt.Sprintf("vh-%016x", time.Now().UnixNano())
		r := velociraptor.CollectRequest{Marker: marker, Path: path, MaxBytes: 1 << 20,
			Artifacts: []velociraptor.ArtifactSpec{{Name: "Custom.Velohunt.Conformance", Params: map[string]string{"IOCs": "[]"}}}}
		flow, st, got := collect(t, c, org, h, r)
		okFlow = flow
		if !got.Uploaded || got.Error != "" || got.SHA256 != hex.EncodeToString(sum[:]) || got.MD5 != hex.EncodeToString(md[:]) ||
			got.Size != int64(len(content)) || got.Path != path {
			t.Fatalf("row %+v, want %s uploaded: %d bytes, sha256 %x", got, path, len(content), sum)
		}
		if st.UploadedBytes < int64(len(content)) || !slices.Contains(st.ArtifactsWithResults, velociraptor.CollectArtifact) ||
			!slices.Contains(st.ArtifactsWithResults, "Custom.Velohunt.Conformance") || st.Created.IsZero() {
			t.Fatalf("status %+v: want the upload counted and both artifacts with results", st)
		}
		found, err := c.FindCollection(ctx, org, h.client, marker)
		if err != nil || found != flow {
			t.Fatalf("FindCollection=%q err=%v, want %s", found, err, flow)
		}
	})
	// The collected file's bytes, read back through the stable API
	// (uploads() and VFSGetBuffer) as the IRIS datastore copy does; a file
	// of several slices, read whole, hashes as the client reported.
	t.Run("ReadUpload", func(t *testing.T) {
		big := make([]byte, 5<<19+7)
		for i := range big {
			big[i] = byte(i * 7)
		}
		p := h.plant(t, "slices.bin", big)
		flow, _, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: p, MaxBytes: 4 << 20})
		ups, err := c.FlowUploads(ctx, org, h.client, flow)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ups, func(u velociraptor.Upload) bool { return u.ClientPath == got.Path })
		if i < 0 {
			t.Fatalf("uploads %+v: none at %s", ups, got.Path)
		}
		u := ups[i]
		if u.Size != int64(len(big)) || len(u.Components) < 6 || u.Components[0] != "clients" || u.Components[3] != flow {
			t.Fatalf("upload %+v", u)
		}
		hash := sha256.New()
		n, err := c.ReadUpload(ctx, org, u, int64(len(big)), hash)
		if err != nil || n != int64(len(big)) || hex.EncodeToString(hash.Sum(nil)) != got.SHA256 {
			t.Fatalf("read %d bytes, sha256 %x, err=%v; want %d bytes, %s", n, hash.Sum(nil), err, len(big), got.SHA256)
		}
		if _, err := c.ReadUpload(ctx, org, u, int64(len(big))-1, io.Discard); ioc.ErrorCode(err) != ioc.EINVALID {
			t.Fatalf("over the limit: err=%v, want EINVALID", err)
		}
		gone := u
		gone.Components = append(slices.Clone(u.Components[:len(u.Components)-1]), "not-uploaded.bin")
		if _, err := c.ReadUpload(ctx, org, gone, 1<<20, io.Discard); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("a path not in the file store: err=%v, want ENOTFOUND", err)
		}
		if ups, err := c.FlowUploads(ctx, org, h.client, "F.DOESNOTEXIST"); err != nil || len(ups) != 0 {
			t.Fatalf("unknown flow: %+v err=%v, want none", ups, err)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		p := h.plant(t, "big.bin", []byte(strings.Repeat("A", 2048)))
		_, st, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: p, MaxBytes: 1000})
		if got.Uploaded || got.SHA256 != "" || got.Size != 2048 || !strings.Contains(got.Error, "2048") || !strings.Contains(got.Error, "1000") {
			t.Fatalf("row %+v, want a refusal naming 2048 and 1000 bytes", got)
		}
		if st.UploadedBytes != 0 {
			t.Fatalf("%d bytes uploaded", st.UploadedBytes)
		}
	})
	t.Run("ErrMissing", func(t *testing.T) {
		_, _, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: h.missing})
		if got.Uploaded || got.Error == "" || got.Path != h.missing {
			t.Fatalf("row %+v, want an error", got)
		}
	})
	t.Run("ErrSymlink", func(t *testing.T) {
		p := h.link(t, "link.exe", "evil.exe")
		_, st, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: p})
		if got.Uploaded || got.SHA256 != "" || !strings.Contains(got.Error, "symbolic link") || st.UploadedBytes != 0 {
			t.Fatalf("row %+v status %+v, want the link refused and nothing uploaded", got, st)
		}
	})
	t.Run("NoPath", func(t *testing.T) {
		// The artifact still reports its row, by which the flow is found.
		_, _, got := collect(t, c, org, h, velociraptor.CollectRequest{})
		if got.Uploaded || got.Error != "" || got.Path != "" {
			t.Fatalf("row %+v, want nothing uploaded and no error", got)
		}
	})
	t.Run("HostileValues", func(t *testing.T) {
		marker := fmt.Sprintf(`vh-'"); SELECT * FROM info() -- %d`, time.Now().UnixNano())
		hostile := h.missing + `'; SELECT upload(file="/etc/passwd") FROM scope() --"`
		var before int
		if srv != nil {
			before = len(srv.Received())
		}
		flow, _, got := collect(t, c, org, h, velociraptor.CollectRequest{Marker: marker, Path: hostile})
		if got.Path != hostile || got.Uploaded || got.Error == "" {
			t.Fatalf("row %+v, want the path as given and not found", got)
		}
		if found, err := c.FindCollection(ctx, org, h.client, marker); err != nil || found != flow {
			t.Fatalf("FindCollection=%q err=%v, want %s", found, err, flow)
		}
		if srv != nil {
			for _, q := range srv.Received()[before:] {
				if !slices.Contains(velociraptor.Queries(), q.VQL) {
					t.Fatalf("VQL text is not one of the package's constants: %q", q.VQL)
				}
			}
		}
	})
	t.Run("ErrUnknownMarker", func(t *testing.T) {
		if _, err := c.FindCollection(ctx, org, h.client, "vh-never-used-marker"); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("err=%v, want ENOTFOUND", err)
		}
	})
	t.Run("ErrUnknownArtifact", func(t *testing.T) {
		_, err := c.CollectClient(ctx, velociraptor.CollectRequest{Org: org, ClientID: h.client, Marker: "vh-unknown-artifact",
			Artifacts: []velociraptor.ArtifactSpec{{Name: "Custom.Velohunt.DoesNotExist"}}})
		if ioc.ErrorCode(err) != ioc.EINVALID {
			t.Fatalf("err=%v, want EINVALID", err)
		}
	})
	t.Run("CancelLeavesAnEndedFlow", func(t *testing.T) {
		if okFlow == "" {
			t.Skip("no finished flow")
		}
		if err := c.CancelFlow(ctx, org, h.client, okFlow); err != nil {
			t.Fatal(err)
		}
		if st, err := c.FlowStatus(ctx, org, h.client, okFlow); err != nil || st.State != "FINISHED" {
			t.Fatalf("status %+v err=%v: cancelling an ended flow changed it", st, err)
		}
		if err := c.CancelFlow(ctx, org, h.client, "F.DOESNOTEXIST"); ioc.ErrorCode(err) != ioc.ENOTFOUND {
			t.Fatalf("unknown flow: err=%v, want ENOTFOUND", err)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		// A flow that runs until cancelled: on the simulator, on an
		// endpoint that hangs; on a real client, an artifact that sleeps.
		client, r := h.client, velociraptor.CollectRequest{Org: org, ClientID: h.client, Marker: fmt.Sprintf("vh-cancel-%d", time.Now().UnixNano()),
			Artifacts: []velociraptor.ArtifactSpec{{Name: "Custom.Velohunt.Conformance.Sleep"}}, Timeout: 5 * time.Minute, Urgent: true}
		if srv != nil {
			client, r.ClientID = simHang, simHang
		}
		flow, err := c.CollectClient(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			st, err := c.FlowStatus(ctx, org, client, flow)
			if err != nil || st.Done() {
				t.Fatalf("status %+v err=%v, want a running flow", st, err)
			}
			if st.State == "IN_PROGRESS" || time.Now().After(deadline) {
				t.Logf("before cancel: %+v", st)
				break
			}
		}
		if err := c.CancelFlow(ctx, org, client, flow); err != nil {
			t.Fatal(err)
		}
		st := waitDone(t, c, org, client, flow)
		if st.State != "ERROR" || !strings.Contains(st.Status, "Cancelled") {
			t.Fatalf("status %+v, want ERROR Cancelled", st)
		}
	})
}
