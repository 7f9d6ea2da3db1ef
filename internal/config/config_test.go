package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/ioc"
)

func TestLoad(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		c, err := config.Load("testdata/good.yml")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Hunting.BatchWindow.D(), 3*time.Second; got != want {
			t.Fatalf("BatchWindow=%v, want %v", got, want)
		}
		if got, want := len(c.Velociraptor.Servers), 2; got != want {
			t.Fatalf("servers=%d, want %d", got, want)
		}
		// Kinds left out of the file keep their default artifact.
		if got, want := c.Hunting.Kinds["ip"].Artifact, "Custom.Velohunt.Network"; got != want {
			t.Fatalf("ip artifact=%q, want %q", got, want)
		}
		if got := c.Hunting.Kinds["hash"].Parameters["TargetGlobs"]; got != `["C:/Users/**"]` {
			t.Fatalf("TargetGlobs=%q", got)
		}
	})
	tests := []struct{ file, field string }{
		{"bad-unknown-key.yml", "foo"},
		{"bad-cron.yml", "intake.reconcile"},
		{"bad-duration.yml", "duration"},
		{"bad-kind.yml", "hunting.kinds.registry"},
		{"bad-no-default.yml", "velociraptor.default.server"},
		{"bad-route.yml", "velociraptor.routes[0]"},
		{"bad-iris-url.yml", "iris.url"},
		{"bad-no-key.yml", "iris.api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Setenv(config.EnvIRISAPIKey, "")
			_, err := config.Load(filepath.Join("testdata", tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err=%v, want it to name %q", err, tt.field)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`iris: {url: "https://iris.example", api_key_file: %q}
webhook: {secret: 0123456789abcdef}
velociraptor: {servers: [{name: main, api_config: /x}]}
`, keyFile)

	t.Run("File", func(t *testing.T) {
		t.Setenv(config.EnvIRISAPIKey, "")
		c, err := config.Parse(strings.NewReader(yml))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.IRIS.APIKey.Reveal(), "from-file-secret"; got != want {
			t.Fatalf("key=%q, want %q", got, want)
		}
	})
	t.Run("EnvWins", func(t *testing.T) {
		t.Setenv(config.EnvIRISAPIKey, "from-env-secret")
		t.Setenv(config.EnvWebhookSecret, "webhook-secret-from-env")
		c, err := config.Parse(strings.NewReader(yml))
		if err != nil {
			t.Fatal(err)
		}
		if c.IRIS.APIKey.Reveal() != "from-env-secret" || c.Webhook.Secret.Reveal() != "webhook-secret-from-env" {
			t.Fatalf("env did not override: %q %q", c.IRIS.APIKey.Reveal(), c.Webhook.Secret.Reveal())
		}
		// Printing the config in any form never shows a secret.
		for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.IRIS.APIKey)} {
			if strings.Contains(s, "from-env-secret") || strings.Contains(s, "webhook-secret-from-env") {
				t.Fatalf("secret leaked in %q", s)
			}
		}
	})
	t.Run("ErrMissingFile", func(t *testing.T) {
		t.Setenv(config.EnvIRISAPIKey, "")
		_, err := config.Parse(strings.NewReader(strings.Replace(yml, keyFile, keyFile+".missing", 1)))
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != "iris.api_key_file" {
			t.Fatalf("err=%v, want FieldError on iris.api_key_file", err)
		}
	})
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv(config.EnvIRISAPIKey, "example-key")
	t.Setenv(config.EnvWebhookSecret, "example-webhook-secret")
	if _, err := config.Load("../../configs/velohunt.example.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestRoute(t *testing.T) {
	c, err := config.Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		cs          ioc.Case
		server, org string
	}{
		{"Customer", ioc.Case{ID: 5, Customer: "acme corp"}, "acme", "O1234"},
		{"Tag", ioc.Case{ID: 6, Customer: "Other", Tags: []string{"x", " Lab"}}, "main", ""},
		{"Default", ioc.Case{ID: 7, Customer: "Other"}, "main", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Route(tt.cs)
			if r.Server != tt.server || r.Org != tt.org {
				t.Fatalf("Route=%+v, want %s/%s", r, tt.server, tt.org)
			}
		})
	}
	if !c.NeedCaseDetails() {
		t.Fatal("NeedCaseDetails=false")
	}
}
