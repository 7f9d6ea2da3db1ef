package templates_test

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/templates"
)

// TestArtifacts checks every embedded artifact: valid YAML, a CLIENT
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
