package velociraptor_test

// A mixed fleet: velohunt's four artifacts on every client release of
// ../shared/real-peers (VELO_EXTRA_CLIENT_TAGS), with the same evidence.
// Runs with the variables of realhash_test.go and
//
//	VELOHUNT_TEST_VELOCIRAPTOR_FLEET  client ids, space separated (e.g. the
//	                                  0.77.2 Linux client and the older ones)

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/templates"
)

// TestRealMixedFleet: on every client, each artifact finds the planted
// evidence, or its coverage rows say which source could not search (never
// a silent miss).
func TestRealMixedFleet(t *testing.T) {
	fleet := strings.Fields(os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_FLEET"))
	if len(fleet) == 0 {
		t.Skip("set VELOHUNT_TEST_VELOCIRAPTOR_FLEET to the client ids of a mixed fleet")
	}
	r := realHashEnv(t)
	defs, _ := templates.Artifacts("")
	for _, a := range []string{"Custom.Velohunt.File", "Custom.Velohunt.Domain", "Custom.Velohunt.Network"} {
		if _, err := r.c.SetArtifact(context.Background(), r.org, defs[a]); err != nil {
			t.Fatal(err)
		}
	}
	tree := quietDir(t)
	content := []byte("mixed fleet payload " + tree)
	os.WriteFile(filepath.Join(tree, "fleet-payload.bin"), content, 0o644)
	sum := md5.Sum(content)
	hosts := filepath.Join(tree, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n127.0.0.66 c2.fleet-test.example\n"), 0o644)
	lis, err := net.Listen("tcp", "127.0.0.88:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	glob, _ := json.Marshal([]string{tree + "/**"})
	hostsList, _ := json.Marshal([]string{hosts})
	list := func(v ...string) string { b, _ := json.Marshal(v); return string(b) }
	cases := []struct {
		artifact, source string
		params           map[string]string
	}{
		{"Custom.Velohunt.Hash", "files", map[string]string{"IOCs": list(hex.EncodeToString(sum[:])), "TargetGlobs": string(glob), "UseIndex": "N"}},
		{"Custom.Velohunt.File", "file_names", map[string]string{"IOCs": list("fleet-payload.bin"), "TargetGlobs": string(glob)}},
		{"Custom.Velohunt.Domain", "hosts_file", map[string]string{"IOCs": list("fleet-test.example"), "HostsFiles": string(hostsList)}},
		{"Custom.Velohunt.Network", "connections", map[string]string{"IOCs": list("127.0.0.88")}},
	}
	var table []string
	for _, client := range fleet {
		one := *r
		one.client = client
		for _, c := range cases {
			got := one.hunt(t, c.artifact, c.params)
			problem := ""
			for _, cov := range got.coverage {
				if m, _ := cov["Coverage"].(map[string]any); m["Source"] == c.source {
					if p, _ := m["Problem"].(string); p != "" {
						problem = p
					} else if n, _ := m["Searched"].(float64); n == 0 {
						problem = "searched nothing"
					}
				}
			}
			if len(got.coverage) == 0 {
				problem = "no coverage reported"
			}
			table = append(table, fmt.Sprintf("%s %-24s rows %d  %s", client, c.artifact, len(got.rows), problem))
			if len(got.rows) == 0 && problem == "" {
				t.Errorf("%s on %s: no row and a clean coverage: a silent miss", c.artifact, client)
			}
		}
	}
	t.Logf("mixed fleet:\n%s", strings.Join(table, "\n"))
}
