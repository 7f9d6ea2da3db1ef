package main

// Velociraptor's side of the loop against a real server, with the simulated
// IRIS. It runs only when asked:
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG  api_client config (investigator,artifact_writer)
//	VELOHUNT_TEST_VELOCIRAPTOR_CLIENT=1    a Velociraptor client runs on this machine
//
// It plants evidence for each hunt kind in a temporary folder (a file, its
// hashes, a TCP connection on loopback, a hosts-file entry), adds matching
// IOCs and one that matches nothing, and waits until velohunt's own
// artifacts, uploaded and hunted for real, have found each on the client and
// the hits reached the simulated IRIS.

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
)

func TestRealVelociraptorArtifacts(t *testing.T) {
	apiCfg := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	if apiCfg == "" || os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT") != "1" {
		t.Skip("needs a real Velociraptor with a client on this machine: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG and VELOHUNT_TEST_VELOCIRAPTOR_CLIENT=1")
	}
	ctx := context.Background()
	dir := t.TempDir()
	planted := filepath.Join(dir, "evidence", "velohunt-planted.bin")
	os.MkdirAll(filepath.Dir(planted), 0o755)
	content := make([]byte, 64)
	rand.Read(content)
	if err := os.WriteFile(planted, content, 0o644); err != nil {
		t.Fatal(err)
	}
	s256, m5 := sha256.Sum256(content), md5.Sum(content)
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n127.0.0.66 c2.velohunt-test.example other.name # planted\n"), 0o644)
	// A live connection to a loopback address the test owns.
	port := loopbackConnection(t, "127.0.0.77")

	glob, _ := json.Marshal([]string{filepath.ToSlash(dir) + "/**"})
	hostsList, _ := json.Marshal([]string{hosts})
	d := startRealVRDemo(t, dir, apiCfg, func(c *config.Config) {
		c.Hunting.ClientTimeout = config.Duration(2 * time.Minute)
		for kind, params := range map[string]map[string]string{"hash": {"TargetGlobs": string(glob)},
			"file": {"TargetGlobs": string(glob)}, "domain": {"HostsFiles": string(hostsList)}} {
			k := c.Hunting.Kinds[kind]
			k.Parameters = params
			c.Hunting.Kinds[kind] = k
		}
	})
	cid, err := d.Admin.AddCase(ctx, "real velociraptor", "artifact check", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // value → type
		hex.EncodeToString(s256[:]):        "sha256",
		hex.EncodeToString(m5[:]):          "md5",
		"velohunt-planted.bin":             "filename",
		planted:                            "file-path",
		fmt.Sprintf("127.0.0.77|%d", port): "ip-dst|port",
		"velohunt-test.example":            "domain",
	}
	miss := "ffffffffffffffffffffffffffffffff"
	for v, typ := range want {
		if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: v, TypeID: iristest.TypeID(typ), TLPID: 2}); err != nil {
			t.Fatal(err)
		}
	}
	d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: miss, TypeID: iristest.TypeID("md5"), TLPID: 2})

	deadline := time.Now().Add(4 * time.Minute)
	for {
		found := map[string]bool{}
		for _, e := range d.IRIS.Events(cid) {
			for v := range want {
				if strings.Contains(e.Content, v) || strings.Contains(e.Title, v) {
					found[v] = true
				}
			}
			if strings.Contains(e.Content, miss) {
				t.Fatalf("the IOC that matches nothing was reported: %s", e.Title)
			}
		}
		if len(found) == len(want) {
			t.Logf("every kind found on the real client: %d events", len(d.IRIS.Events(cid)))
			return
		}
		if time.Now().After(deadline) {
			var missing []string
			for v, typ := range want {
				if !found[v] {
					missing = append(missing, typ+" "+v)
				}
			}
			st, _ := collectStatus(ctx, d.App.Store)
			b, _ := json.MarshalIndent(st, "", " ")
			var titles []string
			for _, e := range d.IRIS.Events(cid) {
				titles = append(titles, e.Title)
			}
			t.Fatalf("not found after 4 minutes: %v\nevents: %q\nstatus: %s", missing, titles, b)
		}
		time.Sleep(3 * time.Second)
	}
}

// TestRealVelociraptorSysmon hunts real Sysmon Operational logs on the
// Linux client, the artifacts reading the log named by their SysmonLog
// parameter because the file exists:
//
//	VELOHUNT_TEST_SYSMON_EVTX      a log with Sysmon event ID 3; Velociraptor's
//	                               own artifacts/testdata/files/evtx/Microsoft-Windows-Sysmon%4Operational.evtx
//	                               has two connections to 127.0.0.1:5985
//	VELOHUNT_TEST_SYSMON_DNS_EVTX  a log with Sysmon event ID 22 (DNS query), and
//	VELOHUNT_TEST_SYSMON_DNS_NAME  a name it queried; EVTX-ATTACK-SAMPLES'
//	                               "Privilege Escalation/Sysmon_UACME_64.evtx" has
//	                               svchost.exe querying wpad
func TestRealVelociraptorSysmon(t *testing.T) {
	apiCfg := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	netLog, dnsLog, dnsName := os.Getenv("VELOHUNT_TEST_SYSMON_EVTX"), os.Getenv("VELOHUNT_TEST_SYSMON_DNS_EVTX"), os.Getenv("VELOHUNT_TEST_SYSMON_DNS_NAME")
	if apiCfg == "" || os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT") != "1" || netLog == "" && dnsLog == "" {
		t.Skip("needs a real Velociraptor with a client here and VELOHUNT_TEST_SYSMON_EVTX or VELOHUNT_TEST_SYSMON_DNS_EVTX")
	}
	if dnsLog != "" && dnsName == "" {
		t.Fatal("VELOHUNT_TEST_SYSMON_DNS_EVTX needs VELOHUNT_TEST_SYSMON_DNS_NAME, a name the log's event ID 22 records queried")
	}
	ctx := context.Background()
	d := startRealVRDemo(t, t.TempDir(), apiCfg, func(c *config.Config) {
		for kind, log := range map[string]string{"ip": netLog, "domain": dnsLog} {
			k := c.Hunting.Kinds[kind]
			k.Parameters = map[string]string{"SysmonLog": log}
			c.Hunting.Kinds[kind] = k
		}
	})
	cid, _ := d.Admin.AddCase(ctx, "sysmon", "real evtx", 1, "")
	// want counts the events expected for each source and evidence.
	type want struct{ source, evidence string }
	wants := map[want]int{}
	if netLog != "" {
		if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: "127.0.0.1|5985", TypeID: iristest.TypeID("ip-dst|port"), TLPID: 2}); err != nil {
			t.Fatal(err)
		}
		wants[want{"sysmon_network", "127.0.0.1:5985"}] = 2
	}
	if dnsLog != "" {
		if _, err := d.Admin.AddIOC(ctx, cid, iris.NewIOC{Value: dnsName, TypeID: iristest.TypeID("domain"), TLPID: 2}); err != nil {
			t.Fatal(err)
		}
		wants[want{"sysmon_dns", " queried " + dnsName}] = 1
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := map[want]int{}
		for _, e := range d.IRIS.Events(cid) {
			for w := range wants {
				if strings.Contains(e.Content, w.source) && strings.Contains(e.Content, w.evidence) {
					got[w]++
				}
			}
		}
		done := true
		for w, n := range wants {
			done = done && got[w] >= n
		}
		if done {
			t.Logf("found in the real logs: %v", got)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Sysmon events after 3 minutes: %v, want at least %v", got, wants)
		}
		time.Sleep(2 * time.Second)
	}
}
