package templates_test

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/templates"
)

// collectArtifact is velohunt's follow-up collection, not a hunt artifact:
// it takes one path, not IOCs (TestCollectArtifact).
const collectArtifact = "Custom.Velohunt.Collect"

// TestArtifacts checks every embedded hunt artifact: valid YAML, a CLIENT
// artifact with a json_array IOCs parameter, the common output columns, and
// one artifact per default kind.
func TestArtifacts(t *testing.T) {
	arts, err := templates.Artifacts("")
	if err != nil {
		t.Fatal(err)
	}
	for kind, k := range config.DefaultKinds() {
		if _, ok := arts[k.Artifact]; !ok {
			t.Errorf("kind %s: artifact %s is not shipped", kind, k.Artifact)
		}
	}
	for name, def := range arts {
		if name == collectArtifact {
			continue
		}
		var a struct {
			Name       string
			Type       string
			Parameters []struct{ Name, Type string }
			Sources    []struct{ Query string }
		}
		if err := yaml.Unmarshal([]byte(def), &a); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.Type != "CLIENT" || len(a.Sources) != 1 {
			t.Errorf("%s: type %q with %d sources, want one CLIENT source", name, a.Type, len(a.Sources))
		}
		found := false
		for _, p := range a.Parameters {
			found = found || p.Name == "IOCs" && p.Type == "json_array"
		}
		if !found {
			t.Errorf("%s: no json_array parameter IOCs", name)
		}
		for _, col := range []string{"AS IOC", "AS Source", "AS Evidence", "AS EventTime"} {
			if !strings.Contains(a.Sources[0].Query, col) {
				t.Errorf("%s: query has no %q column", name, col)
			}
		}
	}
}

// TestCollectArtifact checks the follow-up artifact: one CLIENT source,
// the parameters velohunt sets (Marker, Path, MaxBytes as an int) and the
// columns velociraptor.CollectedFile reads.
func TestCollectArtifact(t *testing.T) {
	arts, err := templates.Artifacts("")
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Type       string
		Parameters []struct{ Name, Type string }
		Sources    []struct{ Query string }
	}
	if err := yaml.Unmarshal([]byte(arts[collectArtifact]), &a); err != nil {
		t.Fatal(err)
	}
	if a.Type != "CLIENT" || len(a.Sources) != 1 {
		t.Fatalf("type %q with %d sources, want one CLIENT source", a.Type, len(a.Sources))
	}
	params := map[string]string{}
	for _, p := range a.Parameters {
		params[p.Name] = p.Type
	}
	if _, ok := params["Marker"]; !ok || params["MaxBytes"] != "int" {
		t.Errorf("parameters %v, want Marker, Path and MaxBytes (int)", params)
	}
	if _, ok := params["Path"]; !ok {
		t.Errorf("parameters %v: no Path", params)
	}
	for _, col := range []string{"Marker,", "AS Path", "AS Size", "AS Uploaded", "AS SHA256", "AS MD5", "AS Error"} {
		if !strings.Contains(a.Sources[0].Query, col) {
			t.Errorf("query has no %q column", col)
		}
	}
}
