package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/config"
)

// TestDockerfileBuildCommand runs the exact go build command of the
// Dockerfile (no Docker engine runs in CI), with the image's paths
// replaced, and runs the binary it makes.
func TestDockerfileBuildCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmd string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "RUN CGO_ENABLED=1 go build") {
			cmd = strings.TrimPrefix(line, "RUN ")
		}
	}
	if cmd == "" {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=1 go build` line")
	}
	out := filepath.Join(t.TempDir(), "velohunt")
	cmd = strings.ReplaceAll(cmd, "${VERSION}", "dockertest")
	cmd = strings.ReplaceAll(cmd, "/out/velohunt", out)
	build := exec.Command("sh", "-c", cmd)
	build.Dir = "../.."
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	b, err := exec.Command(out, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(b)) != "velohunt dockertest" {
		t.Fatalf("version: %q %v", b, err)
	}
}

func TestDockerConfigIsValid(t *testing.T) {
	t.Setenv(config.EnvIRISAPIKey, "k")
	t.Setenv(config.EnvIRISAdminAPIKey, "a")
	t.Setenv(config.EnvWebhookSecret, "0123456789abcdef")
	if _, err := config.Load("../../configs/velohunt.docker.yaml"); err != nil {
		t.Fatal(err)
	}
}
